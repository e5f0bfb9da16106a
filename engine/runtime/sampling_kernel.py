"""The sampler of `device_sampling.sample_static` as one Triton kernel, one program per row.

Per row: read the slot's next-token logits, mask EOS before `min_steps`, take the greedy argmax,
apply the repetition penalty, then top-p, temperature and top-k (both keep a prefix of the same
descending order: the k largest logits are taken one by one, up to `KMAX`, with their cumulative
probability for top-p; a larger top_k sorts the row in registers, which is far slower), softmax,
and the exponential race with the same splitmix64 counter noise. The same launch marks the picked token as seen, advances the slot's
step counter and writes the picked token's embedding at its audio position (the first input of the
decode step), which replaces ~40 small launches of the torch-op sampler and embedding.

Ties are resolved by value (every logit equal to the cut-off value is kept), where the torch sampler's
top-p keeps tied values in sort order; the two agree whenever the cut-off value is unique.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from gsvd.engine.runtime.device_sampling import _GOLDEN, _MIX1, _MIX2

KMAX = 64  # up to this top_k the k largest logits are picked one by one; beyond it the row is sorted
WARPS = 8  # per row: 11.9 us per launch on an H200 (1/2/4 warps: 35.8/19.5/13.8; benchmarks/HISTORY.md)


@triton.jit
def _sample_rows(logits, seen, top_k, top_p, temperature, penalty, seed, step, slots, positions,
                 emb, pe, alpha, out, x0, V, eos, min_steps, s_logits, s_seen, s_emb, s_pe, s_x0,
                 GOLDEN: tl.constexpr, MIX1: tl.constexpr, MIX2: tl.constexpr,
                 D: tl.constexpr, BLOCK_V: tl.constexpr, KMAX: tl.constexpr):
    row = tl.program_id(0)
    rows = tl.num_programs(0)
    slot = tl.load(slots + row).to(tl.int64)
    v = tl.arange(0, BLOCK_V)
    ok = v < V
    n_step = tl.load(step + slot)
    lg = tl.load(logits + slot * s_logits + v, mask=ok, other=-float("inf"))
    lg = tl.where((v == eos) & (n_step < min_steps), -float("inf"), lg)
    greedy = tl.argmax(lg, axis=0)

    pen = tl.load(penalty + slot)
    was_seen = tl.load(seen + slot * s_seen + v, mask=ok, other=0).to(tl.int32) != 0
    x = tl.where(was_seen, tl.where(lg < 0, lg * pen, lg / pen), lg)
    x = tl.where(ok, x, -float("inf"))

    # how many of the largest logits survive top-p and top-k, then the value of the last survivor
    tp = tl.load(top_p + slot)
    k = tl.minimum(tl.maximum(tl.load(top_k + slot), 1), V).to(tl.int32)
    top = tl.max(x, axis=0)
    z = tl.sum(tl.exp(x - top), axis=0)
    if k <= KMAX:  # the usual case (upstream's default top_k is 15): take the k largest one by one
        cut = top
        cum = 0.0
        rest = x
        for i in range(0, k):
            m, at = tl.max(rest, axis=0, return_indices=True)
            cum += tl.exp(m - top) / z  # cum rises, so once a logit falls outside top_p all later ones do
            cut = tl.where((i == 0) | (cum <= tp) | (tp >= 1.0), m, cut)
            rest = tl.where(v == at, -float("inf"), rest)
    else:  # a large top_k: sort once
        ordered = tl.sort(x, descending=True)
        j = tl.arange(0, BLOCK_V)
        cum_all = tl.cumsum(tl.exp(ordered - top) / z, axis=0)
        n_p = tl.sum(((cum_all <= tp) | (j == 0)).to(tl.int32), axis=0)  # a prefix
        n_p = tl.where(tp >= 1.0, V, n_p)
        keep = tl.minimum(k, n_p)
        cut = tl.max(tl.where(j == keep - 1, ordered, -float("inf")), axis=0)

    t = tl.maximum(tl.load(temperature + slot), 1e-5)
    y = tl.where(x >= cut, x / t, -float("inf"))
    p = tl.exp(y - tl.max(y, axis=0))
    p = p / tl.sum(p, axis=0)

    # Exp(1) noise from splitmix64(seed, step, token id): bit-identical to device_sampling.uniform_noise
    h = tl.load(seed + slot).to(tl.uint64) * GOLDEN + n_step.to(tl.uint64) * MIX1 + (v + 1).to(tl.uint64) * MIX2
    h = (h ^ (h >> 30)) * MIX1
    h = (h ^ (h >> 27)) * MIX2
    h = h ^ (h >> 31)
    u = ((h >> 40).to(tl.float32) + 0.5) * (1.0 / 16777216.0)
    race = tl.where(ok, p / (-tl.log(u)), -1.0)
    picked = tl.argmax(race, axis=0)

    tl.store(out + row, picked.to(tl.int64))
    tl.store(out + rows + row, greedy.to(tl.int64))
    tl.store(seen + slot * s_seen + picked, 1)
    tl.store(step + slot, n_step + 1)

    d = tl.arange(0, D)
    pos = tl.load(positions + row).to(tl.int64)
    a = tl.load(alpha).to(tl.float32)
    # the model's own arithmetic: alpha and the table rounded to the model dtype before they meet
    table = tl.load(pe + pos * s_pe + d).to(x0.dtype.element_ty).to(tl.float32)
    term = (a * table).to(x0.dtype.element_ty).to(tl.float32)
    vec = tl.load(emb + picked.to(tl.int64) * s_emb + d).to(tl.float32) + term
    tl.store(x0 + row * s_x0 + d, vec.to(x0.dtype.element_ty))


def sample_and_embed(sampler, slots: torch.Tensor, positions: torch.Tensor, embedding: torch.Tensor,
                     pe_table: torch.Tensor, alpha: torch.Tensor, eos: int, min_steps: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample rows `slots` [B] of a `SamplerState` (advancing their step counters and seen masks) ->
    ([2, B] sampled and greedy ids, [B, D] embedding of each sampled token at its audio position
    `positions` [B], in the embedding's dtype)."""
    b = slots.shape[0]
    vocab = sampler.logits.shape[1]
    d = embedding.shape[1]
    if d & (d - 1) or sampler.logits.stride(1) != 1 or sampler.seen.stride(1) != 1 or embedding.stride(1) != 1:
        raise ValueError("sample_and_embed needs a power-of-two width and unit-stride rows")
    out = torch.empty(2, b, dtype=torch.long, device=slots.device)
    x0 = torch.empty(b, d, dtype=embedding.dtype, device=slots.device)
    _sample_rows[(b,)](sampler.logits, sampler.seen, sampler.top_k, sampler.top_p, sampler.temperature,
                       sampler.penalty, sampler.seed, sampler.step, slots, positions, embedding, pe_table, alpha,
                       out, x0, vocab, eos, min_steps, sampler.logits.stride(0), sampler.seen.stride(0),
                       embedding.stride(0), pe_table.stride(0), x0.stride(0),
                       GOLDEN=_GOLDEN, MIX1=_MIX1, MIX2=_MIX2, D=d, BLOCK_V=triton.next_power_of_2(vocab),
                       KMAX=KMAX, num_warps=WARPS)
    return out, x0
