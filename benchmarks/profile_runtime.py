"""Profile one eager runtime stream on CUDA (real v2 sizes, random weights): where does a tick go?

    python benchmarks/profile_runtime.py
Prints the top operators by self CPU and CUDA time, then one JSON line with the per-token wall time.
"""

from __future__ import annotations

import json
import time

import torch

if __name__ == "__main__":
    import sys

    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from gpu_engine_check import _models

    from gsvd.engine.runtime import Runtime, SynthRequest

    gpt, sov = _models()
    rt = Runtime(device="cuda", max_streams=4)
    rt.add_model("m", gpt, sov)
    with torch.no_grad():
        ge = rt._scheduler.models["m"].sovits.compute_ge(torch.rand(1, 1025, 200, device="cuda"))[0]
    g = torch.Generator().manual_seed(0)
    ph = torch.randint(0, 732, (50,), generator=g)

    def req(n):
        return SynthRequest("m", ph, torch.randn(1024, 50, generator=g), torch.randint(0, 1024, (100,), generator=g),
                            ph[20:], ge, top_k=15, seed=1, max_new_tokens=n)

    list(rt.submit(req(40)))
    t0 = time.perf_counter()
    h = rt.submit(req(100))
    list(h)
    per_token = (time.perf_counter() - t0) / len(h.tokens)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]) as prof:
        list(rt.submit(req(60)))
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=12))
    rt.close()
    print(json.dumps({"ms_per_token_b1": per_token * 1000}))
