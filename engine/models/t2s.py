"""GPT-SoVITS stage 1: the text-to-semantic decoder ("GPT", upstream `Text2SemanticDecoder`).

Pure nn.Module code. Parameter names equal upstream checkpoint keys minus the
leading "model." so upstream `.ckpt` weights load strictly. The decoder is a
post-LayerNorm transformer (ReLU FFN of 4x width, packed q/k/v projection) over
[text phones (+ projected BERT) | semantic tokens]; text positions attend
bidirectionally among themselves, audio positions attend to all text and
causally to audio.

The module knows nothing about sampling, checkpoints or devices; the KV cache
is passed in by the caller (eager lists here, static slots in the runtime).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class T2SDims:
    """Architecture of the decoder (upstream config["model"])."""

    vocab_size: int = 1025  # 1024 semantic ids + EOS
    phoneme_vocab_size: int = 732  # v2 symbol table (v1: 512 rows, 322 used)
    embedding_dim: int = 512
    hidden_dim: int = 512
    n_head: int = 16
    n_layer: int = 24
    eos: int = 1024
    bert_dim: int = 1024

    @classmethod
    def from_config(cls, config: dict) -> T2SDims:
        """Build from upstream's embedded yaml dict (full config or its "model" part)."""
        m = config.get("model", config)
        return cls(
            vocab_size=int(m["vocab_size"]),
            phoneme_vocab_size=int(m["phoneme_vocab_size"]),
            embedding_dim=int(m["embedding_dim"]),
            hidden_dim=int(m["hidden_dim"]),
            n_head=int(m["head"]),
            n_layer=int(m["n_layer"]),
            eos=int(m.get("EOS", int(m["vocab_size"]) - 1)),
        )

    @property
    def head_dim(self) -> int:
        return self.hidden_dim // self.n_head


class TokenEmbedding(nn.Module):
    """Plain lookup table (upstream keeps it under `word_embeddings`)."""

    def __init__(self, dim: int, vocab: int) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.word_embeddings(ids)


class SinePositionalEmbedding(nn.Module):
    """x + alpha * PE[pos]: interleaved sin/cos table, no sqrt(d) scaling, learned alpha."""

    def __init__(self, dim: int, max_len: int = 4000) -> None:
        super().__init__()
        self.dim = dim
        self.alpha = nn.Parameter(torch.ones(1))
        self.register_buffer("table", self._make(max_len), persistent=False)

    def _make(self, length: int) -> torch.Tensor:
        pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)
        freq = torch.exp(torch.arange(0, self.dim, 2, dtype=torch.float32) * -(math.log(10000.0) / self.dim))
        pe = torch.zeros(length, self.dim)
        pe[:, 0::2] = torch.sin(pos * freq)
        pe[:, 1::2] = torch.cos(pos * freq)
        return pe  # [length, dim]

    def positions(self, start: int, length: int) -> torch.Tensor:
        """PE rows start..start+length-1 -> [length, dim] (float32, on the table's device)."""
        end = start + length
        if end > self.table.shape[0]:
            self.table = self._make(max(end, 2 * self.table.shape[0])).to(self.table.device)
        return self.table[start:end]

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        pe = self.positions(start, x.shape[1]).to(dtype=x.dtype, device=x.device)
        return x + self.alpha * pe


class PackedAttention(nn.Module):
    """Multi-head attention with upstream's packed q/k/v weights ([3D, D], rows q;k;v)."""

    def __init__(self, dim: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B,T,D] -> q, k, v each [B,T,D] (heads not split, as the cache stores them)."""
        return F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allow: torch.Tensor | None
    ) -> torch.Tensor:
        """q [B,Tq,D], k/v [B,Tk,D], allow bool broadcastable to [B,H,Tq,Tk] (True = may attend)."""
        b, tq, d = q.shape
        tk = k.shape[1]
        h = self.n_head
        qh = q.view(b, tq, h, d // h).transpose(1, 2)
        kh = k.view(b, tk, h, d // h).transpose(1, 2)
        vh = v.view(b, tk, h, d // h).transpose(1, 2)
        out = F.scaled_dot_product_attention(qh, kh, vh, allow)
        return self.out_proj(out.transpose(1, 2).reshape(b, tq, d))


class T2SLayer(nn.Module):
    """Post-LN block: x = LN1(x + attn(x)); x = LN2(x + W2 relu(W1 x))."""

    def __init__(self, dim: int, n_head: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.self_attn = PackedAttention(dim, n_head)
        self.linear1 = nn.Linear(dim, 4 * dim)
        self.linear2 = nn.Linear(4 * dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps)

    def finish(self, x: torch.Tensor, attn_out: torch.Tensor) -> torch.Tensor:
        """Residual + norms + FFN after attention: [B,T,D] -> [B,T,D]."""
        x = self.norm1(x + attn_out)
        return self.norm2(x + self.linear2(F.relu(self.linear1(x))))

    def forward(
        self,
        x: torch.Tensor,
        past_k: torch.Tensor | None,
        past_v: torch.Tensor | None,
        allow: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B,T,D]; past k/v [B,S,D] or None -> (y [B,T,D], k [B,S+T,D], v [B,S+T,D])."""
        q, k, v = self.self_attn.qkv(x)
        if past_k is not None:
            k = torch.cat([past_k, k], dim=1)
            v = torch.cat([past_v, v], dim=1)
        return self.finish(x, self.self_attn.attend(q, k, v, allow)), k, v


