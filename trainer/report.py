"""The selection report: `select/report.md` (the stage's totals line, how the voice was chosen, a row
per clip with every measure, its text and the reason it was kept or dropped, and the clips' speaker
similarity matrix), `select/scores.png` (scores coloured by the decision, SNR vs music) and
`select/speakers.png` (the similarity matrix, clips grouped by voice)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gsvd.trainer.records import ClipScore
from gsvd.trainer.speaker import SpeakerDecision
from gsvd.trainer.workspace import Workspace, atomic_write_text

COLUMNS = ("id", "seconds", "snr_db", "music", "clipping", "speech_ratio", "rate", "voice", "similarity",
           "phones/s", "CER", "score", "kept", "reason", "text")
MATRIX_ROWS = 40  # the markdown matrix is written up to this many clips (the PNG always)


def markdown(scores: list[ClipScore], decision: SpeakerDecision | None = None) -> str:
    from gsvd.trainer.select import summary

    lines = [
        "# Clip selection",
        "",
        summary(scores) + f" (of {len(scores)} clips, {sum(s.seconds for s in scores):.1f} s).",
        "",
    ]
    if decision is not None:
        voices = sorted(decision.seconds)
        lines += [f"Voices: {len(voices)} ("
                  + ", ".join(f"voice {k}: {decision.labels.count(k)} pieces, {decision.seconds[k]:.1f} s"
                              for k in voices)
                  + f"); kept voice {decision.chosen} by {decision.how}. Pieces = the clips' cues or stretches of speech, clustered apart; similarity = their mean cosine "
                  "similarity to the kept voice's other clips (speaker embeddings; see speakers.png).", ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for s in sorted(scores, key=lambda s: -s.score):
        cells = [s.id, f"{s.seconds:.2f}", f"{s.snr_db:.1f}", f"{s.music:.2f}", f"{s.clipping * 100:.2f}%",
                 f"{s.speech_ratio:.2f}", f"{s.rate:.1f}", "" if s.speaker is None else str(s.speaker),
                 "" if s.speaker is None else f"{1 - s.overlap:.2f}",
                 "" if s.phone_rate is None else f"{s.phone_rate:.1f}", "" if s.cer is None else f"{s.cer:.2f}",
                 f"{s.score:.3f}", "yes" if s.kept else "no", s.reason, _cell(s.text or "")]
        lines.append("| " + " | ".join(cells) + " |")
    if decision is not None and 2 <= len(decision.ids) <= MATRIX_ROWS:
        order = _order(decision)
        lines += ["", "## Speaker similarity", "", "| | " + " | ".join(str(i) for i in range(len(order))) + " |",
                  "|" + "---|" * (len(order) + 1)]
        for r, i in enumerate(order):
            row = [f"{r}: {decision.ids[i]} (voice {decision.labels[i]})"]
            row += [f"{decision.sim[i, j]:.2f}" for j in order]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")[:120]


def _order(decision: SpeakerDecision) -> list[int]:
    """Clips grouped by voice, the kept voice first."""
    return sorted(range(len(decision.ids)), key=lambda i: (decision.labels[i] != decision.chosen,
                                                          decision.labels[i], decision.ids[i]))


def write_report(scores: list[ClipScore], ws: Workspace, decision: SpeakerDecision | None = None) -> tuple[Path, Path]:
    out = ws.stage_dir("select")
    md = atomic_write_text(out / "report.md", markdown(scores, decision))
    png = _plot(scores, out / "scores.png")
    if decision is not None and len(decision.ids) >= 2:
        _plot_speakers(decision, out / "speakers.png")
    else:
        (out / "speakers.png").unlink(missing_ok=True)
    return md, png


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(path)
    return path


def _plot(scores: list[ClipScore], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = sorted(scores, key=lambda s: -s.score)
    colours = ["tab:green" if s.kept else "tab:red" for s in order]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.bar(range(len(order)), [s.score for s in order], color=colours)
    a.set(title="clip scores (green kept, red dropped)", xlabel="clip rank", ylabel="score", ylim=(0, 1))
    b.scatter([s.snr_db for s in order], [s.music for s in order], c=colours)
    b.set(title="SNR vs music", xlabel="SNR (dB)", ylabel="music (0..1)")
    fig.tight_layout()
    return _save(fig, path)


def _plot_speakers(decision: SpeakerDecision, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = _order(decision)
    m = decision.sim[np.ix_(order, order)]
    n = len(order)
    size = min(12.0, 4.0 + 0.18 * n)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(m, vmin=0.3, vmax=1.0, cmap="viridis")
    labels = [f"{decision.ids[i]} [{decision.labels[i]}]" for i in order]
    if n <= 60:
        ax.set_xticks(range(n), labels, rotation=90, fontsize=6)
        ax.set_yticks(range(n), labels, fontsize=6)
    bounds = [k for k in range(1, n) if decision.labels[order[k]] != decision.labels[order[k - 1]]]
    for k in bounds:
        ax.axhline(k - 0.5, color="white", lw=1)
        ax.axvline(k - 0.5, color="white", lw=1)
    ax.set_title(f"speaker similarity (kept voice {decision.chosen}: {decision.how})", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    return _save(fig, path)
