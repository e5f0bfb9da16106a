"""Next-token sampling in upstream GPT-SoVITS order.

repetition penalty (over every previous token, prompt included) -> top-p ->
temperature -> top-k -> softmax -> exponential race (argmax(p / Exp(1)), which
is multinomial sampling without a host sync). Parameters may be Python scalars
(one stream) or per-row tensors [B] (batched streams). Randomness comes only
from the `generator` argument, so a seed reproduces a stream.
"""

from __future__ import annotations

import torch

Param = float | int | torch.Tensor


def _col(value: Param, rows: int, like: torch.Tensor) -> torch.Tensor:
    """Scalar or [B] -> [B,1] tensor on like's device."""
    t = torch.as_tensor(value, device=like.device)
    return t.reshape(-1, 1).expand(rows, 1) if t.numel() == 1 else t.reshape(rows, 1)


def apply_repetition_penalty(logits: torch.Tensor, previous: torch.Tensor, penalty: Param) -> torch.Tensor:
    """logits [B,V], previous [B,T] ids: negative scores x penalty, others / penalty (in place)."""
    if previous.numel() == 0:
        return logits
    prev = previous.long()
    p = _col(penalty, logits.shape[0], logits).to(logits.dtype)
    score = torch.gather(logits, 1, prev)
    score = torch.where(score < 0, score * p, score / p)
    return logits.scatter_(1, prev, score)


def apply_top_p(logits: torch.Tensor, top_p: Param) -> torch.Tensor:
    """Mask tokens outside the nucleus (cumulative softmax > p), always keeping the best one."""
    if not isinstance(top_p, torch.Tensor) and top_p >= 1.0:
        return logits  # decided on the host: no device sync
    p = _col(top_p, logits.shape[0], logits).to(torch.float32)
    if bool((p >= 1.0).all()):
        return logits
    sorted_logits, order = torch.sort(logits, descending=True)
    cum = torch.cumsum(torch.softmax(sorted_logits, dim=-1), dim=-1)
    drop_sorted = (cum > p) & (p < 1.0)
    drop_sorted[:, 0] = False
    drop = drop_sorted.scatter(1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def apply_top_k(logits: torch.Tensor, top_k: Param) -> torch.Tensor:
    """Keep logits >= the k-th largest of their row (ties kept)."""
    vocab = logits.shape[-1]
    if not isinstance(top_k, torch.Tensor):  # one k for every row: no device sync
        pivot = torch.topk(logits, min(max(int(top_k), 1), vocab), dim=-1).values[:, -1:]
        return torch.where(logits < pivot, float("-inf"), logits)
    k = _col(top_k, logits.shape[0], logits).long().clamp(1, vocab)
    if k.numel() and bool((k == k[0]).all()):
        pivot = torch.topk(logits, int(k[0]), dim=-1).values[:, -1:]
    else:
        pivot = torch.sort(logits, dim=-1, descending=True).values.gather(1, k - 1)
    return torch.where(logits < pivot, float("-inf"), logits)


def probabilities(
    logits: torch.Tensor,
    previous: torch.Tensor | None,
    *,
    top_k: Param,
    top_p: Param,
    temperature: Param,
    repetition_penalty: Param,
) -> torch.Tensor:
    """Upstream's logits_to_probs: [B,V] -> [B,V] probabilities (logits are not modified)."""
    logits = logits.clone()
    if previous is not None:
        logits = apply_repetition_penalty(logits, previous, repetition_penalty)
    logits = apply_top_p(logits, top_p)
    t = _col(temperature, logits.shape[0], logits).to(logits.dtype).clamp_min(1e-5)
    logits = apply_top_k(logits / t, top_k)
    return torch.softmax(logits, dim=-1)


def exponential_race(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """argmax(p / q), q ~ Exp(1) iid: a multinomial draw [B,V] -> [B] long."""
    q = torch.empty_like(probs).exponential_(1, generator=generator)
    return torch.argmax(probs / q, dim=-1)


def sample_next(
    logits: torch.Tensor,
    previous: torch.Tensor | None,
    *,
    top_k: Param,
    top_p: Param,
    temperature: Param,
    repetition_penalty: Param,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """logits [B,V] -> sampled ids [B] long."""
    probs = probabilities(
        logits,
        previous,
        top_k=top_k,
        top_p=top_p,
        temperature=temperature,
        repetition_penalty=repetition_penalty,
    )
    return exponential_race(probs, generator)
