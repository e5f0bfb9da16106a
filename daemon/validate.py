"""Request checks shared by every transport (gRPC, HTTP, WebSocket) and by the start-up load.

One rule each: the text limit (`check_text` for a whole text -- synthesis input and a zero-shot
upload's transcript --, `TextBudget` for the total of streamed pieces; the number is
`DaemonConfig.max_text_chars`, whose default and ceiling is the engine's own `MAX_TEXT_CHARS`), the
bundle-path rule (inside the voices folder after symlinks are followed), voice names (the bundle
validator), request ids (`request_id`: they go into log lines), other short client strings
(`short_text`: consent fields), JSON bodies (UTF-8, an object, not nested past the parser's depth) and
uploaded reference audio:

- its format (`reference_format`), checked on what a file's header declares before it is decoded and
  on what it held after: a sample rate of `REFERENCE_RATES` (the reference is resampled to 16 and
  32 kHz; from a rate sharing few factors with those -- 8001 Hz -- the resampling kernel alone is
  gigabytes), mono or stereo, 3-10 s (the engine's `MIN_SECONDS`/`MAX_SECONDS`);
- its samples (`reference_audio`): finite, within [-1, 1] (refused, never rescaled, since no rule can
  tell int16-scaled floats from a clipped clip).

Messages name what the client sent (cut short), never the server's folders.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from gsvd.engine.bundle import validate_voice_name
from gsvd.engine.errors import InvalidInput

MAX_PATH_BYTES = 4096  # PATH_MAX on Linux
MAX_NAME_BYTES = 255  # NAME_MAX: one path component
MAX_REQUEST_ID = 128
MAX_SHORT_TEXT = 1000  # a consent record's field
REFERENCE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 176400, 192000)
MAX_REFERENCE_CHANNELS = 2
_REQUEST_ID_RE = re.compile(r"[\x21-\x7e]+")  # visible ASCII: no spaces, line breaks or control characters


def check_text(text: object, limit: int, field: str = "text") -> str:
    if not isinstance(text, str):
        raise InvalidInput(f"{field} must be a string", field)
    if not text.strip():
        raise InvalidInput("text is empty", field)
    if len(text) > limit:
        raise InvalidInput(f"text is {len(text)} characters; the limit is {limit}", field)
    return text


class TextBudget:
    """The text limit over the pieces of one streamed request (their total, not each piece). An empty piece
    counts as one character: pieces wait in a queue while the engine speaks, and free ones could fill it."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0

    def add(self, piece: object, field: str = "text") -> str:
        if not isinstance(piece, str):
            raise InvalidInput(f"{field} must be a string", field)
        self.used += max(1, len(piece))
        if self.used > self.limit:
            raise InvalidInput(f"streamed text exceeds the limit of {self.limit} characters", field)
        return piece


def request_id(rid: str, field: str = "request_id") -> str:
    """A client's request id ("" when it sent none): 1-128 visible ASCII characters, since it is logged."""
    if rid and (len(rid) > MAX_REQUEST_ID or not _REQUEST_ID_RE.fullmatch(rid)):
        raise InvalidInput(f"{field} must be 1-{MAX_REQUEST_ID} visible ASCII characters (no spaces or control "
                           f"characters); got {len(rid)} characters", field)
    return rid


def short_text(values: Mapping[str, object], field: str, limit: int = MAX_SHORT_TEXT) -> None:
    """InvalidInput when a value of `values` (a consent record's fields) is longer than `limit` characters."""
    for key, value in values.items():
        if isinstance(value, str) and len(value) > limit:
            raise InvalidInput(f"{field}.{key} is {len(value)} characters; the limit is {limit}", f"{field}.{key}")


def voice_name(name: object, field: str = "voice") -> str:
    """A name accepted by the bundle validator (the one rule for every voice name)."""
    if not name:
        raise InvalidInput(f"{field} is required", field)
    try:
        return validate_voice_name(name)
    except InvalidInput as exc:
        raise InvalidInput(str(exc), field) from None


