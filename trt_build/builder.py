"""TensorRT engine builder, written against TensorRT's Python API (tensorrt >= 10).

Imported only where used; without `tensorrt` every entry point raises TensorRTUnavailable with
the reason, and `gsvd build` reports what it skipped. Not run on the machines this project is
developed on (TensorRT's libraries come only from NVIDIA's index, which they cannot reach).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


class TensorRTUnavailable(RuntimeError):
    pass


def load_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise TensorRTUnavailable(f"tensorrt is not installed ({exc}); install it from NVIDIA's package index") from None
    return trt


@dataclass(frozen=True)
class Profile:
    """min/opt/max shape per dynamic input, e.g. {"token": ((1,1), (8,1), (64,1))}."""

    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]

    def canonical(self) -> str:
        return json.dumps({k: [list(s) for s in v] for k, v in sorted(self.shapes.items())})


def default_profiles(graph: str, dims: dict, max_batch: int) -> list[Profile]:
    """Batch buckets for decode, context/chunk lengths for the rest (dims: layers, hidden, gin, inter)."""
    L, D, gin, C = dims["layers"], dims["hidden"], dims["gin"], dims["inter"]
    ctx = (1, 512, 2048)
    if graph == "gpt_decode":
        buckets = [b for b in (1, 8, 32, 128, 256) if b <= max_batch] or [max_batch]
        return [Profile({"token": ((1, 1), (b, 1), (b, 1)), "position": ((1,), (b,), (b,)),
                         "k_cache": ((L, 1, 1, D), (L, b, ctx[1], D), (L, b, ctx[2], D)),
                         "v_cache": ((L, 1, 1, D), (L, b, ctx[1], D), (L, b, ctx[2], D)),
                         "lengths": ((1,), (b,), (b,))}) for b in buckets]
    if graph == "gpt_prefill":
        return [Profile({"phone_ids": ((1, 1), (1, 128), (1, 512)), "bert": ((1, 1024, 1), (1, 1024, 128), (1, 1024, 512)),
                         "prompt": ((1, 1), (1, 150), (1, 300))})]
    if graph == "sovits_chunk":
        return [Profile({"codes": ((1, 1, 1), (1, 1, 100), (1, 1, 1500)), "phones": ((1, 1), (1, 64), (1, 512)),
                         "ge": ((1, gin, 1), (1, gin, 1), (1, gin, 1))})]
    return [Profile({"z_p": ((1, C, 8), (min(8, max_batch), C, 64), (max_batch, C, 256)),
                     "ge": ((1, gin, 1), (min(8, max_batch), gin, 1), (max_batch, gin, 1))})]


def build_engine(onnx_path: str | Path, profiles: list[Profile], precision: str = "fp16",
                 timing_cache: str | Path | None = None, workspace_gb: float = 4.0) -> bytes:
    """Parse the ONNX file, add one optimization profile per entry, build a serialized engine."""
    trt = load_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "bf16":
        config.set_flag(trt.BuilderFlag.BF16)
    cache_bytes = Path(timing_cache).read_bytes() if timing_cache and Path(timing_cache).is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    for prof in profiles:
        p = builder.create_optimization_profile()
        for name, (lo, opt, hi) in prof.shapes.items():
            p.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(p)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine for {onnx_path}")
    if timing_cache:
        Path(timing_cache).write_bytes(bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)
