"""`small_linear` launch configurations for the decode step's GEMM shapes, timed inside CUDA graphs (GPU).

    python3 -P benchmarks/linear_configs_bench.py [--rows 1,16]

For each weight shape of the real v2 GPT step (qkv 1536x512, out 512x512, ffn1 2048x512 + ReLU,
ffn2 512x2048, output 1025x512) and each configuration (split-K factor, N block, K block, warps), one
graph replays 96 launches cycling over 96 distinct weights (more bytes than the L2 cache holds, as in
the real step where every layer has its own). Reported: microseconds per launch, and cuBLAS (`addmm`)
in the same graphs as the baseline. Last line: one JSON object with the best configuration per shape.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

SHAPES = {"qkv": (1536, 512), "out": (512, 512), "ffn1": (2048, 512), "ffn2": (512, 2048), "head": (1025, 512)}
COPIES = 96


def _time_graph(fn, reps: int = 20) -> float:
    """Capture fn() (COPIES launches) in a graph, replay; -> us per launch."""
    from profile_decode_step import _replay_ms

    from gsvd.engine.runtime.cuda_graphs import capture

    graph, _ = capture(fn, ())
    graph.replay()
    return _replay_ms(graph, reps) * 1000 / COPIES


def _configs(relu: bool, k: int):
    for splits, block_n, block_k, warps in itertools.product([1] if relu else [1, 2, 4, 8, 16], (16, 32, 64),
                                                              (128, 256, 512), (2, 4, 8)):
        if k // splits >= 64 and block_k <= max(16, k // splits) * 2:
            yield dict(splits=splits, block_n=block_n, block_k=block_k, num_warps=warps)


def bench_shape(name: str, n: int, k: int, rows: int, g: torch.Generator) -> dict[str, float]:
    """-> us per launch of cuBLAS and of every configuration that compiles and is right."""
    from gsvd.engine.runtime import decode_kernels as dk

    ws = [torch.randn(n, k, device="cuda", generator=g).half() * 0.05 for _ in range(COPIES)]
    bias = torch.randn(n, device="cuda", generator=g).half()
    x = torch.randn(rows, k, device="cuda", generator=g).half()
    relu = name == "ffn1"
    ref = torch.nn.functional.linear(x, ws[0], bias).float()
    ref = ref.relu() if relu else ref
    times = {"cublas": _time_graph(lambda: [torch.addmm(bias, x, w.t()) for w in ws])}

    def launch(w, kw):
        if kw["splits"] > 1:
            return dk.small_linear(x, w, **kw)
        return dk.small_linear(x, w, bias, relu, **kw)

    for kw in _configs(relu, k):
        try:
            got = launch(ws[0], kw)
            got = got.sum(0) + bias.float() if kw["splits"] > 1 else got.float()
            err = (got - ref).abs().max().item()
            if err > 5e-2:
                print(f"{name} {kw}: wrong result (max abs diff {err:.3g}); skipped")
                continue
            us = _time_graph(lambda kw=kw: [launch(w, kw) for w in ws])
        except Exception as exc:  # a configuration that does not compile (e.g. too many registers)
            print(f"{name} {kw}: {type(exc).__name__}: {str(exc)[:120]}")
            continue
        times["s{splits}_n{block_n}_k{block_k}_w{num_warps}".format(**kw)] = us
    return times


def main() -> None:
    from gsvd.engine.runtime import decode_kernels as dk

    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="1,16")
    args = ap.parse_args()
    result = {"gpu": torch.cuda.get_device_name(), "rows": {}}
    g = torch.Generator(device="cuda").manual_seed(0)
    for rows in [int(r) for r in args.rows.split(",")]:
        best = {}
        for name, (n, k) in SHAPES.items():
            times = bench_shape(name, n, k, rows, g)
            torch.cuda.empty_cache()
            ranked = sorted(times.items(), key=lambda kv: kv[1])
            splits = 1 if name in ("ffn1", "head") else dk.default_splits(k)
            dflt = f"s{splits}_n16_k{min(128, k // splits)}_w2" if splits > 1 else "s1_n16_k256_w4"
            best[name] = {"best": ranked[0][0], "best_us": ranked[0][1], "cublas_us": times["cublas"],
                          "default": dflt, "default_us": times.get(dflt), "top": ranked[:6]}
            print(f"rows {rows} {name} {n}x{k}: cuBLAS {times['cublas']:.2f} us; default {dflt} {times.get(dflt)}; "
                  "best: " + ", ".join(f"{key} {us:.2f}" for key, us in ranked[:6]), flush=True)
        result["rows"][rows] = best
    print(json.dumps(result))


if __name__ == "__main__":
    main()
