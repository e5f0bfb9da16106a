"""Sentence analysis off the main process when many requests arrive at once.

G2P is pure Python: in the serving process it holds the GIL, and a burst of N requests analyzed in N
client threads starves the scheduler thread that launches the GPU work. `AnalysisPool` runs a call
inline when it is the only one in flight (no inter-process round trip for a lone request) and in a
pool of worker processes otherwise. Workers start at construction (spawned: the serving process has
CUDA and threads) and load their dictionaries in the background; a worker that dies is replaced and
the call that hit it runs inline.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from gsvd.engine.text.lexicon import Lexicon
from gsvd.engine.text.phonemize import Analysis, analyze

log = logging.getLogger(__name__)


def default_workers(device: str) -> int:
    """0 on CPU (the model, not the frontend, is the bottleneck there); on a GPU half the cores, up to 8."""
    if not str(device).startswith("cuda"):
        return 0
    return max(1, min(8, (os.cpu_count() or 2) // 2))


class AnalysisPool:
    def __init__(self, workers: int, inline_alone: bool = True) -> None:
        """workers: processes (0: always inline). inline_alone: a call with none other in flight runs inline."""
        if workers < 0:
            raise ValueError(f"frontend workers must be >= 0, got {workers}")
        self.workers = workers
        self.inline_alone = inline_alone
        self._lock = threading.Lock()
        self._busy = 0
        self._executor: ProcessPoolExecutor | None = None
        self._offloaded = 0
        self._closed = False
        if workers:
            self._executor = self._start()

    def analyze(self, text: str, language: str, version: str, lexicon: Lexicon | None) -> Analysis:
        with self._lock:
            executor = self._executor if self._busy or not self.inline_alone else None
            self._busy += 1
        try:
            if executor is None:
                return analyze(text, language, version, lexicon)
            try:
                out = executor.submit(analyze, text, language, version, lexicon).result()
            except BrokenProcessPool:
                log.warning("a frontend worker process died; restarting the pool")
                self._restart(executor)
                return analyze(text, language, version, lexicon)
            with self._lock:
                self._offloaded += 1
            return out
        finally:
            with self._lock:
                self._busy -= 1

    def stats(self) -> dict:
        with self._lock:
            return {"workers": self.workers, "offloaded": self._offloaded, "in_flight": self._busy}

    def close(self) -> None:
        with self._lock:
            executor, self._executor, self._closed = self._executor, None, True
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _start(self) -> ProcessPoolExecutor:
        import multiprocessing

        executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        for _ in range(self.workers):  # one job each: every worker starts now and loads its dictionaries
            executor.submit(analyze, "你好 hello", "auto")
        return executor

    def _restart(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is not broken:  # another thread restarted it already
                return
            self._executor = None
        broken.shutdown(wait=False, cancel_futures=True)
        fresh = self._start()
        with self._lock:
            if not self._closed:
                self._executor, fresh = fresh, None
        if fresh is not None:  # closed meanwhile
            fresh.shutdown(wait=False, cancel_futures=True)
