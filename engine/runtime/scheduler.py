"""Continuous-batching scheduler: one GPT decode step for all live streams of a model per tick.

Each tick: `schedule()` drops cancelled or expired streams and admits waiting requests into free slots of their
model's KV pool (shared by the models of one GPT shape; paced: `pacing.admission_budget`), one padded prefill pass per
model and up to 32 rows, on the model's GPT lane; `execute()` samples every stream's next token with its own
parameters and seed and runs one batched decode step per resident model (on CUDA one graph replay on its lane,
pipelined one step ahead of the read-back); `update()` stops streams on EOS, retires finished streams and launches
the ready chunks, most urgent first across models (`pacing.chunk_key`): a pass of one model's streams per free audio
lane, at most one pass per model and `MAX_CHUNK_BATCH` rows in flight, on the lane's CUDA stream, which the GPU
favours, with no host sync before the audio's read-back; a later tick hands the audio on. With one model that is one
pass in flight, as before. Each stream's tokens are made at most two chunks ahead of its decoded audio. Streams join
and leave between steps. A request for a model whose weights were evicted waits while the runtime brings them back
(`on_demand`). With the `tick_stats` setting each tick is counted (`tick_stats.TickStats`). Why one pass in flight,
no slack, the audio favoured: benchmarks/HISTORY.md.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from gsvd.engine.errors import Cancelled, GsvdError, InvalidInput, ResourceExhausted, VoiceNotFound
from gsvd.engine.runtime import pacing
from gsvd.engine.runtime.chunking import ChunkPolicy, StreamDecoder
from gsvd.engine.runtime.prefill import prefill
from gsvd.engine.runtime.prior_noise import noise_seed
from gsvd.engine.runtime.stream import LiveStream, StreamHandle, SynthRequest, cancel_reason
from gsvd.engine.runtime.tick_stats import TickStats
from gsvd.engine.types import SAMPLES_PER_TOKEN

if TYPE_CHECKING:
    from gsvd.engine.models.t2s import Text2SemanticDecoder
    from gsvd.engine.runtime.chunk_decode import SovitsParts
    from gsvd.engine.runtime.graph_prefill import GraphedPrefill
    from gsvd.engine.runtime.kv_cache import KVCache, KVPool
    from gsvd.engine.runtime.lanes import AudioLane, GptLane
    from gsvd.engine.runtime.seams import ChunkDecoder, Decoder, PendingAudio
    from gsvd.engine.runtime.weights import FlatWeights

log = logging.getLogger(__name__)
MIN_STEPS = 11
MAX_PREFILL_BATCH = 32  # admitted requests prefilled in one padded pass
MAX_CHUNK_BATCH = 64  # streams whose chunks are in flight at once (one pass: one content-encoder / vocoder pass)


@dataclass(eq=False)
class ModelEntry:
    model_id: str
    gpt: Text2SemanticDecoder
    parts: SovitsParts  # its SoVITS as the chunk decodes run it
    pool: KVPool  # the KV slots and sampler rows it shares with the models of its GPT shape
    decoder: Decoder  # the GPT steps (graph_decode.GraphDecoder, or StepDecoder over a DecodeStep)
    chunks: ChunkDecoder  # the chunk-decode passes (chunk_decode.BatchChunkDecoder)
    lane: GptLane  # where its admissions and steps run
    prefill: GraphedPrefill | None = None  # its lane's prefill graphs of its architecture (over a template)
    gpt_weights: FlatWeights | None = None  # what the prefill template takes
    weights: list[FlatWeights] = field(default_factory=list)  # every flat group (what residency moves)
    pinned: bool = False
    holds: int = 0  # callers that need its weights on the device now (not evicted meanwhile)
    resident: bool = True
    last_used: float = 0.0
    inflight: tuple | None = None  # (ticket, streams) of a step launched and not read back yet

    @property
    def cache(self) -> KVCache:
        return self.pool.cache

    @property
    def sampler(self):
        return self.pool.sampler

    @property
    def sovits(self):
        return self.parts.sovits


@dataclass(eq=False)
class _Pass:
    audio: PendingAudio
    streams: list[LiveStream]
    lane: AudioLane
    model_id: str
    started: float


class Scheduler:
    def __init__(self, device: torch.device, queue_limit: int, policy: ChunkPolicy, gpt_lanes: list[GptLane],
                 audio_lanes: list[AudioLane], tick_stats: bool = False,
                 on_demand: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.device = device
        self.queue_limit = queue_limit
        self.policy = policy
        self.burst = pacing.burst_policy(policy)  # the chunks of a stream that starts in a burst
        self.gpt_lanes, self.audio_lanes = gpt_lanes, audio_lanes
        self.on_demand = on_demand  # called (under the lock) for a model with waiting requests and no weights
        self.clock = clock
        self.models: dict[str, ModelEntry] = {}
        self.pools: list[KVPool] = []
        self.waiting: deque[tuple[SynthRequest, StreamHandle]] = deque()
        self.live: dict[str, list[LiveStream]] = {}
        self.cond = threading.Condition()
        self.closed = False
        self.pending: list[_Pass] = []  # chunk passes in flight
        self.quantum = pacing.QUANTUM_S  # a chunk pass's running time (s)
        self.counts = TickStats(device.type == "cuda") if tick_stats else None

    # ---------------------------------------------------------------- control

    def submit(self, request: SynthRequest, handle: StreamHandle | None = None) -> StreamHandle:
        """Queue a request; its audio (or error) reaches `handle` (a new one when None), which is returned."""
        handle = handle if handle is not None else StreamHandle()
        error = self.submit_many([(request, handle)])[0]
        if error is not None:
            raise error
        return handle

    def submit_many(self, items: list[tuple[SynthRequest, StreamHandle]]) -> list[Exception | None]:
        """Queue several requests at once (the next admission sees them together) -> per request the error
        that refused it (runtime shut down, model not loaded, queue full) or None."""
        errors: list[Exception | None] = []
        with self.cond:
            for request, handle in items:
                if self.closed:
                    errors.append(Cancelled("runtime is shut down"))
                elif request.model_id not in self.models:
                    errors.append(VoiceNotFound(f"model {request.model_id!r} is not loaded"))
                elif len(self.waiting) >= self.queue_limit:
                    errors.append(ResourceExhausted(f"server busy: {len(self.waiting)} requests already queued "
                                                    f"(limit {self.queue_limit})"))
                else:
                    self.waiting.append((request, handle))
                    errors.append(None)
                    if not self.models[request.model_id].resident and self.on_demand is not None:
                        self.on_demand(request.model_id)  # its weights come back while it waits
            self.cond.notify_all()
        return errors

    def stats(self) -> dict:
        with self.cond:
            active = sum(len(v) for v in self.live.values())
            total = sum(p.slots_total for p in self.pools)
            free = sum(p.slots_free for p in self.pools)
            return {"active_streams": active, "queued": len(self.waiting), "slots_total": total, "slots_free": free}

    def tick_stats(self) -> dict | None:
        """The per-tick statistics counted so far (`TickStats.snapshot`), or None when they are off."""
        return None if self.counts is None else self.counts.snapshot()

    def idle(self, entry: ModelEntry) -> bool:
        """No stream of this model is live, queued, stepping or decoding (under the lock)."""
        mid = entry.model_id
        passes = list(self.pending)  # one call: the scheduler thread changes the list outside the lock
        return (not self.live.get(mid) and entry.inflight is None and not any(p.model_id == mid for p in passes)
                and not any(r.model_id == mid for r, _ in self.waiting))

    def fail_waiting(self, model_id: str, error: GsvdError) -> None:
        """End every queued request of this model with `error` (its weights cannot come back)."""
        with self.cond:
            keep = deque()
            for req, handle in self.waiting:
                if req.model_id == model_id:
                    handle.finish(error)
                else:
                    keep.append((req, handle))
            self.waiting = keep

    # ------------------------------------------------------------------- loop

    def run(self) -> None:
        while True:
            with self.cond:
                while not self.closed and not self._has_work():
                    self.cond.wait()
                if self.closed:
                    self._fail_all(Cancelled("runtime shut down"))
                    return
            try:
                self.tick()
            except Exception as exc:  # never leave a client hanging
                log.exception("scheduler tick failed")
                self._fail_all(Cancelled(f"internal error: {exc}"))

    def _has_work(self) -> bool:
        if any(self.live.values()) or self.pending:
            return True
        # queued requests of models whose weights are still coming back wait for `cond` (notified when they are)
        return any(self.models.get(r.model_id) is None or self.models[r.model_id].resident for r, _ in self.waiting)

    def tick(self) -> None:
        st = self.counts
        with _attention_backends(self.device):
            t0 = time.perf_counter() if st is not None else 0.0
            self.schedule()
            if st is not None:
                st.tick()
                st.phase("schedule", time.perf_counter() - t0)
            with torch.inference_mode():
                self._step_all()

    def _step_all(self) -> None:
        st = self.counts
        t0 = time.perf_counter() if st is not None else 0.0
        self._collect()
        if st is not None:
            st.phase("collect", time.perf_counter() - t0)
        stepped, ready = False, []
        for model_id, streams in list(self.live.items()):
            entry = self.models.get(model_id)
            if entry is None:  # unloaded meanwhile; its streams were already finished
                continue
            running = [s for s in streams if not s.finished and self._wants_tokens(s)]
            t0 = time.perf_counter() if st is not None else 0.0
            if running or entry.inflight is not None:
                with entry.lane.context():
                    stepped = self.execute(entry, running) or stepped
            t1 = time.perf_counter() if st is not None else 0.0
            ready += self._settle(entry, streams)
            if st is not None:
                st.phase("gpt", t1 - t0)
                st.phase("chunks", time.perf_counter() - t1)
        t0 = time.perf_counter() if st is not None else 0.0
        self.update(ready)
        if st is not None:
            st.phase("chunks", time.perf_counter() - t0)
        if not stepped and self.pending:  # only audio in flight: poll it, woken at once by a new request
            with self.cond:
                if not self.waiting:
                    self.cond.wait(0.001)

    def schedule(self) -> None:
        now = self.clock()
        with self.cond:
            for model_id, streams in self.live.items():
                for s in list(streams):
                    reason = s.cancel_reason(now)
                    if reason is not None:
                        self._retire(self.models[model_id], s, reason)
            budget = pacing.admission_budget((s for v in self.live.values() for s in v), now, self.quantum,
                                             MAX_CHUNK_BATCH) \
                if self.waiting else 0
            still = deque()
            admitted: dict[str, list[tuple[SynthRequest, StreamHandle, int]]] = {}
            wanted: set[str] = set()
            while self.waiting:
                request, handle = self.waiting.popleft()
                if cancel_reason(request, handle, now) is not None:
                    handle.finish(Cancelled("request cancelled before it started"))
                    continue
                entry = self.models.get(request.model_id)
                if entry is None:
                    handle.finish(VoiceNotFound(f"model {request.model_id!r} was unloaded"))
                    continue
                n_prefix = request.gpt_phone_ids.numel() + request.prompt_tokens.numel()
                if n_prefix + 2 > entry.cache.max_len:
                    handle.finish(InvalidInput(f"sentence too long for the KV cache ({n_prefix} positions, max "
                                               f"{entry.cache.max_len})", "text"))
                    continue
                if not entry.resident:  # its weights come back first
                    wanted.add(entry.model_id)
                    still.append((request, handle))
                    continue
                slot = entry.pool.cache.alloc() if budget > 0 else None
                if slot is None:
                    still.append((request, handle))
                    continue
                budget -= 1
                admitted.setdefault(request.model_id, []).append((request, handle, slot))
            self.waiting = still
            for model_id in wanted:
                if self.on_demand is not None:
                    self.on_demand(model_id)
            starting = sum(1 for v in self.live.values() for s in v if s.first_audio_at is None) if admitted else 0
            for model_id, items in admitted.items():
                entry = self.models[model_id]
                entry.last_used = now
                with entry.lane.context():
                    self._wait_for_slots(entry, [slot for _, _, slot in items])
                    for i in range(0, len(items), MAX_PREFILL_BATCH):
                        batch = items[i : i + MAX_PREFILL_BATCH]
                        self.live.setdefault(model_id, []).extend(self._admit(entry, batch, now, starting))
                        starting += len(batch)
                    entry.lane.admitted = entry.lane.mark()

    # ------------------------------------------------------------- admission

    @staticmethod
    def _wait_for_slots(entry: ModelEntry, slots: list[int]) -> None:
        """Slots last used on another GPT lane: this lane waits for the step that may still write there."""
        for slot in slots:
            event = entry.pool.after.pop(slot, None)
            if event is not None and entry.lane.stream is not None:
                entry.lane.stream.wait_event(event)

    def _admit(self, entry: ModelEntry, items: list[tuple[SynthRequest, StreamHandle, int]], now: float,
               starting: int = 0) -> list[LiveStream]:
        """Prefill admitted requests together (one padded pass) and set up their streams (`starting`: streams already
        waiting for their first chunk, `pacing.chunk_policy`). If that fails, each request is tried alone; one that
        still fails gets the error and its slot back."""
        try:
            return self._start(entry, items, now, starting)
        except Exception as exc:
            if len(items) > 1:  # find the request at fault: the others start normally
                log.warning("batched prefill failed (%s); prefilling its %d requests one by one", exc, len(items))
                return [s for k, item in enumerate(items) for s in self._admit(entry, [item], now, starting + k)]
            log.exception("prefill failed")
            _, handle, slot = items[0]
            entry.cache.free(slot)
            handle.finish(Cancelled(f"internal error while starting the stream: {exc}"))
            return []

    def _start(self, entry: ModelEntry, items: list[tuple[SynthRequest, StreamHandle, int]], now: float,
               starting: int) -> list[LiveStream]:
        cache = entry.cache
        with torch.inference_mode():
            logits, lens = prefill(entry.gpt, cache, [(slot, r.gpt_phone_ids, r.gpt_bert, r.prompt_tokens)
                                                      for r, _, slot in items], self.device, entry.prefill,
                                   entry.gpt_weights)
        # every row's sampler state and timbre go up in a few copies, none waiting for the GPU; the target
        # phones stay on the host (each chunk pass uploads its rows' together)
        slots = [slot for _, _, slot in items]
        prompts = [np.asarray(r.prompt_tokens).reshape(-1) for r, _, _ in items]
        entry.sampler.start_rows(slots, logits, prompts, [r.options for r, _, _ in items])
        sdt = next(entry.sovits.flow.parameters())
        ges = torch.stack([r.ge.reshape(-1, 1) for r, _, _ in items]).to(sdt.device, sdt.dtype, non_blocking=True)
        streams = []
        for k, ((req, handle, slot), n) in enumerate(zip(items, lens)):
            decoder = StreamDecoder(
                sovits=entry.sovits,
                phones=req.target_phone_ids.reshape(1, -1),
                ge=ges[k : k + 1],
                noise_scale=req.options.noise_scale,
                speed=req.options.speed,
                seed=noise_seed(req.seed),
                policy=pacing.chunk_policy(self.policy, self.burst, starting + k),
                mark=req.mark,
            )
            cap = max(1, min(req.options.max_new_tokens, cache.max_len - n - 1))
            streams.append(LiveStream(req, handle, slot, len(prompts[k]), decoder, max_new_tokens=cap,
                                      admitted_at=now))
        for s, n in zip(streams, lens):
            cache.lengths[s.slot] = n
        if self.counts is not None:
            self.counts.admission(len(items))
        return streams

    # ------------------------------------------------------------- execution

    def _wants_tokens(self, s: LiveStream) -> bool:
        """Tokens are made at most two chunks ahead of the audio decoded so far (the next chunk, the one
        after it, its lookahead): beyond that they are not needed yet, and the GPU time goes to the chunk
        decodes whose audio listeners are waiting for."""
        d = s.decoder
        p = d.policy
        return max(s.step, s.launched) < d.emitted + p.size(d.chunks) + p.size(d.chunks + 1) + p.lookahead

    def execute(self, entry: ModelEntry, streams: list[LiveStream]) -> bool:
        """Launch this tick's step for the given streams (each samples its next token with its own parameters
        and seed, then one batched decode step; on CUDA one graph replay), then read the previous tick's
        sampled ids: the GPU runs step n+1 while the host handles step n. True when a step was launched."""
        cache, eos = entry.cache, entry.gpt.dims.eos
        launch = [s for s in streams if not s.finished and s.launched < s.max_new_tokens]
        ticket = None
        if launch:
            slots = [s.slot for s in launch]
            st = self.counts
            mark = st.begin() if st is not None else None
            ticket = entry.decoder.launch(slots, [cache.lengths[sl] for sl in slots],
                                          [s.prompt_len + s.launched for s in launch])
            if st is not None:
                st.end(mark, "gpt", len(launch))
            for s in launch:
                cache.lengths[s.slot] += 1
                s.launched += 1
        previous, entry.inflight = entry.inflight, ((ticket, launch) if ticket is not None else None)
        if previous is not None:
            picked, greedy = entry.decoder.collect(previous[0])
            for i, s in enumerate(previous[1]):
                if not s.finished:  # a stream that stopped (or was retired) one step ago: nothing to read
                    self._advance(s, picked[i], picked[i] == eos or greedy[i] == eos)
        return ticket is not None

    @staticmethod
    def _advance(s: LiveStream, t: int, stop: bool) -> bool:
        """Record token t (unless it stops the stream); True when the stream goes on to a decode step."""
        if stop:
            s.finished = True
            return False
        s.decoder.tokens.append(t)
        s.handle.tokens.append(t)
        s.step += 1
        if s.step >= s.max_new_tokens:
            s.finished = True
            return False
        return True

    def _settle(self, entry: ModelEntry, streams: list[LiveStream]) -> list[LiveStream]:
        """Retire the model's finished and failed streams -> those whose next chunk is ready (none with a pass in
        flight)."""
        ready = []
        for s in list(streams):
            if s.decoding:
                continue
            if s.error is not None:
                self._retire(entry, s, s.error)
            elif s.decoder.ready(s.finished):
                ready.append(s)
            elif s.finished:
                if not s.decoder.tokens:
                    s.handle.put(_silence_token(s))
                self._retire(entry, s, None)
        return ready

    def update(self, ready: list[LiveStream]) -> None:
        """Launch the ready chunks, most urgent first across models (`pacing.chunk_key`): the model of the most
        urgent one gets the first free audio lane for a pass of its ready streams in that order, then the next
        model, while lanes are free and fewer than MAX_CHUNK_BATCH rows are in flight (one pass per model at a time);
        the rest wait for a later tick, so decode steps keep coming."""
        if not ready:
            return
        now, busy = self.clock(), {p.model_id for p in self.pending}
        rows = sum(len(p.streams) for p in self.pending)
        lanes = [lane for lane in self.audio_lanes if not lane.busy]
        by_model: dict[str, list[LiveStream]] = {}
        for s in sorted(ready, key=lambda s: pacing.chunk_key(s, now, self.quantum)):
            by_model.setdefault(s.request.model_id, []).append(s)
        for model_id, streams in by_model.items():
            if not lanes or rows >= MAX_CHUNK_BATCH:
                break
            entry = self.models.get(model_id)
            if model_id in busy or entry is None:
                continue
            take = streams[: MAX_CHUNK_BATCH - rows]
            self._launch(entry, take, lanes.pop(0))
            rows += len(take)
        self._collect()  # off CUDA the passes are already done

    def _launch(self, entry: ModelEntry, streams: list[LiveStream], lane: AudioLane) -> None:
        """Queue one chunk-decode pass for these streams on the lane's stream (after the admissions that made their
        inputs); its audio is handed on by `_collect` once it is on the host."""
        st = self.counts
        try:
            with lane.context():
                if lane.stream is not None:
                    for gl in self.gpt_lanes:
                        if gl.admitted is not None:
                            lane.stream.wait_event(gl.admitted)
                mark = st.begin() if st is not None else None
                audio = entry.chunks.launch([(s.decoder, s.finished) for s in streams], lane)
                if st is not None:
                    st.end(mark, "chunks", len(streams))
        except Exception as exc:
            if len(streams) > 1:  # nothing was committed: find the stream at fault, the others go on
                log.warning("batched chunk decode failed (%s); decoding its %d streams one by one", exc, len(streams))
                for s in streams:
                    self._launch(entry, [s], lane)
                    self._collect(wait=True)
                return
            log.exception("chunk decode failed")
            streams[0].error = Cancelled(f"internal error while decoding audio: {exc}")
            return
        for s in streams:
            s.decoding = True
        lane.busy = True
        self.pending.append(_Pass(audio, streams, lane, entry.model_id, self.clock()))

    def _collect(self, wait: bool = False) -> None:
        """Hand on the audio of the passes that have finished (`wait`: wait for all)."""
        for p in list(self.pending):
            if not (wait or p.audio.done()):
                continue
            self.pending.remove(p)
            p.lane.busy = False
            try:
                pcms = p.audio.finish()
            except Exception as exc:
                log.exception("chunk decode failed")
                pcms = None
                for s in p.streams:
                    s.error = Cancelled(f"internal error while decoding audio: {exc}")
            self.quantum = pacing.next_quantum(self.quantum, self.clock() - p.started)
            for k, s in enumerate(p.streams):
                s.decoding = False
                if pcms is not None:
                    late = s.deliver(pcms[k])
                    if self.counts is not None and len(pcms[k]):
                        self.counts.delivered(late)

    def _retire(self, entry: ModelEntry, s: LiveStream, error: BaseException | None) -> None:
        s.finished = True
        streams = self.live.get(entry.model_id, [])
        if s in streams:
            streams.remove(s)
        if len(self.gpt_lanes) > 1:  # a step of it may still run on its lane: the slot's next user waits for it
            entry.pool.after[s.slot] = entry.lane.mark()
        entry.cache.free(s.slot)
        s.handle.finish(error)

    def _fail_all(self, error: BaseException) -> None:
        with contextlib.suppress(Exception):  # passes in flight still read their streams' tensors
            self._collect(wait=True)
        with self.cond:
            for model_id, streams in list(self.live.items()):
                for s in list(streams):
                    self._retire(self.models[model_id], s, error)
            while self.waiting:
                self.waiting.popleft()[1].finish(error)

    # ---------------------------------------------------------------- models

    def remove_model(self, model_id: str) -> ModelEntry | None:
        """Forget a model: its live and queued streams end with VoiceNotFound -> its entry (None: not loaded)."""
        with self.cond:
            entry = self.models.pop(model_id, None)
            if entry is None:
                return None
            for s in list(self.live.get(model_id, [])):
                self._retire(entry, s, VoiceNotFound(f"model {model_id!r} was unloaded"))
            self.live.pop(model_id, None)
            self.fail_waiting(model_id, VoiceNotFound(f"model {model_id!r} was unloaded"))
            return entry


def _attention_backends(device: torch.device):
    """Keep SDPA off cuDNN on CUDA: its kernels are built per shape at run time, and the decode
    attention length changes every step (measured on an H100: ~60 ms per token before, see
    benchmarks/HISTORY.md)."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def _silence_token(s: LiveStream) -> np.ndarray:
    """What a stream that made no token plays: one token's silence."""
    return np.zeros(SAMPLES_PER_TOKEN, dtype=np.float32)
