"""TensorRT execution for the runtime's graphs: engines deserialized once, torch-allocated
buffers bound with `set_tensor_address`, `execute_async_v3` on torch's current CUDA stream (no
pycuda), and the enqueue captured in a CUDA graph per input-shape bucket.

`TrtGraph.load_or_none()` returns None with a logged reason when tensorrt is missing or the engine
is missing/stale, so callers fall back to the torch backend. Written to TensorRT 10's documented
API; not run here (TensorRT cannot be installed on this project's machines).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from gsvd.trt_build.builder import TensorRTUnavailable, load_tensorrt
from gsvd.trt_build.cache import EngineKey, engine_path, is_fresh

log = logging.getLogger(__name__)


class TrtGraph:
    def __init__(self, engine_bytes: bytes, output_shapes) -> None:
        trt = load_tensorrt()
        self.trt = trt
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise RuntimeError("TensorRT could not deserialize the engine")
        self.context = self.engine.create_execution_context()
        self.output_shapes = output_shapes  # callable: dict of input shapes -> dict of output shapes
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, dict, dict]] = {}

    @classmethod
    def load_or_none(cls, bundle: str | Path, key: EngineKey, output_shapes) -> TrtGraph | None:
        fresh, reason = is_fresh(bundle, key)
        if not fresh:
            log.warning("TensorRT engine for %s not used (%s): falling back to torch", key.graph, reason)
            return None
        try:
            return cls(engine_path(bundle, key).read_bytes(), output_shapes)
        except (TensorRTUnavailable, RuntimeError) as exc:
            log.warning("TensorRT engine for %s not used (%s): falling back to torch", key.graph, exc)
            return None

    def _bind(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        shapes = {k: tuple(v.shape) for k, v in inputs.items()}
        outputs = {name: torch.empty(shape, dtype=dtype, device="cuda")
                   for name, (shape, dtype) in self.output_shapes(shapes).items()}
        for name, tensor in {**inputs, **outputs}.items():
            if name in inputs:
                self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
        return outputs

    def __call__(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run with CUDA tensors; the first call per shape bucket captures a CUDA graph, later ones replay."""
        bucket = tuple((k, tuple(v.shape), v.dtype) for k, v in sorted(inputs.items()))
        if bucket not in self.graphs:
            static_in = {k: v.clone() for k, v in inputs.items()}
            outputs = self._bind(static_in)
            stream = torch.cuda.current_stream()
            self.context.execute_async_v3(stream.cuda_stream)  # warm-up outside capture
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=stream):
                self.context.execute_async_v3(stream.cuda_stream)
            self.graphs[bucket] = (graph, static_in, outputs)
        graph, static_in, outputs = self.graphs[bucket]
        for k, v in inputs.items():
            static_in[k].copy_(v)
        graph.replay()
        return outputs
