"""A daemon on its own event-loop thread, for the demo and tests (the `gsvd serve` CLI runs its
own loop in the foreground instead)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gsvd.daemon.config import DaemonConfig
    from gsvd.daemon.server import Daemon
    from gsvd.engine import Engine

_STOP_SLACK_S = 30.0  # beyond the shutdown grace, for the servers to close


@dataclass
class Running:
    address: str
    daemon: Daemon
    engine: Engine
    loop: asyncio.AbstractEventLoop
    voices_dir: Path | None = None

    def stop(self) -> None:
        """Stop serving (the daemon's drain: new work refused, streams in flight get the grace), stop the loop,
        close the engine."""
        grace = self.daemon.config.grace_s
        asyncio.run_coroutine_threadsafe(self.daemon.stop(), self.loop).result(grace + _STOP_SLACK_S)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.engine.close()


def serve_in_thread(engine: Engine, cfg: DaemonConfig, timeout: float = 60.0) -> Running:
    """Start `Daemon(engine, cfg)` on a new daemon thread; returns once it listens."""
    from gsvd.daemon.server import Daemon

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict = {}

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def boot() -> None:
            try:
                holder["daemon"] = Daemon(engine, cfg)
                await holder["daemon"].start()
            except BaseException as exc:  # reported to the caller below
                holder["error"] = exc
            ready.set()

        loop.create_task(boot())
        loop.run_forever()

    threading.Thread(target=run, name="gsvd-daemon", daemon=True).start()
    if not ready.wait(timeout) or "error" in holder:
        raise RuntimeError(f"the daemon did not start: {holder.get('error', 'timed out')}")
    daemon = holder["daemon"]
    return Running(f"127.0.0.1:{daemon.port}", daemon, engine, loop, Path(cfg.voices_dir) if cfg.voices_dir else None)
