"""16-bit mono WAV files: atomic writing (the umask's ordinary permissions, `gsvd.atomic`) with optional
metadata, and the level measures a listener would notice (stdlib + numpy only; shared by the engine, the demo
and the clients).

Metadata goes in two RIFF chunks before the audio: a LIST/INFO chunk (comment, software, date, artist,
genre: what players and tag editors show) and an ``aigc`` chunk holding a JSON object (the machine-readable
AI-generated label, ``gsvd.engine.provenance.label``). Readers that do not know a chunk skip it.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gsvd.atomic import atomic_write_bytes

AIGC_CHUNK = b"aigc"
SPEECH_BAND_HZ = (100.0, 4000.0)


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
    return atomic_write_bytes(Path(path).expanduser(), wav_bytes(pcm, rate, label=label))


def wav_bytes(pcm: np.ndarray, rate: int, *, label: Label | WavMetadata | None = None) -> bytes:
    """The bytes ``write_wav`` writes (for a file sent over the network)."""
    data = (np.clip(np.asarray(pcm, np.float32), -1, 1) * 32767).astype("<i2").tobytes()
    return _riff(data, int(rate), _meta(label))


def wav_stream_header(rate: int, *, label: Label | WavMetadata | None = None) -> bytes:
    """The start of a 16-bit mono WAV whose length is not known yet (a stream): the format and the label's
    chunks, then a ``data`` chunk header declaring the largest size (players read to the end of the stream)."""
    head = _riff(b"", int(rate), _meta(label))[:-8]  # everything before the data chunk's header
    size = 0xFFFFFFFF - len(head)  # RIFF size counts from byte 8; the data header adds 8 more
    return b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + head[8:] + b"data" + struct.pack("<I", size)


def _meta(label: Label | WavMetadata | None) -> WavMetadata | None:
    return label if isinstance(label, WavMetadata) or label is None else WavMetadata(label.info_tags(), label.to_dict())


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


@dataclass(frozen=True)
class Level:
    """What a listener would notice first about a signal (levels in dB relative to full scale)."""

    rms_dbfs: float  # level of the signal around its mean
    dc_dbfs: float  # the mean (an offset: clicks at start and stop, lost headroom)
    speech_band_dbfs: float  # level of the part in SPEECH_BAND_HZ
    speech_band_share: float  # fraction of the signal's energy in SPEECH_BAND_HZ
    active_share: float  # fraction of 50 ms frames within 40 dB of the loudest frame (not silence)

    def summary(self) -> str:
        return (f"level {self.rms_dbfs:.1f} dBFS, {self.speech_band_share:.0%} of it at 100-4000 Hz, "
                f"DC offset {self.dc_dbfs:.0f} dBFS")


def _db(power: float) -> float:
    return float(10 * np.log10(max(power, 1e-20)))


def measure_level(pcm: np.ndarray, rate: int) -> Level:
    x = np.asarray(pcm, np.float64).reshape(-1)
    if x.size == 0:
        return Level(-200.0, -200.0, -200.0, 0.0, 0.0)
    dc = float(x.mean())
    ac = x - dc
    power = float(np.mean(ac**2))
    spectrum = np.abs(np.fft.rfft(ac)) ** 2
    freqs = np.fft.rfftfreq(ac.size, 1.0 / rate)
    band = (freqs >= SPEECH_BAND_HZ[0]) & (freqs <= SPEECH_BAND_HZ[1])
    share = float(spectrum[band].sum() / spectrum.sum()) if spectrum.sum() > 0 else 0.0
    frame = max(1, int(0.05 * rate))
    frames = ac[: ac.size // frame * frame].reshape(-1, frame) if ac.size >= frame else ac[None]
    frame_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    active = float(np.mean(frame_db > frame_db.max() - 40.0)) if power > 0 else 0.0
    return Level(_db(power), _db(dc * dc), _db(power * share), share, active)
