"""Request checks shared by every transport (gRPC, HTTP, WebSocket) and by the start-up load.

One rule each: the text limit (`check_text` for a whole text, `TextBudget` for the total of
streamed pieces; the number is `DaemonConfig.max_text_chars`, whose default and ceiling is the
engine's own `MAX_TEXT_CHARS`), the bundle-path rule (inside the voices folder after symlinks
are followed), uploaded reference audio (finite, within [-1, 1]: refused, never rescaled,
since no rule can tell int16-scaled floats from a clipped clip), voice names (the bundle
validator) and JSON bodies (UTF-8, an object, not nested past the parser's depth).
Messages name what the client sent, never the server's folders.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from gsvd.engine.bundle import validate_voice_name
from gsvd.engine.errors import InvalidInput

MAX_PATH_BYTES = 4096  # PATH_MAX on Linux
MAX_NAME_BYTES = 255  # NAME_MAX: one path component


def check_text(text: object, limit: int, field: str = "text") -> str:
    if not isinstance(text, str):
        raise InvalidInput(f"{field} must be a string", field)
    if not text.strip():
        raise InvalidInput("text is empty", field)
    if len(text) > limit:
        raise InvalidInput(f"text is {len(text)} characters; the limit is {limit}", field)
    return text


class TextBudget:
    """The text limit over the pieces of one streamed request (their total, not each piece)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0

    def add(self, piece: object, field: str = "text") -> str:
        if not isinstance(piece, str):
            raise InvalidInput(f"{field} must be a string", field)
        self.used += len(piece)
        if self.used > self.limit:
            raise InvalidInput(f"streamed text exceeds the limit of {self.limit} characters", field)
        return piece


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


def reference_audio(audio: np.ndarray, field: str = "reference.audio") -> np.ndarray:
    """Uploaded clip samples: refused (not rescaled) when non-finite or outside [-1, 1]."""
    if audio.size == 0:
        raise InvalidInput(f"{field} is empty", field)
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


def finite_number(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{field} must be a number; got {value!r}", field)
    return value
