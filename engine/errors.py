"""Errors the engine raises on bad input. Callers (CLI, daemon) map them to
exit codes and gRPC status codes; every one carries a message meant for a user.
"""

from __future__ import annotations


class GsvdError(Exception):
    """Base class of every error gsvd raises on purpose."""


class InvalidInput(GsvdError, ValueError):
    """A request or argument is malformed (maps to INVALID_ARGUMENT / exit 2)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class CheckpointError(GsvdError, ValueError):
    """A checkpoint file is corrupt, of the wrong kind, or of an unsupported version."""


class UnsupportedVersion(CheckpointError):
    """A valid checkpoint of a model version gsvd does not support yet (v3/v4)."""


class VoiceNotFound(GsvdError, KeyError):
    """No voice of that name is loaded / present (maps to NOT_FOUND)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "voice not found"


class BundleError(GsvdError, ValueError):
    """A voice bundle is missing files, has a bad manifest, or fails its checksums."""


class LanguageNotAvailable(GsvdError):
    """The text frontend cannot handle this language here (names the package to install)."""


class ResourceExhausted(GsvdError):
    """Admission control refused: queue or slots full (maps to RESOURCE_EXHAUSTED)."""


class Cancelled(GsvdError):
    """The request was cancelled or ran past its deadline; its slot has been freed."""


class MissingModel(GsvdError, FileNotFoundError):
    """A base model (HuBERT, RoBERTa, SV, pretrained s1/s2) is not present.

    The message names the model and the exact command that gets it.
    """
