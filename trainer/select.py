"""Stage 3, select: score every clip, drop bad ones and duplicates, keep the best `target_seconds`.

Drops, each with its reason in words: too noisy (SNR < 12 dB), music under the speech
(music > 0.5), clipping (> 0.5 % of samples), mostly silence (speech ratio < 0.5), another
speaker (timbre far from the majority of clips), near-duplicate audio (the same recording
again, louder, re-encoded, or cut from a longer clip: log-mel contours correlated at the
best offset >= 0.9) and repeated sentences (same normalized transcript). Then the best
clips by score fill the budget. Too little clean speech is an error that says how much
was found and why the rest was dropped.
"""

from __future__ import annotations

import re
from collections import Counter
from difflib import SequenceMatcher

import numpy as np

from gsvd.trainer.records import Clip, ClipScore, TrainError
from gsvd.trainer.workspace import Workspace

MIN_SNR, MAX_MUSIC, MAX_CLIPPING, MIN_SPEECH, MAX_OVERLAP, DUP_SIM = 12.0, 0.5, 0.005, 0.5, 0.6, 0.9


def score_clips(clips: list[Clip], ws: Workspace) -> tuple[list[ClipScore], dict[str, np.ndarray]]:
    """Measures + overall score for every clip; also returns each clip's fingerprint for dedupe."""
    from gsvd.engine.audio import load_audio
    from gsvd.trainer.quality import measure

    rows, voices, prints = [], [], {}
    for c in clips:
        wav = load_audio(ws.path(c.wav16), 16000)
        m = measure(wav, c.speech_seconds)
        voices.append(np.asarray(m.pop("voice")))
        prints[c.id] = fingerprint(wav)
        rows.append((c, m))
    overlap = _speaker_outliers(voices)
    scores = []
    for (c, m), ov in zip(rows, overlap, strict=True):
        m["overlap"] = float(ov)
        scores.append(ClipScore(id=c.id, seconds=round(c.seconds, 3), **{k: round(v, 4) for k, v in m.items()},
                                score=round(combine(m), 4), kept=False, reason=""))
    return scores, prints


def combine(m: dict) -> float:
    """0..1, higher is better."""
    snr = np.clip((m["snr_db"] - 10.0) / 30.0, 0.0, 1.0)
    rate_ok = 1.0 if 1.5 <= m["rate"] <= 7.0 else 0.5
    s = 0.4 * snr + 0.25 * (1 - m["music"]) + 0.2 * m["speech_ratio"] + 0.15 * rate_ok
    s -= 0.3 * min(1.0, m["clipping"] * 50) + 0.3 * m.get("overlap", 0.0)
    return float(np.clip(s, 0.0, 1.0))


def _speaker_outliers(voices: list[np.ndarray]) -> list[float]:
    """0..1 per clip: distance of its timbre vector from the clips' median, scaled by the typical spread."""
    if len(voices) < 4:
        return [0.0] * len(voices)
    v = np.stack(voices)
    d = np.linalg.norm(v - np.median(v, axis=0), axis=1)
    typical = np.median(d) + 1e-6
    return [float(np.clip((x / typical - 1.8) / 1.5, 0.0, 1.0)) for x in d]


