"""Where the time to first audio goes for one stream on CUDA: timestamps of each generated token and of
each chunk-decode pass (launch, audio collected), with sampling inside the graph, the graphed decode step, and eager.
Prints a profiler table and a timeline summary per mode; last line JSON."""

from __future__ import annotations

import json
import os
import sys
import time


def run(graphs: bool, fused: bool = False) -> dict:
    os.environ["GSVD_CUDA_GRAPHS"] = "1" if graphs else "0"
    os.environ["GSVD_FUSED_SAMPLING"] = "1" if fused else "0"
    from gsvd.engine.runtime import chunk_decode
    from gsvd.engine.runtime import scheduler as sched

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from gpu_engine_check import random_runtime

    rt, req = random_runtime(16)
    events: list[tuple[str, float, int]] = []
    t0 = [0.0]
    orig_launch, orig_finish, orig_adv = chunk_decode.launch_chunks, chunk_decode.PendingChunks.finish, \
        sched.Scheduler._advance

    def launch_chunks(items):  # the scheduler calls it through its module, so the patch is seen
        events.append(("decode_launch", time.perf_counter() - t0[0], len(items[0][0].tokens)))
        return orig_launch(items)

    def finish(pending):
        out = orig_finish(pending)
        events.append(("decode_collected", time.perf_counter() - t0[0], len(pending.items[0][0].tokens)))
        return out

    def advance(s, t, stop):
        r = orig_adv(s, t, stop)
        events.append(("token", time.perf_counter() - t0[0], s.step))
        return r

    chunk_decode.launch_chunks, chunk_decode.PendingChunks.finish = launch_chunks, finish
    sched.Scheduler._advance = staticmethod(advance)

    list(rt.submit(req(0, 40)))
    events.clear()
    t0[0] = time.perf_counter()
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        h = rt.submit(req(1, 120))
        first = None
        for _ in h:
            first = first or time.perf_counter() - t0[0]
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
    rt.close()
    chunk_decode.launch_chunks, chunk_decode.PendingChunks.finish = orig_launch, orig_finish
    sched.Scheduler._advance = orig_adv
    toks = [e for e in events if e[0] == "token"]
    dec = [e for e in events if e[0] != "token"]
    return {"graphs": graphs, "fused": fused, "first_audio_ms": round(1000 * first, 1),
            "token_ms": [round(1000 * e[1], 1) for e in toks[:15]] + ["..."] + [round(1000 * toks[-1][1], 1)],
            "decode_events": [(e[0], round(1000 * e[1], 1), e[2]) for e in dec[:8]], "profile": table}


if __name__ == "__main__":
    out = [run(True, True), run(True, False), run(False)]
    for r in out:
        print(r.pop("profile"))
        print(r)
    print(json.dumps(out))
