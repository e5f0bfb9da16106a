"""The runtime facade the Engine uses: resident models, submit/cancel, residency, stats.

Everything it needs comes in one `RuntimeConfig` (built at the edge; nothing here reads the environment).
Device and dtype are decided once here, with the reason logged: CUDA when available (GPT in fp16, SoVITS in
fp32), else CPU fp32 (the reference backend). One scheduler thread per runtime drives every stream.

A model is made resident in a few steps, none of them a CUDA-graph capture: its weights go into flat buffers
(`weights.FlatWeights`: pinned host memory, one copy to the device), within the memory budget (`residency`: idle
models evicted least recently used first, pinned ones never); it takes slots from the KV pool of its GPT shape
(`kv_cache.KVPool`, sized from the budget when the first such model comes); its GPT lane (`lanes`) is the one with
the fewest models. It serves at once from its plain paths (eager steps, eager or template graphs); its own decode
graphs, and the prefill, content and vocoder graphs of its architecture on each lane that has none yet (captured
against templates, which every later model of the architecture reuses), are queued for the background
`GraphBuilder`, smallest shapes first. A model evicted under memory pressure comes back on its next request (one
copy from pinned memory, its decode graphs captured again in the background). On CUDA Triton's compiled kernels are
kept in the `triton_cache` folder across restarts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
import threading
import time
from typing import TYPE_CHECKING

import torch

from gsvd.engine import devices
from gsvd.engine.errors import GsvdError, InvalidInput, ResourceExhausted, VoiceNotFound
from gsvd.engine.runtime.chunk_decode import BatchChunkDecoder, SovitsParts
from gsvd.engine.runtime.cuda_graphs import CudaCapturer
from gsvd.engine.runtime.graph_builder import GraphBuilder
from gsvd.engine.runtime.graph_decode import GraphDecoder, StepDecoder, TorchStep
from gsvd.engine.runtime.kv_cache import KVPool, kv_slots, slot_bytes
from gsvd.engine.runtime.lanes import AudioLane, GptLane, gpt_arch, sovits_arch
from gsvd.engine.runtime.residency import Residency, budget_bytes
from gsvd.engine.runtime.scheduler import MIN_STEPS, ModelEntry, Scheduler
from gsvd.engine.runtime.stream import StreamHandle, SynthRequest
from gsvd.engine.runtime.weights import FlatWeights

if TYPE_CHECKING:
    from collections.abc import Iterator

    from gsvd.engine.models.sovits import SynthesizerTrn
    from gsvd.engine.models.t2s import Text2SemanticDecoder
    from gsvd.engine.provenance.watermark import KeyPattern
    from gsvd.engine.runtime.seams import Capturer, Decoder, StepBackend
    from gsvd.engine.settings import RuntimeConfig

log = logging.getLogger(__name__)
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
SMALL = 8  # batch buckets up to this are captured first (one stream, a first chunk's pass)


def resolve_device(device: str | torch.device, dtype: str) -> tuple[torch.device, torch.dtype, str]:
    dev = devices.resolve_device(device)
    if dtype == "auto":
        if dev.type == "cuda":
            return dev, torch.float16, "CUDA: GPT in float16, SoVITS in float32"
        return dev, torch.float32, "CPU: float32 everywhere (reference backend)"
    if dtype not in _DTYPES:
        raise InvalidInput(f"dtype must be auto, float32, float16 or bfloat16; got {dtype!r}", "dtype")
    return dev, _DTYPES[dtype], f"dtype {dtype} requested"


def use_triton_cache(folder: str) -> str | None:
    """Point Triton's kernel cache at `folder` (created) -> the folder, or None when Triton is absent or `folder` is
    empty (Triton's own default stays), or when this Triton (before 3.4) has no `knobs` to set it with."""
    if not folder or importlib.util.find_spec("triton") is None:
        return None
    import triton

    knobs = getattr(triton, "knobs", None)
    if knobs is None:
        return None
    os.makedirs(folder, exist_ok=True)
    knobs.cache.dir = folder
    return folder


class Runtime:
    """`capturer`: how graphs are captured (None: CUDA graphs on CUDA with the `cuda_graphs` setting, else none);
    off CUDA a `cuda_graphs.EagerCapturer` runs the graphed paths with the same static buffers (tests). `watermark`:
    the key requests' marks (`SynthRequest.mark`) are made with: each audio lane gets graphs of its marks."""

    def __init__(self, config: RuntimeConfig | None = None, capturer: Capturer | None = None,
                 watermark: KeyPattern | None = None) -> None:
        if config is None:
            from gsvd.engine.settings import RuntimeConfig

            config = RuntimeConfig()
        self.config = config
        self.device, self.dtype, reason = resolve_device(config.device, config.dtype)
        log.info("runtime on %s (%s)", self.device, reason)
        on_cuda = self.device.type == "cuda"
        if on_cuda and config.switch_interval > 0:
            # Several Python threads share the GIL (the scheduler, the preparer, the graph builder, the callers reading
            # their streams) and the scheduler hands it over at every torch call; a short switch interval gets it
            # back quickly (benchmarks/HISTORY.md).
            sys.setswitchinterval(config.switch_interval)
        if on_cuda:
            self.triton_cache = use_triton_cache(config.triton_cache)
            log.info("Triton kernel cache: %s", self.triton_cache or "Triton's default")
        self.max_streams, self.max_len = config.max_streams, config.max_len
        if capturer is None and on_cuda and config.cuda_graphs:
            capturer = CudaCapturer()
        self.graphs = capturer is not None
        self.half = on_cuda and self.graphs  # the generator from an fp16 copy where graphs run it
        lanes = config.lanes if self.graphs and on_cuda else 1
        self.gpt_lanes = [GptLane(i, self.device, capturer) for i in range(lanes)]
        self.audio_lanes = [AudioLane(i, self.device, capturer) for i in range(lanes)]
        self.residency = Residency(budget_bytes(config, self.device))
        self._builder = GraphBuilder() if self.graphs else None
        self.watermark = watermark
        self._backends: dict[str, str] = {}  # model id -> "tensorrt" where a backend's step runs the GPT
        self._pools: dict[tuple, KVPool] = {}
        self._load = threading.RLock()  # loads, comebacks, evictions and removals: one at a time
        self._coming_back: set[str] = set()
        self._scheduler = Scheduler(self.device, config.queue_limit, config.policy(), self.gpt_lanes,
                                    self.audio_lanes, config.tick_stats, on_demand=self._demand)
        self._thread = threading.Thread(target=self._scheduler.run, name="gsvd-scheduler", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ models

    def add_model(self, model_id: str, gpt: Text2SemanticDecoder, sovits: SynthesizerTrn,
                  backend: StepBackend | None = None, pinned: bool = False) -> None:
        """Make a model resident (see the module doc); ResourceExhausted when the memory budget cannot hold it.
        `backend` (chosen by the caller, e.g. the bundle's TensorRT engine) may supply the decode step; else with
        graphs it is replayed from CUDA graphs, else it runs eagerly. `pinned`: never evicted."""
        with self._load:
            gpt = gpt.to(dtype=self.dtype).eval()
            parts = SovitsParts(sovits.float().eval(), half=self.half)
            self._make_room(_module_bytes(gpt, parts.sovits, parts.dec_half, parts.dec_nhwc))
            gpt_weights = FlatWeights([gpt], self.device)
            weights = [gpt_weights, *parts.flatten(self.device)]
            self._settle_copies()
            pool = self._pool_for(gpt, sum(w.nbytes for w in weights))
            lane = min(self.gpt_lanes, key=lambda la: la.models)
            lane.models += 1
            entry = ModelEntry(model_id, gpt, parts, pool, self._decoder(model_id, gpt, pool, lane, backend),
                               BatchChunkDecoder(parts), lane, self._prefill_graphs(lane, gpt, pool), gpt_weights,
                               weights, pinned=pinned, last_used=time.monotonic())
            with self._scheduler.cond:
                self._scheduler.models[model_id] = entry
            self._audio_graphs(parts)
            self._decode_jobs(entry)
        if self.config.graphs_at_load:
            self.wait_graphs()

    def _decoder(self, model_id: str, gpt: Text2SemanticDecoder, pool: KVPool, lane: GptLane,
                 backend: StepBackend | None) -> Decoder:
        eos, cache, sampler = gpt.dims.eos, pool.cache, pool.sampler
        if backend is not None:
            step, reason = backend(gpt, cache, self.device)
            log.info("decode step on %s: %s", "TensorRT" if step is not None else "torch", reason)
            if step is not None:
                self._backends[model_id] = "tensorrt"
                return StepDecoder(step, sampler, eos, MIN_STEPS)
        if self.graphs:
            return GraphDecoder(gpt, cache, sampler, eos, MIN_STEPS, kernels=self._triton_kernels(), pool=lane.pool)
        return StepDecoder(TorchStep(gpt, cache), sampler, eos, MIN_STEPS)

    def _triton_kernels(self) -> bool:
        """Use the Triton decode kernels (engine/runtime/decode_kernels.py) on CUDA unless they are switched off or
        Triton is missing; the choice is logged."""
        if self.device.type != "cuda":
            return False
        if not self.config.decode_kernels:
            log.info("decode step: torch ops (decode_kernels off)")
            return False
        if importlib.util.find_spec("triton") is None:
            log.info("decode step: torch ops (triton is not installed)")
            return False
        log.info("decode step: Triton attention + residual LayerNorm kernels")
        return True

    def _pool_for(self, gpt: Text2SemanticDecoder, loading: int = 0) -> KVPool:
        """The KV pool of this GPT shape, made (within the budget) for its first model (`loading`: bytes of a model on
        the device already but not registered yet)."""
        dims = gpt.dims
        key = KVPool.key(dims, self.dtype)
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        cfg = self.config
        per_slot = slot_bytes(dims.n_layer, dims.hidden_dim, cfg.max_len, self.dtype, dims.vocab_size)
        kv_bytes = int(cfg.kv_cache_gib * 2**30) if cfg.kv_cache_gib > 0 else None
        left = self.residency.left(list(self._scheduler.models.values()))
        try:
            slots = kv_slots(per_slot, cfg.max_streams, kv_bytes, None if left is None else left - loading)
        except ValueError as exc:
            raise ResourceExhausted(f"KV pool: {exc} (gpu_memory_fraction / gpu_memory_gib, kv_cache_gib, "
                                    "max_len)") from None
        self._make_room((slots + 1) * per_slot + loading)
        if slots < cfg.max_streams:
            log.warning("KV pool holds %d slots, not max_streams=%d: the memory budget allows no more", slots,
                        cfg.max_streams)
        pool = KVPool(dims, slots, cfg.max_len, self.device, self.dtype, preallocate=self.graphs or
                      self.device.type == "cuda")
        log.info("KV pool for %d layers x %d: %d slots of %d positions, %.2f GiB", dims.n_layer, dims.hidden_dim,
                 slots, cfg.max_len, pool.nbytes / 2**30)
        self.residency.fixed += pool.nbytes
        self._pools[key] = pool
        with self._scheduler.cond:
            self._scheduler.pools.append(pool)
        return pool

    # --------------------------------------------------------- graphs (background)

    def _submit(self, job, tier: int, lane: int, owner: str) -> None:
        self._builder.submit(job, (tier, lane), owner)

    def _prefill_graphs(self, lane: GptLane, gpt: Text2SemanticDecoder, pool: KVPool):
        """The lane's prefill graphs of this GPT architecture, over a template (made, and queued for capture, for the
        lane's first model of it)."""
        if not self.graphs:
            return None
        arch = gpt_arch(gpt)
        graphs = lane.prefill.get(arch)
        if graphs is None:
            from gsvd.engine.models.t2s import Text2SemanticDecoder
            from gsvd.engine.runtime.graph_prefill import GraphedPrefill

            with torch.device("meta"):
                template = Text2SemanticDecoder(gpt.dims).to(self.dtype).eval()
            weights = FlatWeights([template], self.device, keep_host=False)
            self.residency.fixed += weights.nbytes
            graphs = GraphedPrefill(template, pool.cache, pool=lane.pool, weights=weights)
            lane.prefill[arch] = graphs
            for key in graphs.capture_order():
                self._submit(lambda key=key: graphs.capture(key), 0 if key[0] == 1 else 1, lane.index, "prefill")
        return graphs

    def _mark_graphs(self, lane: AudioLane) -> None:
        """The lane's graphs of the watermark's marks (`provenance.embed.GraphedMarks`), queued for capture."""
        from gsvd.engine.provenance.embed import GraphedMarks
        from gsvd.engine.provenance.watermark import frame_length
        from gsvd.engine.types import SAMPLE_RATE

        marks = GraphedMarks(self.watermark, frame_length(SAMPLE_RATE), self.device, lane.pool)
        lane.marks = marks
        for i, key in enumerate(marks.capture_order()):
            self._submit(lambda key=key: marks.capture(key), 0 if i < 2 else 1, lane.index, "marks")

    def _audio_graphs(self, parts: SovitsParts) -> None:
        """Content and vocoder graphs of this SoVITS architecture on as many audio lanes as it has resident models:
        for each lane without them, a template and its capture jobs."""
        if not self.graphs:
            return
        arch = sovits_arch(parts)
        with self._scheduler.cond:
            models = sum(1 for e in self._scheduler.models.values() if e.resident and sovits_arch(e.parts) == arch)
        for lane in self.audio_lanes[: max(1, models)]:
            if self.watermark is not None and lane.marks is None:
                self._mark_graphs(lane)
            if lane.audio_graphs(parts) is not None:
                continue
            from gsvd.engine.runtime.graph_content import GraphedContent
            from gsvd.engine.runtime.graph_vocoder import GraphedVocoder

            template = SovitsParts.template(parts.sovits.dims, parts.half, self.device)
            self.residency.fixed += template.content.nbytes + template.vocoder.nbytes
            content, vocoder = GraphedContent(template, pool=lane.pool), GraphedVocoder(template, pool=lane.pool)
            lane.graphs[arch] = (content, vocoder)
            dims = parts.sovits.dims
            for key in content.capture_order():
                small = key[0] <= SMALL and key[1] <= 32
                self._submit(lambda key=key, c=content: c.capture(key), 0 if small else 1, lane.index, "content")
            sched = self._scheduler  # the window lengths of the regular and the burst chunks
            frames = sorted({*sched.policy.window_frames(), *sched.burst.window_frames()})
            for key in vocoder.capture_order(frames, dims.inter_channels, dims.gin_channels, self.device):
                self._submit(lambda key=key, v=vocoder: v.capture(key), 0 if key[1] <= SMALL else 1, lane.index,
                             "vocoder")

    def _decode_jobs(self, entry: ModelEntry) -> None:
        decoder = entry.decoder
        if isinstance(decoder, GraphDecoder):
            for b in decoder.capture_order():
                self._submit(lambda b=b: decoder.capture(b), 0 if b <= SMALL else 1, entry.lane.index,
                             entry.model_id)

    def wait_graphs(self, timeout: float | None = None) -> bool:
        """Until every queued graph is captured -> True (at once without graphs), or False after `timeout` s."""
        return self._builder is None or self._builder.wait(timeout)

    # --------------------------------------------------------------- residency

    def _make_room(self, need: int, keep: str | None = None) -> None:
        """Evict idle, unpinned models, least recently used first, until `need` more bytes fit the budget."""
        sched = self._scheduler
        with sched.cond:
            victims = self.residency.victims(list(sched.models.values()), need, sched.idle, keep)
            for v in victims:
                v.resident = False  # no admission from now on
        for v in victims:
            self._unload(v)
            log.info("model %s evicted to host memory (%.2f GiB)", v.model_id, sum(w.nbytes for w in v.weights) / 2**30)

    def _unload(self, entry: ModelEntry) -> None:
        if self._builder is not None:
            self._builder.cancel(entry.model_id)
        self._quiesce()
        if isinstance(entry.decoder, GraphDecoder):
            entry.decoder.reset()
        for w in entry.weights:
            w.unload()
        self.residency.evictions += 1

    def _quiesce(self) -> None:
        """Wait for the work queued on every lane so far (what may still read weights about to go)."""
        for lane in (*self.gpt_lanes, *self.audio_lanes):
            event = lane.mark()
            if event is not None:
                event.synchronize()

    def _settle_copies(self) -> None:
        """Host-to-device copies queued on this thread's stream are done (before other streams read them)."""
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()

    def _demand(self, model_id: str) -> None:
        """A request waits for this model's weights (called under the scheduler's lock): bring them back in a
        thread of its own."""
        if model_id in self._coming_back:
            return
        self._coming_back.add(model_id)
        threading.Thread(target=self._come_back, args=(model_id,), name="gsvd-residency", daemon=True).start()

    def _come_back(self, model_id: str) -> None:
        try:
            self._make_resident(model_id)
        except GsvdError as exc:
            log.warning("model %s cannot come back: %s", model_id, exc)
            self._scheduler.fail_waiting(model_id, exc)
        finally:
            with self._scheduler.cond:
                self._coming_back.discard(model_id)

    def _make_resident(self, model_id: str) -> None:
        with self._load:
            entry = self._scheduler.models.get(model_id)
            if entry is None:
                raise VoiceNotFound(f"model {model_id!r} is not loaded")
            if entry.resident:
                return
            t0 = time.perf_counter()
            self._make_room(sum(w.nbytes for w in entry.weights), keep=model_id)
            for w in entry.weights:
                w.load()
            self._settle_copies()
            with self._scheduler.cond:
                entry.resident, entry.last_used = True, time.monotonic()
                self._scheduler.cond.notify_all()
            self.residency.loads += 1
            self.residency.last_load_s = time.perf_counter() - t0
            log.info("model %s back on the device in %.1f ms", model_id, 1000 * self.residency.last_load_s)
            self._audio_graphs(entry.parts)
            self._decode_jobs(entry)

    def evict(self, model_id: str) -> bool:
        """Move an idle, unpinned model's weights to host memory now -> whether it was (its next request brings them
        back)."""
        with self._load:
            sched = self._scheduler
            with sched.cond:
                entry = sched.models.get(model_id)
                if entry is None or not entry.resident or entry.pinned or entry.holds or not sched.idle(entry):
                    return False
                entry.resident = False
            self._unload(entry)
            return True

    def pin(self, model_id: str, pinned: bool = True) -> None:
        """Keep a model's weights on the device (never evicted), or let them go again."""
        entry = self._scheduler.models.get(model_id)
        if entry is None:
            raise VoiceNotFound(f"model {model_id!r} is not loaded")
        entry.pinned = pinned

    @contextlib.contextmanager
    def using(self, model_id: str) -> Iterator[ModelEntry]:
        """The model's entry with its weights on the device (brought back now if they were evicted), kept there
        until the block ends."""
        with self._scheduler.cond:
            entry = self._scheduler.models.get(model_id)
            if entry is None:
                raise VoiceNotFound(f"model {model_id!r} is not loaded")
            entry.holds += 1
        try:
            self._make_resident(model_id)
            yield entry
        finally:
            with self._scheduler.cond:
                entry.holds -= 1

    def resident(self, model_id: str) -> bool:
        entry = self._scheduler.models.get(model_id)
        return entry is not None and entry.resident

    def remove_model(self, model_id: str) -> None:
        with self._load:
            entry = self._scheduler.remove_model(model_id)
            if entry is None:
                return
            if self._builder is not None:
                self._builder.cancel(model_id)
            self._quiesce()
            entry.lane.models -= 1
            self._backends.pop(model_id, None)

    # ------------------------------------------------------------------ streams

    def submit(self, request: SynthRequest, handle: StreamHandle | None = None) -> StreamHandle:
        return self._scheduler.submit(request, handle)

    def submit_many(self, items: list[tuple[SynthRequest, StreamHandle]]) -> list[Exception | None]:
        """Several requests at once (admitted together); per request the error that refused it, or None."""
        return self._scheduler.submit_many(items)

    def stats(self) -> dict:
        """Streams and KV slots (`Scheduler.stats`), resident models, evictions and comebacks, graph jobs left."""
        out = self._scheduler.stats()
        with self._scheduler.cond:
            models = list(self._scheduler.models.values())
        out.update({"models": len(models), "models_resident": sum(e.resident for e in models),
                    "evictions": self.residency.evictions, "comebacks": self.residency.loads,
                    "last_comeback_ms": 1000 * self.residency.last_load_s,
                    "memory_used_gib": self.residency.used(models) / 2**30,
                    "memory_budget_gib": None if self.residency.budget is None else self.residency.budget / 2**30,
                    "graph_jobs": 0 if self._builder is None else self._builder.pending()})
        return out

    def tick_stats(self) -> dict | None:
        """Per-tick scheduler statistics since start (the `tick_stats` setting; None when off): ticks, each
        phase's seconds of the scheduler thread, prefill passes, GPT steps and chunk passes with their mean rows,
        chunks handed on and how many came late, device busy seconds and share of the wall time."""
        return self._scheduler.tick_stats()

    def info(self) -> dict:
        backend = "torch+cuda-graphs" if self.graphs and self.device.type == "cuda" else "torch-eager"
        if self._backends:
            backend = f"tensorrt ({len(self._backends)} model(s)), else {backend}"
        return {"backend": backend, "device": str(self.device), "dtype": str(self.dtype).removeprefix("torch.")}

    def close(self) -> None:
        with self._scheduler.cond:
            self._scheduler.closed = True
            self._scheduler.cond.notify_all()
        self._thread.join(timeout=5)
        if self._builder is not None:
            self._builder.close()


def _module_bytes(*modules: torch.nn.Module | None) -> int:
    seen, total = set(), 0
    for m in modules:
        if m is None:
            continue
        for t in (*m.parameters(), *m.buffers()):
            if id(t) not in seen:
                seen.add(id(t))
                total += t.numel() * t.element_size()
    return total
