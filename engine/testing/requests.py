"""Runtime requests for the tests: random phones, BERT and prompt tokens, a timbre from a random spectrogram."""

from __future__ import annotations

import threading

import torch

from gsvd.engine.runtime import SynthRequest
from gsvd.engine.types import SynthesisOptions


def synth_request(sovits: torch.nn.Module, model_id: str = "m", seed: int = 0, n: int = 10,
                  cancel: threading.Event | None = None, deadline: float | None = None, **options) -> SynthRequest:
    """A request of n random phones (the last n - 4 spoken, after 4 of reference) for `model_id`, its timbre through
    `sovits`, all drawn from `seed`; `options`: SynthesisOptions fields over greedy sampling, noise scale 0, the seed
    and 30 tokens."""
    g = torch.Generator().manual_seed(seed)
    phones = torch.randint(0, 732, (n,), generator=g)
    with torch.no_grad():
        ge = sovits.compute_ge(torch.rand(1, 1025, 50, generator=g))[0]
    opts = SynthesisOptions(**{"top_k": 1, "noise_scale": 0.0, "seed": seed, "max_new_tokens": 30, **options})
    return SynthRequest(model_id=model_id, gpt_phone_ids=phones, gpt_bert=torch.randn(1024, n, generator=g),
                        prompt_tokens=torch.randint(0, 1024, (8,), generator=g), target_phone_ids=phones[4:], ge=ge,
                        options=opts, cancel=cancel, deadline=deadline)
