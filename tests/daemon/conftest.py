"""A real daemon on loopback with tiny random voices, shared by the daemon tests."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import pytest


@dataclass
class Running:
    address: str
    daemon: object
    engine: object
    voices_dir: object
    loop: asyncio.AbstractEventLoop

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.daemon.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.engine.close()


def start_daemon(tmp_path, **settings) -> Running:
    from gsvd.daemon.config import DaemonConfig
    from gsvd.daemon.server import Daemon
    from gsvd.engine import Engine
    from gsvd.engine.testing.bundle import write_tiny_voice
    from gsvd.engine.testing.sovits import write_tiny_hubert

    voices = tmp_path / "voices"
    write_tiny_voice(voices, "alice")
    write_tiny_voice(voices, "bob", seed=1)
    hubert = write_tiny_hubert(tmp_path / "hubert")
    cfg = DaemonConfig.load(None, env={}, port=0, voices_dir=str(voices), device="cpu", grace_s=1.0, **settings)
    engine = Engine(device="cpu", max_streams=cfg.max_streams, queue_limit=cfg.queue_limit, hubert_folder=hubert)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder = {}

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def boot():
            holder["daemon"] = Daemon(engine, cfg)
            await holder["daemon"].start()
            ready.set()

        loop.create_task(boot())
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    assert ready.wait(60), "daemon did not start"
    return Running(f"127.0.0.1:{holder['daemon'].port}", holder["daemon"], engine, voices, loop)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    running = start_daemon(tmp_path_factory.mktemp("daemon"), max_streams=8)
    yield running
    running.stop()
