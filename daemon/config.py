"""Daemon settings: defaults < TOML file < GSVD_* environment < command-line flags.

`DaemonConfig.load` is the one place settings are read and checked: types, port ranges, the
text limit (at most the engine's `MAX_TEXT_CHARS`, which is also the default), tokens (from
`token`/`admin_token`, or read from `token_file`/`admin_token_file` so that they stay out of
`ps`; GSVD_TOKEN / GSVD_ADMIN_TOKEN come through the environment layer), `no_auth` (only on
a loopback bind, never with a token) and the TLS files (both of cert and key, readable, one pair).

Slow and foreign clients of the HTTP gateway: `header_timeout_s` (a request's headers must arrive within it from
the connection's start or the previous answer, which also closes idle keep-alive connections), `body_timeout_s` (the
body must then arrive within it: HTTP 408), and `allowed_origins` (web pages of other sites that may call the gateway
from a browser, see `daemon/origins.py`; `origins()` gives them normalized).

Responsible use: `allow_unconsented_voices` (off: voices need a consent record), the audit log (`audit_log`,
its folder must exist; size and count of the rotated files), the watermark (`watermark`, a private key from
`watermark_key`/`watermark_key_file` like the tokens, `watermark_daemon_id`; `watermark_config()` is the
engine's `WatermarkConfig`), the label's producer code, C2PA signing (`sign_cert` + `sign_key`, read at start;
`signing()`), and the canary (`canary_interval_s`, `canary_below_streams` < `max_streams`,
`canary_max_tokens`).

The engine's runtime settings (`gsvd.engine.settings.RuntimeConfig`, its own registry of GSVD_* variables) may
stand in the same [serve] table or come as flags (`--gpu-memory-fraction`, `--gpu-memory-gib`, `--kv-cache-gib`);
`runtime()` builds the engine's configuration from them, the environment and the daemon's device, dtype, max_streams
and queue_limit. `pin_voices` (`--pin`): voices whose models are never evicted from the GPU.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from gsvd.engine.engine import MAX_TEXT_CHARS
from gsvd.engine.errors import InvalidInput
from gsvd.engine.settings import RuntimeConfig

if TYPE_CHECKING:
    from gsvd.engine.provenance.c2pa_sign import SigningConfig
    from gsvd.engine.provenance.watermark import WatermarkConfig

log = logging.getLogger("gsvd.daemon")
_TOKEN_RE = re.compile(r"[\x21-\x7e]{1,4096}")  # visible ASCII: what an HTTP/2 header value carries as is
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


CALL_HEADROOM = 16
"""Calls beyond the engine's streams and queue that may be in flight at once on a transport."""


