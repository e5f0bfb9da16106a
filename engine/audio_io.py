"""Decoding audio files to float32 (soundfile; PyAV for containers soundfile can't read), torch-free, so that
tools that only read audio (`gsvd watermark detect`) start without importing torch. `gsvd.engine.audio`
re-exports these names."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gsvd.engine.errors import InvalidInput


def decode_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """File -> (float32 [channels, samples], rate). InvalidInput for unreadable or empty files."""
    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"audio file not found: {p}", "audio")
    try:
        import soundfile as sf

        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
        audio = data.T
    except Exception:
        audio, rate = _decode_with_av(p)
    if audio.shape[-1] == 0:
        raise InvalidInput(f"{p} contains no audio samples", "audio")
    return np.ascontiguousarray(audio, dtype=np.float32), int(rate)


def _decode_with_av(path: Path) -> tuple[np.ndarray, int]:
    try:
        import av
    except ImportError:
        raise InvalidInput(f"cannot decode {path}: install the 'train' extra (PyAV) for this format", "audio") from None
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise InvalidInput(f"{path} has no audio stream", "audio")
            stream = container.streams.audio[0]
            frames = [f.to_ndarray().astype(np.float32) for f in container.decode(stream)]
            rate = stream.rate
            layout_planar = stream.format.is_planar if stream.format else True
    except InvalidInput:
        raise
    except Exception as exc:
        raise InvalidInput(f"cannot decode {path}: {exc}", "audio") from None
    if not frames:
        raise InvalidInput(f"{path} contains no audio samples", "audio")
    chans = stream.channels or 1
    if layout_planar:
        audio = np.concatenate(frames, axis=1)
    else:
        audio = np.concatenate([f.reshape(-1, chans).T for f in frames], axis=1)
    if np.issubdtype(frames[0].dtype, np.integer) or np.abs(audio).max() > 8:
        audio = audio / 32768.0
    return audio.astype(np.float32), int(rate)


def to_mono(audio: np.ndarray) -> np.ndarray:
    """[C, N] or [N] -> [N] (mean of channels)."""
    return audio if audio.ndim == 1 else audio.mean(axis=0).astype(np.float32)