class _LayerStack(nn.Module):
    """Holds the blocks under `layers` (upstream key prefix `h.layers.N`)."""

    def __init__(self, dims: T2SDims) -> None:
        super().__init__()
        self.layers = nn.ModuleList(T2SLayer(dims.hidden_dim, dims.n_head) for _ in range(dims.n_layer))


class Text2SemanticDecoder(nn.Module):
    """Phones (+BERT) and prompt semantic tokens in, next-token logits out."""

    def __init__(self, dims: T2SDims) -> None:
        super().__init__()
        self.dims = dims
        d = dims.hidden_dim
        self.bert_proj = nn.Linear(dims.bert_dim, d)
        self.ar_text_embedding = TokenEmbedding(d, dims.phoneme_vocab_size)
        self.ar_text_position = SinePositionalEmbedding(d)
        self.ar_audio_embedding = TokenEmbedding(d, dims.vocab_size)
        self.ar_audio_position = SinePositionalEmbedding(d)
        self.h = _LayerStack(dims)
        self.ar_predict_layer = nn.Linear(d, dims.vocab_size, bias=False)

    @property
    def layers(self) -> nn.ModuleList:
        return self.h.layers

    def embed_text(self, phone_ids: torch.Tensor, bert: torch.Tensor) -> torch.Tensor:
        """phone_ids [B,Tx] long, bert [B,1024,Tx] -> [B,Tx,D] with text positions 0..Tx-1."""
        x = self.ar_text_embedding(phone_ids) + self.bert_proj(bert.transpose(1, 2))
        return self.ar_text_position(x)

    def embed_audio(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        """tokens [B,Ty] -> [B,Ty,D] with audio positions start..start+Ty-1."""
        return self.ar_audio_position(self.ar_audio_embedding(tokens), start)

    @staticmethod
    def prefix_mask(text_len: int, audio_len: int, device: torch.device | None = None) -> torch.Tensor:
        """[L,L] bool, True = may attend: text<->text all, audio->text all, audio->audio causal."""
        n = text_len + audio_len
        allow = torch.zeros(n, n, dtype=torch.bool, device=device)
        allow[:, :text_len] = True
        allow[text_len:, text_len:] = torch.ones(audio_len, audio_len, dtype=torch.bool, device=device).tril()
        return allow

    def run_layers(
        self,
        x: torch.Tensor,
        cache: list[tuple[torch.Tensor, torch.Tensor]] | None,
        allow: torch.Tensor | None,
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """All blocks over x [B,T,D] with an eager (concatenating) cache; returns the new cache."""
        new_cache = []
        for i, layer in enumerate(self.h.layers):
            past_k, past_v = cache[i] if cache is not None else (None, None)
            x, k, v = layer(x, past_k, past_v, allow)
            new_cache.append((k, v))
        return x, new_cache

    def forward_train(
        self, phones: torch.Tensor, phone_lens: torch.Tensor, bert: torch.Tensor, codes: torch.Tensor,
        code_lens: torch.Tensor,
    ) -> torch.Tensor:
        """Teacher forcing on a padded batch: phones [B,Tx] (+ phone_lens [B]), bert [B,1024,Tx],
        codes [B,Ty] (+ code_lens [B]) -> logits [B,Ty,vocab]; position t predicts codes[t+1]
        (EOS after the last). Same masks as inference: text sees all (real) text, audio sees all
        text and the audio before it; padding is never attended to."""
        tx, ty = phones.shape[1], codes.shape[1]
        xy = torch.cat([self.embed_text(phones, bert), self.embed_audio(codes)], dim=1)
        keys = torch.cat([torch.arange(tx, device=phones.device)[None] < phone_lens[:, None],
                          torch.arange(ty, device=codes.device)[None] < code_lens[:, None]], dim=1)  # [B, Tx+Ty]
        allow = self.prefix_mask(tx, ty, phones.device)[None] & keys[:, None, :]
        h, _ = self.run_layers(xy, None, allow[:, None])
        return self.ar_predict_layer(h[:, tx:])

    def logits(self, hidden_last: torch.Tensor) -> torch.Tensor:
        """[B,D] -> [B,vocab]."""
        return self.ar_predict_layer(hidden_last)
