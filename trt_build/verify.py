"""Check exported graphs: onnx.checker, then onnxruntime (CPU) against the torch modules at several
dynamic sizes; reports max absolute and relative error per output."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gsvd.trt_build.export import SPECS, example_inputs, wrapper

SIZES = [{}, {"phones": 31, "prompt": 4, "batch": 3, "context": 17, "tokens": 9, "frames": 12},
         {"phones": 5, "prompt": 40, "batch": 1, "context": 64, "tokens": 41, "frames": 50}]


@dataclass
class Parity:
    graph: str
    sizes: dict
    max_abs: float
    max_rel: float


def check_graph(name: str, path: Path, gpt, sovits, sizes: list[dict] = SIZES, device: str = "cpu") -> list[Parity]:
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    spec = SPECS[name]
    module = wrapper(name, gpt, sovits).to(device)
    dtype = next(module.parameters()).dtype
    results = []
    for size in sizes:
        args = example_inputs(name, gpt, sovits, torch.float32, sizes=size)
        feeds = {k: (a.numpy().astype(np.float16) if a.is_floating_point() and _is_half(session, k) else a.numpy())
                 for k, a in zip(spec.inputs, args, strict=True)}
        with torch.no_grad():
            ref = module(*[a.to(device, dtype) if a.is_floating_point() else a.to(device) for a in args])
        outs = session.run(list(spec.outputs), feeds)
        if isinstance(ref, torch.Tensor):
            ref = (ref,)
        abs_err, rel_err = 0.0, 0.0
        for o, r in zip(outs, ref, strict=True):
            r = r.float().cpu().numpy()
            diff = np.abs(o.astype(np.float32) - r)
            abs_err = max(abs_err, float(diff.max()))
            rel_err = max(rel_err, float(diff.max() / (np.abs(r).max() + 1e-12)))
        results.append(Parity(name, size, abs_err, rel_err))
    return results


def _is_half(session, name: str) -> bool:
    return any(i.name == name and i.type == "tensor(float16)" for i in session.get_inputs())
