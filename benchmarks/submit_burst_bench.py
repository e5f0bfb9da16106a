"""N callers start `Engine.stream` at once: when is each request in the runtime's queue (text analysis,
BERT and request built), with the preparer's thread (default) and with each caller preparing its own
(GSVD_PREPARER=0), same run. Runs anywhere (a tiny random voice on CPU by default); the runtime's own
work shares the GIL with the callers as on a GPU server.

    python3 -P benchmarks/submit_burst_bench.py [--streams 64] [--rounds 3] [--device cpu] [--workers 2]

Prints per mode the p50 / p95 / last submit time (ms after the start) and first audio p50; last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from runtime_bench import EN, ZH, run_callers  # noqa: E402


def burst(engine, n: int, submits: list[float]) -> tuple[list[float], list[float], float]:
    from gsvd.engine import SynthesisOptions

    first: list[float] = []
    lock = threading.Lock()
    submits.clear()

    def one(i: int, t0: float) -> None:
        text, lang = (ZH, "zh") if i % 2 == 0 else (EN, "en")
        for chunk in engine.stream(text, "v", SynthesisOptions(seed=i, language=lang, max_new_tokens=8, split_method="cut0")):
            if len(chunk.pcm):
                with lock:
                    first.append(time.perf_counter() - t0)
                break

    t0 = run_callers(n, one)
    return [s - t0 for s in submits], first, t0


def run(mode: str, args) -> dict:
    from gsvd.engine import Engine
    from gsvd.engine.testing.bundle import write_tiny_voice

    os.environ["GSVD_PREPARER"] = "1" if mode == "preparer" else "0"
    voice = write_tiny_voice(Path(tempfile.mkdtemp()), "v")
    submits: list[float] = []
    with Engine(device=args.device, max_streams=args.streams, queue_limit=4 * args.streams,
                frontend_workers=args.workers) as engine:
        engine.load_voice(voice)
        engine._analysis.wait_ready(60)  # both modes start with every worker's dictionaries loaded
        submit_many = engine._runtime.submit_many

        def timed_submit_many(items):
            submits.extend([time.perf_counter()] * len(items))
            return submit_many(items)

        engine._preparer._submit_many = timed_submit_many
        burst(engine, 2, submits)  # warm-up
        rows = []
        for _ in range(args.rounds):
            sub, first, _ = burst(engine, args.streams, submits)
            sub.sort()
            rows.append({"submit_p50_ms": 1000 * statistics.median(sub), "submit_p95_ms": 1000 * sub[int(0.95 * (len(sub) - 1))],
                         "submit_last_ms": 1000 * sub[-1], "first_audio_p50_ms": 1000 * statistics.median(first)})
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    return {"mode": mode, "rounds": rows, **med}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    import logging

    logging.disable(logging.WARNING)
    out = [run(mode, args) for mode in ("per-caller", "preparer")]
    for r in out:
        print(f"{r['mode']:>10s}: submit p50 {r['submit_p50_ms']:7.1f} ms, p95 {r['submit_p95_ms']:7.1f}, last "
              f"{r['submit_last_ms']:7.1f}; first audio p50 {r['first_audio_p50_ms']:7.1f} ms (median of {args.rounds} rounds)")
    print(json.dumps({"streams": args.streams, "device": args.device, "workers": args.workers, "cpus": os.cpu_count(),
                      "results": out}))


if __name__ == "__main__":
    main()
