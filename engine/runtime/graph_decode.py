"""GPT decode step as one static-shape computation over the preallocated KV block, replayed from a
CUDA graph per batch bucket.

Inputs are device tensors: token [B,1], audio position [B], slot ids [B], lengths [B] (each
stream's cache length before this step). The step writes the new K/V rows at (slot, length),
attends over every position of the block with a mask `col <= length` (the true length of each
slot; padding rows use the scratch slot), and leaves next-token logits [B, vocab] in a static
buffer. On CPU the same function runs eagerly (it is what the tests compare with the scheduler's
eager step).
"""

from __future__ import annotations

import torch

from gsvd.engine.runtime.kv_cache import KVCache


def decode_step(gpt, cache: KVCache, token, position, slots, lengths) -> torch.Tensor:
    """One step for B streams -> logits [B, vocab] (fp32). Uses the cache's k_all/v_all block."""
    k_all, v_all = cache.k_all, cache.v_all
    table = gpt.ar_audio_position.table
    x = gpt.ar_audio_embedding(token) + gpt.ar_audio_position.alpha * table[position].to(k_all.dtype)[:, None]
    cols = torch.arange(k_all.shape[2], device=token.device)
    allow = (cols[None, :] <= lengths[:, None])[:, None, None, :]  # [B,1,1,T]
    for i, layer in enumerate(gpt.layers):
        q, k, v = layer.self_attn.qkv(x)
        k_all[i].index_put_((slots, lengths), k[:, 0])
        v_all[i].index_put_((slots, lengths), v[:, 0])
        kk = k_all[i].index_select(0, slots)
        vv = v_all[i].index_select(0, slots)
        x = layer.finish(x, layer.self_attn.attend(q, kk, vv, allow))
    return gpt.logits(x[:, 0]).float()


class GraphedDecoder:
    """Captures `decode_step` per batch bucket on CUDA; pads batches up to the bucket."""

    def __init__(self, gpt, cache: KVCache, buckets: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)) -> None:
        if cache.k_all is None:
            raise ValueError("CUDA-graph decoding needs a preallocated KV cache")
        self.gpt, self.cache = gpt, cache
        self.buckets = tuple(sorted({*(b for b in buckets if b < cache.slots_total), cache.slots_total}))
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, dict[str, torch.Tensor], torch.Tensor]] = {}

    def bucket(self, n: int) -> int:
        return next((b for b in self.buckets if b >= n), self.buckets[-1])

    def _capture(self, b: int):
        dev = self.cache.k_all.device
        static = {"token": torch.zeros(b, 1, dtype=torch.long, device=dev),
                  "position": torch.zeros(b, dtype=torch.long, device=dev),
                  "slots": torch.full((b,), self.cache.scratch_slot, dtype=torch.long, device=dev),
                  "lengths": torch.zeros(b, dtype=torch.long, device=dev)}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(2):  # warm-up: kernels chosen, workspaces allocated
                decode_step(self.gpt, self.cache, **static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: the vocoder thread keeps launching work (on its own stream) during capture
        with torch.cuda.graph(graph, capture_error_mode="thread_local"), torch.inference_mode():
            out = decode_step(self.gpt, self.cache, **static)
        return graph, static, out

    def __call__(self, tokens: list[int], positions: list[int], slots: list[int], lengths: list[int]) -> torch.Tensor:
        n = len(tokens)
        b = self.bucket(n)
        if b not in self.graphs:
            self.graphs[b] = self._capture(b)
        graph, static, out = self.graphs[b]
        pad = b - n
        scratch = self.cache.scratch_slot
        host = torch.tensor([tokens + [0] * pad, positions + [0] * pad, slots + [scratch] * pad, lengths + [0] * pad])
        host = host.to(static["token"].device, non_blocking=True)
        static["token"].copy_(host[0][:, None])
        static["position"].copy_(host[1])
        static["slots"].copy_(host[2])
        static["lengths"].copy_(host[3])
        graph.replay()
        return out[:n]
