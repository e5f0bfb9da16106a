"""Helpers of the provenance tests: lossy round trips through PyAV's encoders (what a listener's copy of
gsvd's audio may have gone through)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def encode_file(pcm: np.ndarray, rate: int, path: Path, codec: str) -> None:
    """Write ``pcm`` to ``path`` with ``codec`` (libmp3lame, libopus) at 64 kb/s."""
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=48000 if codec == "libopus" else rate)
        stream.bit_rate = 64000
        frame = av.AudioFrame.from_ndarray((np.clip(pcm, -1, 1) * 32767).astype(np.int16)[None], format="s16",
                                           layout="mono")
        frame.rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def round_trip(pcm: np.ndarray, rate: int, codec: str, folder: Path) -> tuple[np.ndarray, int]:
    """``pcm`` encoded at 64 kb/s and decoded back as the detector's CLI would read the file."""
    from gsvd.engine.provenance.scan import decode_mono

    path = folder / ("clip.ogg" if codec == "libopus" else "clip.mp3")
    encode_file(pcm, rate, path, codec)
    return decode_mono(path)