def bundle_path(voices_dir: str, raw: str | Path, field: str = "bundle_path") -> Path:
    """The bundle folder `raw` names (relative to the voices folder, or absolute), symlinks followed;
    InvalidInput unless it lies inside the voices folder. Used by LoadVoice and by the start-up load."""
    text = str(raw)
    if not text:
        raise InvalidInput(f"{field} is empty", field)
    if "\0" in text:
        raise InvalidInput(f"{field} contains a NUL character", field)
    encoded = text.encode("utf-8", "surrogateescape")
    if len(encoded) > MAX_PATH_BYTES or any(len(part) > MAX_NAME_BYTES for part in encoded.split(b"/")):
        raise InvalidInput(f"{field} is too long (at most {MAX_PATH_BYTES} bytes, {MAX_NAME_BYTES} per folder name)",
                           field)
    outside = InvalidInput(f"{field} {text!r} is not inside the server's voices directory", field)
    if not voices_dir:
        raise InvalidInput(f"{field}: the server has no voices directory", field)
    try:
        root = Path(voices_dir).expanduser().resolve()
        path = Path(text)
        path = (path if path.is_absolute() else root / path).resolve()
    except (OSError, RuntimeError):  # a symlink loop, an unreadable parent
        raise outside from None
    if path == root or not path.is_relative_to(root):
        raise outside
    return path


def reference_format(rate: int, channels: int, frames: int | None, fields: tuple[str, str] = (
        "reference.sample_rate_hz", "reference.audio")) -> None:
    """A reference clip's rate, channels and (when known) length in frames, before it is resampled or even
    decoded (see the module docstring). `fields`: how the request names the rate and the audio."""
    from gsvd.engine.reference import MAX_SECONDS, MIN_SECONDS

    rate_field, audio_field = fields
    if rate not in REFERENCE_RATES:
        raise InvalidInput(f"sample_rate must be one of {', '.join(map(str, REFERENCE_RATES))} Hz; got {rate}",
                           rate_field)
    if not 1 <= channels <= MAX_REFERENCE_CHANNELS:
        raise InvalidInput(f"the clip has {channels} channels; send mono or stereo (1 or 2 channels)", audio_field)
    if frames is not None and not MIN_SECONDS <= frames / rate <= MAX_SECONDS:
        raise InvalidInput(f"reference audio must be {MIN_SECONDS:g}-{MAX_SECONDS:g} s long; got "
                           f"{frames / rate:.2f} s", audio_field)


def reference_frames(rate: int) -> int:
    """The most frames a clip at `rate` may hold (the longest reference allowed)."""
    from gsvd.engine.reference import MAX_SECONDS

    return math.ceil(MAX_SECONDS * rate)


def reference_audio(audio: np.ndarray, rate: int, field: str = "reference.audio") -> np.ndarray:
    """Uploaded clip samples (mono, or [channels, samples]) at `rate`: their format (`reference_format`), then
    refused (not rescaled) when non-finite or outside [-1, 1]."""
    if audio.size == 0:
        raise InvalidInput(f"{field} is empty", field)
    if audio.ndim not in (1, 2):
        raise InvalidInput(f"{field} must be mono or [channels, samples]", field)
    reference_format(rate, 1 if audio.ndim == 1 else audio.shape[0], audio.shape[-1])  # before any resampling
    finite = np.isfinite(audio)
    if not finite.all():
        raise InvalidInput(f"{field} has {int((~finite).sum())} NaN or infinite samples", field)
    peak = float(np.abs(audio).max())
    if peak > 1.0:
        raise InvalidInput(f"{field} has samples outside [-1, 1] (peak {peak:.6g}): send float samples in [-1, 1] "
                           "(int16 values divided by 32768)", field)
    return audio


def json_object(data: bytes | str, field: str = "body") -> dict:
    """A JSON object from a request body or WebSocket message (UTF-8; InvalidInput otherwise)."""
    if isinstance(data, bytes | bytearray):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{field} is not valid UTF-8 (byte {exc.start})", field) from None
    try:
        value = json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        raise InvalidInput(f"{field} is nested too deeply", field) from None
    except ValueError as exc:  # JSONDecodeError, an integer past Python's digit limit
        raise InvalidInput(f"{field} is not valid JSON ({exc})", field) from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object", field)
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")
