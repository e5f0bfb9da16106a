"""Daemon settings: defaults < TOML file < GSVD_* environment < command-line flags."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from gsvd.engine.errors import InvalidInput


@dataclass
class DaemonConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    voices_dir: str = ""
    device: str = "auto"
    dtype: str = "auto"
    max_streams: int = 64
    queue_limit: int = 256
    max_text_chars: int = 5000
    max_message_mb: int = 16
    slow_reader_timeout_s: float = 10.0
    default_deadline_s: float = 300.0
    idle_input_timeout_s: float = 60.0  # a text-streaming session whose input stays silent this long is ended
    stream_buffer_chunks: int = 64  # audio chunks queued towards one client before synthesis waits for it
    send_buffer_kb: int = 256  # kernel send buffer of a streaming HTTP/WebSocket connection (0: the OS default)
    token: str = ""
    admin_token: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    metrics_port: int = 0
    http_port: int = -1  # HTTP/WebSocket gateway; -1 off, 0 any free port
    grace_s: float = 10.0
    bert_folder: str = ""
    hubert_folder: str = ""
    sv_model: str = ""
    frontend_workers: int = -1  # text-analysis worker processes; -1: the engine's default (half the cores on a GPU)

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
            cfg._apply(data.get("serve", data), str(p))
        env = os.environ if env is None else env
        cfg._apply({f.name: env[f"GSVD_{f.name.upper()}"] for f in fields(cls) if f"GSVD_{f.name.upper()}" in env}, "environment")
        cfg._apply({k: v for k, v in flags.items() if v is not None}, "flags")
        if cfg.frontend_workers < -1:
            raise InvalidInput(f"frontend_workers must be -1 (default) or >= 0; got {cfg.frontend_workers}",
                               "frontend_workers")
        cfg._check_stream_limits()
        return cfg

    def _check_stream_limits(self) -> None:
        """Timeouts and buffers of a stream (see daemon/streaming.py): a zero or negative one would cut every stream."""
        for key in ("slow_reader_timeout_s", "default_deadline_s", "idle_input_timeout_s"):
            if not getattr(self, key) > 0:
                raise InvalidInput(f"{key} must be > 0; got {getattr(self, key)}", key)
        for key, low in (("grace_s", 0), ("stream_buffer_chunks", 1), ("send_buffer_kb", 0)):
            if getattr(self, key) < low:
                raise InvalidInput(f"{key} must be >= {low}; got {getattr(self, key)}", key)

    def engine_frontend_workers(self) -> int | None:
        """The `Engine(frontend_workers=...)` argument: None for the engine's default."""
        return None if self.frontend_workers < 0 else self.frontend_workers

    def _apply(self, values: dict, source: str) -> None:
        types = {f.name: f.type for f in fields(self)}
        for key, value in values.items():
            if key not in types:
                raise InvalidInput(f"{source}: unknown setting {key!r}", key)
            kind = {"int": int, "float": float, "str": str}[str(types[key])]
            try:
                setattr(self, key, kind(value))
            except (TypeError, ValueError):
                raise InvalidInput(f"{source}: {key} must be a {kind.__name__}; got {value!r}", key) from None
