"""One background thread that captures the runtime's CUDA graphs while it serves.

A model is usable as soon as its weights are on the device: every graphed piece has a plain path, taken for any
shape whose graph is not captured yet (`cuda_graphs.GraphSet.run` answers None). Capturing every graph at load took
most of a voice's 44.5 s load on an H200; here each graph is one job, run in priority order (the shapes of a first
chunk and of one stream first, then the rest; a second audio lane's after the first's), and the pieces switch to a
graph the moment it exists. Captures neither synchronize the device nor empty the allocator's caches
(`cuda_graphs.CudaCapturer`), so serving goes on meanwhile; the thread shares the GIL with the scheduler, which gets
it back at least every switch interval. A failing job is logged and its piece stays on its plain path.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)


class GraphBuilder:
    def __init__(self) -> None:
        self._jobs: list[tuple[tuple, int, str, Callable[[], object]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._running: str | None = None  # owner of the job in hand
        self._closed = False
        self.done = 0
        self.failed = 0
        self.busy_s = 0.0
        self._thread = threading.Thread(target=self._run, name="gsvd-graphs", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], object], priority: tuple = (), owner: str = "") -> None:
        """Queue a capture job; lower `priority` tuples run first, equal ones in submission order. `owner`: what
        `cancel` drops it by (a model id, an architecture)."""
        with self._cond:
            if self._closed:
                return
            heapq.heappush(self._jobs, (priority, next(self._seq), owner, job))
            self._cond.notify_all()

    def cancel(self, owner: str) -> None:
        """Drop the queued jobs of `owner` (a model unloaded or evicted) and wait for its job in hand, if any."""
        with self._cond:
            self._jobs = [j for j in self._jobs if j[2] != owner]
            heapq.heapify(self._jobs)
            while self._running == owner:
                self._cond.wait()

    def pending(self, owner: str | None = None) -> int:
        """Jobs queued or in hand (of `owner`, or all)."""
        with self._cond:
            queued = sum(1 for j in self._jobs if owner is None or j[2] == owner)
            return queued + (self._running is not None and (owner is None or self._running == owner))

    def wait(self, timeout: float | None = None, owner: str | None = None) -> bool:
        """Until no job (of `owner`, or at all) is queued or in hand -> True, or False after `timeout` seconds."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while any(owner is None or j[2] == owner for j in self._jobs) or (
                    self._running is not None and (owner is None or self._running == owner)):
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._jobs.clear()
            self._cond.notify_all()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                _, _, owner, job = heapq.heappop(self._jobs)
                self._running = owner
            t0 = time.perf_counter()
            try:
                with torch.inference_mode():
                    job()
                self.done += 1
            except Exception:  # the piece stays on its plain path
                self.failed += 1
                log.exception("graph capture job of %s failed", owner or "the runtime")
            finally:
                self.busy_s += time.perf_counter() - t0
                with self._cond:
                    self._running = None
                    self._cond.notify_all()
