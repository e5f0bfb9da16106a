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
