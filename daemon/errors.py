"""Errors -> gRPC status codes and HTTP statuses, in one place (every abort carries a message).

The engine's typed errors cover bad input; the daemon adds the refusals only a server makes (no
credentials, wrong credentials, a voice without a consent record, a name already taken, a stream past
its deadline or stalled, a request sent too slowly or too large, a page of another site, a daemon shutting down).
Messages sent to a client never name the server's own folders (`message_for` replaces them with a placeholder) and
are at most `MAX_MESSAGE_CHARS` long: a message quoting what a client sent (a megabyte of voice name) would
otherwise travel back whole -- in gRPC as a trailer past the transport's metadata limit, which the client sees as
RESOURCE_EXHAUSTED "received metadata size exceeds hard limit" instead of the status the daemon chose.
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


class TooLarge(GsvdError):
    """A request body, upload or message past the size limit (RESOURCE_EXHAUSTED / HTTP 413)."""


class RequestTimeout(GsvdError):
    """A client sent its request (headers, body) more slowly than the daemon waits (DEADLINE_EXCEEDED / HTTP 408)."""


class StartupError(GsvdError):
    """The daemon cannot start as configured (a busy port, unreadable TLS files); the CLI exits 2."""


MAX_MESSAGE_CHARS = 1000  # a client's error message; see the module docstring
_HTTP = {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "RESOURCE_EXHAUSTED": 429, "DEADLINE_EXCEEDED": 504,
         "CANCELLED": 499, "FAILED_PRECONDITION": 400, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403,
         "ALREADY_EXISTS": 409, "UNAVAILABLE": 503, "INTERNAL": 500}


def status_for(exc: BaseException) -> grpc.StatusCode:
    if isinstance(exc, DeadlineExceeded | RequestTimeout):
        return grpc.StatusCode.DEADLINE_EXCEEDED
    if isinstance(exc, Unavailable):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(exc, InvalidInput | BundleError | CheckpointError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, VoiceNotFound):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, ResourceExhausted | TooLarge):
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
    if isinstance(exc, TooLarge):
        return 413
    if isinstance(exc, RequestTimeout):
        return 408
    return _HTTP.get(status_for(exc).name, 500)


def message_for(exc: BaseException, hide: Iterable[tuple[str, str]] = ()) -> str:
    """The client's message: the field named once; each (server path, placeholder) in `hide` replaced; at most
    MAX_MESSAGE_CHARS characters."""
    field = getattr(exc, "field", None)
    text = hide_paths(str(exc) or type(exc).__name__, hide)
    text = f"{field}: {text}" if field and not text.startswith(field) else text
    return shorten(text, MAX_MESSAGE_CHARS)


def hide_paths(text: str, hide: Iterable[tuple[str, str]]) -> str:
    """`text` with each (server path, placeholder) of `hide` replaced, longest path first (/a/b before /a)."""
    for path, placeholder in sorted(hide, key=lambda p: -len(p[0])):
        if path:
            text = text.replace(path, placeholder)
    return text


def shorten(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    tail = f"... (cut from {len(text)} characters)"
    return text[: max(0, limit - len(tail))] + tail
