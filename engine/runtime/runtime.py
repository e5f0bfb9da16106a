"""The runtime facade the Engine uses: resident models, submit/cancel, stats.

Everything it needs comes in one `RuntimeConfig` (built at the edge; nothing here reads the environment).
Device and dtype are decided once here, with the reason logged: CUDA when available (GPT in fp16, SoVITS in
fp32), else CPU fp32 (the reference backend). One scheduler thread per runtime drives every stream. Per model
it builds the pieces the scheduler calls through `seams`: the decoder of the GPT steps (CUDA graphs, or an
eager step: torch ops, or a backend's step handed in by the caller) and the chunk decoder (with content and
vocoder graphs on CUDA).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
from typing import TYPE_CHECKING

import torch

from gsvd.engine import devices
from gsvd.engine.errors import InvalidInput
from gsvd.engine.runtime.chunk_decode import BatchChunkDecoder
from gsvd.engine.runtime.device_sampling import SamplerState
from gsvd.engine.runtime.graph_decode import GraphDecoder, StepDecoder, TorchStep
from gsvd.engine.runtime.kv_cache import KVCache
from gsvd.engine.runtime.scheduler import MIN_STEPS, ModelEntry, Scheduler
from gsvd.engine.runtime.stream import StreamHandle, SynthRequest

if TYPE_CHECKING:
    from gsvd.engine.models.sovits import SynthesizerTrn
    from gsvd.engine.models.t2s import Text2SemanticDecoder
    from gsvd.engine.runtime.seams import Decoder, StepBackend
    from gsvd.engine.settings import RuntimeConfig

log = logging.getLogger(__name__)
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(device: str | torch.device, dtype: str) -> tuple[torch.device, torch.dtype, str]:
    dev = devices.resolve_device(device)
    if dtype == "auto":
        if dev.type == "cuda":
            return dev, torch.float16, "CUDA: GPT in float16, SoVITS in float32"
        return dev, torch.float32, "CPU: float32 everywhere (reference backend)"
    if dtype not in _DTYPES:
        raise InvalidInput(f"dtype must be auto, float32, float16 or bfloat16; got {dtype!r}", "dtype")
    return dev, _DTYPES[dtype], f"dtype {dtype} requested"


class Runtime:
    def __init__(self, config: RuntimeConfig | None = None) -> None:
        if config is None:
            from gsvd.engine.settings import RuntimeConfig

            config = RuntimeConfig()
        self.config = config
        self.device, self.dtype, reason = resolve_device(config.device, config.dtype)
        log.info("runtime on %s (%s)", self.device, reason)
        if self.device.type == "cuda" and config.switch_interval > 0:
            # Several Python threads share the GIL (the scheduler, the preparer, the callers reading their
            # streams) and the scheduler hands it over at every torch call; a short switch interval gets it back
            # quickly (benchmarks/HISTORY.md).
            sys.setswitchinterval(config.switch_interval)
        self.max_streams, self.max_len = config.max_streams, config.max_len
        self.graphs = self.device.type == "cuda" and config.cuda_graphs
        self._backends: dict[str, str] = {}  # model id -> "tensorrt" where a backend's step runs the GPT
        self._scheduler = Scheduler(self.device, config.max_streams, config.queue_limit, config.policy(),
                                    config.tick_stats)
        self._thread = threading.Thread(target=self._scheduler.run, name="gsvd-scheduler", daemon=True)
        self._thread.start()

    def add_model(self, model_id: str, gpt: Text2SemanticDecoder, sovits: SynthesizerTrn,
                  backend: StepBackend | None = None) -> None:
        """Make a model resident. `backend` (chosen by the caller, e.g. the bundle's TensorRT engine) may supply
        the decode step; else on CUDA with graphs on it is replayed from CUDA graphs, else it runs eagerly. On
        CUDA every graph is captured now, so no stream waits for a capture later; the choices are logged."""
        gpt = gpt.to(self.device, self.dtype).eval()
        sovits = sovits.to(self.device, torch.float32).eval()
        dims = gpt.dims
        cache = KVCache(dims.n_layer, dims.hidden_dim, self.max_streams, self.max_len, self.device, self.dtype,
                        preallocate=self.device.type == "cuda")
        sampler = SamplerState(cache.slots_total, dims.vocab_size, self.device)
        decoder = self._decoder(model_id, gpt, cache, sampler, backend)
        chunks, prefill = BatchChunkDecoder(sovits), None
        if self.graphs:
            from gsvd.engine.runtime.graph_content import GraphedContent
            from gsvd.engine.runtime.graph_prefill import GraphedPrefill
            from gsvd.engine.runtime.graph_vocoder import GraphedVocoder

            prefill = GraphedPrefill(gpt, cache)
            chunks = BatchChunkDecoder(sovits, GraphedContent(sovits), GraphedVocoder(sovits, half=True))
            with torch.inference_mode():
                if isinstance(decoder, GraphDecoder):
                    decoder.prepare()
                prefill.prepare()
                chunks.vocoder.prepare(self._scheduler.policy.window_frames(), sovits.dims.inter_channels,
                                       sovits.dims.gin_channels, self.device)
                chunks.content.prepare()
        with self._scheduler.cond:
            self._scheduler.models[model_id] = ModelEntry(model_id, gpt, sovits, cache, sampler, decoder, chunks,
                                                             prefill)

    def _decoder(self, model_id: str, gpt: Text2SemanticDecoder, cache: KVCache, sampler: SamplerState,
                 backend: StepBackend | None) -> Decoder:
        eos = gpt.dims.eos
        if backend is not None:
            step, reason = backend(gpt, cache, self.device)
            log.info("decode step on %s: %s", "TensorRT" if step is not None else "torch", reason)
            if step is not None:
                self._backends[model_id] = "tensorrt"
                return StepDecoder(step, sampler, eos, MIN_STEPS)
        if self.graphs:
            return GraphDecoder(gpt, cache, sampler, eos, MIN_STEPS, kernels=self._triton_kernels())
        return StepDecoder(TorchStep(gpt, cache), sampler, eos, MIN_STEPS)

    def _triton_kernels(self) -> bool:
        """Use the Triton decode kernels (engine/runtime/decode_kernels.py) unless they are switched off or
        Triton is missing; the choice is logged."""
        if not self.config.decode_kernels:
            log.info("decode step: torch ops (decode_kernels off)")
            return False
        if importlib.util.find_spec("triton") is None:
            log.info("decode step: torch ops (triton is not installed)")
            return False
        log.info("decode step: Triton attention + residual LayerNorm kernels")
        return True

    def remove_model(self, model_id: str) -> None:
        self._scheduler.remove_model(model_id)

    def submit(self, request: SynthRequest, handle: StreamHandle | None = None) -> StreamHandle:
        return self._scheduler.submit(request, handle)

    def submit_many(self, items: list[tuple[SynthRequest, StreamHandle]]) -> list[Exception | None]:
        """Several requests at once (admitted together); per request the error that refused it, or None."""
        return self._scheduler.submit_many(items)

    def stats(self) -> dict:
        return self._scheduler.stats()

    def tick_stats(self) -> dict | None:
        """Per-tick scheduler statistics since start (the `tick_stats` setting; None when off): ticks, each
        phase's seconds of the scheduler thread, prefill passes, GPT steps and chunk passes with their mean rows,
        chunks handed on and how many came late, device busy seconds and share of the wall time."""
        return self._scheduler.tick_stats()

    def info(self) -> dict:
        backend = "torch+cuda-graphs" if self.graphs else "torch-eager"
        if self._backends:
            backend = f"tensorrt ({len(self._backends)} model(s)), else {backend}"
        return {"backend": backend, "device": str(self.device), "dtype": str(self.dtype).removeprefix("torch.")}

    def close(self) -> None:
        with self._scheduler.cond:
            self._scheduler.closed = True
            self._scheduler.cond.notify_all()
        self._thread.join(timeout=5)
