"""Stage 2, segment: speech spans -> 3-10 s clips cut at pauses, never inside a word when a pause exists.

`cut_clips` is pure: neighbouring VAD spans are grouped while the clip stays under
`max_s` and the pause between them is short; a clip ends at a pause (cut in the middle of
the silence); a single span longer than `max_s` (speech without a VAD pause) is split at
its quietest 20 ms frame. Pieces shorter than `min_s` are dropped.
"""

from __future__ import annotations

import numpy as np

from gsvd.trainer.records import Clip, SourceAudio, TrainError
from gsvd.trainer.workspace import Workspace

MAX_GAP = 1.2  # a longer pause ends a clip (a new thought, another speaker, music)
EDGE = 0.15  # silence kept before and after a clip's speech


def cut_clips(wav16: np.ndarray, spans: list[tuple[float, float]], min_s: float = 3.0,
              max_s: float = 10.0) -> list[tuple[float, float]]:
    total = wav16.size / 16000
    pieces = [p for s, e in spans for p in _split_long(wav16, s, e, max_s - 2 * EDGE)]
    groups: list[list[tuple[float, float]]] = []
    for s, e in pieces:
        cur = groups[-1] if groups else None
        if cur and s - cur[-1][1] <= MAX_GAP and e - cur[0][0] <= max_s - 2 * EDGE:
            cur.append((s, e))
        else:
            groups.append([(s, e)])
    clips = []
    for i, g in enumerate(groups):
        prev_end = groups[i - 1][-1][1] if i else 0.0
        next_start = groups[i + 1][0][0] if i + 1 < len(groups) else total
        start = max(g[0][0] - EDGE, (prev_end + g[0][0]) / 2, 0.0)
        end = min(g[-1][1] + EDGE, (g[-1][1] + next_start) / 2, total)
        if end - start >= min_s:
            clips.append((round(start, 3), round(min(end, start + max_s), 3)))
    return clips


def _split_long(wav16: np.ndarray, s: float, e: float, limit: float) -> list[tuple[float, float]]:
    """A span longer than `limit` split at its quietest frames (each piece <= limit)."""
    out = []
    while e - s > limit:
        lo, hi = s + limit / 3, s + limit
        cut = _quietest(wav16, lo, hi)
        out.append((s, cut))
        s = cut
    out.append((s, e))
    return out


def _quietest(wav16: np.ndarray, lo: float, hi: float, frame: float = 0.02) -> float:
    a, b = int(lo * 16000), int(hi * 16000)
    n = int(frame * 16000)
    seg = wav16[a:b]
    if seg.size < 2 * n:
        return hi
    frames = seg[: seg.size // n * n].reshape(-1, n)
    energy = np.convolve((frames**2).mean(axis=1), np.ones(3) / 3, mode="same")  # smooth over 60 ms
    return lo + (int(np.argmin(energy)) + 0.5) * frame


def segment_sources(sources: list[SourceAudio], ws: Workspace, min_s: float = 3.0, max_s: float = 10.0) -> list[Clip]:
    """VAD + cutting for every source; clip WAVs at 32 kHz and 16 kHz under `segment/clips/`."""
    from gsvd.engine.audio import load_audio
    from gsvd.trainer.vad import speech_spans
    from gsvd.wavio import write_wav

    out = ws.stage_dir("segment") / "clips"
    clips: list[Clip] = []
    for src in sources:
        wav16 = load_audio(ws.path(src.wav16), 16000)
        wav32 = load_audio(ws.path(src.wav32), 32000)
        spans = speech_spans(wav16)
        stem = source_stem(src)
        for n, (s, e) in enumerate(cut_clips(wav16, spans, min_s, max_s)):
            cid = f"{stem}_{n:04d}"
            p32 = write_wav(out / f"{cid}.32k.wav", wav32[int(s * 32000):int(e * 32000)], 32000)
            p16 = write_wav(out / f"{cid}.16k.wav", wav16[int(s * 16000):int(e * 16000)], 16000)
            inside = sum(max(0.0, min(e, b) - max(s, a)) for a, b in spans)
            clips.append(Clip(id=cid, source=src.source, start=s, end=e, wav32=ws.rel(p32), wav16=ws.rel(p16),
                              speech_seconds=round(inside, 3)))
    if not clips:
        names = ", ".join(src.source for src in sources)
        raise TrainError(f"no speech found in {names}: no stretch of at least {min_s:g} s of speech "
                         "(check the audio track with --track, or the files themselves)")
    return clips


def source_stem(src: SourceAudio) -> str:
    """Clip ids derive from the extract file stem (`<name>-<sha8>`)."""
    return src.wav32.rsplit("/", 1)[-1].removesuffix(".32k.wav")
