"""Voice management and server facts: one implementation behind every transport.

The gRPC servicer (LoadVoice, UnloadVoice, GetServerInfo) and the HTTP JSON API
(`POST /v1/voices`, `DELETE /v1/voices/{name}`, `GET /v1/server`, see http_api.py) call
these functions, so both accept the same bundle paths (inside the voices folder only), run
the same checks, load off the event loop and report the same numbers. Callers check auth
and map the `GsvdError`s raised here to their own status codes (daemon/errors.py).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gsvd.daemon import convert
from gsvd.daemon.config import DaemonConfig
from gsvd.engine.errors import InvalidInput

if TYPE_CHECKING:
    from gsvd.engine import Engine, Voice

log = logging.getLogger("gsvd.daemon")


def bundle_path(config: DaemonConfig, raw: str) -> Path:
    """`raw` (relative to the voices folder, or absolute) resolved; InvalidInput unless it lies inside it."""
    root = Path(config.voices_dir).resolve() if config.voices_dir else None
    path = Path(raw)
    path = (root / path).resolve() if root and not path.is_absolute() else path.resolve()
    if root is None or not path.is_relative_to(root):
        raise InvalidInput("bundle_path must be inside the server's voices directory", "bundle_path")
    return path


async def load_bundle(engine: Engine, config: DaemonConfig, raw_path: str, name: str = "") -> Voice:
    """Load (or reload) the bundle at `raw_path` under `name` (default: the bundle's own name)."""
    path = bundle_path(config, raw_path)
    voice = await asyncio.to_thread(engine.load_voice, path, name or None)
    log.info("loaded voice %s (%s)", voice.name, voice.version)
    return voice


async def add_reference_voice(engine: Engine, name: str, base_voice: str, audio: np.ndarray, sample_rate: int,
                              transcript: str, language: str) -> Voice:
    """A zero-shot voice from a 3-10 s clip + transcript, on the model of the loaded `base_voice`."""
    if not name:
        raise InvalidInput("name is required for an uploaded voice", "name")
    voice = await asyncio.to_thread(engine.add_voice_from_reference, name, base_voice, audio, sample_rate,
                                    transcript, language or "auto")
    log.info("added zero-shot voice %s on the model of %s", voice.name, base_voice)
    return voice


def unload_voice(engine: Engine, name: str) -> None:
    engine.unload_voice(name)
    log.info("unloaded voice %s", name)


def server_info(engine: Engine, config: DaemonConfig, active_streams: int) -> dict:
    """The fields of gsvd.v1.ServerInfo, as plain values."""
    info, stats = engine.info(), engine.stats()
    limits = {"max_streams": config.max_streams, "queue_limit": config.queue_limit,
              "max_text_chars": config.max_text_chars, "max_message_bytes": config.max_message_mb << 20}
    return {"version": info["version"], "backend": info["backend"] or "", "device": info["device"],
            "dtype": info["dtype"], "limits": limits, "models": [m["model_id"] for m in info["models"]],
            "sample_rate_hz": convert.NATIVE_RATE, "active_streams": active_streams,
            "queued": int(stats.get("queued", 0))}
