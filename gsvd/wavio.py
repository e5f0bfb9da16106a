"""Atomic 16-bit mono WAV writing with optional metadata (stdlib + numpy only; shared by the engine and
the clients).

Metadata goes in two RIFF chunks before the audio: a LIST/INFO chunk (comment, software, date, artist,
genre: what players and tag editors show) and an ``aigc`` chunk holding a JSON object (the machine-readable
AI-generated label, ``gsvd.engine.provenance.label``). Readers that do not know a chunk skip it.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

AIGC_CHUNK = b"aigc"


@dataclass(frozen=True)
class WavMetadata:
    """What a WAV file says about itself besides its audio."""

    info: Mapping[str, str] = field(default_factory=dict)
    """LIST/INFO tags by their four-letter id (ICMT, ISFT, ICRD, IART, IGNR, INAM ...)."""
    aigc: Mapping[str, Any] | None = None
    """The JSON object of the ``aigc`` chunk."""


class Label(Protocol):
    """What a label gives a WAV file (``gsvd.engine.provenance.label.AiLabel`` is one)."""

    def info_tags(self) -> dict[str, str]: ...
    def to_dict(self) -> dict: ...


def write_wav(path: str | Path, pcm: np.ndarray, rate: int, *, label: Label | WavMetadata | None = None) -> Path:
    """Write ``pcm`` (float, clipped to [-1, 1]) as 16-bit mono; a label's metadata before the audio."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    data = (np.clip(np.asarray(pcm, np.float32), -1, 1) * 32767).astype("<i2").tobytes()
    meta = label if isinstance(label, WavMetadata) or label is None else WavMetadata(label.info_tags(), label.to_dict())
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            raw.write(_riff(data, int(rate), meta))
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _chunk(cid: bytes, body: bytes) -> bytes:
    return cid + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")


def _riff(data: bytes, rate: int, meta: WavMetadata | None) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    parts = [_chunk(b"fmt ", fmt)]
    if meta is not None and meta.info:
        tags = b"".join(_chunk(_cid(k), v.encode("utf-8") + b"\0") for k, v in meta.info.items())
        parts.append(_chunk(b"LIST", b"INFO" + tags))
    if meta is not None and meta.aigc is not None:
        parts.append(_chunk(AIGC_CHUNK, json.dumps(dict(meta.aigc), ensure_ascii=False, sort_keys=True).encode()))
    parts.append(_chunk(b"data", data))
    body = b"WAVE" + b"".join(parts)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _cid(key: str) -> bytes:
    cid = key.encode("ascii")
    if len(cid) != 4:
        raise ValueError(f"INFO tag ids have four characters; got {key!r}")
    return cid


def read_wav_metadata(path: str | Path) -> WavMetadata:
    """The LIST/INFO tags and the ``aigc`` JSON of a RIFF/WAVE file (empty if it has none).

    ValueError if the file is not RIFF/WAVE."""
    raw = Path(path).read_bytes()
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError(f"{path} is not a RIFF/WAVE file")
    info: dict[str, str] = {}
    aigc = None
    for cid, body in _chunks(raw, 12, len(raw)):
        if cid == b"LIST" and body[:4] == b"INFO":
            for tid, value in _chunks(body, 4, len(body)):
                info[tid.decode("ascii", "replace")] = value.rstrip(b"\0").decode("utf-8", "replace")
        elif cid == AIGC_CHUNK:
            try:
                aigc = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                aigc = None
    return WavMetadata(info, aigc)


def _chunks(raw: bytes, start: int, end: int):
    pos = start
    while pos + 8 <= end:
        cid = raw[pos : pos + 4]
        (size,) = struct.unpack("<I", raw[pos + 4 : pos + 8])
        yield cid, raw[pos + 8 : min(pos + 8 + size, end)]
        pos += 8 + size + (size % 2)
