"""GPT prefill for several admitted requests in one padded forward pass.

Each row is [text phones (+BERT) | prompt semantic tokens]; rows are padded to the longest and the
mask keeps each row to itself (text bidirectional, audio causal, padding never attended to; a padded
query attends only to itself so no softmax row is empty). Each row's K/V go into its KV slot and its
last position's logits come back. `graph_prefill` replays the same padded pass from CUDA graphs.
"""

from __future__ import annotations

import torch

from gsvd.engine.runtime.kv_cache import KVCache


def fill_padded(gpt, xy: torch.Tensor, allow: torch.Tensor, rows: list[tuple[torch.Tensor, int]]) -> None:
    """Write each row's embeddings (emb [n, D], text length) into xy [B, W, D], zeros after them, and its
    prefix mask into allow [B, 1, W, W]; padding positions (rows past len(rows) included) attend only
    to themselves."""
    xy.zero_()
    masks = allow[:, 0]
    masks.zero_()
    masks.diagonal(dim1=-2, dim2=-1).fill_(True)
    for r, (emb, text_len) in enumerate(rows):
        n = emb.shape[0]
        xy[r, :n].copy_(emb)
        masks[r, :n, :n] = gpt.prefix_mask(text_len, n - text_len, device=masks.device)


def forward_padded(gpt, cache: KVCache, xy, allow, slots, last) -> torch.Tensor:
    """The padded pass: every block over xy [B, W, D] with `allow`, each row's K/V written at positions
    0.. of its slot (slots [B]; with a preallocated block the whole width, positions past a row's length
    are never read), -> fp32 logits [B, vocab] at each row's last position (last [B])."""
    h, kvs = gpt.run_layers(xy, None, allow)
    width = xy.shape[1]
    if cache.k_all is not None:
        for layer, (k, v) in enumerate(kvs):
            cache.k_all[layer, :, :width].index_copy_(0, slots, k.to(cache.k_all.dtype))
            cache.v_all[layer, :, :width].index_copy_(0, slots, v.to(cache.v_all.dtype))
    else:
        for b, (slot, end) in enumerate(zip(slots.tolist(), last.tolist())):
            for layer, (k, v) in enumerate(kvs):
                cache.write(slot, layer, 0, k[b, : end + 1], v[b, : end + 1])
    return gpt.logits(h[torch.arange(xy.shape[0], device=xy.device), last]).float()


def prefill(gpt, cache: KVCache, rows: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]],
            device: torch.device, graphs=None) -> tuple[torch.Tensor, list[int]]:
    """rows: (slot, phone_ids [Nx], bert [1024, Nx], prompt tokens [Ny]) -> (next-token logits [B, vocab]
    fp32, prefix length of each row). Writes every row's K/V at positions 0.. of its slot. `graphs`
    (a `graph_prefill.GraphedPrefill`) takes the rows where it has graphs of their length."""
    dtype = next(gpt.parameters()).dtype
    packed = []  # (emb [n, D], text length) per row
    for _, phones, bert, prompt in rows:
        x = gpt.embed_text(phones.reshape(1, -1).to(device), bert.reshape(1, bert.shape[0], -1).to(device, dtype))
        y = gpt.embed_audio(prompt.reshape(1, -1).to(device, torch.long), 0)
        packed.append((torch.cat([x, y], dim=1)[0], x.shape[1]))
    lens = [emb.shape[0] for emb, _ in packed]
    if graphs is not None:
        logits = graphs([(slot, emb, tx) for (slot, *_), (emb, tx) in zip(rows, packed)])
        if logits is not None:
            return logits, lens
    width = max(lens)
    xy = torch.empty(len(rows), width, packed[0][0].shape[-1], device=device, dtype=packed[0][0].dtype)
    allow = torch.empty(len(rows), 1, width, width, dtype=torch.bool, device=device)
    fill_padded(gpt, xy, allow, packed)
    slots = torch.tensor([slot for slot, *_ in rows], device=device)
    return forward_padded(gpt, cache, xy, allow, slots, torch.tensor(lens, device=device) - 1), lens
