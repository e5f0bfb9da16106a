"""The selection report: `select/report.md` (a row per clip with every measure and the reason it was
kept or dropped) and `select/scores.png` (scores, coloured by the decision, and SNR vs music)."""

from __future__ import annotations

from pathlib import Path

from gsvd.trainer.records import ClipScore
from gsvd.trainer.workspace import Workspace, atomic_write_text

COLUMNS = ("id", "seconds", "snr_db", "music", "clipping", "speech_ratio", "rate", "overlap", "score", "kept", "reason")


def markdown(scores: list[ClipScore]) -> str:
    kept = [s for s in scores if s.kept]
    lines = [
        "# Clip selection",
        "",
        f"{len(kept)} of {len(scores)} clips kept, {sum(s.seconds for s in kept):.1f} s of "
        f"{sum(s.seconds for s in scores):.1f} s. Overlap = timbre distance from the majority of clips "
        "(a second speaker shows up there; simultaneous speech is not separated).",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for s in sorted(scores, key=lambda s: -s.score):
        cells = [s.id, f"{s.seconds:.2f}", f"{s.snr_db:.1f}", f"{s.music:.2f}", f"{s.clipping * 100:.2f}%",
                 f"{s.speech_ratio:.2f}", f"{s.rate:.1f}", f"{s.overlap:.2f}", f"{s.score:.3f}",
                 "yes" if s.kept else "no", s.reason]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(scores: list[ClipScore], ws: Workspace) -> tuple[Path, Path]:
    out = ws.stage_dir("select")
    md = atomic_write_text(out / "report.md", markdown(scores))
    return md, _plot(scores, out / "scores.png")


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
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(path)
    return path
