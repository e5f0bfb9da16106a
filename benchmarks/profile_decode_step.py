"""GPU time of the decode step by kernel (torch profiler over eager runs of `kernel_sample_and_step`: the
sampling kernel, the Triton layers, the output projection), and the fused graph's replay GPU time
measured with events at batch 1 and 8, for the default and for the previous default
(GSVD_SAMPLING_KERNEL=0 GSVD_SPLIT_K=0: torch-op sampler, unsplit GEMMs). Last line: JSON."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
from gpt_decode_bench import Rig, _gpt  # noqa: E402


def main() -> None:
    from gsvd.engine.runtime.graph_decode import FusedDecoder, kernel_sample_and_step
    from gsvd.engine.runtime.scheduler import MIN_STEPS

    gpt = _gpt()
    out = {}
    for n in (1, 8):
        rig = Rig(gpt, n, 512)
        rig.reset(n, 15)
        slots = torch.arange(n, device="cuda")
        lengths = torch.full((n,), rig.prefix, device="cuda")
        pos = torch.full((n,), 100, device="cuda")

        def step(rig=rig, slots=slots, lengths=lengths, pos=pos):
            kernel_sample_and_step(gpt, rig.cache, rig.sampler, slots, lengths, pos, gpt.dims.eos, MIN_STEPS)

        with torch.inference_mode():
            for _ in range(3):
                step()
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                for _ in range(10):
                    step()
                torch.cuda.synchronize()
            print(f"batch {n}: per 10 steps")
            print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=18, max_name_column_width=60))
            for name, flag in (("default", "1"), ("prev", "0")):
                os.environ.update(GSVD_SAMPLING_KERNEL=flag, GSVD_SPLIT_K=flag)  # read at capture
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
                ms = out[f"graph_gpu_ms_{name}_b{n}"] = a.elapsed_time(b) / 100
                print(f"fused graph replay ({name}), GPU time per step at batch {n}: {ms:.3f} ms")
            os.environ.update(GSVD_SAMPLING_KERNEL="1", GSVD_SPLIT_K="1")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
