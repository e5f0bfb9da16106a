"""GPT prefill replayed from CUDA graphs, one per (batch bucket, padded length).

Eager prefill is 24 blocks of a few hundred launches, most of a request's time to first token when
the GPU is not saturated. Here `prefill.forward_padded` (the blocks, the K/V writes into each
request's slot, each row's last-position logits) is one graph per batch bucket and padded length
(multiples of `step` up to `max_len`); batches larger than the largest bucket go through in groups.
The embeddings stay eager (`prefill.embed_rows`, a few launches for all rows), and rows are padded by
`prefill.fill_padded` as in the eager pass (padding rows use the scratch slot), so each row equals its
unpadded pass up to float rounding. Off CUDA the same padded pass runs eagerly.
"""

from __future__ import annotations

from functools import partial

import torch

from gsvd.engine.runtime.cuda_graphs import GraphSet, in_groups
from gsvd.engine.runtime.kv_cache import KVCache
from gsvd.engine.runtime.prefill import fill_padded, forward_padded

BATCH_BUCKETS = (1, 2, 4, 8)


class GraphedPrefill:
    def __init__(self, gpt, cache: KVCache, step: int = 64, max_len: int = 512,
                 batch_buckets: tuple[int, ...] = BATCH_BUCKETS) -> None:
        self.gpt, self.cache = gpt, cache
        self.widths = tuple(range(step, min(max_len, cache.max_len) + 1, step))
        self.batch_buckets = batch_buckets
        self.graphs = GraphSet(partial(forward_padded, gpt, cache), self._statics)

    def _statics(self, key: tuple[int, int]):
        b, width = key
        ref = self.cache.k_all
        dtype = next(self.gpt.parameters()).dtype
        return (torch.zeros(b, width, ref.shape[-1], dtype=dtype, device=ref.device),
                torch.eye(width, dtype=torch.bool, device=ref.device).expand(b, 1, width, width).clone(),
                torch.full((b,), self.cache.scratch_slot, dtype=torch.long, device=ref.device),
                torch.zeros(b, dtype=torch.long, device=ref.device))

    def prepare(self) -> None:
        """Capture every (batch bucket, width) now (at model load)."""
        if self.cache.k_all.is_cuda:
            self.graphs.prepare([(b, w) for b in self.batch_buckets for w in self.widths])

    def __call__(self, slots: list[int], emb: torch.Tensor, text_lens: list[int], lens: list[int]
                 ) -> torch.Tensor | None:
        """Rows from `prefill.embed_rows` (emb [B, w, D], text lengths, lengths) going into KV slots `slots`
        -> next-token logits [B, vocab] fp32, each row's K/V written at positions 0.. of its slot; None
        when no graph fits (longer than the widest graph, capture failed): the caller prefills eagerly."""
        top = self.batch_buckets[-1]
        if len(slots) > top:
            parts = in_groups(len(slots), top, lambda lo, hi: self(slots[lo:hi], emb[lo:hi, : max(lens[lo:hi])],
                                                                   text_lens[lo:hi], lens[lo:hi]))
            return None if parts is None else torch.cat(parts)
        width = next((w for w in self.widths if w >= max(lens)), None)
        if width is None:
            return None
        b = next(b for b in self.batch_buckets if b >= len(slots))

        def fill(xy, allow, s_slots, last):
            fill_padded(xy, allow, emb, text_lens, lens)
            s_slots.fill_(self.cache.scratch_slot)
            s_slots[: len(slots)].copy_(torch.tensor(slots), non_blocking=True)
            last[: len(slots)].copy_(torch.tensor([n - 1 for n in lens]), non_blocking=True)

        return self.graphs.run((b, width), self.cache.k_all.is_cuda, fill, lambda out: out[: len(slots)].clone())
