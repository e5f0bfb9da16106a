"""Where first audio goes at N concurrent streams, end to end through `Engine.stream` (GPU).

    python3 -P benchmarks/probe_ttfa_stages.py [--streams 1,64]

The same voice and sentences as `runtime_bench.py`; every stage is timestamped from the moment all N
streams start: text frontend per request (done), prefill passes (start, end, rows), GPT steps
launched, chunk-decode passes (launch start/end and when the scheduler collected the audio, streams)
and first audio per stream. Prints the timeline
summary per level; last line: one JSON object.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return 1000 * xs[int(q * (len(xs) - 1))] if xs else float("nan")


def _timed_iter(name, fn, size, events, lock):
    """Like `timed`, for a generator: from the call to its last item."""
    def wrapper(*a, **kw):
        t = time.perf_counter()
        yield from fn(*a, **kw)
        with lock:
            events.append((name, t, time.perf_counter(), size(a)))
    return wrapper


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", default="1,64")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    from runtime_bench import make_voice, run_level

    from gsvd.engine import Engine
    from gsvd.engine.preparer import RequestPreparer
    from gsvd.engine.runtime import chunk_decode, graph_decode
    from gsvd.engine.runtime import scheduler as sched
    from gsvd.engine.text.frontend import TextFrontend
    from gsvd.engine.text.pool import AnalysisPool

    events: list[tuple[str, float, float, int]] = []  # (stage, start, end, size)
    lock = threading.Lock()

    def timed(name, fn, size):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            out = fn(*a, **kw)
            with lock:
                events.append((name, t, time.perf_counter(), size(a)))
            return out
        return wrapper

    sched.prefill = timed("prefill", sched.prefill, lambda a: len(a[2]))
    # a chunk pass: its launch (host time), then the collection of its audio once the GPU is done
    chunk_decode.launch_chunks = timed("chunk_launch", chunk_decode.launch_chunks, lambda a: len(a[0]))
    chunk_decode.PendingChunks.finish = timed("chunk_collect", chunk_decode.PendingChunks.finish, lambda a: len(a[0].items))
    graph_decode.FusedDecoder.launch = timed("gpt_step", graph_decode.FusedDecoder.launch, lambda a: len(a[1]))
    # a request's text frontend: its analysis (inline or in a worker process), then BERT and the tensors
    AnalysisPool.analyze = timed("analysis", AnalysisPool.analyze, lambda a: 1)
    TextFrontend.features_of = timed("frontend", TextFrontend.features_of, lambda a: 1)
    # the preparer's batches (GSVD_PREPARER=1, the default): one analysis burst, one BERT/tensor pass
    AnalysisPool.analyze_many = _timed_iter("analysis", AnalysisPool.analyze_many, lambda a: len(a[1]), events, lock)
    TextFrontend.features_many = timed("frontend", TextFrontend.features_many, lambda a: len(a[1]))
    RequestPreparer.put = timed("put", RequestPreparer.put, lambda a: 1)  # a caller's sentence queued

    voice = make_voice(Path(tempfile.mkdtemp()))
    out = {}
    with Engine(device=args.device, max_streams=max(int(s) for s in args.streams.split(",")), queue_limit=1024) as eng:
        eng.load_voice(voice)
        run_level(eng, 1)
        for n in [int(s) for s in args.streams.split(",")]:
            events.clear()
            t0 = time.perf_counter()
            res = run_level(eng, n, keep=True)["results"]
            first = [r["ttfa"] for r in res]
            first_p50 = statistics.median(first)
            rel = [(name, s - t0, e - t0, k) for name, s, e, k in events]
            before = [e for e in rel if e[1] < first_p50]  # what ran before the median stream's first audio
            row = {"streams": n, "ttfa_p50_ms": 1000 * first_p50, "ttfa_p95_ms": _pct(first, 0.95)}
            for name in ("put", "analysis", "frontend", "prefill", "gpt_step", "chunk_launch", "chunk_collect"):
                evs = [e for e in before if e[0] == name]
                row[name] = {"calls": len(evs), "busy_ms": 1000 * sum(e[2] - e[1] for e in evs),
                             "first_start_ms": 1000 * evs[0][1] if evs else None,
                             "last_end_ms": 1000 * max(e[2] for e in evs) if evs else None,
                             "rows": [e[3] for e in evs][:12]}
            row["timeline_ms"] = [(name, round(1000 * s, 2), round(1000 * e, 2), k)
                                  for name, s, e, k in sorted(before, key=lambda e: e[1])
                                  if name not in ("gpt_step", "put")][:40]
            steps = [e for e in before if e[0] == "gpt_step"]
            row["gpt_step_gaps_ms"] = [round(1000 * (b[1] - a[1]), 2) for a, b in zip(steps, steps[1:])][:30]
            out[n] = row
            print(json.dumps(row, indent=None), flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
