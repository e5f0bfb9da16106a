"""GPT prefill for several admitted requests in one padded forward pass.

Each row is [text phones (+BERT) | prompt semantic tokens]; rows are padded to the longest and the
mask keeps each row to itself (text bidirectional, audio causal, padding never attended to; a padded
query attends only to itself so no softmax row is empty). Each row's K/V go into its KV slot and its
last position's logits come back.
"""

from __future__ import annotations

import torch

from gsvd.engine.runtime.kv_cache import KVCache


def prefill(gpt, cache: KVCache, rows: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]],
            device: torch.device, graphs=None) -> tuple[torch.Tensor, list[int]]:
    """rows: (slot, phone_ids [Nx], bert [1024, Nx], prompt tokens [Ny]) -> (next-token logits [B, vocab]
    fp32, prefix length of each row). Writes every row's K/V at positions 0.. of its slot. `graphs`
    (a `graph_prefill.GraphedPrefill`) takes the rows where it has graphs of their length."""
    dtype = next(gpt.parameters()).dtype
    embs, parts = [], []
    for _, phones, bert, prompt in rows:
        x = gpt.embed_text(phones.reshape(1, -1).to(device), bert.reshape(1, bert.shape[0], -1).to(device, dtype))
        y = gpt.embed_audio(prompt.reshape(1, -1).to(device, torch.long), 0)
        embs.append(torch.cat([x, y], dim=1)[0])
        parts.append((x.shape[1], y.shape[1]))
    lens = [e.shape[0] for e in embs]
    if graphs is not None:
        logits = graphs([(slot, emb, tx) for (slot, *_), emb, (tx, _) in zip(rows, embs, parts)])
        if logits is not None:
            return logits, lens
    if len(rows) == 1:
        xy, allow = embs[0][None], gpt.prefix_mask(*parts[0], device=device)
    else:
        width = max(lens)
        xy = torch.zeros(len(rows), width, embs[0].shape[-1], device=device, dtype=embs[0].dtype)
        allow = torch.zeros(len(rows), 1, width, width, dtype=torch.bool, device=device)
        for b, (emb, (tx, ty)) in enumerate(zip(embs, parts)):
            n = emb.shape[0]
            xy[b, :n] = emb
            allow[b, 0, :n, :n] = gpt.prefix_mask(tx, ty, device=device)
            pad = torch.arange(n, width, device=device)
            allow[b, 0, pad, pad] = True
    h, kvs = gpt.run_layers(xy, None, allow)
    slots = [slot for slot, *_ in rows]
    if cache.k_all is not None:  # one indexed write per layer for all rows (positions past a row's length are
        idx = torch.tensor(slots, device=device)  # never read: attention stops at the slot's length)
        width = xy.shape[1]
        for layer, (k, v) in enumerate(kvs):
            cache.k_all[layer, idx, :width] = k.to(cache.k_all.dtype)
            cache.v_all[layer, idx, :width] = v.to(cache.v_all.dtype)
    else:
        for b, (slot, n) in enumerate(zip(slots, lens)):
            for layer, (k, v) in enumerate(kvs):
                cache.write(slot, layer, 0, k[b, :n], v[b, :n])
    last = h[torch.arange(len(rows), device=device), torch.tensor(lens, device=device) - 1]
    return gpt.logits(last).float(), lens
