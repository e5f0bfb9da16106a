"""GPT prefill replayed from CUDA graphs, one per (batch bucket, padded length).

Eager prefill is 24 blocks of a few hundred launches, most of a request's time to first token when
the GPU is not saturated. Here `prefill.forward_padded` (each row's mask, the blocks, the K/V writes
into each request's slot, each row's last-position logits) is one graph per batch bucket and padded
length (multiples of `step` up to `max_len`); batches larger than the largest bucket go through in
groups. The embeddings stay eager (`prefill.embed_packed`, a few launches for all rows, written
straight into the graph's input), padding rows use the scratch slot, so each row equals its unpadded
pass up to float rounding. A pass makes the same few torch calls whatever its rows (each call hands
the GIL over to the callers' threads). Off CUDA the same padded pass runs eagerly.
"""

from __future__ import annotations

from functools import partial

import torch

from gsvd.engine.runtime.cuda_graphs import GraphSet, in_groups
from gsvd.engine.runtime.kv_cache import KVCache
from gsvd.engine.runtime.prefill import Row, embed_packed, forward_padded, pack_rows, row_lengths

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32)  # up to scheduler.MAX_PREFILL_BATCH rows in one replay


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
        meta = torch.zeros(4, b, dtype=torch.long, device=ref.device)
        meta[0] = self.cache.scratch_slot
        return torch.zeros(b, width, ref.shape[-1], dtype=dtype, device=ref.device), meta

    def prepare(self) -> None:
        """Capture every (batch bucket, width) now (at model load)."""
        if self.cache.k_all.is_cuda:
            self.graphs.prepare([(b, w) for b in self.batch_buckets for w in self.widths])

    def __call__(self, rows: list[Row]) -> torch.Tensor | None:
        """Rows (slot, phone ids, bert, prompt tokens) -> next-token logits [B, vocab] fp32, each row's K/V
        written at positions 0.. of its slot; None when no graph fits (longer than the widest graph, capture
        failed): the caller prefills eagerly."""
        top = self.batch_buckets[-1]
        if len(rows) > top:
            parts = in_groups(len(rows), top, lambda lo, hi: self(rows[lo:hi]))
            return None if parts is None else torch.cat(parts)
        _, lens = row_lengths(rows)
        width = next((w for w in self.widths if w >= max(lens)), None)
        if width is None:
            return None
        b = next(b for b in self.batch_buckets if b >= len(rows))
        on_cuda = self.cache.k_all.is_cuda
        packed = pack_rows(rows, width, b, self.cache.scratch_slot, on_cuda)
        device = self.cache.k_all.device

        def fill(xy, meta):
            embed_packed(self.gpt, packed, device, out=xy)
            meta.copy_(torch.from_numpy(packed.meta), non_blocking=True)

        return self.graphs.run((b, width), on_cuda, fill, lambda out: out[: len(rows)].clone())
