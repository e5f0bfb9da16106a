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
from collections.abc import Iterator

from gsvd.engine.text.lexicon import Lexicon
from gsvd.engine.text.phonemize import Analysis, analyze

log = logging.getLogger(__name__)


def _inline(args: tuple) -> Analysis | Exception:
    try:
        return analyze(*args)
    except Exception as exc:  # noqa: BLE001 - handed to the caller like a worker's error
        return exc


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
MAX_QUEUED = 16  # calls sent to one worker and not answered yet (`analyze_many`); bounds what sits in its pipes


class _Worker:
    """One worker process and its pipes; one call at a time."""

    def __init__(self, command: list[str]) -> None:
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None)
        self.ready = False  # its dictionaries are loaded (it said so): only then does it take calls

    def call(self, args: tuple) -> Analysis:
        self.send(args)
        status, value = self.receive()
        if status == "err":
            raise value
        return value

    def send(self, args: tuple) -> None:
        """Queue a call (the worker answers calls in the order sent)."""
        pickle.dump(args, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self.proc.stdin.flush()

    def receive(self) -> tuple[str, object]:
        """The oldest unanswered call's reply: ("ok", Analysis) or ("err", exception); EOFError / OSError if
        the process died."""
        return pickle.load(self.proc.stdout)

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
        self._ready = threading.Condition(self._lock)
        for _ in range(workers):
            w = self._spawn()
            if w is not None:
                self._all.append(w)
                self._welcome(w)

    def analyze(self, text: str, language: str, version: str, lexicon: Lexicon | None) -> Analysis:
        args = (text, language, version, lexicon)
        with self._lock:
            offload = (any(w.ready for w in self._all) and not self._closed
                       and (self._busy > 0 or not self.inline_alone))
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

    def analyze_many(self, calls: list[tuple]) -> Iterator[tuple[int, Analysis | Exception]]:
        """Analyze several sentences from one thread: sent to the idle workers in turn (at most MAX_QUEUED
        waiting on each), no thread hand-over per call -> (index, Analysis or the exception its analysis
        raised), in the order given, each as soon as it is back. A lone call (`inline_alone`), or no idle
        worker: inline. A worker that dies is replaced and its calls run inline."""
        if not calls:
            return
        workers = self._take_idle() if len(calls) > 1 or not self.inline_alone else []
        queued = dict.fromkeys(workers, 0)  # calls sent to each worker and not answered yet
        with self._lock:
            self._busy += len(calls)
        try:
            if not workers:
                for i, args in enumerate(calls):
                    yield i, _inline(args)
                return
            owner: list[_Worker | None] = [None] * len(calls)  # who answers call i (None: inline)
            sent = 0

            def dispatch() -> None:
                nonlocal sent
                while sent < len(calls) and workers:
                    w = min(workers, key=lambda w: queued[w])
                    if queued[w] >= MAX_QUEUED:
                        return
                    try:
                        w.send(calls[sent])
                    except OSError:
                        drop(w)
                        continue
                    owner[sent], queued[w] = w, queued[w] + 1
                    sent += 1

            def drop(dead: _Worker) -> None:  # its unanswered calls run inline
                workers.remove(dead)
                for k in range(len(calls)):
                    if owner[k] is dead:
                        owner[k] = None
                self._replace(dead)

            dispatch()
            for i in range(len(calls)):
                if i >= sent:  # every worker died: the rest inline
                    owner[i] = None
                    sent += 1
                w = owner[i]
                if w is None:
                    yield i, _inline(calls[i])
                    continue
                try:
                    status, value = w.receive()
                except (EOFError, OSError, pickle.UnpicklingError):
                    drop(w)
                    yield i, _inline(calls[i])
                    dispatch()
                    continue
                queued[w] -= 1
                with self._lock:
                    self._offloaded += 1
                    self._failures = 0
                dispatch()
                yield i, value
        finally:
            for w in list(workers):  # left early: read what is still owed, so the next caller's replies line up
                try:
                    for _ in range(queued[w]):
                        w.receive()
                except (EOFError, OSError, pickle.UnpicklingError):
                    workers.remove(w)
                    self._replace(w)
            for w in workers:
                self._idle.put(w)
            with self._lock:
                self._busy -= len(calls)

    def _take_idle(self) -> list[_Worker]:
        """Every worker idle now (none when the pool is closed)."""
        taken = []
        while True:
            try:
                w = self._idle.get_nowait()
            except queue.Empty:
                break
            if w is None:  # no worker left (see _replace): leave the marker for waiting callers
                self._idle.put(None)
                break
            taken.append(w)
        if self._closed:
            for w in taken:
                self._idle.put(w)
            return []
        return taken

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

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until every worker has loaded its dictionaries (or the pool gave up on workers)."""
        with self._ready:
            return self._ready.wait_for(lambda: all(w.ready for w in self._all), timeout)

    def _welcome(self, w: _Worker) -> None:
        """Hand a starting worker out once it says it is ready (a thread reads its first reply): calls made
        meanwhile run inline instead of waiting seconds for a worker that is still loading."""
        def await_ready() -> None:
            try:
                status, _ = w.receive()
                if status != "ready":
                    raise EOFError(f"unexpected first reply {status!r}")
            except (EOFError, OSError, ValueError, pickle.UnpicklingError):  # ValueError: closed meanwhile
                if not self._closed:
                    self._replace(w)
                return
            with self._ready:
                w.ready = True
                self._ready.notify_all()
            self._idle.put(w)

        threading.Thread(target=await_ready, name="gsvd-frontend-worker-start", daemon=True).start()

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
                self._welcome(fresh)
                fresh = None
            if not self._all:  # nothing left to wait for: wake every caller still waiting for a worker
                for _ in range(self._busy):
                    self._idle.put(None)
            self._ready.notify_all()
        if fresh is not None:  # closed meanwhile
            fresh.close()
