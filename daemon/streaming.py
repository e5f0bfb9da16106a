"""Transport-neutral streaming of engine audio, shared by the gRPC service and the HTTP gateway.

Every stream is a `Session`, opened with `async with runner.session(...)`: admission happens on entry
(over the limit -> ResourceExhausted, while draining -> Unavailable), before the transport sends
anything, so a refused request gets only its error. Leaving the block (normally, by an error, by a
disconnect that cancels the handler) frees the slot and cancels the engine stream at once; nothing
waits for the garbage collector, because no async generator sits between the engine and a transport.

Inside a session a worker thread pulls chunks from the engine into a bounded buffer
(`stream_buffer_chunks`); the transport's coroutine takes them out and writes them with
`Session.write`, which bounds every write by the slow-reader timeout and the stream's deadline. A
client that stops reading therefore blocks one write, which gives up after `slow_reader_timeout_s`
(DeadlineExceeded, "slow reader"); waiting for the engine is bounded by the deadline, so a session
whose input never ends is stopped by it too, and by the idle-input timeout of `TextFeed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from gsvd.daemon import convert
from gsvd.daemon.config import DaemonConfig
from gsvd.daemon.errors import DeadlineExceeded, Unavailable
from gsvd.daemon.metrics import Metrics, PlayClock
from gsvd.engine.errors import Cancelled, GsvdError, ResourceExhausted

log = logging.getLogger("gsvd.daemon")
_DONE = object()
T = TypeVar("T")
_POLL_S = 0.05  # how often a waiting worker thread looks at its cancel flag


@dataclass
class OutChunk:
    pcm: np.ndarray  # float32 at the requested rate
    sequence: int
    offset: int
    is_final: bool
    segment: int
    text: str
    timings: tuple = ()  # engine PhoneTiming (word, start, end) in seconds


# `start(cancel, deadline)` -> the engine's chunk iterator (Engine.stream / Engine.stream_text)
Start = Callable[[threading.Event, float], Iterator]
# the transport's write of one chunk
Send = Callable[[OutChunk], Awaitable[None]]
# the transport's reader of a request's text input (it feeds a TextFeed until the input ends)
Reader = Callable[[], Coroutine[None, None, None]]


class StreamRunner:
    """Admission, the live sessions, and draining at shutdown."""

    def __init__(self, config: DaemonConfig, metrics: Metrics) -> None:
        self.config, self.metrics = config, metrics
        self.draining = False
        self._sessions: set[Session] = set()
        self._on_admit: list[Callable[[int], None]] = []

    def on_admit(self, listener: Callable[[int], None]) -> None:
        """Call `listener(active streams)` as each stream is admitted, before it starts (the canary steps
        aside here: daemon/canary.py)."""
        self._on_admit.append(listener)

    @property
    def active(self) -> int:
        """Streams holding a slot now (GetServerInfo.active_streams)."""
        return len(self._sessions)

    @contextlib.asynccontextmanager
    async def session(self, rid: str, remaining_s: float | None = None) -> AsyncIterator[Session]:
        """Admit a stream (raises before anything is sent), hold its slot for the block, free it on exit.

        `remaining_s`: the client's own deadline (gRPC), else `default_deadline_s` applies."""
        if self.draining:
            raise Unavailable("server is shutting down; retry on another instance")
        if len(self._sessions) >= self.config.max_streams:
            raise ResourceExhausted(f"server at its limit of {self.config.max_streams} concurrent streams")
        budget = remaining_s if remaining_s is not None else self.config.default_deadline_s
        session = Session(self.config, self.metrics, rid, time.monotonic() + budget)
        self._sessions.add(session)
        self.metrics.stream_started()
        for listener in self._on_admit:
            listener(len(self._sessions))
        try:
            yield session
        finally:
            session.close()
            self._sessions.discard(session)
            self.metrics.stream_ended()

    def drain(self) -> None:
        """Refuse new streams from now on (shutdown); streams in flight go on."""
        self.draining = True

    def cancel_all(self) -> int:
        """Stop the engine work of every live stream (end of the shutdown grace); returns how many."""
        sessions = list(self._sessions)
        for s in sessions:
            s.cancel.set()
        return len(sessions)


