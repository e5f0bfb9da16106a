"""Where the scheduler thread's time goes at N concurrent streams, end to end through `Engine.stream` (GPU).

    python3 -P benchmarks/probe_sched_phases.py [--streams 1,64,512] [--count-calls 64]

Per scheduler phase (admission with its prefill, GPT step launch + read-back, chunk-pass launch, chunk
collect) the summed wall time and the scheduler thread's own CPU time (`time.thread_time`): wall well
above CPU in a phase without a GPU wait is time spent waiting for the GIL, which the callers' threads
hold. Also each caller thread's request set-up (text to submitted request), wall and CPU. With
--count-calls N, one more level of N streams counts the torch calls each phase makes (a `sys.setprofile`
hook on the scheduler thread; every torch call hands the GIL over). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

PHASES = ("_admit", "execute", "_launch", "_collect")


def _is_torch(fn) -> bool:
    owner = getattr(fn, "__self__", None)
    if owner is not None and type(owner).__module__.startswith("torch"):
        return True
    return (getattr(fn, "__module__", None) or "").startswith("torch")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", default="1,64")
    ap.add_argument("--count-calls", type=int, default=0)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    from runtime_bench import make_voice, run_level

    from gsvd.engine import Engine
    from gsvd.engine.runtime import scheduler as sched

    stats: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])  # phase -> calls, wall, cpu
    calls: dict[str, Counter] = defaultdict(Counter)
    counting = threading.Event()
    depth: list[str] = []
    lock = threading.Lock()

    def hook(frame, event, arg):
        if event == "c_call" and depth and _is_torch(arg):
            calls[depth[-1]][getattr(arg, "__qualname__", getattr(arg, "__name__", "?"))] += 1

    def timed(name, fn):
        def wrapper(*a, **kw):
            w, c = time.perf_counter(), time.thread_time()
            depth.append(name)
            if counting.is_set() and len(depth) == 1:
                sys.setprofile(hook)
            try:
                return fn(*a, **kw)
            finally:
                depth.pop()
                if not depth:
                    sys.setprofile(None)
                s = stats[name]
                s[0] += 1
                s[1] += time.perf_counter() - w
                s[2] += time.thread_time() - c
        return wrapper

    for name in PHASES:
        setattr(sched.Scheduler, name, timed(name, getattr(sched.Scheduler, name)))
    client: list[tuple[float, float]] = []
    voice = make_voice(Path(tempfile.mkdtemp()))
    levels = [int(s) for s in args.streams.split(",")]
    out = {}
    with Engine(device=args.device, max_streams=max([*levels, args.count_calls]), queue_limit=1024) as eng:
        eng.load_voice(voice)
        run_level(eng, 1)
        orig_stream = eng.stream

        def stream(*a, **kw):  # the caller's set-up: text in, request submitted (the generator's first step)
            w, c = time.perf_counter(), time.thread_time()
            it = orig_stream(*a, **kw)
            first = next(it)
            with lock:
                client.append((time.perf_counter() - w, time.thread_time() - c))
            yield first
            yield from it

        eng.stream = stream
        for n in levels:
            stats.clear()
            client.clear()
            res = run_level(eng, n, keep=True)
            row = {"streams": n, "ttfa_p50_ms": 1000 * statistics.median(r["ttfa"] for r in res["results"]),
                   "wall_s": res["wall_s"],
                   "phases": {k: {"calls": v[0], "wall_ms": round(1000 * v[1], 1), "cpu_ms": round(1000 * v[2], 1)}
                              for k, v in stats.items()},
                   "caller_to_first_audio_cpu_ms_p50": round(1000 * statistics.median(c for _, c in client), 2),
                   "caller_to_first_audio_cpu_ms_sum": round(1000 * sum(c for _, c in client), 1)}
            out[n] = row
            print(json.dumps(row), flush=True)
        if args.count_calls:
            counting.set()
            run_level(eng, args.count_calls, keep=True)
            counting.clear()
            row = {ph: {"total": sum(c.values()), "top": c.most_common(12)} for ph, c in calls.items()}
            out[f"calls_{args.count_calls}"] = row
            print(json.dumps(row), flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
