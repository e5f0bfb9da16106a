"""Where gsvd keeps its files by default.

``GSVD_HOME`` (default ``~/.local/share/gsvd``, or ``$XDG_DATA_HOME/gsvd``) holds
``voices/`` (one bundle directory per voice) and ``models/`` (base models).
``GSVD_VOICES_DIR`` / ``GSVD_MODELS_DIR`` override each.
"""

from __future__ import annotations

import os
from pathlib import Path


def gsvd_home() -> Path:
    if env := os.environ.get("GSVD_HOME"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or "~/.local/share"
    return Path(base).expanduser() / "gsvd"


def voices_dir() -> Path:
    if env := os.environ.get("GSVD_VOICES_DIR"):
        return Path(env).expanduser()
    return gsvd_home() / "voices"


def models_dir() -> Path:
    if env := os.environ.get("GSVD_MODELS_DIR"):
        return Path(env).expanduser()
    return gsvd_home() / "models"


def resolve_voice(name_or_path: str, voices: str | Path | None = None) -> Path:
    """A voice given as a bundle path, or as a name under `voices` (default: voices_dir())."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    return (Path(voices).expanduser() if voices is not None else voices_dir()) / name_or_path
