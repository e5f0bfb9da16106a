"""Join quality of the chunked SoVITS decode vs the whole-utterance decode of the same tokens
(real v2 sizes, random weights, noise 0, CPU fp32).

    .venv/bin/python benchmarks/join_quality.py [--tokens 100] [--widen 1|0]
Measure: log-spectral distance (dB, 512-point frames) and the largest sample step within +-8 samples
of a join over the 99.9th percentile of the whole signal's own steps (>1 would be a click).
Bound used in the tests: LSD <= 3 dB and step ratio <= 1.5. `--widen 0` decodes a stream's last chunk with
its own window length instead of widening it to a regular one (`ChunkPolicy.widen`; 75 tokens: 82 -> 112
frames). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from gsvd.engine.models.sovits import SovitsDims, SynthesizerTrn
from gsvd.engine.runtime.chunking import ChunkPolicy, StreamDecoder, join_quality, stream_tokens
from gsvd.engine.testing.sovits import random_sovits_state, real_sovits_config


class _Unwidened(ChunkPolicy):
    def widen(self, lo: int, b: int) -> int:
        return lo


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=100)
    ap.add_argument("--widen", default="1")
    args = ap.parse_args()
    cfg = real_sovits_config("v2")
    model = SynthesizerTrn(SovitsDims.from_config(cfg, "v2"))
    model.load_state_dict(random_sovits_state(cfg, "v2", 1))
    model.eval()
    torch.manual_seed(0)
    tokens = torch.randint(0, 1024, (args.tokens,)).tolist()
    phones, spec = torch.randint(0, 700, (1, 40)), torch.rand(1, 1025, 150)
    with torch.no_grad():
        ge = model.compute_ge(spec)
        whole = model.decode(torch.tensor(tokens)[None, None], phones, spec, noise_scale=0.0)[0, 0].numpy()
    dec = StreamDecoder(model, phones, ge, 0.0, 1.0, 0, ChunkPolicy() if args.widen == "1" else _Unwidened())
    streamed, joins = stream_tokens(dec, tokens)
    q = join_quality(streamed, whole, joins)
    q.update(tokens=args.tokens, widen=args.widen == "1", chunks=len(joins) + 1, samples=len(streamed), max_abs_diff=float(np.abs(streamed - whole).max()),
             peak=float(np.abs(whole).max()))
    print(json.dumps(q))


if __name__ == "__main__":
    main()
