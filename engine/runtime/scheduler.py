"""Continuous-batching scheduler: one GPT decode step for all live streams of a model per tick.

Each tick: `schedule()` drops cancelled or expired streams and admits waiting requests into free KV
slots (one padded prefill pass); `execute()` samples every stream's next token with its own
parameters and seed and runs one batched decode step per resident model (on CUDA one graph replay,
pipelined one step ahead of the read-back); `update()` stops streams on EOS, launches the audio
chunks the `ChunkPolicy` says are ready (batched across streams, on a CUDA stream of their own that the GPU
favours, with no host sync before the audio's read-back; one pass stays in flight while the GPT steps and a
later tick hands on its audio) and retires finished streams. Each stream's tokens are made at most two chunks
ahead of its decoded audio. Streams join and leave between steps. With the `tick_stats` setting each tick is
counted (`tick_stats.TickStats`). Why one pass in flight, no slack, the audio favoured: benchmarks/HISTORY.md.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from gsvd.engine.errors import Cancelled, InvalidInput, ResourceExhausted, VoiceNotFound
from gsvd.engine.runtime.chunking import ChunkPolicy, StreamDecoder
from gsvd.engine.runtime.device_sampling import SamplerState
from gsvd.engine.runtime.kv_cache import KVCache
from gsvd.engine.runtime.prefill import prefill
from gsvd.engine.runtime.prior_noise import noise_seed
from gsvd.engine.runtime.stream import LiveStream, StreamHandle, SynthRequest, cancel_reason
from gsvd.engine.runtime.tick_stats import TickStats
from gsvd.engine.types import SAMPLES_PER_TOKEN

if TYPE_CHECKING:
    from gsvd.engine.models.sovits import SynthesizerTrn
    from gsvd.engine.models.t2s import Text2SemanticDecoder
    from gsvd.engine.runtime.graph_prefill import GraphedPrefill
    from gsvd.engine.runtime.seams import ChunkDecoder, Decoder, PendingAudio

log = logging.getLogger(__name__)
MIN_STEPS = 11
MAX_PREFILL_BATCH = 32  # admitted requests prefilled in one padded pass
MAX_CHUNK_BATCH = 64  # streams whose chunks are decoded in one content-encoder / vocoder pass
@dataclass
class ModelEntry:
    model_id: str
    gpt: Text2SemanticDecoder
    sovits: SynthesizerTrn
    cache: KVCache
    sampler: SamplerState  # per-slot next-token logits, seen tokens, parameters, seeds, steps
    decoder: Decoder  # the GPT steps (graph_decode.GraphDecoder, or StepDecoder over a DecodeStep)
    chunks: ChunkDecoder  # the chunk-decode passes (chunk_decode.BatchChunkDecoder)
    prefill: GraphedPrefill | None = None  # on CUDA with graphs on (preallocated cache)
    inflight: tuple | None = None  # (ticket, streams) of a step launched and not read back yet


class Scheduler:
    def __init__(self, device: torch.device, max_streams: int, queue_limit: int, policy: ChunkPolicy,
                 tick_stats: bool = False) -> None:
        self.device = device
        self.max_streams = max_streams
        self.queue_limit = queue_limit
        self.policy = policy
        self.models: dict[str, ModelEntry] = {}
        self.waiting: deque[tuple[SynthRequest, StreamHandle]] = deque()
        self.live: dict[str, list[LiveStream]] = {}
        self.cond = threading.Condition()
        self.closed = False
        self.pending: deque[tuple[PendingAudio, list[LiveStream]]] = deque()  # the chunk pass in flight
        self.counts = TickStats(device.type == "cuda") if tick_stats else None
        # CUDA streams: the GPT (admission, decode steps) and the chunk decodes; when both have work the GPU
        # favours the chunk decodes (first audio waits on them)
        self._gpt_stream = self._decode_stream = None
        if device.type == "cuda":
            self._gpt_stream = torch.cuda.Stream(device, priority=0)
            self._decode_stream = torch.cuda.Stream(device, priority=-1)
        self._admitted = None  # CUDA event after the last admission (the decode stream waits for its inputs)

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
            self.cond.notify_all()
        return errors

    def stats(self) -> dict:
        with self.cond:
            active = sum(len(v) for v in self.live.values())
            total = sum(e.cache.slots_total for e in self.models.values())
            free = sum(e.cache.slots_free for e in self.models.values())
            return {"active_streams": active, "queued": len(self.waiting), "slots_total": total, "slots_free": free}

    def tick_stats(self) -> dict | None:
        """The per-tick statistics counted so far (`TickStats.snapshot`), or None when they are off."""
        return None if self.counts is None else self.counts.snapshot()

    # ------------------------------------------------------------------- loop

    def run(self) -> None:
        while True:
            with self.cond:
                while not self.closed and not self.waiting and not any(self.live.values()):
                    self.cond.wait()
                if self.closed:
                    self._fail_all(Cancelled("runtime shut down"))
                    return
            try:
                self.tick()
            except Exception as exc:  # never leave a client hanging
                log.exception("scheduler tick failed")
                self._fail_all(Cancelled(f"internal error: {exc}"))

    def tick(self) -> None:
        gpt_stream = torch.cuda.stream(self._gpt_stream) if self._gpt_stream is not None else contextlib.nullcontext()
        st = self.counts
        with _attention_backends(self.device), gpt_stream:
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
        stepped = False
        for model_id, streams in list(self.live.items()):
            entry = self.models.get(model_id)
            if entry is None:  # unloaded meanwhile; its streams were already finished
                continue
            running = [s for s in streams if not s.finished and self._wants_tokens(s)]
            t0 = time.perf_counter() if st is not None else 0.0
            if running or entry.inflight is not None:
                stepped = self.execute(entry, running) or stepped
            t1 = time.perf_counter() if st is not None else 0.0
            self.update(entry, streams)
            if st is not None:
                st.phase("gpt", t1 - t0)
                st.phase("chunks", time.perf_counter() - t1)
        if not stepped and self.pending:  # only audio in flight: poll it, woken at once by a new request
            with self.cond:
                if not self.waiting:
                    self.cond.wait(0.001)

    def schedule(self) -> None:
        now = time.monotonic()
        with self.cond:
            for model_id, streams in self.live.items():
                for s in list(streams):
                    reason = s.cancel_reason(now)
                    if reason is not None:
                        self._retire(self.models[model_id], s, reason)
            still = deque()
            admitted: dict[str, list[tuple[SynthRequest, StreamHandle, int]]] = {}
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
                slot = entry.cache.alloc()
                if slot is None:
                    still.append((request, handle))
                    continue
                admitted.setdefault(request.model_id, []).append((request, handle, slot))
            self.waiting = still
            for model_id, items in admitted.items():
                entry = self.models[model_id]
                for i in range(0, len(items), MAX_PREFILL_BATCH):
                    self.live.setdefault(model_id, []).extend(self._admit(entry, items[i : i + MAX_PREFILL_BATCH]))
            if admitted and self.device.type == "cuda":
                self._admitted = torch.cuda.Event()
                self._admitted.record()

    # ------------------------------------------------------------- admission

    def _admit(self, entry: ModelEntry, items: list[tuple[SynthRequest, StreamHandle, int]]) -> list[LiveStream]:
        """Prefill admitted requests together (one padded pass) and set up their streams. If the pass
        fails, each request is tried alone; one that still fails gets the error and its slot back."""
        cache = entry.cache
        try:
            with torch.inference_mode():
                logits, lens = prefill(entry.gpt, cache, [(slot, r.gpt_phone_ids, r.gpt_bert, r.prompt_tokens)
                                                          for r, _, slot in items], self.device, entry.prefill)
        except Exception as exc:
            if len(items) > 1:  # find the request at fault: the others start normally
                log.warning("batched prefill failed (%s); prefilling its %d requests one by one", exc, len(items))
                return [s for item in items for s in self._admit(entry, [item])]
            log.exception("prefill failed")
            _, handle, slot = items[0]
            cache.free(slot)
            handle.finish(Cancelled(f"internal error while starting the stream: {exc}"))
            return []
        if self.counts is not None:
            self.counts.admission(len(items))
        # every row's sampler state and timbre go up in a few copies, none waiting for the GPU; the target
        # phones stay on the host (each chunk pass uploads its rows' together)
        slots = [slot for _, _, slot in items]
        prompts = [np.asarray(r.prompt_tokens).reshape(-1) for r, _, _ in items]
        entry.sampler.start_rows(slots, logits, prompts, [r.options for r, _, _ in items])
        sdt = next(entry.sovits.parameters())
        ges = torch.stack([r.ge.reshape(-1, 1) for r, _, _ in items]).to(sdt.device, sdt.dtype, non_blocking=True)
        streams = []
        for k, ((req, handle, slot), n) in enumerate(zip(items, lens)):
            cache.lengths[slot] = n
            decoder = StreamDecoder(
                sovits=entry.sovits,
                phones=req.target_phone_ids.reshape(1, -1),
                ge=ges[k : k + 1],
                noise_scale=req.options.noise_scale,
                speed=req.options.speed,
                seed=noise_seed(req.seed),
                policy=self.policy,
            )
            cap = max(1, min(req.options.max_new_tokens, cache.max_len - n - 1))
            streams.append(LiveStream(req, handle, slot, len(prompts[k]), decoder, max_new_tokens=cap))
        return streams

    # ------------------------------------------------------------- execution

    def _wants_tokens(self, s: LiveStream) -> bool:
        """Tokens are made at most two chunks ahead of the audio decoded so far (the next chunk, the one
        after it, its lookahead): beyond that they are not needed yet, and the GPU time goes to the chunk
        decodes whose audio listeners are waiting for."""
        d, p = s.decoder, self.policy
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

    def update(self, entry: ModelEntry, streams: list[LiveStream]) -> None:
        """Launch the ready chunks, batched: first chunks first (they set the time to first audio), then the
        streams whose audio runs out soonest, at most MAX_CHUNK_BATCH per pass and one pass in flight, so decode
        steps keep coming; the rest wait for a later tick. A stream with a pass in flight waits for it. Retire
        finished streams."""
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
        if ready and not self.pending:
            ready.sort(key=LiveStream.audio_deadline)
            self._launch(entry, ready[:MAX_CHUNK_BATCH])
            self._collect()  # off CUDA the pass is already done

    def _launch(self, entry: ModelEntry, streams: list[LiveStream]) -> None:
        """Queue one chunk-decode pass for these streams on the decode stream (after the admissions that
        made their inputs); its audio is handed on by `_collect` once it is on the host."""
        ds, st = self._decode_stream, self.counts
        try:
            with torch.cuda.stream(ds) if ds is not None else contextlib.nullcontext():
                if ds is not None and self._admitted is not None:
                    ds.wait_event(self._admitted)
                mark = st.begin() if st is not None else None
                pending = entry.chunks.launch([(s.decoder, s.finished) for s in streams])
                if st is not None:
                    st.end(mark, "chunks", len(streams))
        except Exception as exc:
            if len(streams) > 1:  # nothing was committed: find the stream at fault, the others go on
                log.warning("batched chunk decode failed (%s); decoding its %d streams one by one", exc, len(streams))
                for s in streams:
                    self._launch(entry, [s])
                return
            log.exception("chunk decode failed")
            streams[0].error = Cancelled(f"internal error while decoding audio: {exc}")
            return
        for s in streams:
            s.decoding = True
        self.pending.append((pending, streams))

    def _collect(self, wait: bool = False) -> None:
        """Hand on the audio of the passes that have finished, oldest first (`wait`: wait for all)."""
        while self.pending and (wait or self.pending[0][0].done()):
            pending, streams = self.pending.popleft()
            try:
                pcms = pending.finish()
            except Exception as exc:
                log.exception("chunk decode failed")
                pcms = None
                for s in streams:
                    s.error = Cancelled(f"internal error while decoding audio: {exc}")
            for k, s in enumerate(streams):
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

    def remove_model(self, model_id: str) -> None:
        with self.cond:
            entry = self.models.pop(model_id, None)
            if entry is None:
                return
            for s in list(self.live.pop(model_id, [])):
                entry.cache.free(s.slot)
                s.handle.finish(VoiceNotFound(f"model {model_id!r} was unloaded"))
            keep = deque()
            for req, handle in self.waiting:
                if req.model_id == model_id:
                    handle.finish(VoiceNotFound(f"model {model_id!r} was unloaded"))
                else:
                    keep.append((req, handle))
            self.waiting = keep


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
