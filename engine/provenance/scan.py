"""Reading a whole file for watermarks: decode (soundfile, else PyAV: WAV, FLAC, MP3, Opus, ...), mix to
mono, then read the whole file (the most periods folded together: best for one stream) and windows of
``WINDOW_S`` every ``HOP_S`` (a file joined from several streams carries several offsets and payloads).
torch-free, so ``gsvd watermark detect`` starts fast."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from gsvd.engine.errors import InvalidInput
from gsvd.engine.provenance.detector import MIN_EXCERPT_S, Detection, Detector, prepare

WINDOW_S = 6.0
HOP_S = 3.0


@dataclass(frozen=True)
class FileResult:
    path: Path
    seconds: float
    best: Detection
    """The strongest detection (found, highest confidence); if none found, the highest sync peak."""
    payloads: tuple[Detection, ...]
    """Every distinct payload found, first occurrence each."""


def decode_mono(path: str | Path) -> tuple[np.ndarray, int]:
    """A file's audio as mono float32 and its rate; InvalidInput if it cannot be read."""
    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"no such file: {p}", "file")
    try:
        import soundfile as sf

        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
        audio = data.mean(axis=1)
    except Exception:
        audio, rate = _decode_av(p)
    if audio.size == 0:
        raise InvalidInput(f"{p} contains no audio samples", "file")
    return np.ascontiguousarray(audio, dtype=np.float32), int(rate)


def _decode_av(path: Path) -> tuple[np.ndarray, int]:
    try:
        import av
    except ImportError:
        raise InvalidInput(f"cannot decode {path}: install PyAV (the 'train' extra) for this format", "file") from None
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise InvalidInput(f"{path} has no audio stream", "file")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=stream.rate)
            pieces = [f.to_ndarray().reshape(-1) for frame in container.decode(stream) for f in resampler.resample(frame)]
            pieces += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
            rate = stream.rate
    except InvalidInput:
        raise
    except Exception as exc:
        raise InvalidInput(f"cannot decode {path}: {exc}", "file") from None
    return (np.concatenate(pieces) if pieces else np.zeros(0, np.float32)), int(rate)


def scan(audio: np.ndarray, rate: int, detector: Detector) -> tuple[Detection, tuple[Detection, ...]]:
    """Read the whole clip and its windows; the best detection and each distinct payload found."""
    seconds = len(audio) / rate
    starts = [0.0]
    if seconds > WINDOW_S:
        starts += list(np.arange(0.0, seconds - MIN_EXCERPT_S + 1e-9, HOP_S))
    results = []
    for i, start in enumerate(starts):
        lo = int(start * rate)
        hi = len(audio) if i == 0 else min(len(audio), lo + int(WINDOW_S * rate))
        results.append(replace(detector.decode(prepare(audio[lo:hi], rate)), start_s=float(start)))
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
