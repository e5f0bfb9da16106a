"""The runtime facade the Engine uses: resident models, submit/cancel, stats.

Device and dtype are decided once here, with the reason logged: CUDA when
available (GPT in fp16, SoVITS in fp32), else CPU fp32 (the reference backend).
One scheduler thread per runtime drives every stream.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

import torch

from gsvd.engine import devices
from gsvd.engine.errors import InvalidInput
from gsvd.engine.runtime.chunking import ChunkPolicy
from gsvd.engine.runtime.device_sampling import SamplerState
from gsvd.engine.runtime.kv_cache import KVCache
from gsvd.engine.runtime.scheduler import MIN_STEPS, ModelEntry, Scheduler
from gsvd.engine.runtime.stream import StreamHandle, SynthRequest

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
    def __init__(
        self,
        device: str | torch.device = "auto",
        dtype: str = "auto",
        max_streams: int = 64,
        queue_limit: int = 256,
        max_len: int = 2048,
        policy: ChunkPolicy | None = None,
    ) -> None:
        self.device, self.dtype, reason = resolve_device(device, dtype)
        log.info("runtime on %s (%s)", self.device, reason)
        if self.device.type == "cuda":
            # Several Python threads share the GIL (the scheduler, the preparer, the callers reading their
            # streams) and the scheduler hands it over at every torch call; a short switch interval gets it back
            # quickly (the sixth session's runs in benchmarks/README.md were measured with 0.5 ms).
            _set_switch_interval(os.environ.get("GSVD_SWITCH_INTERVAL", "0.0005"))
        self.max_streams, self.max_len = max_streams, max_len
        self._backends: dict[str, str] = {}  # model id -> "tensorrt" where an engine runs the decode step
        self._scheduler = Scheduler(self.device, max_streams, queue_limit, policy or _env_policy())
        self._thread = threading.Thread(target=self._scheduler.run, name="gsvd-scheduler", daemon=True)
        self._thread.start()

    def add_model(self, model_id: str, gpt: torch.nn.Module, sovits: torch.nn.Module, bundle_path=None) -> None:
        """Make a model resident. On CUDA the decode step runs from a TensorRT engine when the bundle
        holds a fresh one (see gsvd.trt_build.runtime_backend; GSVD_BACKEND=auto|torch|tensorrt),
        else from CUDA graphs (GSVD_CUDA_GRAPHS=0: eager); the choice and its reason are logged."""
        gpt = gpt.to(self.device, self.dtype).eval()
        sovits = sovits.to(self.device, torch.float32).eval()
        dims = gpt.dims
        cache = KVCache(dims.n_layer, dims.hidden_dim, self.max_streams, self.max_len, self.device, self.dtype,
                        preallocate=self.device.type == "cuda")
        sampler = SamplerState(cache.slots_total, dims.vocab_size, self.device)
        graphs = self._graphs_on()
        want_trt = self.device.type == "cuda" or os.environ.get("GSVD_BACKEND", "auto").lower() == "tensorrt"
        graphed = _tensorrt_decoder(bundle_path, gpt, cache, self.device) if want_trt else None
        if graphed is not None:
            self._backends[model_id] = "tensorrt"
        elif graphs:
            from gsvd.engine.runtime.graph_decode import FusedDecoder, GraphedDecoder

            kernels = _triton_kernels()
            if os.environ.get("GSVD_FUSED_SAMPLING", "1") == "1":
                graphed = FusedDecoder(gpt, cache, sampler, dims.eos, MIN_STEPS, kernels=kernels)
            else:
                graphed = GraphedDecoder(gpt, cache, kernels=kernels)
        prefill = vocoder = content = None
        if graphs:
            from gsvd.engine.runtime.graph_prefill import GraphedPrefill

            prefill = GraphedPrefill(gpt, cache)
            if os.environ.get("GSVD_VOCODER_GRAPHS", "1") != "0":
                from gsvd.engine.runtime.graph_content import GraphedContent
                from gsvd.engine.runtime.graph_vocoder import GraphedVocoder

                half = os.environ.get("GSVD_VOCODER_HALF", "1") != "0"  # graphs are on: this is CUDA
                nhwc = {"0": False, "1": True}.get(os.environ.get("GSVD_VOCODER_NHWC", "auto"), "auto")
                vocoder = GraphedVocoder(sovits, half=half, nhwc=nhwc)
                content = GraphedContent(sovits, half=os.environ.get("GSVD_CONTENT_HALF", "0") == "1")
        if self.device.type == "cuda":  # capture now, so no stream waits for a capture later
            with torch.inference_mode():
                if hasattr(graphed, "prepare"):
                    graphed.prepare()
                if prefill is not None:
                    prefill.prepare()
                if vocoder is not None:
                    vocoder.prepare(self._scheduler.policy.window_frames(), sovits.dims.inter_channels,
                                    sovits.dims.gin_channels, self.device)
                    content.prepare()
        with self._scheduler.cond:
            self._scheduler.models[model_id] = ModelEntry(model_id, gpt, sovits, cache, sampler, graphed, vocoder,
                                                             content, prefill)

    def remove_model(self, model_id: str) -> None:
        self._scheduler.remove_model(model_id)

    def submit(self, request: SynthRequest, handle: StreamHandle | None = None) -> StreamHandle:
        return self._scheduler.submit(request, handle)

    def submit_many(self, items: list[tuple[SynthRequest, StreamHandle]]) -> list[Exception | None]:
        """Several requests at once (admitted together); per request the error that refused it, or None."""
        return self._scheduler.submit_many(items)

    def stats(self) -> dict:
        return self._scheduler.stats()

    def _graphs_on(self) -> bool:
        return self.device.type == "cuda" and os.environ.get("GSVD_CUDA_GRAPHS", "1") != "0"

    def info(self) -> dict:
        backend = "torch+cuda-graphs" if self._graphs_on() else "torch-eager"
        if self._backends:
            backend = f"tensorrt ({len(self._backends)} model(s)), else {backend}"
        return {"backend": backend, "device": str(self.device), "dtype": str(self.dtype).removeprefix("torch.")}

    def close(self) -> None:
        with self._scheduler.cond:
            self._scheduler.closed = True
            self._scheduler.cond.notify_all()
        self._thread.join(timeout=5)


def _set_switch_interval(seconds: str) -> None:
    """sys.setswitchinterval(seconds); 0 keeps the interpreter's; a bad value is logged and ignored."""
    try:
        value = float(seconds)
    except ValueError:
        log.warning("GSVD_SWITCH_INTERVAL=%r is not a number; switch interval left as it is", seconds)
        return
    if value > 0:
        sys.setswitchinterval(value)


