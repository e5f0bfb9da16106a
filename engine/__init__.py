"""gsvd.engine: weight-compatible GPT-SoVITS inference and the public synthesis API.

The engine knows nothing about gRPC, the daemon or training. Import the public
names from here; everything else is internal.
"""

from gsvd.engine.errors import (
    BundleError,
    Cancelled,
    CheckpointError,
    GsvdError,
    InvalidInput,
    LanguageNotAvailable,
    MissingModel,
    ResourceExhausted,
    UnsupportedVersion,
    VoiceNotFound,
)
from gsvd.engine.types import AudioChunk, PhoneTiming, SynthesisOptions

__all__ = [
    "AudioChunk",
    "Engine",
    "Voice",
    "BundleError",
    "Cancelled",
    "CheckpointError",
    "GsvdError",
    "InvalidInput",
    "LanguageNotAvailable",
    "MissingModel",
    "PhoneTiming",
    "ResourceExhausted",
    "SynthesisOptions",
    "UnsupportedVersion",
    "VoiceNotFound",
]


def __getattr__(name: str):
    """Engine and Voice load torch: import them only when asked for (clients never are)."""
    if name in ("Engine", "Voice"):
        from gsvd.engine import engine as _engine

        return getattr(_engine, name)
    raise AttributeError(f"module 'gsvd.engine' has no attribute {name!r}")
