"""The runtime's TensorRT backend choice, made once when a voice's model is loaded.

`TensorRTBackend(bundle, mode)` is what the engine hands to `Runtime.add_model` (a `seams.StepBackend`);
called with the model, its KV cache and device it returns `select_decoder`'s `(decoder, reason)`: a
`TrtDecoder` when a fresh `gpt_decode` engine for this GPU and TensorRT version sits in the bundle, else
`(None, reason)` so the runtime keeps its torch backend and logs why. `mode` is the `backend` setting:
`torch` never uses engines, `tensorrt` makes a missing/stale engine an error, `auto` (default) uses engines
when they are fresh.

An engine is fresh when its sidecar records the sha256 of the bundle's current
`onnx/gpt_decode.fp32.onnx`, this GPU's name and compute capability and this TensorRT's
version (the builder writes that sidecar; see `cache.py`).

`TrtDecoder` is a `seams.DecodeStep` (tokens -> logits; the runtime samples around it): it gathers each stream's K/V
rows, runs the engine (`TrtGraph`: torch buffers, `execute_async_v3` on torch's stream,
a CUDA graph per shape bucket) and writes the new rows back at each stream's length.
Written against TensorRT 10's documented API; not run here (TensorRT cannot be
installed on this project's machines).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from gsvd.engine.errors import GsvdError
from gsvd.engine.settings import BACKENDS, variable

GRAPH = "gpt_decode"
CONTEXT_BUCKET = 64  # gathered context rounded up to this many rows (fewer engine shapes, fewer graphs)


class BackendUnavailable(GsvdError, RuntimeError):
    """backend=tensorrt was asked for and the engine cannot be used."""


def find_engine(bundle: str | Path, gpu_name: str, compute_capability: str, trt_version: str,
                graph: str = GRAPH) -> tuple[Path | None, str]:
    """(engine path, "fresh") or (None, why not) for this GPU and TensorRT version."""
    from gsvd.trt_build.cache import file_sha256

    bundle = Path(bundle)
    onnx = bundle / "onnx" / f"{graph}.fp32.onnx"
    root = bundle / "engines"
    if not root.is_dir():
        return None, f"no engines in {bundle.name} (run `gsvd build {bundle.name}` where TensorRT is installed)"
    sidecars = sorted(root.glob(f"*/{graph}.*.json"))
    if not sidecars:
        return None, f"no {graph} engine in {root}"
    mine = [(p, _read(p)) for p in sidecars]
    mine = [(p, m) for p, m in mine if m.get("gpu_name") == gpu_name and m.get("compute_capability") == compute_capability]
    if not mine:
        return None, f"no {graph} engine built for {gpu_name} (sm {compute_capability})"
    mine = [(p, m) for p, m in mine if m.get("trt_version") == trt_version]
    if not mine:
        return None, f"stale: {graph} engines were built with another TensorRT version than {trt_version}"
    if not onnx.is_file():
        return None, f"stale: {onnx} is gone, so the engine cannot be checked against the model"
    sha = file_sha256(onnx)
    for side, meta in mine:
        plan = side.with_suffix(".plan")
        if meta.get("onnx_sha256") == sha and plan.is_file():
            return plan, "fresh"
    return None, f"stale: the {graph} engine was built from another export of the model (run `gsvd build` again)"


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


class TensorRTBackend:
    """The engine's choice of decode step for one bundle (`seams.StepBackend`), given to `Runtime.add_model`."""

    def __init__(self, bundle: str | Path | None, mode: str = "auto") -> None:
        self.bundle, self.mode = bundle, mode

    def __call__(self, gpt, cache, device: torch.device) -> tuple[TrtDecoder | None, str]:
        return select_decoder(self.bundle, gpt, cache, device, self.mode)


