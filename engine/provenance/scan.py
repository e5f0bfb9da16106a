"""Reading a whole file for watermarks: decode (soundfile, else PyAV: WAV, FLAC, MP3, Opus, ...), mix to
mono, then read the whole file (the most periods folded together: best for one stream) and windows of
``WINDOW_S`` every ``HOP_S`` (a file joined from several streams carries several offsets and payloads).
torch-free, so ``gsvd watermark detect`` starts fast."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from gsvd.engine.audio_io import decode_audio, to_mono
from gsvd.engine.errors import InvalidInput
from gsvd.engine.provenance.detector import MIN_EXCERPT_S, SPEEDS, Detection, Detector, prepare

WINDOW_S = 6.0
HOP_S = 3.0
SPEED_WINDOWS = 4
"""When nothing is found as recorded, the detector's speed changes are tried on this many windows (spread
over the file): a speed change applies to the whole file, and each speed costs a full search."""


@dataclass(frozen=True)
class FileResult:
    path: Path
    seconds: float
    best: Detection
    """The strongest detection (found, highest confidence); if none found, the highest sync peak."""
    payloads: tuple[Detection, ...]
    """Every distinct payload found, first occurrence each."""


def decode_mono(path: str | Path) -> tuple[np.ndarray, int]:
    """A file's audio as mono float32 and its rate; InvalidInput if it cannot be read (`engine.audio_io`)."""
    audio, rate = decode_audio(path)
    return to_mono(audio), rate


def scan(audio: np.ndarray, rate: int, detector: Detector,
         speeds: tuple[float, ...] = SPEEDS) -> tuple[Detection, tuple[Detection, ...]]:
    """Read the whole clip and its windows; the best detection and each distinct payload found. If none is
    found, read up to SPEED_WINDOWS of the excerpts again at each of ``speeds``."""
    seconds = len(audio) / rate
    starts = [0.0]
    if seconds > WINDOW_S:
        starts += list(np.arange(0.0, seconds - MIN_EXCERPT_S + 1e-9, HOP_S))
    excerpts = []
    for i, start in enumerate(starts):
        lo = int(start * rate)
        hi = len(audio) if i == 0 else min(len(audio), lo + int(WINDOW_S * rate))
        excerpts.append((float(start), audio[lo:hi]))
    results = [replace(detector.decode(prepare(x, rate)), start_s=start) for start, x in excerpts]
    if not any(r.found for r in results) and speeds:
        windows = excerpts[1:] or excerpts
        pick = np.unique(np.linspace(0, len(windows) - 1, min(SPEED_WINDOWS, len(windows))).round().astype(int))
        for speed in speeds:
            results += [replace(detector.decode(prepare(windows[i][1], rate, speed)), start_s=windows[i][0])
                        for i in pick]
            if any(r.found for r in results):
                break
    found = [r for r in results if r.found]
    best = max(found, key=lambda r: (r.confidence, r.sync_z)) if found else max(results, key=lambda r: r.sync_z)
    distinct: dict = {}
    for r in found:
        distinct.setdefault(r.payload, r)
    return best, tuple(distinct.values())


def scan_file(path: str | Path, detector: Detector) -> FileResult:
    audio, rate = decode_mono(path)
    if len(audio) < rate * 0.5:
        raise InvalidInput(f"{path} is {len(audio) / rate:.2f} s long; a watermark needs at least "
                           f"{MIN_EXCERPT_S:g} s to be read reliably", "file")
    best, payloads = scan(audio, rate, detector)
    return FileResult(Path(path), len(audio) / rate, best, payloads)
