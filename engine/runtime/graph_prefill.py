"""GPT prefill of a single request, replayed from CUDA graphs (one per padded length).

A request admitted alone (the usual case below saturation) is prefilled by 24 eager blocks, a few
hundred launches: most of its time to first token. Here the blocks, the K/V writes into the
request's slot and the last position's logits are one graph per padded length (multiples of
`step` up to `max_len`). The embeddings stay eager (a handful of launches); the row is padded as in
a padded batch (`prefill.prefill`: padding attends only to itself, nothing attends to padding), so
the result equals the unpadded pass up to float rounding. Graphs share one memory pool; a lock
serializes replays. Off CUDA the same padded pass runs eagerly.
"""

from __future__ import annotations

import threading

import torch

from gsvd.engine.runtime.cuda_graphs import capture
from gsvd.engine.runtime.kv_cache import KVCache


class GraphedPrefill:
    def __init__(self, gpt, cache: KVCache, step: int = 64, max_len: int = 512) -> None:
        self.gpt, self.cache, self.step = gpt, cache, step
        self.widths = tuple(range(step, min(max_len, cache.max_len) + 1, step))
        self.graphs: dict[int, tuple] = {}
        self.lock = threading.Lock()
        self.pool = None
        self.failed = False

    def _run(self, xy, allow, slot, last):
        h, kvs = self.gpt.run_layers(xy, None, allow)
        width = xy.shape[1]
        for layer, (k, v) in enumerate(kvs):  # positions past the row's length are never read
            self.cache.k_all[layer, :, :width].index_copy_(0, slot, k.to(self.cache.k_all.dtype))
            self.cache.v_all[layer, :, :width].index_copy_(0, slot, v.to(self.cache.v_all.dtype))
        return self.gpt.logits(h[0].index_select(0, last)).float()

    def _statics(self, width: int):
        ref = self.cache.k_all
        dtype = next(self.gpt.parameters()).dtype
        return (torch.zeros(1, width, ref.shape[-1], dtype=dtype, device=ref.device),
                torch.eye(width, dtype=torch.bool, device=ref.device)[None, None].clone(),
                torch.full((1,), self.cache.scratch_slot, dtype=torch.long, device=ref.device),
                torch.zeros(1, dtype=torch.long, device=ref.device))

    def prepare(self) -> None:
        """Capture every width now (at model load)."""
        if not self.cache.k_all.is_cuda:
            return
        with self.lock:
            for width in self.widths:
                if width not in self.graphs and not self.failed:
                    try:
                        if self.pool is None:
                            self.pool = torch.cuda.graph_pool_handle()
                        static = self._statics(width)
                        self.graphs[width] = (*capture(self._run, static, self.pool), static)
                    except RuntimeError:  # something that cannot be captured here: stay eager
                        self.failed = True

    def __call__(self, slot: int, emb: torch.Tensor, text_len: int) -> torch.Tensor | None:
        """emb [n, D] (text then prompt-audio embeddings of one request) -> next-token logits [1, vocab]
        fp32, K/V written at positions 0.. of `slot`; None when no graph fits (the caller runs eagerly)."""
        n = emb.shape[0]
        width = next((w for w in self.widths if w >= n), None)
        if width is None or self.failed:
            return None
        with self.lock:
            if emb.is_cuda and width not in self.graphs:
                return None  # not prepared: no capture on the hot path
            graph, out, static = self.graphs[width] if emb.is_cuda else (None, None, self._statics(width))
            xy, allow, s_slot, s_last = static
            xy.zero_()
            xy[0, :n].copy_(emb)
            mask = allow[0, 0]
            mask.zero_()
            mask.fill_diagonal_(True)  # padding sees itself only
            mask[:n, :n] = self.gpt.prefix_mask(text_len, n - text_len, device=mask.device)
            s_slot.fill_(slot)
            s_last.fill_(n - 1)
            if graph is None:
                return self._run(*static)
            graph.replay()
            return out.clone()
