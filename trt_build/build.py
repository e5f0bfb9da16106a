"""`gsvd build VOICE`: ONNX export + verification, then TensorRT engines when TensorRT is present.

`build_voice(bundle_dir, precision, max_batch)` -> BuildReport saying exactly what ran and what
was skipped (and why).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from gsvd.trt_build.export import SPECS, export_all
from gsvd.trt_build.verify import check_graph


@dataclass
class BuildReport:
    onnx_dir: Path
    exported: list[str] = field(default_factory=list)
    parity: list[dict] = field(default_factory=list)
    engines: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def build_voice(bundle_dir: str | Path, precision: str = "fp16", max_batch: int = 64, verify: bool = True,
                trt_precision: str | None = None) -> BuildReport:
    from gsvd.engine.bundle import load_bundle

    bundle = load_bundle(Path(bundle_dir))
    gpt, sovits = bundle.build_gpt(device="cpu"), bundle.build_sovits(device="cpu")
    out = Path(bundle.path) / "onnx"
    report = BuildReport(out)
    for prec in dict.fromkeys(("fp32", precision if precision in ("fp32", "fp16") else "fp16")):
        manifest = export_all(gpt, sovits, out, prec)
        report.exported += [str(out / g["path"]) for g in manifest["graphs"].values()]
        if verify:
            for name, info in manifest["graphs"].items():
                for p in check_graph(name, out / info["path"], gpt, sovits):
                    report.parity.append({"graph": name, "precision": prec, "sizes": p.sizes,
                                          "max_abs": p.max_abs, "max_rel": p.max_rel})
    _build_engines(bundle, gpt, sovits, out, trt_precision or precision, max_batch, report)
    return report


def _build_engines(bundle, gpt, sovits, onnx_dir: Path, precision: str, max_batch: int, report: BuildReport) -> None:
    from gsvd.trt_build.builder import TensorRTUnavailable, build_engine, default_profiles, load_tensorrt
    from gsvd.trt_build.cache import EngineKey, file_sha256, is_fresh, write_engine

    try:
        trt = load_tensorrt()
        import torch

        if not torch.cuda.is_available():
            raise TensorRTUnavailable("no CUDA GPU visible")
    except TensorRTUnavailable as exc:
        report.skipped.append(f"TensorRT engines for {', '.join(SPECS)}: {exc}")
        return
    gpu = torch.cuda.get_device_name(0)
    cc = "{}.{}".format(*torch.cuda.get_device_capability(0))
    dims = {"layers": gpt.dims.n_layer, "hidden": gpt.dims.hidden_dim, "gin": sovits.dims.gin_channels,
            "inter": sovits.dims.inter_channels}
    for name in SPECS:
        onnx_path = onnx_dir / f"{name}.fp32.onnx"
        profiles = default_profiles(name, dims, max_batch)
        key = EngineKey(name, file_sha256(onnx_path), gpu, cc, trt.__version__, precision,
                        json.dumps([p.canonical() for p in profiles]))
        if is_fresh(bundle.path, key)[0]:
            report.engines.append(f"{name}: up to date")
            continue
        data = build_engine(onnx_path, profiles, precision, timing_cache=onnx_dir / "timing.cache")
        report.engines.append(str(write_engine(bundle.path, key, data)))
