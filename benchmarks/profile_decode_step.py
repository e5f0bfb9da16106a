"""GPU time of the decode step by kernel (torch profiler over eager runs of `kernel_sample_and_step`: the
sampling kernel, the Triton layers, the output projection), and the fused graph's replay GPU time
measured with events at batch 1 and 8, for the default and for the previous default
(GSVD_SAMPLING_KERNEL=0 GSVD_SPLIT_K=0: torch-op sampler, unsplit GEMMs), and the sampling kernel
alone per warps setting. Last line: JSON."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
from gpt_decode_bench import Rig, _gpt  # noqa: E402

from gsvd.engine.runtime.cuda_graphs import capture  # noqa: E402


def _replay_ms(graph, reps: int = 100) -> float:
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(reps):
        graph.replay()
    b.record()
    torch.cuda.synchronize()
    return a.elapsed_time(b) / reps


def _sampler_warps(gpt, rig, slots, pos, n) -> dict:
    """The sampling kernel alone (top_k 15), 20 launches per graph, per warps setting."""
    from gsvd.engine.runtime import sampling_kernel as sk

    pe, res, default = gpt.ar_audio_position, {}, sk.WARPS
    emb = gpt.ar_audio_embedding.word_embeddings.weight
    for warps in (2, 4, 8, 16):
        sk.WARPS = warps
        graph, _ = capture(lambda: [sk.sample_and_embed(rig.sampler, slots, pos, emb, pe.table, pe.alpha,
                                                        gpt.dims.eos, 10) for _ in range(20)], ())
        res[f"sampler_us_w{warps}_b{n}"] = 1000 * _replay_ms(graph) / 20
    sk.WARPS = default
    print(f"sampling kernel alone at batch {n}, us per launch by warps:", res)
    return res


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
            for name, flag, pdl in (("default", "1", "1"), ("nopdl", "1", "0"), ("prev", "0", "0")):
                os.environ.update(GSVD_SAMPLING_KERNEL=flag, GSVD_SPLIT_K=flag, GSVD_PDL=pdl)  # read at capture
                dec = FusedDecoder(gpt, rig.cache, rig.sampler, gpt.dims.eos, MIN_STEPS, kernels=True)
                ls, ps = [rig.prefix] * n, [100] * n
                for _ in range(3):
                    dec(list(range(n)), ls, ps)
                ms = out[f"graph_gpu_ms_{name}_b{n}"] = _replay_ms(dec.graphs[dec.bucket(n)][0])
                print(f"fused graph replay ({name}), GPU time per step at batch {n}: {ms:.3f} ms")
            os.environ.update(GSVD_SAMPLING_KERNEL="1", GSVD_SPLIT_K="1", GSVD_PDL="1")
            out.update(_sampler_warps(gpt, rig, slots, pos, n))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
