"""Sampling as static-shape tensor code, so it can sit inside the decode step's CUDA graph.

Same order as upstream (and `gsvd.engine.sampling`): repetition penalty over every token the
stream has seen (prompt included) -> top-p -> temperature -> top-k -> softmax -> exponential
race. Every parameter is a per-row tensor; nothing reads back to the host. The race's noise is
counter-based: Exp(1) drawn from splitmix64(seed, step, token id), so a stream's tokens depend
only on its own seed and step, never on which streams share the batch or on a generator's state.

`SamplerState` keeps, per KV slot, what the step needs on the device: next-token logits, the
seen-token mask, the parameters, the seed and the step counter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from gsvd.engine.types import SynthesisOptions

_GOLDEN, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _i64(c: int) -> int:
    """An unsigned 64-bit constant as the int64 with the same bits."""
    return c - (1 << 64) if c >= 1 << 63 else c


def _shr(x: torch.Tensor, n: int) -> torch.Tensor:
    """Logical right shift of int64 bits (torch's >> is arithmetic)."""
    return (x >> n) & ((1 << (64 - n)) - 1)


def uniform_noise(seed: torch.Tensor, step: torch.Tensor, vocab: int) -> torch.Tensor:
    """[B] seeds, [B] steps -> [B, vocab] uniforms in (0, 1), float32 (splitmix64 of the counters)."""
    idx = torch.arange(vocab, device=seed.device, dtype=torch.int64)
    x = seed[:, None] * _i64(_GOLDEN) + step[:, None] * _i64(_MIX1) + (idx[None, :] + 1) * _i64(_MIX2)
    x = (x ^ _shr(x, 30)) * _i64(_MIX1)
    x = (x ^ _shr(x, 27)) * _i64(_MIX2)
    x = x ^ _shr(x, 31)
    return (_shr(x, 40).to(torch.float32) + 0.5) * (1.0 / (1 << 24))


def sample_static(
    logits: torch.Tensor,
    seen: torch.Tensor,
    top_k: torch.Tensor,
    top_p: torch.Tensor,
    temperature: torch.Tensor,
    penalty: torch.Tensor,
    seed: torch.Tensor,
    step: torch.Tensor,
    eos: int,
    min_steps: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """logits [B,V] fp32, seen [B,V] bool, per-row params [B] -> (sampled ids [B], greedy ids [B]).

    EOS is masked while step < min_steps (upstream's early-stop guard); greedy is the argmax
    after that mask (the scheduler stops a stream when either is EOS)."""
    vocab = logits.shape[-1]
    early = (step < min_steps)[:, None] & (torch.arange(vocab, device=logits.device) == eos)[None, :]
    logits = logits.masked_fill(early, float("-inf"))
    greedy = torch.argmax(logits, dim=-1)
    p = penalty[:, None]
    x = torch.where(seen, torch.where(logits < 0, logits * p, logits / p), logits)
    x = _top_k(_top_p(x, top_p) / temperature.clamp_min(1e-5)[:, None], top_k)
    probs = torch.softmax(x, dim=-1)
    race = probs / (-torch.log(uniform_noise(seed, step, vocab)))
    return torch.argmax(race, dim=-1), greedy


def _top_p(x: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    sorted_x, order = torch.sort(x, dim=-1, descending=True)
    cum = torch.cumsum(torch.softmax(sorted_x, dim=-1), dim=-1)
    drop = (cum > top_p[:, None]) & (top_p[:, None] < 1.0)
    drop[:, 0] = False
    return x.masked_fill(drop.scatter(1, order, drop), float("-inf"))


def _top_k(x: torch.Tensor, top_k: torch.Tensor) -> torch.Tensor:
    k = top_k.clamp(1, x.shape[-1]).long()[:, None]
    pivot = torch.sort(x, dim=-1, descending=True).values.gather(1, k - 1)
    return x.masked_fill(x < pivot, float("-inf"))


class SamplerState:
    """Per-slot sampling state on the device (slots + 1 rows: the last is the scratch slot)."""

    def __init__(self, slots: int, vocab: int, device: torch.device) -> None:
        rows = slots + 1
        self.logits = torch.zeros(rows, vocab, device=device)
        self.seen = torch.zeros(rows, vocab, dtype=torch.bool, device=device)
        self.top_k = torch.ones(rows, dtype=torch.long, device=device)
        self.top_p = torch.ones(rows, device=device)
        self.temperature = torch.ones(rows, device=device)
        self.penalty = torch.ones(rows, device=device)
        self.seed = torch.zeros(rows, dtype=torch.long, device=device)
        self.step = torch.zeros(rows, dtype=torch.long, device=device)
        self._true = torch.ones((), dtype=torch.bool, device=device)  # a device scalar: no host copy in a graph

    def start(self, slot: int, logits: torch.Tensor, prompt: torch.Tensor, options: SynthesisOptions) -> None:
        """A stream admitted into `slot`: its prefill logits [V], prompt tokens [Ty] and sampling options."""
        self.start_rows([slot], logits.reshape(1, -1), [prompt], [options])

    def start_rows(self, slots: list[int], logits: torch.Tensor, prompts: list,
                   options: list[SynthesisOptions]) -> None:
        """Streams admitted into `slots` (prefill logits [B, V], prompt tokens (a tensor or an array) and the
        options of each row: top_k, top_p, temperature, repetition_penalty, seed (None: 0)): their rows written
        in a few launches; the host-built parts are copied up without waiting for the GPU."""
        dev = self.logits.device
        idx = torch.tensor(slots).to(dev, non_blocking=True)
        seen = np.zeros((len(slots), self.seen.shape[1]), dtype=np.bool_)  # numpy: no GIL hand-over per row
        for r, prompt in enumerate(prompts):
            seen[r, np.asarray(prompt.cpu() if isinstance(prompt, torch.Tensor) else prompt).reshape(-1)] = True
        seen = torch.from_numpy(seen)
        ints = torch.tensor([[int(q.top_k), int(q.seed or 0) & 0x7FFFFFFFFFFFFFFF] for q in options]).to(dev, non_blocking=True)
        floats = torch.tensor([[float(q.top_p), float(q.temperature), float(q.repetition_penalty)] for q in options],
                              dtype=self.top_p.dtype).to(dev, non_blocking=True)
        self.logits[idx] = logits.float()
        self.seen[idx] = seen.to(dev, non_blocking=True)
        self.top_k[idx], self.seed[idx] = ints[:, 0], ints[:, 1]
        self.top_p[idx], self.temperature[idx], self.penalty[idx] = floats[:, 0], floats[:, 1], floats[:, 2]
        self.step[idx] = 0

    def sample(self, slots: torch.Tensor, eos: int, min_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample the rows of `slots` [B] and advance their step counters and seen masks."""
        picked, greedy = sample_static(self.logits[slots], self.seen[slots], self.top_k[slots], self.top_p[slots],
                                       self.temperature[slots], self.penalty[slots], self.seed[slots],
                                       self.step[slots], eos, min_steps)
        self.seen.index_put_((slots, picked), self._true)
        self.step[slots] += 1
        return picked, greedy
