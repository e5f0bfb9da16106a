"""GPT prefill for several admitted requests in one padded forward pass.

Each row is [text phones (+BERT) | prompt semantic tokens]; rows are padded to the longest and the
mask keeps each row to itself (text bidirectional, audio causal, padding never attended to; a padded
query attends only to itself so no softmax row is empty). Each row's K/V go into its KV slot and its
last position's logits come back. `graph_prefill` replays the same padded pass from CUDA graphs.
"""

from __future__ import annotations

import numpy as np
import torch

from gsvd.engine.runtime.kv_cache import KVCache


def embed_rows(gpt, rows: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], device: torch.device
               ) -> tuple[torch.Tensor, list[int], list[int]]:
    """rows: (phone_ids [Nx], bert [1024, Nx], prompt tokens [Ny]) -> (embeddings [B, max n, D], each row's
    [text | prompt] at positions 0..n-1 and zeros after; text lengths; lengths n). All rows in a few
    launches: the inputs padded on the host, embedded as one batch (every embedding is per position), then
    each row's prompt gathered to sit right after its own text. The host inputs are copied up without
    waiting for the GPU (the BERT block from pinned memory)."""
    tx = [int(ph.numel()) for ph, _, _ in rows]
    ty = [int(pr.numel()) for _, _, pr in rows]
    b, nx, ny = len(rows), max(tx), max(ty)
    phones, prompts = np.zeros((b, nx), np.int64), np.zeros((b, ny), np.int64)
    bert = torch.zeros(b, rows[0][1].shape[0], nx, pin_memory=torch.device(device).type == "cuda")
    bert_np = bert.numpy()
    for r, (ph, be, pr) in enumerate(rows):  # numpy: no torch call (no GIL hand-over) per row
        phones[r, : tx[r]] = np.asarray(ph).reshape(-1)
        bert_np[r, :, : tx[r]] = np.asarray(be)
        prompts[r, : ty[r]] = np.asarray(pr).reshape(-1)
    phones, prompts = torch.from_numpy(phones), torch.from_numpy(prompts)
    dtype = next(gpt.parameters()).dtype
    up = lambda t: t.to(device, non_blocking=True)  # noqa: E731  (pageable memory is staged at once, no sync)
    text = gpt.embed_text(up(phones), up(bert).to(dtype))
    audio = gpt.embed_audio(up(prompts), 0)
    src = torch.cat([text, audio, torch.zeros_like(audio[:, :1])], dim=1)  # the last position: zeros (padding)
    lens = [a + c for a, c in zip(tx, ty)]
    pos = torch.arange(max(lens))[None, :]
    t, n = torch.tensor(tx)[:, None], torch.tensor(lens)[:, None]
    idx = torch.where(pos < t, pos, torch.where(pos < n, nx + pos - t, nx + ny))
    emb = src.gather(1, up(idx)[..., None].expand(-1, -1, src.shape[-1]))
    return emb, tx, lens


def fill_padded(xy: torch.Tensor, allow: torch.Tensor, emb: torch.Tensor, text_lens: list[int], lens: list[int]
                ) -> None:
    """Write rows' embeddings (emb [b, w, D] from `embed_rows`) into xy [B, W, D] (b <= B, w <= W), zeros
    elsewhere, and each row's prefix mask into allow [B, 1, W, W]: text<->text, audio->text, audio->audio
    causal (the model's `prefix_mask`); padding positions (rows past b included) attend only to themselves."""
    b, w = emb.shape[:2]
    xy.zero_()
    xy[:b, :w].copy_(emb)
    rows, width = xy.shape[:2]
    pad = [0] * (rows - b)
    t = torch.tensor(text_lens + pad)[:, None, None].to(xy.device, non_blocking=True)
    n = torch.tensor(lens + pad)[:, None, None].to(xy.device, non_blocking=True)
    i = torch.arange(width, device=xy.device)[:, None]
    j = torch.arange(width, device=xy.device)[None, :]
    inside = i < n
    allow[:, 0] = ((j < t) & inside) | ((i >= t) & inside & (j >= t) & (j <= i)) | (~inside & (i == j))


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
    emb, tx, lens = embed_rows(gpt, [(ph, bert, prompt) for _, ph, bert, prompt in rows], device)
    slot_ids = [slot for slot, *_ in rows]
    if graphs is not None:
        logits = graphs(slot_ids, emb, tx, lens)
        if logits is not None:
            return logits, lens
    width = emb.shape[1]
    xy = torch.empty_like(emb)
    allow = torch.empty(len(rows), 1, width, width, dtype=torch.bool, device=device)
    fill_padded(xy, allow, emb, tx, lens)
    slots = torch.tensor(slot_ids).to(device, non_blocking=True)
    last = torch.tensor([n - 1 for n in lens]).to(device, non_blocking=True)
    return forward_padded(gpt, cache, xy, allow, slots, last), lens
