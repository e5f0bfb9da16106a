"""Real v2 sizes (random weights): export the four graphs to ONNX (fp32), run them with onnxruntime
on the CPU and compare with the torch modules on CUDA (fp32). Run on the GPU machine:

    python3 -P benchmarks/onnx_gpu_parity.py
Prints a table and ends with one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import onnxruntime as ort
    from gpu_engine_check import _models

    from gsvd.trt_build.export import SPECS, example_inputs, export_graph, wrapper
    from gsvd.trt_build.verify import SIZES

    gpt, sov = _models()
    out = Path(os.environ.get("OUT") or tempfile.mkdtemp())
    rows = []
    for name in SPECS:
        t0 = time.perf_counter()
        path = export_graph(name, gpt, sov, Path(tempfile.mkdtemp()) / f"{name}.onnx", "fp32")
        export_s = time.perf_counter() - t0
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        module = wrapper(name, gpt, sov).to("cuda")
        for size in SIZES:
            args = example_inputs(name, gpt, sov, torch.float32, sizes=size)
            with torch.no_grad():
                ref = module(*[a.cuda() for a in args])
            ref = (ref,) if isinstance(ref, torch.Tensor) else ref
            got = session.run(list(SPECS[name].outputs), {k: a.numpy() for k, a in zip(SPECS[name].inputs, args, strict=True)})
            abs_err = max(float(np.abs(g - r.float().cpu().numpy()).max()) for g, r in zip(got, ref, strict=True))
            rel_err = max(float(np.abs(g - r.float().cpu().numpy()).max() / (r.abs().max().item() + 1e-12))
                          for g, r in zip(got, ref, strict=True))
            rows.append({"graph": name, "sizes": size, "max_abs": abs_err, "max_rel": rel_err, "export_s": export_s,
                         "onnx_mb": path.stat().st_size / 1e6})
        module.to("cpu")
    print(f"{'graph':13s} {'sizes':60s} {'max abs':>9s} {'max rel':>9s}")
    for r in rows:
        print(f"{r['graph']:13s} {json.dumps(r['sizes']):60s} {r['max_abs']:9.2e} {r['max_rel']:9.2e}")
    result = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "onnxruntime": ort.__version__,
              "rows": rows}
    (out / "onnx_gpu_parity.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
