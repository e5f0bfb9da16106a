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


def sample_and_step(gpt, cache: KVCache, sampler, slots, lengths, positions, eos: int, min_steps: int) -> torch.Tensor:
    """Sample each row's next token from the sampler's logits, run the decode step with it, store the
    new logits back: -> [2, B] (sampled ids, greedy ids). Static shapes only (graph-capturable)."""
    picked, greedy = sampler.sample(slots, eos, min_steps)
    sampler.logits[slots] = decode_step(gpt, cache, picked[:, None], positions, slots, lengths)
    return torch.stack([picked, greedy])


class GraphedDecoder:
    """Captures sampling + the decode step per batch bucket on CUDA; pads batches up to the bucket
    (padding rows use the scratch slot). One replay per tick, one [2, B] copy back to the host."""

    fused = True  # the scheduler calls it with (slots, lengths, positions); sampling happens inside

    def __init__(self, gpt, cache: KVCache, sampler, eos: int, min_steps: int,
                 buckets: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)) -> None:
        if cache.k_all is None:
            raise ValueError("CUDA-graph decoding needs a preallocated KV cache")
        self.gpt, self.cache, self.sampler, self.eos, self.min_steps = gpt, cache, sampler, eos, min_steps
        self.buckets = tuple(sorted({*(b for b in buckets if b < cache.slots_total), cache.slots_total}))
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, dict[str, torch.Tensor], torch.Tensor]] = {}
        self.host = torch.empty(2, cache.slots_total + 1, dtype=torch.long, pin_memory=True)

    def bucket(self, n: int) -> int:
        return next((b for b in self.buckets if b >= n), self.buckets[-1])

    def _run(self, static: dict[str, torch.Tensor]) -> torch.Tensor:
        return sample_and_step(self.gpt, self.cache, self.sampler, static["slots"], static["lengths"],
                               static["positions"], self.eos, self.min_steps)

    def _capture(self, b: int):
        dev = self.cache.k_all.device
        static = {"slots": torch.full((b,), self.cache.scratch_slot, dtype=torch.long, device=dev),
                  "lengths": torch.zeros(b, dtype=torch.long, device=dev),
                  "positions": torch.zeros(b, dtype=torch.long, device=dev)}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(2):  # warm-up on the scratch slot: kernels chosen, workspaces allocated
                self._run(static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: the vocoder thread keeps launching work (on its own stream) during capture
        with torch.cuda.graph(graph, capture_error_mode="thread_local"), torch.inference_mode():
            out = self._run(static)
        return graph, static, out

    def __call__(self, slots: list[int], lengths: list[int], positions: list[int]) -> tuple[list[int], list[int]]:
        n = len(slots)
        b = self.bucket(n)
        if b not in self.graphs:
            self.graphs[b] = self._capture(b)
        graph, static, out = self.graphs[b]
        pad = b - n
        host = torch.tensor([slots + [self.cache.scratch_slot] * pad, lengths + [0] * pad, positions + [0] * pad])
        host = host.to(static["slots"].device, non_blocking=True)
        static["slots"].copy_(host[0])
        static["lengths"].copy_(host[1])
        static["positions"].copy_(host[2])
        graph.replay()
        back = self.host[:, :n]
        back.copy_(out[:, :n], non_blocking=True)
        torch.cuda.current_stream().synchronize()
        return back[0].tolist(), back[1].tolist()
