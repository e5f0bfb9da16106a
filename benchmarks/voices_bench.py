"""Many fine-tuned voices on one GPU: load time per model, GPU memory, cold start to first audio, and first audio /
underruns under a load mixed across all of them (real v2 sizes, random weights: every sentence runs to the token
cap, 75 tokens = 3 s of audio).

    PYTHONPATH=. python3 -P benchmarks/voices_bench.py [--models 20] [--baseline .device/baseline --baseline-models 2]
    .venv/bin/python benchmarks/voices_bench.py --device cpu --size tiny --models 3 --rounds 2 --streams 4  # smoke

The parent writes N voice bundles of distinct models (one real-size random model, each copy's weights shifted by
its own offset, so every model has its own weights and model id), then measures each tree in a subprocess of its
own (`python -P` with that tree first on PYTHONPATH; `--baseline DIR`: another checkout, e.g. today's main, measured
the same way in the same run). A measurement uses only `Engine(...)`, `load_voice` and `stream` (and, where the tree
has them, `Engine.ready` to wait for background graph captures and `Engine.evict_voice`), so it runs on either tree:

1. cold start: from the subprocess's start to the first audio of one sentence of the first voice, loaded just before
   (imports, engine, model load and the request included);
2. one resident model: first audio p50/p95 of 1 stream (`--rounds` rounds) and of `--streams` streams at once
   (three rounds), after its graphs are ready;
3. the other models loaded one by one: wall time of each `load_voice`, GPU memory allocated / reserved after each;
4. all resident: the same two levels, the 1-stream rounds turning over the voices and the streams spread across
   them (stream i on voice i mod N); underruns counted as in runtime_bench (a chunk after the audio before it had
   played, playback from the first chunk);
5. where the tree can evict: a voice evicted to host memory, then one request on it: its first audio (the weights'
   return included) and the runtime's own comeback time.

Last line: one JSON object (each tree's results; for the baseline the ratios of the headline numbers).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


# ----------------------------------------------------------------------------------------------- bundles (parent)


def make_bundles(root: Path, n: int, size: str = "real") -> list[Path]:
    """n voice bundles of distinct real-size v2 models: one random model, copy k with every float weight shifted by
    k * 1e-4 (GPT stored in fp16, as upstream's); `size` tiny: tiny random models of seeds 0..n-1 (a smoke test)."""
    import torch

    if size == "tiny":
        from gsvd.engine.testing.bundle import write_tiny_voice

        return [write_tiny_voice(root, f"v{k:02d}", seed=k) for k in range(n)]

    sys.path.insert(0, str(HERE))
    from gpu_engine_check import _models

    from gsvd.engine.bundle import ReferenceCache, write_bundle
    from gsvd.engine.testing.gpt import real_v2_gpt_config
    from gsvd.engine.testing.sovits import real_sovits_config

    gpt, sov = _models()
    gpt_state, sov_state = gpt.state_dict(), sov.state_dict()
    g = torch.Generator().manual_seed(0)
    ref = ReferenceCache(prompt_tokens=torch.randint(0, 1024, (150,), generator=g),
                         spec=torch.rand(1025, 300, generator=g), phone_ids=torch.randint(0, 732, (40,), generator=g),
                         bert=torch.zeros(1024, 40), norm_text="参考。")
    out = []
    for k in range(n):
        shift = lambda t, k=k: t + k * 1e-4 if t.is_floating_point() else t  # noqa: E731
        path = root / f"v{k:02d}"
        write_bundle(path, name=path.name, version="v2",
                     gpt_state={key: shift(t).half() if t.is_floating_point() else t for key, t in gpt_state.items()},
                     gpt_config=real_v2_gpt_config(), sovits_state={key: shift(t) for key, t in sov_state.items()},
                     sovits_config=real_sovits_config("v2"), reference=ref, reference_text="参考。",
                     reference_language="zh")
        out.append(path)
        print(f"bundle {k + 1}/{n} written", file=sys.stderr, flush=True)
    return out


# --------------------------------------------------------------------------------------- measurement (subprocess)


def _gpu(device: str) -> dict:
    import torch

    if not device.startswith("cuda"):
        return {}
    return {"allocated_gib": torch.cuda.memory_allocated() / 2**30, "reserved_gib": torch.cuda.memory_reserved() / 2**30}


def _percentiles(ms: list[float]) -> dict:
    ms = sorted(ms)
    return {"p50_ms": statistics.median(ms), "p95_ms": ms[math.ceil(0.95 * len(ms)) - 1], "n": len(ms)}


def _level(engine, voices: list[str], n: int, rounds: int, tokens: int, offset: int) -> dict:
    """`rounds` rounds of n streams at once, stream i on voice i mod len(voices) (the rounds of one stream turn over
    the voices) -> first audio p50/p95, underruns, RTF p50."""
    from runtime_bench import measure, run_callers

    results = []
    for r in range(rounds):
        lock, got = threading.Lock(), []

        def one(i: int, _start: float, r=r, got=got, lock=lock) -> None:
            k = offset + r * n + i
            res = measure(engine, k, tokens, voice=voices[k % len(voices)])
            with lock:
                got.append(res)

        run_callers(n, one)
        results += got
    first = _percentiles([1000 * x["ttfa"] for x in results])
    return {"streams": n, "rounds": rounds, "ttfa_p50_ms": first["p50_ms"], "ttfa_p95_ms": first["p95_ms"],
            "underruns": sum(x["underrun"] for x in results), "requests": len(results),
            "rtf_p50": statistics.median(x["rtf"] for x in results)}


def _ready(engine) -> float:
    """Wait for the engine's background graph captures, where it has them -> seconds waited."""
    t0 = time.perf_counter()
    if hasattr(engine, "ready"):
        engine.ready()
    return time.perf_counter() - t0


def _triton_files(folder: str) -> int:
    return sum(len(files) for _, _, files in os.walk(folder)) if folder and os.path.isdir(folder) else 0


def measure_tree(args) -> dict:
    """What one tree does with the bundles (see the module doc); runs in the subprocess of that tree."""
    spawned = args.spawned  # time.time() when the parent started this process
    import torch

    from gsvd.engine import Engine

    bundles = sorted(Path(args.voices).iterdir())[: args.models]
    try:  # trees from before issue 23 have no RuntimeConfig (and no kernel-cache setting)
        from gsvd.engine.settings import RuntimeConfig

        kernels = RuntimeConfig.load().triton_cache if "triton_cache" in RuntimeConfig.names() else ""
    except ImportError:
        kernels = ""
    files_before = _triton_files(kernels)
    out: dict = {"tree": str(Path(sys.modules["gsvd"].__file__).resolve().parent.parent), "models": len(bundles)}
    engine = Engine(device=args.device, max_streams=args.streams, queue_limit=1024)
    try:
        t0 = time.perf_counter()
        first = engine.load_voice(bundles[0]).name
        loads = [{"model": 0, "load_s": time.perf_counter() - t0, **_gpu(args.device)}]
        from runtime_bench import measure

        cold = measure(engine, 0, args.tokens, voice=first)
        out["cold_start_to_first_audio_s"] = cold["start"] + cold["ttfa"] - (time.perf_counter() - time.time()) - spawned
        out["first_model_first_audio_ms"] = 1000 * cold["ttfa"]
        out["graphs_ready_first_model_s"] = _ready(engine)
        out["one_model"] = {"1": _level(engine, [first], 1, args.rounds, args.tokens, 1),
                            str(args.streams): _level(engine, [first], args.streams, 3, args.tokens, 1000)}
        voices = [first]
        for k, path in enumerate(bundles[1:], start=1):
            t0 = time.perf_counter()
            voices.append(engine.load_voice(path).name)
            loads.append({"model": k, "load_s": time.perf_counter() - t0, **_gpu(args.device)})
            print(f"model {k + 1}: {loads[-1]}", file=sys.stderr, flush=True)
        out["loads"] = loads
        out["graphs_ready_all_models_s"] = _ready(engine)
        out["all_models"] = {"1": _level(engine, voices, 1, max(args.rounds, len(voices)), args.tokens, 5000),
                             str(args.streams): _level(engine, voices, args.streams, 3, args.tokens, 9000)}
        if hasattr(engine, "evict_voice") and len(voices) > 1:
            comebacks = []
            for k in range(3):
                name = voices[k % (len(voices) - 1)]
                if engine.evict_voice(name):
                    r = measure(engine, 20000 + k, args.tokens, voice=name)
                    comebacks.append({"first_audio_ms": 1000 * r["ttfa"],
                                      "weights_back_ms": engine.stats().get("last_comeback_ms")})
            out["comebacks"] = comebacks
        out["stats"] = engine.stats()
        out["gpu"] = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "none (CPU)"
        out["triton_cache"] = {"folder": kernels, "files_before": files_before, "files_after": _triton_files(kernels)}
    finally:
        engine.close()
    return out


# -------------------------------------------------------------------------------------------------- driver


def _child(tree: Path, args, voices: Path, models: int) -> dict:
    """This script's measurement in a fresh process with `tree` first on the import path."""
    keep = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != ROOT
            and p != "."]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(HERE), *keep])}
    cmd = [sys.executable, "-P", str(Path(__file__).resolve()), "--measure", "--voices", str(voices), "--models",
           str(models), "--device", args.device, "--streams", str(args.streams), "--rounds", str(args.rounds),
           "--tokens", str(args.tokens), "--spawned", repr(time.time())]
    proc = subprocess.run(cmd, env=env, cwd=str(tree), stdout=subprocess.PIPE, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"tree": str(tree), "error": f"exit status {proc.returncode}"}
    return json.loads(lines[-1][len("RESULT "):])


