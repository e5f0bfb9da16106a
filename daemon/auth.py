"""Bearer-token auth, one policy for gRPC and the HTTP/WebSocket gateway.

Two kinds of call: user calls (synthesis, voice listing) and admin calls (LoadVoice,
UnloadVoice). A user call accepts the token or the admin token; an admin call accepts the
admin token, or the token when only that one is set. With no token at all, user calls are
open and admin calls are refused, unless the daemon was started with `--no-auth` (accepted
only on a loopback bind, see `config`), which opens them and is logged at start.

Tokens are compared with `hmac.compare_digest` against every allowed token (no early exit),
so the time taken says nothing about how much of a guess was right or which token matched.
The scheme word is case-insensitive (RFC 6750 / RFC 7235).

Who called (`Auth.identify`, for the audit log): the role the token grants and a fingerprint of it,
`admin#1f2e3d4c` / `user#...` (the first 8 hex digits of SHA-256 over a fixed prefix and the token: it
tells the daemon's tokens apart without being usable as one; `token_fingerprint` gives an operator the
fingerprint of a token they hold), `unknown#...` for a token the daemon does not accept, `anonymous`
without one (`anonymous/no-auth` when the daemon runs with --no-auth).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass

from gsvd.daemon.errors import PermissionDenied, Unauthenticated

_HOW = "send the header 'authorization: Bearer <token>'"


def bearer_token(header: str | None) -> str | None:
    """The credentials of an `authorization: Bearer <token>` value, or None for any other header."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def token_matches(sent: str | None, allowed: tuple[str, ...]) -> bool:
    """True when `sent` equals one of `allowed`; each comparison runs whatever the others gave."""
    given = (sent or "").encode("utf-8", "surrogateescape")
    found = False
    for token in allowed:
        found |= hmac.compare_digest(given, token.encode("utf-8"))
    return found and sent is not None


def token_fingerprint(token: str) -> str:
    """8 hex digits naming a token in logs (SHA-256 over a fixed prefix and the token; not the secret)."""
    return hashlib.sha256(b"gsvd-token\0" + token.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def is_loopback(host: str) -> bool:
    """True for a bind address that only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Auth:
    token: str = ""
    admin_token: str = ""
    no_auth: bool = False

    @property
    def user_tokens(self) -> tuple[str, ...]:
        return tuple(t for t in (self.token, self.admin_token) if t)

    @property
    def admin_tokens(self) -> tuple[str, ...]:
        return (self.admin_token,) if self.admin_token else tuple(t for t in (self.token,) if t)

    def identify(self, header: str | None) -> str:
        """Who sent `header`, for the audit log (see the module docstring); never the token itself."""
        sent = bearer_token(header)
        if sent is None:
            return "anonymous/no-auth" if self.no_auth else "anonymous"
        if self.admin_token and token_matches(sent, (self.admin_token,)):
            role = "admin"
        elif self.token and token_matches(sent, (self.token,)):
            role = "user"  # the `token` setting (which also opens admin calls when no admin_token is set)
        else:
            role = "unknown"
        return f"{role}#{token_fingerprint(sent)}"

    def identities(self) -> dict[str, str]:
        """The configured tokens' identities (logged at start, so that the audit log can be read)."""
        out = {}
        if self.token:
            out["token"] = self.identify(f"Bearer {self.token}")
        if self.admin_token:
            out["admin_token"] = self.identify(f"Bearer {self.admin_token}")
        return out

    def check(self, header: str | None, admin: bool = False) -> None:
        """Raise Unauthenticated / PermissionDenied unless `header` may make this kind of call."""
        if self.no_auth:
            return
        sent = bearer_token(header)
        if not admin:
            if self.user_tokens and not token_matches(sent, self.user_tokens):
                raise Unauthenticated(f"this call needs a valid bearer token ({_HOW})")
            return
        if not self.admin_tokens:
            raise PermissionDenied("voice management is disabled: start the daemon with --admin-token (or "
                                   "--token), or with --no-auth on a loopback address")
        if token_matches(sent, self.admin_tokens):
            return
        if sent is not None and token_matches(sent, self.user_tokens):
            raise PermissionDenied(f"this call needs the admin token ({_HOW})")
        raise Unauthenticated(f"this call needs the admin token ({_HOW})")
