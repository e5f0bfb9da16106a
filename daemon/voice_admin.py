"""Voice management and server facts: one implementation behind every transport.

The gRPC servicer (LoadVoice, UnloadVoice, GetServerInfo) and the HTTP JSON API
(`POST /v1/voices`, `DELETE /v1/voices/{name}`, `GET /v1/server`, see http_api.py) call
these functions, so both accept the same bundle paths (inside the voices folder only), run
the same checks, load off the event loop and report the same numbers. Callers check auth
and map the `GsvdError`s raised here to their own status codes (daemon/errors.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from gsvd.daemon import convert, validate
from gsvd.daemon.config import DaemonConfig
from gsvd.daemon.errors import AlreadyExists
from gsvd.engine.errors import InvalidInput

if TYPE_CHECKING:
    from gsvd.engine import Engine, Voice

log = logging.getLogger("gsvd.daemon")
T = TypeVar("T")


class VoiceAdmin:
    """Load, add and unload voices for every transport, with the daemon's checks: names through
    `validate.voice_name`, bundle paths through `validate.bundle_path` (inside the voices folder, the
    same rule as at start), uploaded audio through `validate.reference_audio`, and a name claimed
    while a load makes it (ALREADY_EXISTS when another load is making it, or when it is loaded and
    `replace` is not set). Loads run off the event loop; the claim is taken on it (check and claim
    are one step there)."""

    def __init__(self, engine: Engine, config: DaemonConfig) -> None:
        self.engine, self.config = engine, config
        self._loading: set[str] = set()  # voice names a load is working on

    async def load_bundle(self, raw_path: str, name: str = "", replace: bool = False) -> Voice:
        """Load the bundle at `raw_path` under `name` (default: the bundle's own name)."""
        name = validate.voice_name(name, "name") if name else ""
        path = validate.bundle_path(self.config.voices_dir, raw_path)
        name = name or await asyncio.to_thread(_bundle_name, path)
        with self._claim(name, replace):
            voice = await _own_thread(partial(self.engine.load_voice, path, name, progress=partial(_log_load, path)))
        log.info("loaded voice %s (%s)", voice.name, voice.version)
        return voice

    async def add_reference_voice(self, name: str, base_voice: str, audio: np.ndarray, sample_rate: int,
                                  transcript: str, language: str, replace: bool = False) -> Voice:
        """A zero-shot voice from a 3-10 s clip + transcript, on the model of the loaded `base_voice`."""
        if not name:
            raise InvalidInput("name is required for an uploaded voice", "name")
        name = validate.voice_name(name, "name")
        audio = validate.reference_audio(audio)
        base = validate.voice_name(base_voice, "reference.base_voice")
        with self._claim(name, replace):
            voice = await _own_thread(partial(self.engine.add_voice_from_reference, name, base, audio, sample_rate,
                                              transcript, language or "auto"))
        log.info("added zero-shot voice %s on the model of %s", voice.name, base)
        return voice

    def unload_voice(self, name: str) -> None:
        name = validate.voice_name(name, "name")
        self.engine.unload_voice(name)
        log.info("unloaded voice %s", name)

    @contextlib.contextmanager
    def _claim(self, name: str, replace: bool) -> Iterator[None]:
        if name in self._loading:
            raise AlreadyExists(f"voice {name!r} is being loaded by another request")
        if not replace and any(v.name == name for v in self.engine.voices()):
            raise AlreadyExists(f"voice {name!r} is already loaded: set replace to swap it, or unload it first")
        self._loading.add(name)
        try:
            yield
        finally:
            self._loading.discard(name)


def _bundle_name(path: Path) -> str:
    """The voice name a bundle's manifest gives (its files are checked when it loads)."""
    from gsvd.engine.bundle import load_bundle

    return load_bundle(path, verify=False).name


def server_info(engine: Engine, config: DaemonConfig, active_streams: int) -> dict:
    """The fields of gsvd.v1.ServerInfo, as plain values."""
    info, stats = engine.info(), engine.stats()
    limits = {"max_streams": config.max_streams, "queue_limit": config.queue_limit,
              "max_text_chars": config.max_text_chars, "max_message_bytes": config.max_message_mb << 20}
    return {"version": info["version"], "backend": info["backend"] or "", "device": info["device"],
            "dtype": info["dtype"], "limits": limits, "models": [m["model_id"] for m in info["models"]],
            "sample_rate_hz": convert.NATIVE_RATE, "active_streams": active_streams,
            "queued": int(stats.get("queued", 0))}


async def _own_thread(call: Callable[[], T]) -> T:
    """Run a long blocking call (a voice load: minutes on a GPU) on a thread of its own, off the event loop
    and off the default executor that the short engine calls share; shutdown does not wait for it."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()

    def settle(result, error) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def work() -> None:
        try:
            result, error = call(), None
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is gone (daemon stopped)
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="gsvd-load", daemon=True).start()
    return await done


def _log_load(path: Path, stage: str) -> None:
    log.info("loading %s: %s", path, {"verified": "checksums verified", "model": "model resident",
                                      "reference": "reference ready"}.get(stage, stage))
