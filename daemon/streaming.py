"""Transport-neutral streaming of engine audio, shared by the gRPC service and the HTTP gateway.

Admission (a stream limit -> ResourceExhausted), a worker thread pulling chunks
from the engine, a bounded queue towards the transport (a reader that stalls for
`slow_reader_timeout_s` is cut off with a deadline error), resampling to the
client's rate, metrics, and cancellation of the engine stream when the consumer
goes away (its runtime slot is freed within one decode step).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np

from gsvd.daemon import convert
from gsvd.daemon.config import DaemonConfig
from gsvd.daemon.metrics import Metrics, PlayClock
from gsvd.engine.errors import Cancelled, GsvdError, ResourceExhausted

log = logging.getLogger("gsvd.daemon")
_DONE = object()


@dataclass
class OutChunk:
    pcm: np.ndarray  # float32 at the requested rate
    sequence: int
    offset: int
    is_final: bool
    segment: int
    text: str
    timings: tuple = ()  # engine PhoneTiming (word, start, end) in seconds


class StreamRunner:
    def __init__(self, config: DaemonConfig, metrics: Metrics, queue_chunks: int = 64) -> None:
        self.config, self.metrics = config, metrics
        self.queue_chunks = queue_chunks
        self.active = 0
        self._lock = threading.Lock()

    def _admit(self) -> None:
        with self._lock:
            if self.active >= self.config.max_streams:
                raise ResourceExhausted(f"server at its limit of {self.config.max_streams} concurrent streams")
            self.active += 1

    async def run(self, start: Callable, rate: int, remaining_s: float | None, rid: str) -> AsyncIterator[OutChunk]:
        """`start(cancel, deadline)` returns the engine's chunk iterator; errors raise GsvdError."""
        self._admit()
        cancel = threading.Event()
        deadline = time.monotonic() + (remaining_s if remaining_s is not None else self.config.default_deadline_s)
        out: asyncio.Queue = asyncio.Queue(maxsize=self.queue_chunks)
        loop = asyncio.get_running_loop()
        worker = threading.Thread(target=self._produce, args=(start, cancel, deadline, out, loop), daemon=True)
        t0 = time.monotonic()
        self.metrics.stream_started()
        try:
            worker.start()
            resample = convert.Resampler(rate)
            offset, audio_s = 0, 0.0
            clock = PlayClock()
            while True:
                item = await out.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                if item.sequence == 0:
                    self.metrics.first_audio(time.monotonic() - t0)
                if clock.late(item.duration):
                    self.metrics.underrun()
                pcm = resample(item.pcm, item.is_final)
                yield OutChunk(pcm, item.sequence, offset, item.is_final, item.segment, item.text, item.timings)
                offset += len(pcm)
                audio_s += item.duration
            if audio_s > 0:
                self.metrics.rtf((time.monotonic() - t0) / audio_s)
            log.info("request %s: %.2f s of audio in %.2f s", rid, audio_s, time.monotonic() - t0)
        finally:
            cancel.set()
            with self._lock:
                self.active -= 1
            self.metrics.stream_ended()

    def _produce(self, start, cancel, deadline, out: asyncio.Queue, loop) -> None:
        """Worker thread: pull chunks from the engine, push them with a bounded wait."""

        def put(item) -> bool:
            fut = asyncio.run_coroutine_threadsafe(out.put(item), loop)
            try:
                fut.result(timeout=self.config.slow_reader_timeout_s)
                return True
            except TimeoutError:
                fut.cancel()
                return False
            except RuntimeError:  # the loop is gone
                return False

        try:
            for chunk in start(cancel, deadline):
                if cancel.is_set():
                    return
                if not put(chunk):
                    cancel.set()
                    _force_put(out, loop, Cancelled("slow reader: the client did not read audio in time (deadline exceeded)"))
                    return
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - forwarded to the client as a status
            if not isinstance(exc, GsvdError):
                log.exception("synthesis failed")
                exc = GsvdError(f"internal error: {exc}")
            _force_put(out, loop, exc)


def _force_put(out: asyncio.Queue, loop, item) -> None:
    """Deliver a final item even when the queue is full (drops the oldest chunk)."""

    def put() -> None:
        if out.full():
            out.get_nowait()
        out.put_nowait(item)

    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(put)
