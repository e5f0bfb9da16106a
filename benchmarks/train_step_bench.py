"""Fine-tuning step time and peak GPU memory at the real v2 sizes (random weights, random ~5 s clips),
through the same loops `gsvd train fit` runs (`fit_sovits`, `fit_gpt`), fp32 and fp16 in one run.

    python3 -P benchmarks/train_step_bench.py --device cuda [--epochs 4] [--sovits-batch 4] [--gpt-batch 8]

Step time = median over epochs after the first (warm-up) of epoch seconds / steps per epoch.
Prints a table; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch


def _items(n: int, seconds: float, ssl_dim: int, seed: int = 0) -> list[dict]:
    from gsvd.engine.audio import linear_spectrogram

    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(n):
        frames = int(seconds * 50) + 5 * (k % 4)
        wav = (0.1 * torch.randn(frames * 640, generator=g)).clamp(-1, 1)
        spec = linear_spectrogram(wav[None])[0]
        phones = 12 * int(seconds) + k % 5
        out.append({"phones": torch.randint(1, 700, (phones,), generator=g), "bert": torch.randn(1024, phones, generator=g),
                    "ssl": torch.randn(ssl_dim, spec.shape[-1], generator=g), "spec": spec, "wav": wav,
                    "codes": torch.randint(0, 1024, (spec.shape[-1] // 2,), generator=g)})
    return out


def _step_ms(rows: list[dict], steps_per_epoch: int) -> float:
    return 1000 * statistics.median(r["seconds"] for r in rows[1:]) / steps_per_epoch


def sovits_run(device: str, batch: int, epochs: int, fp16: bool) -> dict:
    from gsvd.engine.models.sovits import SovitsDims, SynthesizerTrn
    from gsvd.engine.testing.sovits import real_sovits_config
    from gsvd.trainer.fit_sovits import SovitsFitConfig, fit_sovits

    cfg = real_sovits_config("v2")
    model = SynthesizerTrn(SovitsDims.from_config(cfg, "v2"), with_posterior=True)
    items = _items(4 * batch, 5.0, 768)
    torch.cuda.reset_peak_memory_stats() if device.startswith("cuda") else None
    with tempfile.TemporaryDirectory() as d:
        res = fit_sovits(model, items, Path(d), SovitsFitConfig(epochs=epochs, batch_size=batch, save_every=10**6,
                                                              fp16=fp16), device=device)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return {"model": "sovits v2", "batch": batch, "fp16": fp16, "step_ms": round(_step_ms(res.epoch_losses, 4), 1),
            "peak_gib": None if peak is None else round(peak, 2), "params_m": round(params, 1),
            "loss_mel_first_last": [round(res.epoch_losses[0]["loss_mel"], 2), round(res.epoch_losses[-1]["loss_mel"], 2)]}


def gpt_run(device: str, batch: int, epochs: int, fp16: bool) -> dict:
    from gsvd.engine.models.t2s import T2SDims, Text2SemanticDecoder
    from gsvd.engine.testing.gpt import real_v2_gpt_config
    from gsvd.trainer.fit_gpt import GptFitConfig, fit_gpt

    model = Text2SemanticDecoder(T2SDims.from_config(real_v2_gpt_config()))
    items = _items(4 * batch, 5.0, 8)
    torch.cuda.reset_peak_memory_stats() if device.startswith("cuda") else None
    with tempfile.TemporaryDirectory() as d:
        res = fit_gpt(model, items, Path(d), GptFitConfig(epochs=epochs, batch_size=batch, save_every=10**6, fp16=fp16),
                      device=device)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return {"model": "gpt v2", "batch": batch, "fp16": fp16, "step_ms": round(_step_ms(res.epoch_losses, 4), 1),
            "peak_gib": None if peak is None else round(peak, 2), "params_m": round(params, 1),
            "loss_first_last": [round(res.epoch_losses[0]["loss"], 3), round(res.epoch_losses[-1]["loss"], 3)]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--sovits-batch", type=int, default=4)
    ap.add_argument("--gpt-batch", type=int, default=8)
    ap.add_argument("--precisions", default="fp32,fp16")
    args = ap.parse_args()
    rows = []
    for prec in args.precisions.split(","):
        fp16 = prec == "fp16"
        rows.append(sovits_run(args.device, args.sovits_batch, args.epochs, fp16))
        rows.append(gpt_run(args.device, args.gpt_batch, args.epochs, fp16))
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    print(f"device: {gpu}, torch {torch.__version__}; 5 s clips, 4 steps per epoch, median of epochs 2..{args.epochs}")
    print("| model | batch | precision | step (ms) | peak GPU memory (GiB) | params (M) | loss first -> last epoch |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        loss = r.get("loss_mel_first_last") or r.get("loss_first_last")
        print(f"| {r['model']} | {r['batch']} | {'fp16' if r['fp16'] else 'fp32'} | {r['step_ms']} | {r['peak_gib']} | "
              f"{r['params_m']} | {loss[0]} -> {loss[1]} |")
    print(json.dumps({"device": gpu, "results": rows}))


if __name__ == "__main__":
    main()
