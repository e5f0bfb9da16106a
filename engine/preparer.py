"""Runtime requests built in one thread for every caller.

A caller's thread queues its sentence (`RequestPreparer.put`) and waits on the stream's handle. One
thread takes everything queued at once: the analyses go to the frontend's worker processes together
(`AnalysisPool.analyze_many`, no thread hand-over per sentence), and the batch's requests are submitted to
the runtime in as few groups as the critical path allows (one admission prefills a group in one padded
pass): first the sentences that need no BERT, at once; then BERT in padded passes over the first sentences
of their requests (their callers hear nothing yet), submitted as soon as their features are there; then
the later sentences (their callers still have the sentences before them playing). Callers that start
together share a batch: the thread keeps gathering while sentences keep coming within 1 ms of each other
(`BATCH_WINDOW`).

Why: every torch call of the scheduler thread hands the GIL over, and it waits behind every runnable
thread before it gets it back. With dozens of callers each running its own frontend, the scheduler
shared the GIL with all of them; now it shares it with this one thread (measured faster at 256 and 512
streams, and the window at 8-64: benchmarks/HISTORY.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from gsvd.engine.errors import Cancelled

if TYPE_CHECKING:
    from gsvd.engine.runtime import StreamHandle, SynthRequest
    from gsvd.engine.text import Lexicon, TextFrontend
    from gsvd.engine.text.phonemize import Analysis
    from gsvd.engine.text.pool import AnalysisPool

log = logging.getLogger(__name__)
MAX_BATCH = 256  # sentences taken at once
BATCH_WINDOW = 0.001  # seconds: a batch keeps gathering while sentences come this close together
SubmitMany = Callable[[list[tuple["SynthRequest", "StreamHandle"]]], list[Exception | None]]


@dataclass(eq=False)
class Job:
    """One sentence to prepare. `build(ids, bert)` makes its runtime request; the outcome reaches the caller
    through `handle` (audio, or the error). `first`: the first sentence of its request (nothing of the request
    plays yet; such sentences get BERT before later ones). `analysis` is set before the handle gets anything;
    `empty` when the sentence has nothing to speak (the handle then ends without audio)."""

    text: str
    language: str
    frontend: TextFrontend
    lexicon: Lexicon | None
    build: Callable[[torch.Tensor, torch.Tensor], SynthRequest]
    handle: StreamHandle
    cancel: threading.Event | None = None
    deadline: float | None = None
    first: bool = True
    analysis: Analysis | None = None
    empty: bool = False
    submitted: bool = False

    def cancelled(self, now: float) -> Cancelled | None:
        """Why the job must stop now (as a runtime request would: its handle or flag cancelled, deadline past)."""
        from gsvd.engine.runtime.stream import cancel_reason

        return cancel_reason(self, self.handle, now)


class RequestPreparer:
    def __init__(self, pool: AnalysisPool, submit_many: SubmitMany, window: float = BATCH_WINDOW) -> None:
        """pool: the frontend's `AnalysisPool`; submit_many([(request, handle)]): hands requests to the runtime
        together, -> per request the error that refused it or None (`Runtime.submit_many`). window (seconds):
        a batch keeps gathering while each sentence comes within `window` of the one before (4 windows at
        most), so callers starting together share one batch."""
        self._pool, self._submit_many = pool, submit_many
        self._window = window
        self._jobs: list[Job] = []
        self._last_put = 0.0
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="gsvd-preparer", daemon=True)
        self._thread.start()

    def put(self, job: Job) -> None:
        with self._cond:
            if self._closed:
                raise Cancelled("engine is closed")
            self._jobs.append(job)
            self._last_put = time.monotonic()
            self._cond.notify()

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
                if self._window > 0:
                    self._gather()
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

    def _gather(self) -> None:
        """(holding the lock) Wait while sentences keep arriving, each within the window of the last."""
        until = time.monotonic() + 4 * self._window
        while not self._closed and len(self._jobs) < MAX_BATCH:
            now = time.monotonic()
            quiet_at = min(until, self._last_put + self._window)
            if now >= quiet_at:
                return
            self._cond.wait(quiet_at - now)

    def _prepare(self, batch: list[Job]) -> None:
        """Analyze the batch's sentences together; submit those without BERT together at once, then BERT in
        padded passes per frontend, first sentences before later ones, each group submitted together as soon
        as its features are there (one admission sees it whole: one padded prefill pass, not many)."""
        now = time.monotonic()
        live = []
        for job in batch:
            reason = job.cancelled(now)
            if reason is not None:
                job.handle.finish(reason)
            else:
                live.append(job)
        calls = [(j.text, j.language, j.frontend.version, j.lexicon) for j in live]
        needs_bert: dict[tuple[bool, TextFrontend], list[Job]] = defaultdict(list)  # (later, frontend): BERT at once
        plain = []
        for i, result in self._pool.analyze_many(calls):
            job = live[i]
            if isinstance(result, Exception):
                job.handle.finish(result)
                continue
            job.analysis = result
            if job.frontend.needs_bert(result):
                needs_bert[(not job.first, job.frontend)].append(job)
            else:
                plain.append(self._request(job, *job.frontend.features_of(result)[:2]))
        self._submit(plain)  # these wait for no BERT pass
        for (_, frontend), jobs in sorted(needs_bert.items(), key=lambda kv: kv[0][0]):  # first sentences first
            self._submit(self._with_bert(frontend, jobs))

    def _with_bert(self, frontend: TextFrontend, jobs: list[Job]) -> list[tuple[Job, SynthRequest] | None]:
        """The jobs' requests with BERT features from padded passes (an error reaches each of their callers)."""
        try:
            feats = frontend.features_many([j.analysis for j in jobs])
        except Exception as exc:  # e.g. the RoBERTa folder is missing: each caller gets the error
            for job in jobs:
                job.handle.finish(exc)
            return []
        return [self._request(job, ids, bert) for job, (ids, bert, _) in zip(jobs, feats, strict=True)]

    def _request(self, job: Job, ids: torch.Tensor, bert: torch.Tensor) -> tuple[Job, SynthRequest] | None:
        """The job's runtime request, or None when it is done already (empty: ends without audio; cancelled
        meanwhile or the request cannot be built: its caller gets the error)."""
        if ids.numel() == 0:
            job.empty = True
            job.handle.finish(None)
            return None
        try:
            return job, job.build(ids, bert)
        except Exception as exc:
            job.handle.finish(exc)
            return None

    def _submit(self, built: list[tuple[Job, SynthRequest] | None]) -> None:
        """Hand the built requests to the runtime together; a refused one's caller gets the reason."""
        now = time.monotonic()
        items = []
        for entry in built:
            if entry is None:
                continue
            job, request = entry
            reason = job.cancelled(now)
            if reason is not None:
                job.handle.finish(reason)
            else:
                items.append((job, request))
        if not items:
            return
        errors = self._submit_many([(request, job.handle) for job, request in items])
        for (job, _), error in zip(items, errors, strict=True):
            if error is None:
                job.submitted = True
            else:
                job.handle.finish(error)
