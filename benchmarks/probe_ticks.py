"""Where the scheduler thread's time goes per tick (GPU): 1 and 8 streams of 200 tokens, graphed decode
step with eager sampling and with sampling inside the graph. cProfile runs inside `Scheduler.tick` only;
the table shows the functions with the most own time. Last line: JSON (ticks, ms per tick, tok/s)."""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import sys
import threading
import time


def run(fused: bool, streams: int) -> dict:
    os.environ["GSVD_FUSED_SAMPLING"] = "1" if fused else "0"
    from gsvd.engine.runtime import scheduler as sched

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from gpu_engine_check import random_runtime

    rt, req = random_runtime(16)
    list(rt.submit(req(0, 40)))
    prof = cProfile.Profile()
    ticks = [0, 0.0]
    orig = sched.Scheduler.tick

    def tick(self):
        t = time.perf_counter()
        prof.enable()
        try:
            orig(self)
        finally:
            prof.disable()
            ticks[0] += 1
            ticks[1] += time.perf_counter() - t

    sched.Scheduler.tick = tick
    t0 = time.perf_counter()
    handles = [rt.submit(req(s + 1, 200)) for s in range(streams)]
    threads = [threading.Thread(target=lambda h=h: list(h)) for h in handles]
    [t.start() for t in threads]
    [t.join() for t in threads]
    wall = time.perf_counter() - t0
    sched.Scheduler.tick = orig
    rt.close()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(22)
    tokens = sum(len(h.tokens) for h in handles)
    return {"fused": fused, "streams": streams, "ticks": ticks[0], "ms_per_tick": 1000 * ticks[1] / max(1, ticks[0]),
            "tick_share_of_wall": ticks[1] / wall, "tok_s_per_stream": tokens / streams / wall, "profile": s.getvalue()}


if __name__ == "__main__":
    out = [run(f, n) for f in (False, True) for n in (1, 8)]
    for r in out:
        print(r.pop("profile")[:3500])
        print(r)
    print(json.dumps(out))
