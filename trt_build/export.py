"""ONNX export of the four graphs (opset 17, named inputs/outputs, dynamic axes), fp32 or fp16.

`export_all(gpt, sovits, out_dir, precision)` writes gpt_prefill.onnx, gpt_decode.onnx,
sovits_chunk.onnx, vocoder.onnx and manifest.json (opset, inputs/outputs, dynamic axes,
precision, model hashes) atomically (temp dir + rename per file).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from gsvd.atomic import create_temp_beside
from gsvd.trt_build.graphs import GptDecodeStep, GptPrefill, SovitsChunk, Vocoder

OPSET = 17


@dataclass(frozen=True)
class GraphSpec:
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic_axes: dict


SPECS = {
    "gpt_prefill": GraphSpec("gpt_prefill", ("phone_ids", "bert", "prompt"), ("logits", "k_cache", "v_cache"),
                             {"phone_ids": {1: "phones"}, "bert": {2: "phones"}, "prompt": {1: "prompt"},
                              "k_cache": {2: "context"}, "v_cache": {2: "context"}}),
    "gpt_decode": GraphSpec("gpt_decode", ("token", "position", "k_cache", "v_cache", "lengths"),
                            ("logits", "new_k", "new_v"),
                            {"token": {0: "batch"}, "position": {0: "batch"}, "k_cache": {1: "batch", 2: "context"},
                             "v_cache": {1: "batch", 2: "context"}, "lengths": {0: "batch"}, "logits": {0: "batch"},
                             "new_k": {1: "batch"}, "new_v": {1: "batch"}}),
    "sovits_chunk": GraphSpec("sovits_chunk", ("codes", "phones", "ge"), ("m_p", "logs_p"),
                              {"codes": {2: "tokens"}, "phones": {1: "phones"}, "m_p": {2: "frames"},
                               "logs_p": {2: "frames"}}),
    "vocoder": GraphSpec("vocoder", ("z_p", "ge"), ("pcm",),
                         {"z_p": {0: "batch", 2: "frames"}, "ge": {0: "batch"}, "pcm": {0: "batch", 2: "samples"}}),
}


def example_inputs(name: str, gpt, sovits, dtype: torch.dtype = torch.float32, device="cpu", sizes: dict | None = None):
    """Random inputs of the right shapes (sizes: phones, prompt, batch, context, tokens, frames)."""
    s = {"phones": 12, "prompt": 9, "batch": 2, "context": 10, "tokens": 20, "frames": 30, **(sizes or {})}
    g = torch.Generator().manual_seed(0)
    if name == "gpt_prefill":
        return (torch.randint(0, gpt.dims.phoneme_vocab_size, (1, s["phones"]), generator=g),
                torch.randn(1, 1024, s["phones"], generator=g).to(dtype),
                torch.randint(0, 1024, (1, s["prompt"]), generator=g))
    if name == "gpt_decode":
        layers, d, b, t = gpt.dims.n_layer, gpt.dims.hidden_dim, s["batch"], s["context"]
        return (torch.randint(0, 1024, (b, 1), generator=g), torch.randint(0, 100, (b,), generator=g),
                torch.randn(layers, b, t, d, generator=g).to(dtype), torch.randn(layers, b, t, d, generator=g).to(dtype),
                torch.randint(1, t + 1, (b,), generator=g))
    gin = sovits.dims.gin_channels
    if name == "sovits_chunk":
        return (torch.randint(0, 1024, (1, 1, s["tokens"]), generator=g),
                torch.randint(0, sovits.dims.n_symbols, (1, s["phones"]), generator=g),
                torch.randn(1, gin, 1, generator=g).to(dtype))
    return (torch.randn(s["batch"], sovits.dims.inter_channels, s["frames"], generator=g).to(dtype),
            torch.randn(s["batch"], gin, 1, generator=g).to(dtype))


_WRAPPERS = {"gpt_prefill": GptPrefill, "gpt_decode": GptDecodeStep, "sovits_chunk": SovitsChunk, "vocoder": Vocoder}


def wrapper(name: str, gpt, sovits) -> torch.nn.Module:
    return _WRAPPERS[name](gpt if name.startswith("gpt") else sovits)


def export_graph(name: str, gpt, sovits, path: Path, precision: str = "fp32") -> Path:
    dtype = torch.float16 if precision == "fp16" else torch.float32
    g, s = (copy.deepcopy(gpt).to(dtype).eval(), copy.deepcopy(sovits).to(dtype).eval())
    module = wrapper(name, g, s)
    spec = SPECS[name]
    args = example_inputs(name, g, s, dtype)
    fd, tmp = create_temp_beside(path)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, tmp, input_names=list(spec.inputs), output_names=list(spec.outputs),
                              dynamic_axes=spec.dynamic_axes, opset_version=OPSET, dynamo=False)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def state_hash(*modules: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for m in modules:
        for k, v in sorted(m.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().to(torch.float32).cpu().numpy().tobytes())
    return h.hexdigest()


def export_all(gpt, sovits, out_dir: str | Path, precision: str = "fp32") -> dict:
    """Export every graph and write manifest.json; returns the manifest."""
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision must be fp32 or fp16; got {precision!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, spec in SPECS.items():
        path = export_graph(name, gpt, sovits, out / f"{name}.{precision}.onnx", precision)
        files[name] = {"path": path.name, "inputs": list(spec.inputs), "outputs": list(spec.outputs),
                       "dynamic_axes": {k: {str(a): n for a, n in v.items()} for k, v in spec.dynamic_axes.items()}}
    manifest = {"opset": OPSET, "precision": precision, "model_hash": state_hash(gpt, sovits),
                "torch": torch.__version__, "graphs": files}
    tmp = out / f".manifest.{precision}.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / f"manifest.{precision}.json")
    return manifest
