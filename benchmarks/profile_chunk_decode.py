"""Where a chunk-decode pass goes at 1-64 streams (GPU): content encoder + prior, the per-stream windows,
the vocoder, the copy back.

    python3 -P benchmarks/profile_chunk_decode.py [--streams 1,16,64] [--half 1|0] [--content-half 1|0]

Real v2 SoVITS sizes, random weights, graphs prepared as the runtime prepares them at load. For each
stream count N: N streams whose first chunk (6 tokens + 2 lookahead) is ready, then N streams at a
steady-state chunk (48 tokens + 8 history); `decode_chunks` timed end to end (median of 7, host
included), and split into `_windows` (content graphs + per-stream noise/window ops, synchronized) and
the rest (vocoder graphs + copy back). A kernel summary of one first-chunk pass of `--profile-streams`
streams follows (GPU time of its kernels vs the pass's wall time).
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))


def _decoders(entry, n: int, tokens: int, seed: int = 0):
    from gsvd.engine.runtime.chunking import ChunkPolicy, StreamDecoder

    g = torch.Generator().manual_seed(seed)
    ge = entry.sovits.compute_ge(torch.rand(1, 1025, 200, device="cuda"))
    out = []
    for i in range(n):
        d = StreamDecoder(entry.sovits, torch.randint(0, 732, (1, 30), generator=g).cuda(), ge, 0.5, 1.0,
                          i, ChunkPolicy(), vocoder=entry.vocoder, content=entry.content)
        d.tokens = torch.randint(0, 1024, (tokens,), generator=g).tolist()
        out.append(d)
    return out


def _state(ds, emitted: int, chunks: int):
    for d in ds:
        d.emitted, d.chunks, d._tail = emitted, chunks, None


def _self_gpu_us(e) -> float:
    return getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", default="1,16,64")
    ap.add_argument("--profile-streams", type=int, default=64)
    ap.add_argument("--half", default="1", help="GSVD_VOCODER_HALF: 1 the generator in fp16 (the default), 0 fp32")
    ap.add_argument("--content-half", default="0", help="GSVD_CONTENT_HALF: 1 the content encoder + prior in fp16")
    args = ap.parse_args()
    from gpu_engine_check import random_runtime

    from gsvd.engine.runtime import chunk_decode

    os.environ["GSVD_VOCODER_HALF"] = args.half  # read when the runtime builds its vocoder graphs
    os.environ["GSVD_CONTENT_HALF"] = args.content_half
    rt, _ = random_runtime(max_streams=64)
    entry = rt._scheduler.models["m"]
    rows = []
    with torch.inference_mode():
        for n in [int(s) for s in args.streams.split(",")]:
            for label, tokens, emitted, chunks in (("first chunk (6+2 tokens)", 8, 0, 0),
                                                   ("steady chunk (48 tokens + 8 history)", 200, 90, 3)):
                ds = _decoders(entry, n, tokens)
                items = [(d, False) for d in ds]
                total, windows = [], []
                for _ in range(8):
                    _state(ds, emitted, chunks)
                    torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    chunk_decode._windows(ds, [d.plan(False) for d in ds])
                    torch.cuda.synchronize()
                    windows.append(time.perf_counter() - t0)
                    _state(ds, emitted, chunks)
                    t0 = time.perf_counter()
                    pcm = chunk_decode.decode_chunks(items)
                    total.append(time.perf_counter() - t0)
                row = {"streams": n, "chunk": label, "decode_chunks_ms": 1000 * statistics.median(total[1:]),
                       "windows_ms": 1000 * statistics.median(windows[1:]), "samples": len(pcm[0])}
                row["vocoder_and_copy_ms"] = row["decode_chunks_ms"] - row["windows_ms"]
                rows.append(row)
                print(f"{n:3d} streams, {label:38s}: decode_chunks {row['decode_chunks_ms']:7.2f} ms "
                      f"(windows {row['windows_ms']:6.2f}, vocoder + copy {row['vocoder_and_copy_ms']:6.2f})", flush=True)
        from torch.profiler import ProfilerActivity, profile

        ds = _decoders(entry, args.profile_streams, 8)
        _state(ds, 0, 0)
        chunk_decode.decode_chunks([(d, False) for d in ds])
        _state(ds, 0, 0)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            chunk_decode.decode_chunks([(d, False) for d in ds])
            torch.cuda.synchronize()
            wall = time.perf_counter() - t0
        print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=15, max_name_column_width=50))
        kernels = [e for e in prof.key_averages() if _self_gpu_us(e) > 0]
        gpu_us = sum(_self_gpu_us(e) for e in kernels)
    rt.close()
    print(json.dumps({"gpu": torch.cuda.get_device_name(), "vocoder_half": args.half,
                      "content_half": args.content_half, "rows": rows,
                      "profiled_streams": args.profile_streams, "first_chunk_gpu_kernel_ms": gpu_us / 1000,
                      "first_chunk_wall_ms_profiled": 1000 * wall,
                      "first_chunk_kernel_launches": sum(e.count for e in kernels)}))


if __name__ == "__main__":
    main()
