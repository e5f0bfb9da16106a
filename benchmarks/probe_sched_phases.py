"""Where the scheduler thread's time goes at N concurrent streams, end to end through `Engine.stream` (GPU).

    python3 -P benchmarks/probe_sched_phases.py [--streams 1,64,512,512@2:250] [--count-calls 64]

A level is N, or N@S:T (N streams started evenly over S seconds, T tokens each; plain levels: 75 tokens), or
N~S:T[:listen] (N callers for S seconds, each sending its next request as its last one ends, or with listen as
its audio has played out: `runtime_bench.run_sustained`; first audio and underruns over the steady requests).

Per scheduler phase (admission with its prefill, GPT step launch + read-back, chunk-pass launch, chunk
collect) the summed wall time and the scheduler thread's own CPU time (`time.thread_time`): wall well
above CPU in a phase without a GPU wait is time spent waiting for the GIL, which the callers' threads
hold. Also each caller thread's request set-up (text to submitted request), wall and CPU. With
--count-calls N, one more level of N streams counts the torch calls each phase makes (a `sys.setprofile`
hook on the scheduler thread; every torch call hands the GIL over). Per level also: ticks, chunk passes and
their rows, the GPU's busy fraction (`nvidia-smi` sampled every 100 ms over the level, where it exists), first
audio p50/p95, underruns and which chunk of a stream first came late. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

PHASES = ("tick", "_admit", "execute", "_launch", "_collect")


def _is_torch(fn) -> bool:
    owner = getattr(fn, "__self__", None)
    if owner is not None and type(owner).__module__.startswith("torch"):
        return True
    return (getattr(fn, "__module__", None) or "").startswith("torch")


class GpuBusy:
    """`nvidia-smi`'s utilization.gpu (share of time a kernel ran) sampled every 100 ms on a thread."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        try:
            self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                          "-lms", "100"], stdout=subprocess.PIPE, text=True)
        except OSError:
            self.proc = None
            return
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.samples.append((time.perf_counter(), float(line.split(",")[0])))

    def mean(self, t0: float, t1: float) -> float | None:
        vals = [v for t, v in self.samples if t0 <= t <= t1]
        return round(statistics.mean(vals), 1) if vals else None

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()


def configure(sched, config: str) -> None:
    """Apply "slack=S,passes=N|auto,favour=audio|gpt,split=0|1" to a running scheduler (between levels: nothing in
    flight); split: chunk passes' content rows by their own width and vocoder rows in the cheapest buckets."""
    for item in config.split(","):
        key, _, value = item.partition("=")
        if key == "slack":
            sched.chunk_slack = float(value)
        elif key == "passes":
            sched.chunk_passes = None if value == "auto" else int(value)
        elif key == "favour":
            sched.favour(value == "gpt")
        elif key == "split":
            for entry in sched.models.values():
                for part in (entry.vocoder, entry.content):
                    if part is not None:
                        part.split = value == "1"
        else:
            raise SystemExit(f"unknown setting {key!r} in --configs")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", default="1,64")
    ap.add_argument("--count-calls", type=int, default=0)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--configs", default="", help="e.g. 'slack=0;slack=0.5,passes=1,favour=gpt': every level under "
                    "each scheduler setting (chunk slack s, chunk passes in flight, CUDA stream favoured, split 0|1), one engine")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    from runtime_bench import make_voice, run_level, run_sustained

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
    pass_rows: list[int] = []
    launch = sched.Scheduler._launch

    def counted(self, streams):
        pass_rows.append(len(streams))
        return launch(self, streams)

    sched.Scheduler._launch = counted
    gpu = GpuBusy()
    client: list[tuple[float, float]] = []
    voice = make_voice(Path(tempfile.mkdtemp()))
    levels = []
    for lv in args.streams.split(","):
        sustained = "~" in lv
        n, _, rest = lv.partition("~" if sustained else "@")
        span, _, tokens = rest.partition(":")
        tokens, _, listen = tokens.partition(":")
        levels.append((int(n), float(span or 0), int(tokens or 75), (sustained, listen == "listen"), lv))
    out = {}
    with Engine(device=args.device, max_streams=max([n for n, *_ in levels] + [args.count_calls]),
                queue_limit=1024) as eng:
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
        configs = [c for c in args.configs.split(";") if c] or [""]
        for config, (n, span, tokens, sustained, name) in ((a, b) for a in configs for b in levels):
            if config:
                configure(eng._runtime._scheduler, config)
                name = f"{name} {config}"
            stats.clear()
            client.clear()
            pass_rows.clear()
            t0 = time.perf_counter()
            if sustained[0]:
                res = run_sustained(eng, n, span, tokens, keep=True, listen=sustained[1])
            else:
                res = run_level(eng, n, keep=True, spread=span, tokens=tokens)
            ttfa = sorted(1000 * r["ttfa"] for r in res["results"])
            late = Counter(r["late_chunk"] for r in res["results"] if r["underrun"])
            row = {"level": name, "streams": n, "ttfa_p50_ms": round(statistics.median(ttfa), 1),
                   "ttfa_p95_ms": round(ttfa[int(0.95 * (len(ttfa) - 1))], 1),
                   "rtf_p50": round(statistics.median(r["rtf"] for r in res["results"]), 3),
                   "underruns": sum(late.values()), "first_late_chunk": dict(sorted(late.items())),
                   "late_ms_p50": round(1000 * statistics.median([r["late_s"] for r in res["results"]
                                                                  if r["underrun"]] or [0]), 1),
                   "gpu_busy_pct": gpu.mean(t0, time.perf_counter()),
                   "passes": len(pass_rows), "pass_rows_mean": round(statistics.mean(pass_rows or [0]), 1),
                   "wall_s": res["wall_s"], "requests": len(res["results"]),
                   "phases": {k: {"calls": v[0], "wall_ms": round(1000 * v[1], 1), "cpu_ms": round(1000 * v[2], 1)}
                              for k, v in stats.items()},
                   "caller_to_first_audio_cpu_ms_p50": round(1000 * statistics.median(c for _, c in client), 2),
                   "caller_to_first_audio_cpu_ms_sum": round(1000 * sum(c for _, c in client), 1)}
            out[name] = row
            print(json.dumps(row), flush=True)
        if args.count_calls:
            counting.set()
            run_level(eng, args.count_calls, keep=True)
            counting.clear()
            row = {ph: {"total": sum(c.values()), "top": c.most_common(12)} for ph, c in calls.items()}
            out[f"calls_{args.count_calls}"] = row
            print(json.dumps(row), flush=True)
    gpu.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
