"""Errors -> gRPC status codes and HTTP statuses, in one place (every abort carries a message).

The engine's typed errors cover bad input; the daemon adds the refusals only a server makes (no
credentials, wrong credentials, a voice without a consent record, a name already taken, a stream past
its deadline or stalled, a daemon shutting down). Messages sent to a client never name the server's own folders: `message_for`
replaces them with a placeholder.
"""

from __future__ import annotations

from collections.abc import Iterable

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


class Unauthenticated(GsvdError):
    """No bearer token, or one that is not accepted (UNAUTHENTICATED / HTTP 401)."""


class PermissionDenied(GsvdError):
    """A valid caller asked for a call it may not make (PERMISSION_DENIED / HTTP 403)."""


class AlreadyExists(GsvdError):
    """A voice of that name is loaded and the request did not ask to replace it (ALREADY_EXISTS / 409)."""


class ConsentRequired(GsvdError):
    """A voice without a valid consent record, on a daemon that requires one (FAILED_PRECONDITION / HTTP 400)."""


class StartupError(GsvdError):
    """The daemon cannot start as configured (a busy port, unreadable TLS files); the CLI exits 2."""


_HTTP = {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "RESOURCE_EXHAUSTED": 429, "DEADLINE_EXCEEDED": 504,
         "CANCELLED": 499, "FAILED_PRECONDITION": 400, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403,
         "ALREADY_EXISTS": 409, "UNAVAILABLE": 503, "INTERNAL": 500}


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
    if isinstance(exc, LanguageNotAvailable | MissingModel | ConsentRequired):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, Unauthenticated):
        return grpc.StatusCode.UNAUTHENTICATED
    if isinstance(exc, PermissionDenied):
        return grpc.StatusCode.PERMISSION_DENIED
    if isinstance(exc, AlreadyExists):
        return grpc.StatusCode.ALREADY_EXISTS
    return grpc.StatusCode.INTERNAL


def http_status_for(exc: BaseException) -> int:
    return _HTTP.get(status_for(exc).name, 500)


def message_for(exc: BaseException, hide: Iterable[tuple[str, str]] = ()) -> str:
    """The client's message: the field named once; each (server path, placeholder) in `hide` replaced."""
    field = getattr(exc, "field", None)
    text = str(exc) or type(exc).__name__
    for path, placeholder in sorted(hide, key=lambda p: -len(p[0])):  # longest first: /a/b before /a
        if path:
            text = text.replace(path, placeholder)
    return f"{field}: {text}" if field and not text.startswith(field) else text
