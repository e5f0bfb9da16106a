"""Export wrappers around the engine's own modules (no second copy of any model).

Four graphs, all batch-first with named inputs/outputs:

- `GptPrefill`: phone ids [1,N], BERT [1,1024,N], prompt tokens [1,Ty] -> logits [1,V],
  k/v cache [L,1,N+Ty,D] (text bidirectional, audio causal).
- `GptDecodeStep`: token [B,1], audio position [B], k/v cache [L,B,T,D], lengths [B] ->
  logits [B,V], new k/v rows [L,B,1,D] (the caller writes them at `lengths`; attention
  covers each row's true length plus the new token).
- `SovitsChunk`: codes [1,1,T25], target phones [1,Np], timbre ge [1,gin,1] -> prior mean and
  log-std [1,C,2*T25] (content encoder + MRTE + projection; noise is added outside).
- `Vocoder`: latent z_p [B,C,F], ge [B,gin,1] -> PCM [B,1,F*640] (reverse flow + HiFi-GAN).
"""

from __future__ import annotations

import torch
from torch import nn


class GptPrefill(nn.Module):
    def __init__(self, gpt) -> None:
        super().__init__()
        self.gpt = gpt

    def forward(self, phone_ids, bert, prompt):
        g = self.gpt
        x = g.embed_text(phone_ids, bert)
        y = g.ar_audio_position(g.ar_audio_embedding(prompt), 0)
        xy = torch.cat([x, y], dim=1)
        n, total = x.shape[1], xy.shape[1]
        pos = torch.arange(total, device=xy.device)
        allow = (pos[None, :] < n) | ((pos[:, None] >= n) & (pos[None, :] <= pos[:, None]))
        h, cache = g.run_layers(xy, None, _additive(allow, xy.dtype))
        k = torch.stack([c[0] for c in cache])
        v = torch.stack([c[1] for c in cache])
        return g.logits(h[:, -1]), k, v


class GptDecodeStep(nn.Module):
    def __init__(self, gpt) -> None:
        super().__init__()
        self.gpt = gpt

    def forward(self, token, position, k_cache, v_cache, lengths):
        g = self.gpt
        pe = g.ar_audio_position.table.to(k_cache.dtype)[position]  # [B,D]
        x = g.ar_audio_embedding(token) + g.ar_audio_position.alpha * pe[:, None]
        t = k_cache.shape[2]
        cols = torch.arange(t + 1, device=token.device)
        allow = _additive(((cols[None, :] < lengths[:, None]) | (cols[None, :] == t))[:, None, None, :], x.dtype)
        new_k, new_v = [], []
        for i, layer in enumerate(g.layers):
            q, k, v = layer.self_attn.qkv(x)
            kk = torch.cat([k_cache[i], k], dim=1)
            vv = torch.cat([v_cache[i], v], dim=1)
            x = layer.finish(x, layer.self_attn.attend(q, kk, vv, allow))
            new_k.append(k)
            new_v.append(v)
        return g.logits(x[:, 0]), torch.stack(new_k), torch.stack(new_v)


class SovitsChunk(nn.Module):
    def __init__(self, sovits) -> None:
        super().__init__()
        self.sovits = sovits

    def forward(self, codes, phones, ge):
        hidden, mask = self.sovits.content(codes, phones, ge)
        m, logs, _ = self.sovits.prior(hidden, mask, 1.0)
        return m, logs


class Vocoder(nn.Module):
    def __init__(self, sovits) -> None:
        super().__init__()
        self.sovits = sovits

    def forward(self, z_p, ge):
        mask = torch.ones_like(z_p[:, :1])
        return self.sovits.vocode(z_p, mask, ge)


def _additive(allow: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Boolean attention mask -> additive mask in the graph's dtype (keeps fp16 graphs single-typed)."""
    return torch.zeros(allow.shape, dtype=dtype, device=allow.device).masked_fill(~allow, float("-inf"))