def _env_policy() -> ChunkPolicy:
    """The chunk policy from GSVD_CHUNK_POLICY ("first,growth[,largest]"), else the default; a bad value is
    logged and the default used."""
    text = os.environ.get("GSVD_CHUNK_POLICY", "")
    if not text:
        return ChunkPolicy()
    try:
        return ChunkPolicy.parse(text)
    except ValueError as exc:
        log.warning("GSVD_CHUNK_POLICY ignored: %s", exc)
        return ChunkPolicy()


def _triton_kernels() -> bool:
    """Use the Triton decode kernels (engine/runtime/decode_kernels.py) unless GSVD_DECODE_KERNELS=0
    or Triton is missing; the choice is logged."""
    import importlib.util

    if os.environ.get("GSVD_DECODE_KERNELS", "1") == "0":
        log.info("decode step: torch ops (GSVD_DECODE_KERNELS=0)")
        return False
    if importlib.util.find_spec("triton") is None:
        log.info("decode step: torch ops (triton is not installed)")
        return False
    log.info("decode step: Triton attention + residual LayerNorm kernels")
    return True


def _tensorrt_decoder(bundle_path, gpt, cache, device: torch.device):
    """The bundle's TensorRT decode step, or None (reason logged) to stay on torch."""
    try:
        from gsvd.trt_build.runtime_backend import select_decoder
    except ImportError as exc:  # the trt extra is not installed
        log.info("decode step on torch: %s", exc)
        return None
    decoder, reason = select_decoder(bundle_path, gpt, cache, device)
    log.info("decode step on %s: %s", "TensorRT" if decoder is not None else "torch", reason)
    return decoder
