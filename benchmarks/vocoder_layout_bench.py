"""HiFi-GAN generator (real v2 size, random weights, fp16) from CUDA graphs: 1-D convolutions as they are
vs run as 2-D channels-last ones (`conv_layout.ChannelsLastConv1d`, `graph_vocoder.channels_last`), at the
chunk shapes of the runtime (first chunk of 1 and 64 streams, steady chunk of 64), same run.

    python3 -P benchmarks/vocoder_layout_bench.py

Prints a table (ms per replay, max abs difference); last line: one JSON object.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))


def _time(fn, reps: int = 30) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / reps


def main() -> None:
    from gpu_engine_check import _models

    from gsvd.engine.runtime.cuda_graphs import capture
    from gsvd.engine.runtime.graph_vocoder import channels_last

    _, sov = _models()
    dec = sov.dec.cuda().half().eval()
    fast = channels_last(dec)
    gin = sov.dims.gin_channels
    rows = []
    with torch.inference_mode():
        for b, frames in ((1, 16), (64, 16), (64, 112), (16, 112)):
            z = torch.randn(b, dec.conv_pre.in_channels, frames, device="cuda", dtype=torch.float16)
            g = torch.randn(b, gin, 1, device="cuda", dtype=torch.float16)
            g1, ref = capture(lambda z, g: dec(z, g=g), (z, g))
            g2, out = capture(lambda z, g: fast(z[:, :, None, :], g=g[:, :, None, :])[:, :, 0], (z, g))
            g1.replay()
            g2.replay()
            diff = (out.float() - ref.float()).abs().max().item()
            rows.append({"batch": b, "frames": frames, "conv1d_ms": _time(g1.replay), "channels_last_ms": _time(g2.replay),
                         "max_abs_diff": diff, "peak": ref.float().abs().max().item()})
            r = rows[-1]
            print(f"batch {b:3d} frames {frames:4d}: conv1d {r['conv1d_ms']:.3f} ms, channels-last "
                  f"{r['channels_last_ms']:.3f} ms, max diff {diff:.2e}", flush=True)
    print(json.dumps({"gpu": torch.cuda.get_device_name(0), "rows": rows}))


if __name__ == "__main__":
    main()
