"""Atomic 16-bit mono WAV writing (stdlib + numpy only; shared by the engine and the clients)."""

from __future__ import annotations

import os
import tempfile
import wave
from pathlib import Path

import numpy as np


def write_wav(path: str | Path, pcm: np.ndarray, rate: int) -> Path:
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    data = (np.clip(np.asarray(pcm, np.float32), -1, 1) * 32767).astype("<i2").tobytes()
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as raw, wave.open(raw, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(int(rate))
            w.writeframes(data)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest
