"""Continuous-batching scheduler: one GPT decode step for all live streams of a model per tick.

Each tick: `schedule()` drops cancelled or expired streams and admits waiting requests into free KV
slots (one padded prefill pass); `execute()` samples every stream's next token with its own
parameters and seed and runs one batched decode step per resident model (on CUDA one graph replay,
pipelined one step ahead of the read-back); `update()` stops streams on EOS, launches the audio
chunks the `ChunkPolicy` says are ready (batched across streams, on a CUDA stream of their own, with no
host sync before the audio's read-back; the pass stays in flight while the GPT steps and a later tick hands on its
audio, or with GSVD_CHUNK_PASSES=0 (or auto and few live streams) is waited for at once) and retires finished
streams. A ready chunk may wait for a fuller pass while its stream's audio lasts (GSVD_CHUNK_SLACK). Each
stream's tokens are made at most two chunks ahead of its decoded audio. Streams join and leave between steps.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from gsvd.engine.errors import Cancelled, InvalidInput, ResourceExhausted, VoiceNotFound
from gsvd.engine.runtime import chunk_decode  # through the module: probes and tests patch launch_chunks
from gsvd.engine.runtime.chunking import ChunkPolicy, StreamDecoder
from gsvd.engine.runtime.device_sampling import SamplerState
from gsvd.engine.runtime.kv_cache import KVCache
from gsvd.engine.runtime.prefill import prefill
from gsvd.engine.runtime.prior_noise import noise_seed
from gsvd.engine.runtime.stream import LiveStream, StreamHandle, SynthRequest, cancel_reason
from gsvd.engine.settings import env_number

log = logging.getLogger(__name__)
MIN_STEPS = 11
MAX_PREFILL_BATCH = 32  # admitted requests prefilled in one padded pass
MAX_CHUNK_BATCH = 64  # streams whose chunks are decoded in one content-encoder / vocoder pass
# Chunk-decode passes in flight (GSVD_CHUNK_PASSES). 0: each pass is waited for as soon as it is launched, so the
# GPU never runs a pass and GPT steps at once, and a tick costs a GPT step plus a pass; N: up to N passes stay in
# flight while the GPT steps go on (both share the GPU, each slower); "auto": 0 up to AUTO_PASSES_ABOVE live
# streams of a model, 1 above. The default, 1 (benchmarks/README.md, eighth session): with 512 listeners (each
# asking for its next sentence as the last one has played) 0 underruns and 172.9 ms first audio p95 against 97
# underruns with auto; auto's one gain is in bursts of up to 256 streams started at the same moment (64: 74.9 /
# 85.9 ms p95 against 105.6 / 89.8 in one fresh engine).
CHUNK_PASSES = "1"
AUTO_PASSES_ABOVE = 256
# Chunk slack (GSVD_CHUNK_SLACK, seconds): a stream's ready chunk may wait for a fuller pass while the audio it has
# been sent lasts longer than this; a pass goes when a first chunk or a due one is ready (then filled up with the
# streams whose audio runs out soonest), when MAX_CHUNK_BATCH are ready, or when no stream wants a GPT step. 0:
# every ready chunk goes at once (passes of whatever is ready, each costing a tick: small passes at high load).
CHUNK_SLACK = 0.0


@dataclass
class ModelEntry:
    model_id: str
    gpt: torch.nn.Module
    sovits: torch.nn.Module
    cache: KVCache
    sampler: SamplerState  # per-slot next-token logits, seen tokens, parameters, seeds, steps
    graphed: object | None = None  # graph_decode.FusedDecoder / GraphedDecoder, or a TensorRT decoder
    vocoder: object | None = None  # graph_vocoder.GraphedVocoder on CUDA with graphs on
    content: object | None = None  # graph_content.GraphedContent on CUDA with graphs on
    prefill: object | None = None  # graph_prefill.GraphedPrefill on CUDA with graphs on (preallocated cache)
    inflight: tuple | None = None  # (ticket, streams) of a pipelined step not read back yet (FusedDecoder)


class Scheduler:
    def __init__(self, device: torch.device, max_streams: int, queue_limit: int, policy: ChunkPolicy) -> None:
        self.device = device
        self.max_streams = max_streams
        self.queue_limit = queue_limit
        self.policy = policy
        self.models: dict[str, ModelEntry] = {}
        self.waiting: deque[tuple[SynthRequest, StreamHandle]] = deque()
        self.live: dict[str, list[LiveStream]] = {}
        self.cond = threading.Condition()
        self.closed = False
        self.pending: deque[tuple[chunk_decode.PendingChunks, list[LiveStream]]] = deque()  # passes in flight
        self.chunk_passes = _env_passes(os.environ.get("GSVD_CHUNK_PASSES", CHUNK_PASSES))  # None: auto
        self.chunk_slack = env_number("GSVD_CHUNK_SLACK", CHUNK_SLACK)
        # CUDA streams: the GPT (admission, decode steps) and the chunk decodes. When both have work the GPU
        # favours the chunk decodes (first audio waits on them), or the GPT with GSVD_FAVOUR=gpt.
        self._gpt_stream = self._decode_stream = None
        if device.type == "cuda":
            self.favour(os.environ.get("GSVD_FAVOUR", "audio") == "gpt")
        self._admitted = None  # CUDA event after the last admission (the decode stream waits for its inputs)

    def favour(self, gpt_first: bool) -> None:
        """(CUDA) New streams for the GPT and the chunk decodes, the GPT's of higher priority when `gpt_first`,
        else the chunk decodes' (set before work is queued: nothing may be in flight on the old streams)."""
        self._gpt_stream = torch.cuda.Stream(self.device, priority=-1 if gpt_first else 0)
        self._decode_stream = torch.cuda.Stream(self.device, priority=0 if gpt_first else -1)

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
        with _attention_backends(self.device), gpt_stream:
            self.schedule()
            with torch.inference_mode():
                self._step_all()

    def _step_all(self) -> None:
        self._collect()
        stepped = False
        for model_id, streams in list(self.live.items()):
            entry = self.models.get(model_id)
            if entry is None:  # unloaded meanwhile; its streams were already finished
                continue
            running = [s for s in streams if not s.finished and self._wants_tokens(s)]
            if running or entry.inflight is not None:
                stepped = self.execute(entry, running) or stepped
            self.update(entry, streams)
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
        # every row's sampler state and timbre go up in a few copies, none waiting for the GPU; the target
        # phones stay on the host (each chunk pass uploads its rows' together)
        slots = [slot for _, _, slot in items]
        prompts = [np.asarray(r.prompt_tokens).reshape(-1) for r, _, _ in items]
        entry.sampler.start_rows(slots, logits, prompts, [r for r, _, _ in items])
        sdt = next(entry.sovits.parameters())
        ges = torch.stack([r.ge.reshape(-1, 1) for r, _, _ in items]).to(sdt.device, sdt.dtype, non_blocking=True)
        streams = []
        for k, ((req, handle, slot), n) in enumerate(zip(items, lens)):
            cache.lengths[slot] = n
            decoder = StreamDecoder(
                sovits=entry.sovits,
                phones=req.target_phone_ids.reshape(1, -1),
                ge=ges[k : k + 1],
                noise_scale=req.noise_scale,
                speed=req.speed,
                seed=noise_seed(req.seed),
                policy=self.policy,
                vocoder=entry.vocoder,
                content=entry.content,
            )
            req.max_new_tokens = max(1, min(req.max_new_tokens, cache.max_len - n - 1))
            streams.append(LiveStream(req, handle, slot, len(prompts[k]), decoder))
        return streams

    # ------------------------------------------------------------- execution

    def _wants_tokens(self, s: LiveStream) -> bool:
        """Tokens are made at most two chunks ahead of the audio decoded so far (the next chunk, the one
        after it, its lookahead): beyond that they are not needed yet, and the GPU time goes to the chunk
        decodes whose audio listeners are waiting for."""
        d, p = s.decoder, self.policy
        return max(s.step, s.launched) < d.emitted + p.size(d.chunks) + p.size(d.chunks + 1) + p.lookahead

    def execute(self, entry: ModelEntry, streams: list[LiveStream]) -> bool:
        """Sample every given stream's next token and run one batched decode step, with one host
        sync (the sampled and greedy ids). On CUDA both happen inside one graph replay. True when a
        step was run (launched)."""
        if entry.graphed is not None and getattr(entry.graphed, "fused", False):
            return self._execute_pipelined(entry, streams)
        if not streams:
            return False
        eos = entry.gpt.dims.eos
        slots = [s.slot for s in streams]
        reqs = [s.request for s in streams]
        ks = {int(r.top_k) for r in reqs}
        picked_t, greedy_t = entry.sampler.sample(torch.tensor(slots, device=self.device), eos, MIN_STEPS,
                                                  use_top_p=any(r.top_p < 1.0 for r in reqs),
                                                  same_k=ks.pop() if len(ks) == 1 else None)
        picked, greedy = torch.stack([picked_t, greedy_t]).tolist()  # the one host sync of the step
        fed = [(s, t) for s, t, g in zip(streams, picked, greedy, strict=True)
               if self._advance(s, t, t == eos or g == eos)]
        if fed:
            self._decode_step(entry, [s for s, _ in fed], [t for _, t in fed])
        return True

    def _execute_pipelined(self, entry: ModelEntry, streams: list[LiveStream]) -> bool:
        """Sampling inside the graph: launch this tick's step for the given streams, then read the
        previous tick's sampled ids (the GPU runs step n+1 while the host handles step n)."""
        cache, eos = entry.cache, entry.gpt.dims.eos
        launch = [s for s in streams if not s.finished and s.launched < s.request.max_new_tokens]
        ticket = None
        if launch:
            slots = [s.slot for s in launch]
            ticket = entry.graphed.launch(slots, [cache.lengths[sl] for sl in slots],
                                          [s.prompt_len + s.launched for s in launch])
            for s in launch:
                cache.lengths[s.slot] += 1
                s.launched += 1
        previous, entry.inflight = entry.inflight, ((ticket, launch) if ticket is not None else None)
        if previous is not None:
            picked, greedy = entry.graphed.collect(previous[0])
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
        if s.step >= s.request.max_new_tokens:
            s.finished = True
            return False
        return True

    def _decode_step(self, entry: ModelEntry, streams: list[LiveStream], tokens: list[int]) -> None:
        """Eager decode step (CPU reference, GSVD_CUDA_GRAPHS=0, TensorRT): next logits into the sampler."""
        gpt, cache = entry.gpt, entry.cache
        slots = [s.slot for s in streams]
        lengths = [cache.lengths[sl] for sl in slots]
        positions = [s.prompt_len + s.step - 1 for s in streams]
        if entry.graphed is not None:  # TensorRT decoder: same call as the torch graph decoder
            logits = entry.graphed(tokens, positions, slots, lengths)
        else:
            logits = _eager_step(gpt, cache, tokens, positions, slots, lengths, self.device)
        entry.sampler.logits[torch.tensor(slots, device=logits.device)] = logits.float()
        for s in streams:
            cache.lengths[s.slot] += 1

    def update(self, entry: ModelEntry, streams: list[LiveStream]) -> None:
        """Launch the ready chunks, batched: first chunks first (they set the time to first audio), then the
        streams whose audio runs out soonest, at most MAX_CHUNK_BATCH per pass and `chunk_passes`
        passes in flight, so decode steps keep coming; the rest wait for a later tick. A stream with a
        pass in flight waits for it. Retire finished streams."""
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
        passes = self.passes_in_flight(len(streams))
        if ready and len(self.pending) < max(1, passes):
            ready.sort(key=LiveStream.audio_deadline)
            rows = self._pass_rows(ready, streams)
            if rows:
                self._launch(rows)
                self._collect(wait=passes == 0)  # off CUDA the pass is already done

    def passes_in_flight(self, live: int) -> int:
        """How many chunk passes may stay in flight with `live` streams of a model (see CHUNK_PASSES)."""
        if self.chunk_passes is not None:
            return self.chunk_passes
        return 1 if live > AUTO_PASSES_ABOVE else 0

    def _pass_rows(self, ready: list[LiveStream], streams: list[LiveStream]) -> list[LiveStream]:
        """The streams of the next chunk pass, from `ready` (sorted by audio deadline), or none yet (see
        CHUNK_SLACK). A pass with first chunks carries only what is due (a first chunk waits for no fill)."""
        if self.chunk_slack <= 0 or len(ready) >= MAX_CHUNK_BATCH:
            return ready[:MAX_CHUNK_BATCH]
        horizon = time.monotonic() + self.chunk_slack
        due = [s for s in ready if s.audio_deadline() < horizon]
        if due and due[0].first_audio_at is None:
            return due[:MAX_CHUNK_BATCH]
        if due or not any(not s.finished and self._wants_tokens(s) for s in streams):
            return ready[:MAX_CHUNK_BATCH]
        return []

    def _launch(self, streams: list[LiveStream]) -> None:
        """Queue one chunk-decode pass for these streams on the decode stream (after the admissions that
        made their inputs); its audio is handed on by `_collect` once it is on the host."""
        ds = self._decode_stream
        try:
            with torch.cuda.stream(ds) if ds is not None else contextlib.nullcontext():
                if ds is not None and self._admitted is not None:
                    ds.wait_event(self._admitted)
                pending = chunk_decode.launch_chunks([(s.decoder, s.finished) for s in streams])
        except Exception as exc:
            if len(streams) > 1:  # nothing was committed: find the stream at fault, the others go on
                log.warning("batched chunk decode failed (%s); decoding its %d streams one by one", exc, len(streams))
                for s in streams:
                    self._launch([s])
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
                    s.deliver(pcms[k])

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


def _env_passes(text: str) -> int | None:
    """GSVD_CHUNK_PASSES: a count of passes, or "auto" (None); a bad value is logged and the default used."""
    if text == "auto":
        return None
    try:
        return max(0, int(text))
    except ValueError:
        log.warning("GSVD_CHUNK_PASSES=%r is neither a count nor 'auto'; using %s", text, CHUNK_PASSES)
        return _env_passes(CHUNK_PASSES)


def _attention_backends(device: torch.device):
    """Keep SDPA off cuDNN on CUDA: its kernels are built per shape at run time, and the decode
    attention length changes every step (measured on an H100: ~60 ms per token before, see
    benchmarks/README.md)."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def _silence_token(s: LiveStream):
    return np.zeros(1280, dtype=np.float32)


def _eager_step(gpt, cache: KVCache, tokens, positions, slots, lengths, device) -> torch.Tensor:
    """One decode step over per-slot caches (no preallocated block needed): logits [B, vocab] fp32."""
    tok = torch.tensor(tokens, device=device).reshape(-1, 1)
    pos = torch.tensor(positions, device=device)
    emb = gpt.ar_audio_embedding(tok)
    pe = gpt.ar_audio_position.positions(0, int(pos.max()) + 1).to(emb.device, emb.dtype)[pos]
    x = emb + gpt.ar_audio_position.alpha * pe[:, None]
    t_max = max(lengths) + 1
    allow = torch.arange(t_max, device=device)[None, :] <= torch.tensor(lengths, device=device)[:, None]
    allow = allow[:, None, None, :]  # [B,1,1,T]
    for layer_idx, layer in enumerate(gpt.layers):
        q, k, v = layer.self_attn.qkv(x)
        for i, sl in enumerate(slots):
            cache.write(sl, layer_idx, lengths[i], k[i], v[i])
        kk, vv = cache.gather(slots, layer_idx, t_max)
        x = layer.finish(x, layer.self_attn.attend(q, kk, vv, allow))
    return gpt.logits(x[:, 0]).float()
