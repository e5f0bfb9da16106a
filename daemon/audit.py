"""The audit log: who loaded, made and unloaded which voice, when, from where, and what came of it.

One JSON object per line (`--audit-log PATH`), written as each event ends:

    {"time": "2026-11-20T10:01:02.345Z", "event": "load_voice", "voice": "alice", "result": "ok",
     "caller": "admin#1f2e3d4c", "transport": "grpc", "peer": "ipv4:10.0.0.7:51234",
     "cert_subject": "CN=ops-laptop", "call": "LoadVoice", "bundle": "alice", "consent": "Alice Example"}

Events: `daemon_start` / `daemon_stop`; `load_voice` (a bundle, at start with caller `daemon` and by
LoadVoice / `POST /v1/voices` / the console's package), `upload_voice` (a zero-shot voice), `unload_voice`
-- every admin call, refused ones included (`result` is then the status code, with `message`). `caller`
is `daemon/auth.py`'s identity (the token's role and fingerprint, never the token), `cert_subject` the
client certificate's subject under mutual TLS (gRPC: the call's auth context; HTTP: the TLS peer
certificate), `peer` the client's address.

The file is rotated by size (`logging.handlers.RotatingFileHandler`: PATH.1 is the newest old file,
`audit_log_backups` are kept); a line is flushed as it is written. Without a path nothing is written.
What a caller sent (a voice name, a bundle path, a message quoting them) is kept to `MAX_FIELD_CHARS` per field:
refused calls are recorded too, so a caller without a token could otherwise write megabytes a line and rotate
the other entries away.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import json
import logging
import logging.handlers
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gsvd.daemon.errors import message_for, shorten, status_for
from gsvd.engine.errors import GsvdError

log = logging.getLogger("gsvd.daemon")
MAX_FIELD_CHARS = 512

_RDN = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
        "stateOrProvinceName": "ST", "localityName": "L", "emailAddress": "emailAddress", "domainComponent": "DC",
        "serialNumber": "serialNumber"}


@dataclass(frozen=True)
class Caller:
    """Who made a call: identity (auth.Auth.identify), transport, peer address, client certificate subject."""

    identity: str
    transport: str  # "grpc", "http", or "daemon" for the daemon's own loads at start
    peer: str = ""
    cert_subject: str = ""

    @classmethod
    def daemon(cls) -> Caller:
        return cls("daemon", "daemon")

    def fields(self) -> dict[str, str]:
        out = {"caller": self.identity, "transport": self.transport}
        if self.peer:
            out["peer"] = self.peer
        if self.cert_subject:
            out["cert_subject"] = self.cert_subject
        return out


def subject_from_peercert(cert: dict | None) -> str:
    """An RFC 4514-style subject ("CN=client,O=Example") of an `ssl` peer certificate dict; "" without one."""
    if not cert:
        return ""
    parts = [f"{_RDN.get(k, k)}={v}" for rdn in cert.get("subject", ()) for k, v in rdn]
    return ",".join(reversed(parts))  # RFC 4514 writes the most specific name first


def subject_from_auth_context(auth: dict | None) -> str:
    """The client certificate's subject from a grpc call's `auth_context()`; "" without mutual TLS."""
    for key in ("x509_subject", "x509_common_name"):
        values = (auth or {}).get(key)
        if values:
            raw = values[0]
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            return text if key == "x509_subject" else f"CN={text}"
    return ""


@dataclass
class Entry:
    """One event being recorded: `note` adds fields as they are learnt, `fail` sets the result."""

    event: str
    caller: Caller
    fields: dict = field(default_factory=dict)
    result: str = ""
    message: str = ""

    def note(self, **values: object) -> None:
        self.fields.update({k: v for k, v in values.items() if v not in (None, "")})

    def fail(self, exc: BaseException, hide: tuple[tuple[str, str], ...] = ()) -> None:
        self.result, self.message = status_for(exc).name, message_for(exc, hide)


class AuditLog:
    """The JSON-lines writer (see the module docstring); `path` "" records nothing."""

    def __init__(self, path: str = "", max_bytes: int = 10 << 20, backups: int = 5) -> None:
        self.path = str(Path(path).expanduser()) if path else ""
        self._handler: logging.Handler | None = None
        if self.path:
            self._handler = logging.handlers.RotatingFileHandler(self.path, maxBytes=max_bytes, backupCount=backups,
                                                                 encoding="utf-8")

    @property
    def enabled(self) -> bool:
        return self._handler is not None

    def write(self, event: str, caller: Caller, *, voice: str = "", result: str = "ok", **details: object) -> None:
        """Append one event now."""
        if self._handler is None:
            return
        now = _dt.datetime.now(_dt.UTC)
        entry = {"time": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z", "event": event}
        if voice:
            entry["voice"] = shorten(voice, MAX_FIELD_CHARS)
        entry["result"] = result
        entry.update({k: shorten(v, MAX_FIELD_CHARS) for k, v in caller.fields().items()})
        entry.update({k: shorten(v, MAX_FIELD_CHARS) if isinstance(v, str) else v for k, v in details.items()
                      if v not in (None, "")})
        line = json.dumps(entry, ensure_ascii=False, default=str)
        self._handler.handle(logging.LogRecord("gsvd.audit", logging.INFO, __file__, 0, line, None, None))

    @contextlib.contextmanager
    def event(self, event: str, caller: Caller, hide: tuple[tuple[str, str], ...] = (), **known: object
              ) -> Iterator[Entry]:
        """Record one call: the block fills the entry (`note`, `fail`); its outcome is written when it ends --
        a GsvdError raised inside as its status code, a block left by any other exception without a result
        (a client gone, the daemon stopping) as CANCELLED."""
        entry = Entry(event, caller)
        entry.note(**known)
        try:
            yield entry
        except BaseException as exc:
            if entry.result:
                pass  # the transport recorded the failure before answering (a gRPC abort raises)
            elif isinstance(exc, GsvdError):
                entry.fail(exc, hide)
            elif isinstance(exc, asyncio.CancelledError):
                entry.result = "CANCELLED"
            else:
                entry.result, entry.message = "INTERNAL", type(exc).__name__
            raise
        finally:
            self._finish(entry)

    def _finish(self, entry: Entry) -> None:
        details = dict(entry.fields)
        voice = str(details.pop("voice", ""))
        if entry.message:
            details["message"] = entry.message
        self.write(entry.event, entry.caller, voice=voice, result=entry.result or "ok", **details)

    def close(self) -> None:
        if self._handler is not None:
            self._handler.close()
            self._handler = None
