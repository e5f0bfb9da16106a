"""GPU time of the decode step by kernel (torch profiler over eager runs of the Triton step and of the
sampler), and the graph replay's GPU time measured with events, at batch 1 and 8. Last line: JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
from gpt_decode_bench import Rig, _gpt  # noqa: E402


def main() -> None:
    from gsvd.engine.runtime.graph_decode import FusedDecoder, kernel_decode_step
    from gsvd.engine.runtime.scheduler import MIN_STEPS

    gpt = _gpt()
    out = {}
    for n in (1, 8):
        rig = Rig(gpt, n, 512)
        rig.reset(n, 15)
        slots = torch.arange(n, device="cuda")
        lengths = torch.full((n,), rig.prefix, device="cuda")
        tok = torch.randint(0, 1024, (n, 1), device="cuda")
        pos = torch.full((n,), 100, device="cuda")
        with torch.inference_mode():
            for _ in range(3):
                kernel_decode_step(gpt, rig.cache, tok, pos, slots, lengths)
                rig.sampler.sample(slots, gpt.dims.eos, MIN_STEPS)
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                for _ in range(10):
                    kernel_decode_step(gpt, rig.cache, tok, pos, slots, lengths)
                    rig.sampler.sample(slots, gpt.dims.eos, MIN_STEPS)
                torch.cuda.synchronize()
            print(f"batch {n}: per 10 steps")
            print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=18, max_name_column_width=60))
            dec = FusedDecoder(gpt, rig.cache, rig.sampler, gpt.dims.eos, MIN_STEPS, kernels=True)
            ls, ps = [rig.prefix] * n, [100] * n
            for _ in range(3):
                dec(list(range(n)), ls, ps)
            graph = dec.graphs[dec.bucket(n)][0]
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            for _ in range(100):
                graph.replay()
            b.record()
            torch.cuda.synchronize()
            out[f"graph_gpu_ms_b{n}"] = a.elapsed_time(b) / 100
            print(f"fused graph replay, GPU time per step at batch {n}: {out[f'graph_gpu_ms_b{n}']:.3f} ms")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
