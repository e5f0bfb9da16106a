"""GPT prefill replayed from CUDA graphs, one per (batch bucket, padded length).

Eager prefill is 24 blocks of a few hundred launches, most of a request's time to first token when
the GPU is not saturated. Here `prefill.forward_padded` (each row's mask, the blocks, the K/V writes
into each request's slot, each row's last-position logits) is one graph per batch bucket and padded
length (multiples of `step` up to `max_len`); batches larger than the largest bucket go through in
groups. The embeddings stay eager (`prefill.embed_packed`, a few launches for all rows, written
straight into the graph's input), padding rows use the scratch slot, so each row equals its unpadded
pass up to float rounding. A pass makes the same few torch calls whatever its rows (each call hands
the GIL over to the callers' threads). Off CUDA the same padded pass runs eagerly.

In the runtime the graphs belong to a GPT lane and an architecture, captured against a template GPT (`weights`
module doc): a replay for a model first copies its weights (~155 MB at real v2 sizes, fp16) into the template's when
the template holds another model's; prefills are a request's once, so the copy is small against the pass. They are
captured in the background (`capture_order`: one row first), and a shape without a graph yet is prefilled eagerly.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import torch

from gsvd.engine.runtime.cuda_graphs import GraphPool, GraphSet, default_pool, in_groups
from gsvd.engine.runtime.kv_cache import KVCache
from gsvd.engine.runtime.prefill import Row, embed_packed, forward_padded, pack_rows, row_lengths

if TYPE_CHECKING:
    from gsvd.engine.runtime.weights import FlatWeights

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32)  # up to scheduler.MAX_PREFILL_BATCH rows in one replay


class GraphedPrefill:
    """`gpt`: the module the graphs run (a template's, or the model's own used alone); `weights`: its flat weights when
    it is a template (None: the graphs read the module's own weights)."""

    def __init__(self, gpt, cache: KVCache, step: int = 64, max_len: int = 512,
                 batch_buckets: tuple[int, ...] = BATCH_BUCKETS, pool: GraphPool | None = None,
                 weights: FlatWeights | None = None) -> None:
        self.gpt, self.cache, self.weights = gpt, cache, weights
        self.widths = tuple(range(step, min(max_len, cache.max_len) + 1, step))
        self.batch_buckets = batch_buckets
        self.pool = pool if pool is not None else default_pool(cache.device)
        self.graphs = GraphSet(partial(forward_padded, gpt, cache), self._statics, pool=self.pool)

    def _statics(self, key: tuple[int, int]):
        b, width = key
        ref = self.cache.k_all
        dtype = next(self.gpt.parameters()).dtype
        meta = torch.zeros(4, b, dtype=torch.long, device=ref.device)
        meta[0] = self.cache.scratch_slot
        return torch.zeros(b, width, ref.shape[-1], dtype=dtype, device=ref.device), meta

    def capture_order(self) -> list[tuple[int, int]]:
        """Every (batch bucket, width), in the order to capture them: one row first."""
        return [(b, w) for b in self.batch_buckets for w in self.widths]

    def capture(self, key: tuple[int, int]) -> bool:
        return self.graphs.capture(key)

    def prepare(self) -> None:
        """Capture every (batch bucket, width) now, in this thread."""
        for key in self.capture_order():
            self.capture(key)

    def __call__(self, rows: list[Row], gpt=None, weights: FlatWeights | None = None) -> torch.Tensor | None:
        """Rows (slot, phone ids, bert, prompt tokens) of the model `gpt` (None: this one's), whose flat `weights`
        the template takes first -> next-token logits [B, vocab] fp32, each row's K/V written at positions 0.. of its
        slot; None when no graph fits (longer than the widest graph, not captured yet, capture failed): the caller
        prefills eagerly."""
        top = self.batch_buckets[-1]
        if len(rows) > top:
            parts = in_groups(len(rows), top, lambda lo, hi: self(rows[lo:hi], gpt, weights))
            return None if parts is None else torch.cat(parts)
        _, lens = row_lengths(rows)
        width = next((w for w in self.widths if w >= max(lens)), None)
        if width is None:
            return None
        b = next(b for b in self.batch_buckets if b >= len(rows))
        if self.pool is not None and not self.graphs.has((b, width)):
            return None
        model = gpt if gpt is not None else self.gpt
        packed = pack_rows(rows, width, b, self.cache.scratch_slot, self.cache.device.type == "cuda")
        device = self.cache.device

        def fill(xy, meta):
            if self.weights is not None and weights is not None:
                self.weights.hold(weights)
            embed_packed(model, packed, device, out=xy)
            meta.copy_(torch.from_numpy(packed.meta), non_blocking=True)

        return self.graphs.run((b, width), fill, lambda out: out[: len(rows)].clone())
