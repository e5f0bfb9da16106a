"""GPT prefill replayed from CUDA graphs, one per (batch bucket, padded length).

Eager prefill is 24 blocks of a few hundred launches, most of a request's time to first token when
the GPU is not saturated. Here the blocks, the K/V writes into each request's slot and each row's
last-position logits are one graph per batch bucket and padded length (multiples of `step` up to
`max_len`); batches larger than the largest bucket go through in groups. The embeddings stay eager
(a handful of launches per row). Rows are padded as in `prefill.prefill` (padding attends only to
itself, nothing attends to padding; padding rows use the scratch slot), so each row equals its
unpadded pass up to float rounding. Graphs share one memory pool; a lock serializes replays. Off
CUDA the same padded pass runs eagerly.
"""

from __future__ import annotations

import threading

import torch

from gsvd.engine.runtime.cuda_graphs import capture
from gsvd.engine.runtime.kv_cache import KVCache

BATCH_BUCKETS = (1, 2, 4, 8)


class GraphedPrefill:
    def __init__(self, gpt, cache: KVCache, step: int = 64, max_len: int = 512,
                 batch_buckets: tuple[int, ...] = BATCH_BUCKETS) -> None:
        self.gpt, self.cache, self.step = gpt, cache, step
        self.widths = tuple(range(step, min(max_len, cache.max_len) + 1, step))
        self.batch_buckets = batch_buckets
        self.graphs: dict[tuple[int, int], tuple] = {}
        self.lock = threading.Lock()
        self.pool = None
        self.failed = False

    def _run(self, xy, allow, slots, last):
        h, kvs = self.gpt.run_layers(xy, None, allow)
        width = xy.shape[1]
        for layer, (k, v) in enumerate(kvs):  # positions past a row's length are never read
            self.cache.k_all[layer, :, :width].index_copy_(0, slots, k.to(self.cache.k_all.dtype))
            self.cache.v_all[layer, :, :width].index_copy_(0, slots, v.to(self.cache.v_all.dtype))
        rows = torch.arange(xy.shape[0], device=xy.device)
        return self.gpt.logits(h[rows, last]).float()

    def _statics(self, b: int, width: int):
        ref = self.cache.k_all
        dtype = next(self.gpt.parameters()).dtype
        return (torch.zeros(b, width, ref.shape[-1], dtype=dtype, device=ref.device),
                torch.eye(width, dtype=torch.bool, device=ref.device).expand(b, 1, width, width).clone(),
                torch.full((b,), self.cache.scratch_slot, dtype=torch.long, device=ref.device),
                torch.zeros(b, dtype=torch.long, device=ref.device))

    def prepare(self) -> None:
        """Capture every (batch bucket, width) now (at model load)."""
        if not self.cache.k_all.is_cuda:
            return
        with self.lock:
            for b in self.batch_buckets:
                for width in self.widths:
                    if (b, width) in self.graphs or self.failed:
                        continue
                    try:
                        if self.pool is None:
                            self.pool = torch.cuda.graph_pool_handle()
                        static = self._statics(b, width)
                        self.graphs[(b, width)] = (*capture(self._run, static, self.pool), static)
                    except RuntimeError:  # something that cannot be captured here: stay eager
                        self.failed = True

    def __call__(self, rows: list[tuple[int, torch.Tensor, int]]) -> torch.Tensor | None:
        """rows: (slot, emb [n, D] text-then-prompt embeddings, text length) -> next-token logits [B, vocab]
        fp32, each row's K/V written at positions 0.. of its slot; None when no graph fits (longer than
        the widest graph, capture failed): the caller prefills eagerly."""
        top = self.batch_buckets[-1]
        if len(rows) > top:  # in groups of the largest bucket
            parts = []
            for i in range(0, len(rows), top):
                part = self(rows[i : i + top])
                if part is None:
                    return None
                parts.append(part)
            return torch.cat(parts)
        n_max = max(emb.shape[0] for _, emb, _ in rows)
        width = next((w for w in self.widths if w >= n_max), None)
        if width is None or self.failed:
            return None
        b = next(b for b in self.batch_buckets if b >= len(rows))
        on_cuda = self.cache.k_all.is_cuda
        with self.lock:
            if on_cuda and (b, width) not in self.graphs:
                return None  # not prepared: no capture on the hot path
            graph, out, static = self.graphs[(b, width)] if on_cuda else (None, None, self._statics(b, width))
            xy, allow, s_slots, s_last = static
            xy.zero_()
            masks = allow[:, 0]
            masks.zero_()
            masks.diagonal(dim1=-2, dim2=-1).fill_(True)  # padding sees itself only
            for r, (_, emb, text_len) in enumerate(rows):
                n = emb.shape[0]
                xy[r, :n].copy_(emb)
                masks[r, :n, :n] = self.gpt.prefix_mask(text_len, n - text_len, device=masks.device)
            s_slots.fill_(self.cache.scratch_slot)
            s_slots[: len(rows)].copy_(torch.tensor([slot for slot, _, _ in rows]), non_blocking=True)
            s_last[: len(rows)].copy_(torch.tensor([emb.shape[0] - 1 for _, emb, _ in rows]), non_blocking=True)
            if graph is None:
                out = self._run(*static)
            else:
                graph.replay()
            return out[: len(rows)].clone()