def _row(name: str, r: dict, streams: int) -> str:
    if "error" in r:
        return f"{name}: {r['error']}"
    loads = [x["load_s"] for x in r["loads"]]
    mem = r["loads"][-1].get("allocated_gib"), r["loads"][-1].get("reserved_gib")
    one, all_ = r["one_model"], r["all_models"]
    s = str(streams)
    return (f"{name}: {r['models']} models; load first {loads[0]:.1f} s, further p50 "
            f"{statistics.median(loads[1:]) if len(loads) > 1 else float('nan'):.1f} s (max "
            f"{max(loads[1:], default=float('nan')):.1f}); GPU memory after all {mem[0]} / {mem[1]} GiB "
            f"(allocated / reserved); cold start to first audio {r['cold_start_to_first_audio_s']:.1f} s; "
            f"first audio 1 stream {one['1']['ttfa_p50_ms']:.1f} -> {all_['1']['ttfa_p50_ms']:.1f} ms p50, "
            f"{s} streams {one[s]['ttfa_p95_ms']:.1f} -> {all_[s]['ttfa_p95_ms']:.1f} ms p95 (1 model -> all), "
            f"underruns {one[s]['underruns']} / {all_[s]['underruns']}; graphs ready {r['graphs_ready_first_model_s']:.1f}"
            f" s after the first load, {r['graphs_ready_all_models_s']:.1f} s after the last; comebacks "
            f"{r.get('comebacks', 'n/a')}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=20)
    ap.add_argument("--streams", type=int, default=64, help="streams at once in the mixed level (and KV slots)")
    ap.add_argument("--rounds", type=int, default=20, help="rounds of the 1-stream levels")
    ap.add_argument("--tokens", type=int, default=75)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", default="real", choices=("real", "tiny"), help="tiny: tiny random models (smoke test)")
    ap.add_argument("--baseline", default="", help="another checkout measured the same way in this run")
    ap.add_argument("--baseline-models", type=int, default=2, help="models the baseline loads (today's main holds "
                    "8.5 GiB and ~45 s of graph capture per model)")
    ap.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--voices", default="", help=argparse.SUPPRESS)
    ap.add_argument("--spawned", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    import logging

    logging.disable(logging.WARNING)
    if args.measure:
        print("RESULT " + json.dumps(measure_tree(args)), flush=True)
        return
    folder = Path(tempfile.mkdtemp(prefix="voices_bench_"))
    make_bundles(folder, max(args.models, args.baseline_models if args.baseline else 0), args.size)
    result = {"streams": args.streams, "tokens": args.tokens, "new": _child(ROOT, args, folder, args.models)}
    print(_row("this tree", result["new"], args.streams), flush=True)
    if args.baseline:
        base = _child(Path(args.baseline).resolve(), args, folder, args.baseline_models)
        result["baseline"] = base
        print(_row("baseline", base, args.streams), flush=True)
        new = result["new"]
        if "error" not in base and "error" not in new:
            s = str(args.streams)
            result["new_over_baseline"] = {
                "first_load_s": new["loads"][0]["load_s"] / base["loads"][0]["load_s"],
                "second_load_s": (new["loads"][1]["load_s"] / base["loads"][1]["load_s"]
                                  if len(new["loads"]) > 1 and len(base["loads"]) > 1 else None),
                "cold_start_s": new["cold_start_to_first_audio_s"] / base["cold_start_to_first_audio_s"],
                "ttfa_p50_1_stream_one_model": new["one_model"]["1"]["ttfa_p50_ms"] / base["one_model"]["1"]["ttfa_p50_ms"],
                f"ttfa_p95_{s}_streams_one_model": (new["one_model"][s]["ttfa_p95_ms"]
                                                    / base["one_model"][s]["ttfa_p95_ms"]),
            }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