class Session:
    """One admitted stream: its cancel flag, deadline, buffer and worker thread."""

    def __init__(self, config: DaemonConfig, metrics: Metrics, rid: str, deadline: float) -> None:
        self.config, self.metrics, self.rid, self.deadline = config, metrics, rid, deadline
        self.cancel = threading.Event()
        self._room = threading.Semaphore(max(1, config.stream_buffer_chunks))
        self._out: asyncio.Queue = asyncio.Queue()
        self._loop = asyncio.get_running_loop()

    # ------------------------------------------------------------ transport side

    async def write(self, write: Awaitable) -> None:
        """One write towards the client, bounded by the slow-reader timeout and the deadline."""
        left = self.deadline - time.monotonic()
        limit = min(self.config.slow_reader_timeout_s, left)
        try:
            await asyncio.wait_for(write, max(limit, 0.0))
        except TimeoutError:
            if limit >= left:
                raise DeadlineExceeded("request deadline exceeded while the client was not reading") from None
            raise DeadlineExceeded(f"slow reader: the client read no audio for {self.config.slow_reader_timeout_s:g} s "
                                   "(deadline exceeded)") from None

    async def run(self, start: Start, rate: int, send: Send, reader: Reader | None = None) -> None:
        """Synthesize: engine chunks, resampled to `rate`, each handed to `send` (bounded like `write`).
        `reader` (the request's text input, feeding a TextFeed) runs as a task until the stream ends.

        Returns after the final chunk; raises GsvdError (engine errors, DeadlineExceeded)."""
        task = self._loop.create_task(reader()) if reader is not None else None
        try:
            await self._pump(start, rate, send)
        finally:
            if task is not None:  # the reader is over before the transport says goodbye
                task.cancel()
                await asyncio.wait([task])

    async def _pump(self, start: Start, rate: int, send: Send) -> None:
        worker = threading.Thread(target=self._produce, args=(start,), name=f"gsvd-stream-{self.rid}", daemon=True)
        t0 = time.monotonic()
        worker.start()
        resample = convert.Resampler(rate)
        offset, audio_s = 0, 0.0
        clock = PlayClock()  # underruns as a listener who starts playing at the first audio would hear them
        while True:
            item = await self._next()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            self._room.release()
            if item.sequence == 0:
                self.metrics.first_audio(time.monotonic() - t0)
            if clock.late(item.duration):
                self.metrics.underrun()
            pcm = resample(item.pcm, item.is_final)
            await self.write(send(OutChunk(pcm, item.sequence, offset, item.is_final, item.segment, item.text,
                                           item.timings)))
            offset += len(pcm)
            audio_s += item.duration
        if audio_s > 0:
            self.metrics.rtf((time.monotonic() - t0) / audio_s)
        log.info("request %s: %.2f s of audio in %.2f s", self.rid, audio_s, time.monotonic() - t0)

    async def _next(self):
        left = self.deadline - time.monotonic()
        try:
            return await asyncio.wait_for(self._out.get(), max(left, 0.0))
        except TimeoutError:
            raise DeadlineExceeded("request deadline exceeded") from None

    def close(self) -> None:
        """Cancel the engine stream: the worker stops within one decode step and frees the runtime slot."""
        self.cancel.set()

    # ------------------------------------------------------------- worker thread

    def _produce(self, start: Start) -> None:
        """Worker thread: pull chunks from the engine, wait for room in the buffer, hand them over."""
        chunks = None
        try:
            chunks = start(self.cancel, self.deadline)
            for chunk in chunks:
                if not self._wait_for_room():
                    return
                self._push(chunk)
            self._push(_DONE)
        except BaseException as exc:  # noqa: BLE001 - forwarded to the client as a status
            if not isinstance(exc, GsvdError):
                log.exception("synthesis failed")
                exc = GsvdError(f"internal error: {exc}")
            elif isinstance(exc, Cancelled) and "deadline" in str(exc):
                exc = DeadlineExceeded(str(exc))
            self._push(exc)
        finally:
            if isinstance(chunks, Generator):  # run the engine stream's cleanup now, not at collection
                chunks.close()

    def _wait_for_room(self) -> bool:
        while not self.cancel.is_set():
            if self._room.acquire(timeout=_POLL_S):
                return True
        return False

    def _push(self, item) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone (daemon stopped)
            self._loop.call_soon_threadsafe(self._out.put_nowait, item)


async def first_message(receive: Awaitable[T], idle_s: float) -> T:
    """A text-streaming session's config message, which must come within the idle-input timeout."""
    try:
        return await asyncio.wait_for(receive, idle_s)
    except TimeoutError:
        raise DeadlineExceeded(f"no config message arrived for {idle_s:g} s (idle input, deadline exceeded)") from None


class TextFeed:
    """Text pieces from a transport's reader (StreamingSynthesize, WebSocket) to the engine's thread.

    The engine asks for the next piece only when it has spoken what it had; if no text arrives for
    `idle_s` from then, the session ends with DeadlineExceeded (so does a cancelled session)."""

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self._queue: queue.Queue = queue.Queue()

    def put(self, text: str) -> None:
        self._queue.put(text)

    def fail(self, exc: BaseException) -> None:
        self._queue.put(exc)

    def end(self) -> None:
        self._queue.put(_DONE)

    def pieces(self, cancel: threading.Event) -> Iterator[str]:
        while True:
            waiting_since = time.monotonic()
            while True:
                if cancel.is_set():
                    return
                try:
                    item = self._queue.get(timeout=_POLL_S)
                    break
                except queue.Empty:
                    if time.monotonic() - waiting_since > self.idle_s:
                        raise DeadlineExceeded(f"no text arrived for {self.idle_s:g} s; end the input when it is "
                                               "complete (idle input, deadline exceeded)") from None
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
