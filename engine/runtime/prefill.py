"""GPT prefill for several admitted requests in one padded forward pass.

Each row is [text phones (+BERT) | prompt semantic tokens]; rows are padded to the longest and the
mask keeps each row to itself (text bidirectional, audio causal, padding never attended to; a padded
query attends only to itself so no softmax row is empty). Each row's K/V go into its KV slot and its
last position's logits come back. `graph_prefill` replays the same padded pass from CUDA graphs.

The host side is numpy (`pack_rows`): every torch call hands the GIL over to the callers' threads, so
a pass makes a fixed handful of them whatever its number of rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gsvd.engine.runtime.kv_cache import KVCache

Row = tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]  # (slot, phone ids [Nx], bert [1024, Nx], prompt [Ny])


@dataclass
class Packed:
    """Rows padded on the host for one pass of `batch` rows and `width` positions."""

    phones: np.ndarray  # [batch, nx] int64
    prompts: np.ndarray  # [batch, ny] int64
    bert: torch.Tensor  # [batch, 1024, nx] float32 (pinned for a CUDA pass)
    index: np.ndarray  # [batch, width] int64: where each position's embedding is in [text | prompt | zeros]
    meta: np.ndarray  # [4, batch] int64: slot, last position, text length, length (padding rows: pad slot, 0...)


def row_lengths(rows: list[Row]) -> tuple[list[int], list[int]]:
    """Each row's text length and prefix length (text + prompt)."""
    tx = [int(ph.numel()) for _, ph, _, _ in rows]
    return tx, [t + int(pr.numel()) for t, (_, _, _, pr) in zip(tx, rows)]


def pack_rows(rows: list[Row], width: int, batch: int, pad_slot: int, pin: bool) -> Packed:
    """Put rows (at most `batch`, each at most `width` long) together with numpy: no torch call per row."""
    tx, lens = row_lengths(rows)
    ty = [n - t for t, n in zip(tx, lens)]
    nx, ny = max(tx), max(ty)
    phones, prompts = np.zeros((batch, nx), np.int64), np.zeros((batch, ny), np.int64)
    bert = torch.zeros(batch, rows[0][2].shape[0], nx, pin_memory=pin)
    bert_np = bert.numpy()
    meta = np.zeros((4, batch), np.int64)
    meta[0] = pad_slot
    for r, (slot, ph, be, pr) in enumerate(rows):
        phones[r, : tx[r]] = np.asarray(ph).reshape(-1)
        bert_np[r, :, : tx[r]] = np.asarray(be)
        prompts[r, : ty[r]] = np.asarray(pr).reshape(-1)
        meta[:, r] = (slot, lens[r] - 1, tx[r], lens[r])
    pos = np.arange(width)[None, :]
    t, n = meta[2][:, None], meta[3][:, None]
    index = np.where(pos < t, pos, np.where(pos < n, nx + pos - t, nx + ny))  # text, then the row's own prompt
    return Packed(phones, prompts, bert, index, meta)


def embed_packed(gpt, packed: Packed, device: torch.device, out: torch.Tensor | None = None) -> torch.Tensor:
    """Embeddings of packed rows -> [batch, width, D] (into `out` when given): each row's [text | prompt]
    at positions 0..n-1, zeros after and in padding rows. All rows in a few launches (every embedding is
    per position); the host inputs go up without waiting for the GPU."""
    up = lambda a: torch.from_numpy(a).to(device, non_blocking=True)  # noqa: E731  (pageable: staged at once)
    dtype = next(gpt.parameters()).dtype
    text = gpt.embed_text(up(packed.phones), packed.bert.to(device, non_blocking=True).to(dtype))
    audio = gpt.embed_audio(up(packed.prompts), 0)
    src = torch.cat([text, audio, torch.zeros_like(audio[:, :1])], dim=1)
    index = up(packed.index)[..., None].expand(-1, -1, src.shape[-1])
    return torch.gather(src, 1, index) if out is None else torch.gather(src, 1, index, out=out)


def padded_allow(text_lens: torch.Tensor, lens: torch.Tensor, width: int) -> torch.Tensor:
    """Each row's prefix mask [B, 1, W, W] from its text length and length ([B] device tensors; graph-
    capturable): text<->text, audio->text, audio->audio causal (the model's `prefix_mask`); positions past
    a row's length (and rows of length 0) attend only to themselves."""
    i = torch.arange(width, device=lens.device)[:, None]
    j = torch.arange(width, device=lens.device)[None, :]
    t, n = text_lens[:, None, None], lens[:, None, None]
    inside = i < n
    return (((j < t) & inside) | ((i >= t) & inside & (j >= t) & (j <= i)) | (~inside & (i == j)))[:, None]


def forward_padded(gpt, cache: KVCache, xy: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
    """The padded pass: every block over xy [B, W, D] with each row's mask (meta [4, B]: slot, last position,
    text length, length), each row's K/V written at positions 0.. of its slot (with a preallocated block the
    whole width: positions past a row's length are never read) -> fp32 logits [B, vocab] at each row's last
    position."""
    slots, last = meta[0], meta[1]
    h, kvs = gpt.run_layers(xy, None, padded_allow(meta[2], meta[3], xy.shape[1]))
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


def prefill(gpt, cache: KVCache, rows: list[Row], device: torch.device, graphs=None,
            weights=None) -> tuple[torch.Tensor, list[int]]:
    """rows: (slot, phone_ids [Nx], bert [1024, Nx], prompt tokens [Ny]) -> (next-token logits [B, vocab]
    fp32, prefix length of each row). Writes every row's K/V at positions 0.. of its slot. `graphs`
    (a `graph_prefill.GraphedPrefill`) takes the rows where it has graphs of their length (a template's graphs take
    the model's flat `weights` first)."""
    _, lens = row_lengths(rows)
    if graphs is not None:
        logits = graphs(rows, gpt, weights)
        if logits is not None:
            return logits, lens
    packed = pack_rows(rows, max(lens), len(rows), cache.scratch_slot, torch.device(device).type == "cuda")
    xy = embed_packed(gpt, packed, device)
    return forward_padded(gpt, cache, xy, torch.from_numpy(packed.meta).to(device, non_blocking=True)), lens