def select_decoder(bundle: str | Path | None, gpt, cache, device: torch.device,
                   mode: str = "auto") -> tuple[TrtDecoder | None, str]:
    if mode not in BACKENDS:
        raise BackendUnavailable(f"{variable('backend')} must be auto, torch or tensorrt, not {mode!r}")
    decoder, reason = _try(bundle, gpt, cache, device, mode)
    if decoder is None and mode == "tensorrt":
        raise BackendUnavailable(f"{variable('backend')}=tensorrt but the TensorRT engine cannot be used: {reason}")
    return decoder, reason


def _try(bundle, gpt, cache, device: torch.device, mode: str) -> tuple[TrtDecoder | None, str]:
    if mode == "torch":
        return None, f"{variable('backend')}=torch"
    if bundle is None:
        return None, "no bundle path (model added without one)"
    if device.type != "cuda":
        return None, "TensorRT needs a CUDA device"
    from gsvd.trt_build.builder import TensorRTUnavailable, load_tensorrt

    try:
        trt = load_tensorrt()
    except TensorRTUnavailable as exc:
        return None, str(exc)
    idx = device.index or 0
    cc = "{}.{}".format(*torch.cuda.get_device_capability(idx))
    plan, reason = find_engine(bundle, torch.cuda.get_device_name(idx), cc, trt.__version__)
    if plan is None:
        return None, reason
    from gsvd.trt_build.backend import TrtGraph

    try:
        graph = TrtGraph(plan.read_bytes(), _output_shapes(gpt))
    except (RuntimeError, TensorRTUnavailable) as exc:
        return None, f"engine {plan.name} did not load: {exc}"
    return TrtDecoder(graph, cache, _engine_dtypes(graph)), f"TensorRT engine {plan.name}"


def _output_shapes(gpt):
    layers, hidden, vocab = gpt.dims.n_layer, gpt.dims.hidden_dim, gpt.dims.vocab_size

    def shapes(inputs: dict) -> dict:
        b = inputs["token"][0]
        return {"logits": ((b, vocab), torch.float32), "new_k": ((layers, b, 1, hidden), torch.float32),
                "new_v": ((layers, b, 1, hidden), torch.float32)}

    return shapes


def _engine_dtypes(graph) -> dict[str, torch.dtype]:
    """Input dtypes as the engine declares them (fp32 I/O when built from the fp32 export)."""
    trt = graph.trt
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int64: torch.int64, trt.int32: torch.int32}
    if hasattr(trt, "bfloat16"):
        table[trt.bfloat16] = torch.bfloat16
    names = ("token", "position", "k_cache", "v_cache", "lengths")
    return {n: table.get(graph.engine.get_tensor_dtype(n), torch.float32) for n in names}


class TrtDecoder:
    """A `seams.DecodeStep`: tokens [n] (on the device) at positions, K/V at each slot's length -> logits
    [n, vocab] (fp32)."""

    def __init__(self, graph, cache, dtypes: dict[str, torch.dtype]) -> None:
        self.graph, self.cache, self.dtypes = graph, cache, dtypes

    def __call__(self, tokens: torch.Tensor, positions: list[int], slots: list[int], lengths: list[int]) -> torch.Tensor:
        k_all, v_all = self.cache.k_all, self.cache.v_all  # [L, slots, T, D]
        dev = k_all.device
        context = -(-max(max(lengths), 1) // CONTEXT_BUCKET) * CONTEXT_BUCKET
        context = min(context, k_all.shape[2])
        s = torch.tensor(slots, device=dev)
        lens = torch.tensor(lengths, device=dev)
        d = self.dtypes
        out = self.graph(
            token=tokens.to(dev).view(-1, 1).to(d["token"]),
            position=torch.tensor(positions, device=dev).to(d["position"]),
            k_cache=k_all[:, s, :context].to(d["k_cache"]),
            v_cache=v_all[:, s, :context].to(d["v_cache"]),
            lengths=lens.to(d["lengths"]),
        )
        k_all[:, s, lens] = out["new_k"][:, :, 0].to(k_all.dtype)
        v_all[:, s, lens] = out["new_v"][:, :, 0].to(v_all.dtype)
        return out["logits"].float()
