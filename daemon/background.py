"""A daemon on its own event-loop thread, for the demo and tests (the `gsvd serve` CLI runs its
own loop in the foreground instead)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass


@dataclass
class Running:
    address: str
    daemon: object
    engine: object
    loop: asyncio.AbstractEventLoop
    voices_dir: object = None

    def stop(self) -> None:
        """Stop serving, stop the loop, close the engine."""
        asyncio.run_coroutine_threadsafe(self.daemon.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.engine.close()


def serve_in_thread(engine, cfg, timeout: float = 60.0) -> Running:
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
    return Running(f"127.0.0.1:{daemon.port}", daemon, engine, loop, getattr(cfg, "voices_dir", None))
