"""Engine and daemon errors -> gRPC status codes (every abort carries a message)."""

from __future__ import annotations

import grpc

from gsvd.engine.errors import (
    BundleError,
    Cancelled,
    CheckpointError,
    GsvdError,
    InvalidInput,
    LanguageNotAvailable,
    MissingModel,
    ResourceExhausted,
    VoiceNotFound,
)


class DeadlineExceeded(Cancelled):
    """A stream ran past its deadline, its input stayed idle too long, or its reader stalled (DEADLINE_EXCEEDED)."""


class Unavailable(GsvdError):
    """The daemon is shutting down and takes no new work (UNAVAILABLE, HTTP 503)."""


def status_for(exc: BaseException) -> grpc.StatusCode:
    if isinstance(exc, DeadlineExceeded):
        return grpc.StatusCode.DEADLINE_EXCEEDED
    if isinstance(exc, Unavailable):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(exc, InvalidInput | BundleError | CheckpointError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, VoiceNotFound):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, ResourceExhausted):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(exc, Cancelled):
        return grpc.StatusCode.DEADLINE_EXCEEDED if "deadline" in str(exc) else grpc.StatusCode.CANCELLED
    if isinstance(exc, LanguageNotAvailable | MissingModel):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, GsvdError):
        return grpc.StatusCode.INTERNAL
    return grpc.StatusCode.INTERNAL


def message_for(exc: BaseException) -> str:
    field = getattr(exc, "field", None)
    text = str(exc) or type(exc).__name__
    return f"{field}: {text}" if field and not text.startswith(field) else text