@dataclass
class DaemonConfig:
    host: str = "127.0.0.1"
    port: int = 50051  # 0 picks a free port
    voices_dir: str = ""
    device: str = "auto"
    dtype: str = "auto"
    max_streams: int = 64
    queue_limit: int = 256
    max_text_chars: int = MAX_TEXT_CHARS  # every transport; streamed requests count the total of their pieces
    max_message_mb: int = 16
    slow_reader_timeout_s: float = 10.0
    default_deadline_s: float = 300.0
    token: str = field(default="", repr=False)
    admin_token: str = field(default="", repr=False)
    token_file: str = ""
    admin_token_file: str = ""
    no_auth: bool = False  # open admin calls without a token; loopback binds only
    idle_input_timeout_s: float = 60.0  # a text-streaming session whose input stays silent this long is ended
    header_timeout_s: float = 10.0  # HTTP: a request's headers must arrive within this (slowloris); idle keep-alive
    body_timeout_s: float = 60.0  # HTTP: a request's body must arrive within this once its headers did (HTTP 408)
    allowed_origins: str = ""  # comma-separated origins (https://app.example) whose pages may call the gateway; "*" any
    stream_buffer_chunks: int = 64  # audio chunks queued towards one client before synthesis waits for it
    send_buffer_kb: int = 256  # kernel send buffer of a streaming HTTP/WebSocket connection (0: the OS default)
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    metrics_port: int = 0  # 0 off
    http_port: int = -1  # HTTP/WebSocket gateway; -1 off, 0 any free port
    runs_dir: str = ""  # `gsvd train` run folders shown (and packaged) by the web console; "" none
    grace_s: float = 10.0
    bert_folder: str = ""
    hubert_folder: str = ""
    sv_model: str = ""
    frontend_workers: int = -1  # text-analysis worker processes; -1: the engine's default (half the cores on a GPU)
    pin_voices: str = ""  # comma-separated voice names whose models stay on the GPU (never evicted)
    # responsible use (see README): consent, audit, labels, watermark, content credentials, canary
    allow_unconsented_voices: bool = False  # load voices without a consent record (a warning at start)
    audit_log: str = ""  # JSON lines: voice loads/unloads and admin calls with the caller's identity; "" off
    audit_log_max_mb: float = 10.0  # the audit log is rotated at this size ...
    audit_log_backups: int = 5  # ... keeping this many older files (PATH.1 newest)
    watermark: bool = False  # an inaudible watermark in every stream (gsvd.engine.provenance)
    watermark_key: str = field(default="", repr=False)  # the mark's private key; "" the public one
    watermark_key_file: str = ""  # read the key from this file
    watermark_daemon_id: int = 0  # 0-255, carried in the mark's payload (with the voice's hash and the day)
    label_producer: str = ""  # the operator's service-provider code in every label (GB 45438 ContentProducer)
    sign_cert: str = ""  # C2PA certificate chain (PEM): WAV answers of /v1/audio/speech carry signed credentials
    sign_key: str = ""  # its private key (PEM)
    sign_alg: str = "es256"
    canary_interval_s: float = 0.0  # every resident voice speaks the canary sentences this often; 0 off
    canary_below_streams: int = 1  # ... only while fewer client streams than this are active (1: idle only)
    canary_max_tokens: int = 250  # cap per canary sentence (25 tokens = 1 s): a voice that never stops shows
    runtime_table: dict = field(default_factory=dict, repr=False)  # the TOML's runtime settings (RuntimeConfig)
    runtime_flags: dict = field(default_factory=dict, repr=False)  # runtime settings given as flags

    @classmethod
    def load(cls, path: str | Path | None = None, env: dict[str, str] | None = None, **flags) -> DaemonConfig:
        cfg = cls()
        if path:
            p = Path(path)
            if not p.is_file():
                raise InvalidInput(f"config file not found: {p}", "config")
            try:
                data = tomllib.loads(p.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise InvalidInput(f"{p}: not valid TOML ({exc})", "config") from None
            table = dict(data.get("serve", data))
            own = {f.name for f in fields(cls)}
            cfg.runtime_table = {k: table.pop(k) for k in list(table) if k in RuntimeConfig.names() and k not in own}
            cfg._apply(table, str(p))
        env = os.environ if env is None else env
        cfg._env = env
        cfg._apply({f.name: env[f"GSVD_{f.name.upper()}"] for f in fields(cls)
                    if f.name not in ("runtime_table", "runtime_flags") and f"GSVD_{f.name.upper()}" in env},
                   "environment")
        own = {f.name for f in fields(cls)}
        given = {k: v for k, v in flags.items() if v is not None}
        cfg.runtime_flags = {k: given.pop(k) for k in list(given) if k in RuntimeConfig.names() and k not in own}
        cfg._apply(given, "flags")
        cfg._check()
        cfg._check_stream_limits()
        return cfg

    def _check_stream_limits(self) -> None:
        """Timeouts and buffers of a stream (see daemon/streaming.py): a zero or negative one would cut every stream."""
        for key in ("slow_reader_timeout_s", "default_deadline_s", "idle_input_timeout_s", "header_timeout_s",
                    "body_timeout_s"):
            if not getattr(self, key) > 0:
                raise InvalidInput(f"{key} must be > 0; got {getattr(self, key)}", key)
        for key, low in (("grace_s", 0), ("stream_buffer_chunks", 1), ("send_buffer_kb", 0)):
            if getattr(self, key) < low:
                raise InvalidInput(f"{key} must be >= {low}; got {getattr(self, key)}", key)

    def runtime(self) -> RuntimeConfig:
        """The engine's configuration: the TOML's runtime settings < GSVD_* < the daemon's own device, dtype,
        max_streams and queue_limit (flags included) and the runtime settings given as flags; a bad value is an
        InvalidInput naming it."""
        return RuntimeConfig.load(self.runtime_table, getattr(self, "_env", None), device=self.device,
                                  dtype=self.dtype, max_streams=self.max_streams, queue_limit=self.queue_limit,
                                  **self.runtime_flags)

    def origins(self) -> tuple[str, ...]:
        """`allowed_origins` as normalized origins (`scheme://host[:port]`, lower case), or ("*",)."""
        return _origins(self.allowed_origins)

    def max_calls_in_flight(self) -> int:
        """Calls in flight at once on each transport (gRPC calls; HTTP requests and WebSockets): what the engine
        can stream or queue plus `CALL_HEADROOM` for listings, health checks and admin calls."""
        return self.max_streams + self.queue_limit + CALL_HEADROOM

    def pinned_voices(self) -> tuple[str, ...]:
        """The `Engine(pinned_voices=...)` argument: the names in `pin_voices`."""
        return tuple(n.strip() for n in self.pin_voices.split(",") if n.strip())

    def engine_frontend_workers(self) -> int | None:
        """The `Engine(frontend_workers=...)` argument: None for the engine's default."""
        return None if self.frontend_workers < 0 else self.frontend_workers

    def watermark_config(self) -> WatermarkConfig | None:
        """The engine's watermark (`Engine(watermark=...)`), or None when it is off."""
        from gsvd.engine.provenance.watermark import PUBLIC_KEY, WatermarkConfig

        if not self.watermark:
            return None
        return WatermarkConfig(key=self.watermark_key or PUBLIC_KEY, daemon_id=self.watermark_daemon_id)

    def signing(self) -> SigningConfig | None:
        """Where the C2PA signing material is, or None when HTTP answers are not signed."""
        from gsvd.engine.provenance.c2pa_sign import SigningConfig

        if not self.sign_cert:
            return None
        return SigningConfig(Path(self.sign_cert).expanduser(), Path(self.sign_key).expanduser(), self.sign_alg.lower())

    def tls(self):
        """The TLS files (gsvd.daemon.tls.TlsFiles) for both listeners, or None when TLS is off."""
        from gsvd.daemon.tls import TlsFiles

        return TlsFiles.load(self.tls_cert, self.tls_key, self.tls_client_ca)

    def _apply(self, values: dict, source: str) -> None:
        types = {f.name: f.type for f in fields(self)}
        for key, value in values.items():
            if key not in types:
                raise InvalidInput(f"{source}: unknown setting {key!r}", key)
            kind = {"int": int, "float": float, "str": str, "bool": _bool}[str(types[key])]
            try:
                setattr(self, key, kind(value))
            except (TypeError, ValueError):
                raise InvalidInput(f"{source}: {key} must be a {kind.__name__}; got {value!r}", key) from None

    def _check(self) -> None:
        if self.frontend_workers < -1:
            raise InvalidInput(f"frontend_workers must be -1 (default) or >= 0; got {self.frontend_workers}",
                               "frontend_workers")
        _port_range("port", self.port, 0, "0 picks a free port")
        _port_range("http_port", self.http_port, -1, "-1 turns the gateway off, 0 picks a free port")
        _port_range("metrics_port", self.metrics_port, 0, "0 turns metrics off")
        if not 1 <= self.max_text_chars <= MAX_TEXT_CHARS:
            raise InvalidInput(f"max_text_chars must be in [1, {MAX_TEXT_CHARS}]; got {self.max_text_chars}",
                               "max_text_chars")
        self.token = _token(self.token, self.token_file, "token")
        self.admin_token = _token(self.admin_token, self.admin_token_file, "admin_token")
        if self.no_auth:
            from gsvd.daemon.auth import is_loopback

            if self.token or self.admin_token:
                raise InvalidInput("no_auth cannot be combined with token or admin_token", "no_auth")
            if not is_loopback(self.host):
                raise InvalidInput(f"no_auth is accepted only on a loopback bind (127.0.0.1, ::1, localhost); "
                                   f"host is {self.host!r}: set --admin-token instead", "no_auth")
        self.tls()
        self.origins()
        self._check_responsible_use()

    def _check_responsible_use(self) -> None:
        """Audit log, watermark, signing and canary settings (each a clear InvalidInput naming the setting)."""
        if self.audit_log:
            folder = Path(self.audit_log).expanduser().parent
            if not folder.is_dir():
                raise InvalidInput(f"audit_log: the folder {folder} does not exist", "audit_log")
        if not self.audit_log_max_mb > 0:
            raise InvalidInput(f"audit_log_max_mb must be > 0; got {self.audit_log_max_mb}", "audit_log_max_mb")
        if self.audit_log_backups < 1:
            raise InvalidInput(f"audit_log_backups must be >= 1; got {self.audit_log_backups}", "audit_log_backups")
        self.watermark_key = _token(self.watermark_key, self.watermark_key_file, "watermark_key")
        if self.watermark_key and not self.watermark:
            raise InvalidInput("watermark_key(_file) is set but watermark is off: turn it on or drop the key",
                               "watermark_key")
        if not 0 <= self.watermark_daemon_id <= 255:
            raise InvalidInput(f"watermark_daemon_id must be in [0, 255]; got {self.watermark_daemon_id}",
                               "watermark_daemon_id")
        if bool(self.sign_cert) != bool(self.sign_key):
            raise InvalidInput("give both sign_cert and sign_key to sign HTTP answers (C2PA)",
                               "sign_key" if self.sign_cert else "sign_cert")
        signing = self.signing()
        if signing is not None:
            signing.load()  # unreadable files and unknown algorithms fail at start
        if self.canary_interval_s < 0:
            raise InvalidInput(f"canary_interval_s must be >= 0 (0 turns the canary off); got {self.canary_interval_s}",
                               "canary_interval_s")
        if self.canary_interval_s and not 1 <= self.canary_below_streams < self.max_streams:
            raise InvalidInput(f"canary_below_streams must be in [1, max_streams - 1] = [1, {self.max_streams - 1}] "
                               "so that the canary never holds a slot a client needs; got "
                               f"{self.canary_below_streams}", "canary_below_streams")
        if not 1 <= self.canary_max_tokens <= 1500:
            raise InvalidInput(f"canary_max_tokens must be in [1, 1500]; got {self.canary_max_tokens}",
                               "canary_max_tokens")


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(value)


_bool.__name__ = "bool"


def _port_range(name: str, value: int, low: int, meaning: str) -> None:
    if not low <= value <= 65535:
        raise InvalidInput(f"{name} must be a TCP port 1-65535 ({meaning}); got {value}", name)


def _origins(text: str) -> tuple[str, ...]:
    """Each entry of `allowed_origins` checked and normalized (a browser's Origin: scheme, host, port, no path)."""
    from urllib.parse import urlsplit

    entries = tuple(e.strip() for e in text.split(",") if e.strip())
    if "*" in entries:
        return ("*",)
    out = []
    for entry in entries:
        try:
            parts = urlsplit(entry)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or \
                parts.path.strip("/") or parts.query or parts.fragment or parts.username:
            raise InvalidInput(f"allowed_origins: {entry!r} is not an origin (scheme://host[:port], e.g. "
                               "https://app.example), or '*'", "allowed_origins")
        out.append(f"{parts.scheme}://{parts.netloc}".lower())
    return tuple(out)


def _token(value: str, file: str, name: str) -> str:
    """The token given directly or read from its file (one of the two); refused unless visible ASCII."""
    if value and file:
        raise InvalidInput(f"give {name} or {name}_file, not both", name)
    if file:
        path = Path(file).expanduser()
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise InvalidInput(f"{name}_file: cannot read {file} ({why})", f"{name}_file") from None
        if not value:
            raise InvalidInput(f"{name}_file: {file} is empty", f"{name}_file")
        if path.stat().st_mode & 0o077:
            log.warning("%s_file %s can be read by other users (chmod 600 it)", name, file)
    if value and not _TOKEN_RE.fullmatch(value):
        raise InvalidInput(f"{name} must be 1-4096 visible ASCII characters (no spaces)", name)
    return value
