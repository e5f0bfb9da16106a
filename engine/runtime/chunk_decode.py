"""Chunk decode for many streams at once: one content-encoder pass and one vocoder pass per group.

The scheduler (or a decode worker) hands over every stream whose next chunk is ready. Streams of one SoVITS
model at speed 1 share a padded batch through the content encoder and prior (codes and phones padded,
masks mark the real frames, so each row equals its unbatched decode up to float rounding; where a
CUDA graph of the padded shape exists, `graph_content`, it is replayed instead); each
stream's prior noise is its own, drawn once per frame; windows of equal length then go through the
reverse flow + HiFi-GAN together (a CUDA graph per window length and batch bucket where the runtime
has one). Other speeds run one stream at a time (re-timing interpolates over the padded length).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch


@torch.inference_mode()
def decode_chunks(items: list[tuple[object, bool]]) -> list[np.ndarray]:
    """items: (StreamDecoder, finished) pairs, one per stream -> each stream's joined PCM (float32)."""
    plans = [d.plan(finished) for d, finished in items]
    audio: list[np.ndarray] = [np.zeros(0, np.float32)] * len(items)
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, ((d, _), (start, end, _)) in enumerate(zip(items, plans)):
        if end > start:
            key = (id(d.sovits), "batch") if d.speed == 1.0 else (id(d.sovits), "single", i)
            groups[key].append(i)
    for members in groups.values():
        windows = _windows([items[i][0] for i in members], [plans[i] for i in members])
        by_len: dict[int, list[tuple[int, torch.Tensor, int]]] = defaultdict(list)
        for i, (z, skip) in zip(members, windows):
            by_len[int(z.shape[-1])].append((i, z, skip))
        for rows in by_len.values():
            d0 = items[rows[0][0]][0]
            z = torch.cat([z for _, z, _ in rows])
            ge = torch.cat([items[i][0].ge for i, _, _ in rows])
            if d0.vocoder is not None:
                wav = d0.vocoder(z, ge, graphable=d0.speed == 1.0)
            else:
                wav = d0.sovits.vocode(z, torch.ones_like(z[:, :1]), ge)
            pcm = wav[:, 0].float().cpu().numpy()  # one device-to-host copy per group
            for k, (i, _, skip) in enumerate(rows):
                audio[i] = pcm[k, skip:]
    return [d.commit(end, a, finished) for (d, finished), (_, end, _), a in zip(items, plans, audio)]


def _windows(decoders: list, plans: list[tuple[int, int, int]]) -> list[tuple[torch.Tensor, int]]:
    """Content encoder + prior over each stream's known tokens (one padded batch) -> per stream the
    vocoder window z_p [1, C, frames] and how many leading samples of its audio to drop."""
    sovits = decoders[0].sovits
    p = next(sovits.parameters())
    known = [k for _, _, k in plans]
    codes = torch.zeros(len(decoders), 1, max(known), dtype=torch.long)
    n_ph = [d.phones.shape[-1] for d in decoders]
    phones = torch.zeros(len(decoders), max(n_ph), dtype=torch.long, device=p.device)
    for r, (d, k) in enumerate(zip(decoders, known)):
        codes[r, 0, :k] = torch.tensor(d.tokens[:k], dtype=torch.long)
        phones[r, : n_ph[r]] = d.phones[0]  # stays on the device: no copy back to the host per stream
    lens = torch.tensor(known)
    batched = len(decoders) > 1
    ge = torch.cat([d.ge for d in decoders])
    graphs = decoders[0].content
    got = None if graphs is None or decoders[0].speed != 1.0 else graphs(codes.to(p.device), phones, ge, known, n_ph)
    if got is not None:  # padded to a graph's shape, replayed
        m, logs = got
    else:
        hidden, mask = sovits.content(codes.to(p.device), phones, ge,
                                      lens.to(p.device) if batched else None,
                                      torch.tensor(n_ph, device=p.device) if batched else None)
        m, logs, mask = sovits.prior(hidden, mask, decoders[0].speed)
    hop = sovits.dims.hop
    frames = [2 * k if batched or got is not None else m.shape[-1] for k in known]
    # each stream's own prior noise (drawn once per frame) in one padded batch; z_p = m + noise * exp(logs) * scale
    # for every row at once (the same arithmetic per element as one row alone)
    noise = torch.zeros(len(decoders), m.shape[1], max(frames), device=m.device, dtype=m.dtype)
    for r, (d, f) in enumerate(zip(decoders, frames)):
        noise[r, :, :f] = d.noise_for(f, m)[0]
    scale = torch.tensor([d.noise_scale for d in decoders], dtype=m.dtype).to(m.device, non_blocking=True)
    z_all = m[..., : noise.shape[-1]] + noise * torch.exp(logs[..., : noise.shape[-1]]) * scale[:, None, None]
    out = []
    for r, (d, (start, end, _), f) in enumerate(zip(decoders, plans, frames)):
        lo, a, b = d.window(start, end, f)
        out.append((z_all[r : r + 1, :, lo:b], max(0, (a - lo) * hop - d.overlap)))
    return out
