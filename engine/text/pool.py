"""Sentence analysis off the serving process when many requests arrive at once.

G2P is pure Python: in the serving process it holds the GIL, and a burst of N requests analyzed in N
client threads starves the scheduler thread that launches the GPU work. `AnalysisPool` runs a call
inline when it is the only one in flight (no inter-process round trip for a lone request) and in a
worker process otherwise. Workers are fresh interpreters (`analysis_worker`), started at construction;
they load their dictionaries while the caller goes on. They never import the caller's main script (as
multiprocessing's spawn would, which breaks scripts without a main guard). A worker that dies is
replaced and the call that hit it runs inline; after MAX_FAILURES deaths in a row (a broken
environment), or when no worker can be started, every call runs inline.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import queue
import subprocess
import sys
import threading

from gsvd.engine.text.lexicon import Lexicon
from gsvd.engine.text.phonemize import Analysis, analyze

log = logging.getLogger(__name__)


def default_workers(device: str) -> int:
    """0 on CPU (the model, not the frontend, is the bottleneck there); on a GPU half the cores, up to 8."""
    if not str(device).startswith("cuda"):
        return 0
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def worker_command() -> list[str]:
    """A fresh interpreter with this process's import path that serves `analysis_worker.main`."""
    boot = (f"import sys; sys.path[:0] = {json.dumps([p for p in sys.path if p])}; "
            "from gsvd.engine.text.analysis_worker import main; main()")
    return [sys.executable, "-P", "-c", boot]


MAX_FAILURES = 3  # workers in a row that die before answering: then every call runs inline


class _Worker:
    """One worker process and its pipes; one call at a time."""

    def __init__(self, command: list[str]) -> None:
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None)

    def call(self, args: tuple) -> Analysis:
        pickle.dump(args, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self.proc.stdin.flush()
        status, value = pickle.load(self.proc.stdout)  # EOFError / BrokenPipeError if the process died
        if status == "err":
            raise value
        return value

    def close(self) -> None:
        try:
            self.proc.stdin.close()  # the worker exits at end of input
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class AnalysisPool:
    def __init__(self, workers: int, inline_alone: bool = True, command: list[str] | None = None) -> None:
        """workers: processes (0: always inline). inline_alone: a call with none other in flight runs inline.
        command: how a worker starts (default `worker_command()`)."""
        if workers < 0:
            raise ValueError(f"frontend workers must be >= 0, got {workers}")
        self.inline_alone = inline_alone
        self._command = command or worker_command()
        self._lock = threading.Lock()
        self._busy = 0
        self._offloaded = 0
        self._failures = 0  # workers in a row that died before answering
        self._closed = False
        self._all: list[_Worker] = []
        self._idle: queue.Queue[_Worker | None] = queue.Queue()  # None: no worker left, run inline
        for _ in range(workers):
            w = self._spawn()
            if w is not None:
                self._all.append(w)
                self._idle.put(w)

    def analyze(self, text: str, language: str, version: str, lexicon: Lexicon | None) -> Analysis:
        args = (text, language, version, lexicon)
        with self._lock:
            offload = bool(self._all) and not self._closed and (self._busy > 0 or not self.inline_alone)
            self._busy += 1
        try:
            if not offload:
                return analyze(*args)
            worker = self._idle.get()  # blocks while every worker is busy: that many calls are in flight
            if worker is None:  # the last worker went away while this call waited
                return analyze(*args)
            try:
                out = worker.call(args)
            except (EOFError, OSError, pickle.UnpicklingError):
                self._replace(worker)
                return analyze(*args)
            except Exception:
                self._idle.put(worker)  # the analysis raised (bad input): the worker is fine
                raise
            self._idle.put(worker)
            with self._lock:
                self._offloaded += 1
                self._failures = 0
            return out
        finally:
            with self._lock:
                self._busy -= 1

    def stats(self) -> dict:
        with self._lock:
            return {"workers": len(self._all), "offloaded": self._offloaded, "in_flight": self._busy}

    def pids(self) -> list[int]:
        with self._lock:
            return [w.proc.pid for w in self._all]

    def close(self) -> None:
        with self._lock:
            workers, self._all, self._closed = self._all, [], True
        for w in workers:
            w.close()

    def _spawn(self) -> _Worker | None:
        try:
            return _Worker(self._command)
        except OSError as exc:
            log.warning("cannot start a frontend worker process (%s); analyzing inline", exc)
            return None

    def _replace(self, dead: _Worker) -> None:
        """Drop a worker that died; start another unless MAX_FAILURES died in a row (then all calls run inline)."""
        dead.close()
        with self._lock:
            self._failures += 1
            give_up = self._failures >= MAX_FAILURES
        if give_up:
            log.warning("%d frontend worker processes died in a row; analyzing inline from now on", MAX_FAILURES)
        else:
            log.warning("a frontend worker process died; starting another")
        fresh = None if give_up else self._spawn()
        with self._lock:
            self._all = [w for w in self._all if w is not dead]
            if fresh is not None and not self._closed:
                self._all.append(fresh)
                self._idle.put(fresh)
                fresh = None
            if not self._all:  # nothing left to wait for: wake every caller still waiting for a worker
                for _ in range(self._busy):
                    self._idle.put(None)
        if fresh is not None:  # closed meanwhile
            fresh.close()
