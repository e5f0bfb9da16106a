"""Where the time to first audio goes for one stream on CUDA: timestamps of each generated token and of
each chunk-decode job (start, end), with sampling inside the graph, the graphed decode step, and eager.
Prints a profiler table and a timeline summary per mode; last line JSON."""

from __future__ import annotations

import json
import os
import sys
import time

import torch


def run(graphs: bool, fused: bool = False) -> dict:
    os.environ["GSVD_CUDA_GRAPHS"] = "1" if graphs else "0"
    os.environ["GSVD_FUSED_SAMPLING"] = "1" if fused else "0"
    from gsvd.engine.runtime import Runtime, SynthRequest, chunking
    from gsvd.engine.runtime import scheduler as sched

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from gpu_engine_check import _models

    gpt, sov = _models()
    rt = Runtime(device="cuda", max_streams=16)
    rt.add_model("m", gpt, sov)
    ge = rt._scheduler.models["m"].sovits.compute_ge(torch.rand(1, 1025, 200, device="cuda"))[0].detach()
    events: list[tuple[str, float, int]] = []
    t0 = [0.0]
    orig_next, orig_adv = chunking.StreamDecoder.next_chunk, sched.Scheduler._advance

    def next_chunk(self, finished):
        events.append(("decode_start", time.perf_counter() - t0[0], len(self.tokens)))
        out = orig_next(self, finished)
        events.append(("decode_end", time.perf_counter() - t0[0], len(self.tokens)))
        return out

    def advance(s, t, stop):
        r = orig_adv(s, t, stop)
        events.append(("token", time.perf_counter() - t0[0], s.step))
        return r

    chunking.StreamDecoder.next_chunk = next_chunk
    sched.Scheduler._advance = staticmethod(advance)

    def req(seed, n):
        g = torch.Generator().manual_seed(seed)
        ph = torch.randint(0, 732, (50,), generator=g)
        return SynthRequest("m", ph, torch.randn(1024, 50, generator=g), torch.randint(0, 1024, (100,), generator=g),
                            ph[20:], ge, top_k=15, seed=seed, max_new_tokens=n)

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
    chunking.StreamDecoder.next_chunk, sched.Scheduler._advance = orig_next, orig_adv
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
