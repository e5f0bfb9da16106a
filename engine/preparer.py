"""Runtime requests built in one thread for every caller.

A caller's thread queues its sentence (`RequestPreparer.put`) and waits on the stream's handle. One
thread takes everything queued at once: the analyses go to the frontend's worker processes together
(`AnalysisPool.analyze_many`, no thread hand-over per sentence), BERT runs in padded batches over the
batch's Mandarin sentences, and each request is submitted to the runtime as soon as it is built.

Why: every torch call of the scheduler thread hands the GIL over, and it waits behind every runnable
thread before it gets it back. With dozens of callers each running its own frontend, the scheduler
shared the GIL with all of them; now it shares it with this one thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import torch

from gsvd.engine.errors import Cancelled

log = logging.getLogger(__name__)
MAX_BATCH = 256  # sentences taken at once


@dataclass(eq=False)
class Job:
    """One sentence to prepare. `build(ids, bert)` makes its runtime request; the outcome reaches the caller
    through `handle` (audio, or the error). `analysis` is set before the handle gets anything; `empty`
    when the sentence has nothing to speak (the handle then ends without audio)."""

    text: str
    language: str
    frontend: object  # text.TextFrontend
    lexicon: object | None  # text.Lexicon
    build: Callable[[torch.Tensor, torch.Tensor], object]
    handle: object  # runtime.StreamHandle
    cancel: threading.Event | None = None
    deadline: float | None = None
    analysis: object | None = None
    empty: bool = False
    submitted: bool = False

    def cancelled(self, now: float) -> Cancelled | None:
        if self.handle.cancelled.is_set() or (self.cancel is not None and self.cancel.is_set()):
            return Cancelled("request cancelled")
        if self.deadline is not None and now > self.deadline:
            return Cancelled("request deadline exceeded")
        return None


class RequestPreparer:
    def __init__(self, pool, submit: Callable[[object, object], object]) -> None:
        """pool: the frontend's `AnalysisPool`; submit(request, handle): hands a request to the runtime."""
        self._pool, self._submit = pool, submit
        self._jobs: list[Job] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="gsvd-preparer", daemon=True)
        self._thread.start()

    def put(self, job: Job) -> None:
        with self._cond:
            if self._closed:
                raise Cancelled("engine is closed")
            self._jobs.append(job)
            self._cond.notify()

    def prepare_here(self, job: Job) -> None:
        """Prepare one job in the calling thread instead (GSVD_PREPARER=0: each caller runs its own frontend,
        its analysis in a worker process while others are in flight)."""
        reason = job.cancelled(time.monotonic())
        if reason is not None:
            job.handle.finish(reason)
            return
        try:
            job.analysis = self._pool.analyze(job.text, job.language, job.frontend.version, job.lexicon)
            ids, bert, _ = job.frontend.features_of(job.analysis)
        except Exception as exc:
            job.handle.finish(exc)
            return
        self._finish(job, ids, bert)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=10)
        with self._cond:
            left, self._jobs = self._jobs, []
        for job in left:
            job.handle.finish(Cancelled("engine is closed"))

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                batch, self._jobs = self._jobs[:MAX_BATCH], self._jobs[MAX_BATCH:]
            try:
                self._prepare(batch)
            except Exception as exc:  # never leave a caller waiting
                log.exception("preparing requests failed")
                for job in batch:
                    if not job.submitted:
                        job.handle.finish(Cancelled(f"internal error while preparing the request: {exc}"))

    def _prepare(self, batch: list[Job]) -> None:
        now = time.monotonic()
        live = []
        for job in batch:
            reason = job.cancelled(now)
            if reason is not None:
                job.handle.finish(reason)
            else:
                live.append(job)
        calls = [(j.text, j.language, j.frontend.version, j.lexicon) for j in live]
        needs_bert: dict[int, list[Job]] = defaultdict(list)  # by frontend: BERT for all its sentences at once
        frontends = {}
        for i, result in self._pool.analyze_many(calls):
            job = live[i]
            if isinstance(result, Exception):
                job.handle.finish(result)
                continue
            job.analysis = result
            if job.frontend.needs_bert(result):
                needs_bert[id(job.frontend)].append(job)
                frontends[id(job.frontend)] = job.frontend
            else:
                self._finish(job, *job.frontend.features_of(result)[:2])
        for key, jobs in needs_bert.items():
            try:
                feats = frontends[key].features_many([j.analysis for j in jobs])
            except Exception as exc:  # e.g. the RoBERTa folder is missing: each caller gets the error
                for job in jobs:
                    job.handle.finish(exc)
                continue
            for job, (ids, bert, _) in zip(jobs, feats, strict=True):
                self._finish(job, ids, bert)

    def _finish(self, job: Job, ids: torch.Tensor, bert: torch.Tensor) -> None:
        """Submit the job's request (unless cancelled meanwhile or empty); an error goes to its caller."""
        reason = job.cancelled(time.monotonic())
        if reason is not None:
            job.handle.finish(reason)
            return
        if ids.numel() == 0:
            job.empty = True
            job.handle.finish(None)
            return
        try:
            self._submit(job.build(ids, bert), job.handle)
            job.submitted = True
        except Exception as exc:  # queue full, voice unloaded, runtime shut down...
            job.handle.finish(exc)