def fingerprint(wav16: np.ndarray) -> np.ndarray:
    """Log-mel contour [frames(40 ms), 8 bands], mean-removed per band (gain-independent)."""
    from gsvd.trainer.quality import _MEL, _power_spec

    spec = _power_spec(np.asarray(wav16, np.float64))
    spec = spec[: spec.shape[0] // 2 * 2].reshape(-1, 2, spec.shape[1]).mean(axis=1)
    mel = np.log(spec @ _MEL.T + 1e-9)
    mel = mel.reshape(mel.shape[0], 8, 2).mean(axis=2)
    return mel - mel.mean(axis=0)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Best normalized correlation of the shorter contour slid along the longer one."""
    if a.shape[0] > b.shape[0]:
        a, b = b, a
    n = a.shape[0]
    if n < 10:
        return 0.0
    win = np.lib.stride_tricks.sliding_window_view(b, (n, b.shape[1]))[:, 0]  # [offsets, n, 8]
    win = win - win.mean(axis=1, keepdims=True)
    num = (win * a).sum(axis=(1, 2))
    den = np.sqrt((win**2).sum(axis=(1, 2)) * (a**2).sum()) + 1e-9
    return float((num / den).max())


def _norm_text(t: str) -> str:
    return re.sub(r"[\W_]+", "", t.lower())


def select_clips(scores: list[ClipScore], target_seconds: float = 60.0, min_seconds: float = 10.0,
                 texts: dict[str, str] | None = None, prints: dict[str, np.ndarray] | None = None) -> list[ClipScore]:
    """Mark every clip kept/dropped with a reason (in place, best first); TrainError when too little is kept."""
    order = sorted(scores, key=lambda s: -s.score)
    kept: list[ClipScore] = []
    total = 0.0
    for sc in order:
        sc.kept, sc.duplicate_of = False, None
        sc.reason = _quality_problem(sc) or _duplicate(sc, kept, texts, prints) or ""
        if sc.reason:
            continue
        if total >= target_seconds:
            sc.reason = f"dropped: over the {target_seconds:g} s budget"
            continue
        sc.kept = True
        total += sc.seconds
        sc.reason = f"kept: rank {len(kept) + 1}, score {sc.score:.2f}"
        kept.append(sc)
    if total < min_seconds:
        why = Counter(s.reason.split(":")[1].split("(")[0].split(">")[0].split("<")[0].strip()
                      for s in order if not s.kept and s.reason)
        detail = ", ".join(f"{n} x {r}" for r, n in why.most_common(4)) or "no clips at all"
        raise TrainError(f"not enough clean speech: found {total:.1f} s of usable clips, need at least "
                         f"{min_seconds:g} s (dropped: {detail}); add more or cleaner recordings")
    return order


def _quality_problem(sc: ClipScore) -> str:
    if sc.snr_db < MIN_SNR:
        return f"dropped: too noisy (SNR {sc.snr_db:.1f} dB < {MIN_SNR:g})"
    if sc.music > MAX_MUSIC:
        return f"dropped: music/noise under the speech ({sc.music:.2f} > {MAX_MUSIC})"
    if sc.clipping > MAX_CLIPPING:
        return f"dropped: clipping ({sc.clipping * 100:.2f}% of samples)"
    if sc.speech_ratio < MIN_SPEECH:
        return f"dropped: mostly silence (speech ratio {sc.speech_ratio:.2f} < {MIN_SPEECH})"
    if sc.overlap > MAX_OVERLAP:
        return f"dropped: another speaker (timbre outlier {sc.overlap:.2f})"
    return ""


def _duplicate(sc: ClipScore, kept: list[ClipScore], texts, prints) -> str:
    for other in kept:
        if texts and sc.id in texts and other.id in texts:
            a, b = _norm_text(texts[sc.id]), _norm_text(texts[other.id])
            if a and b and (a == b or SequenceMatcher(None, a, b).ratio() >= 0.9):
                sc.duplicate_of = other.id
                return f"dropped: repeats the sentence of {other.id}"
        if prints and sc.id in prints and other.id in prints:
            sim = similarity(prints[sc.id], prints[other.id])
            if sim >= DUP_SIM:
                sc.duplicate_of = other.id
                return f"dropped: near-duplicate of {other.id} (similarity {sim:.2f})"
    return ""


def run_select(ws: Workspace, target_seconds: float = 60.0, min_seconds: float = 10.0,
               texts: dict[str, str] | None = None) -> list[ClipScore]:
    from gsvd.trainer.report import write_report

    clips = ws.load_records("segment", "clips.json", Clip)
    scores, prints = score_clips(clips, ws)
    try:
        order = select_clips(scores, target_seconds, min_seconds, texts, prints)
    finally:
        ws.save_records("select", "scores.json", scores)
        write_report(scores, ws)
    return order
