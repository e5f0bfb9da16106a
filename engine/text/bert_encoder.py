"""The part of chinese-roberta-wwm-ext-large that the v2 frontend reads, as one plain forward.

Upstream takes `hidden_states[-3]` of the masked-LM model: the output of the first `n_layers - 2` encoder
layers. The last two layers and the masked-LM head (a 1024 x 21128 projection of every token) are never
needed, so this module does not hold or run them. Query, key and value are one matmul; attention is
`scaled_dot_product_attention` under a key-padding bias; position and token-type embeddings (every token is
type 0) are one table. There is no host sync and no branch on the data, so one call replays as a CUDA graph
per padded shape (`text/bert.py`), and the same code runs eagerly on the CPU (the tests' reference is the
transformers model itself).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from transformers import BertForMaskedLM

SKIPPED_LAYERS = 2  # hidden_states[-3]: everything after the last two layers is unused


class _Layer(nn.Module):
    def __init__(self, hidden: int, inner: int, eps: float) -> None:
        super().__init__()
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.ln1 = nn.LayerNorm(hidden, eps=eps)
        self.up = nn.Linear(hidden, inner)
        self.down = nn.Linear(inner, hidden)
        self.ln2 = nn.LayerNorm(hidden, eps=eps)


class BertEncoder(nn.Module):
    """ids [B, W] (right padded), mask [B, W] (1 on tokens, 0 on padding) -> hidden [B, W, hidden] equal to
    transformers' `hidden_states[-3]` of the same batch (rows of padding: whatever, never read)."""

    def __init__(self, vocab: int, hidden: int, heads: int, layers: int, inner: int, positions: int,
                 eps: float = 1e-12) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not a multiple of {heads} heads")
        self.heads, self.positions, self.eps = heads, positions, eps
        self.word = nn.Embedding(vocab, hidden)
        self.pos = nn.Parameter(torch.zeros(positions, hidden))  # position + token type 0
        self.ln = nn.LayerNorm(hidden, eps=eps)
        self.layers = nn.ModuleList(_Layer(hidden, inner, eps) for _ in range(layers))

    @classmethod
    def from_pretrained_model(cls, model: BertForMaskedLM) -> BertEncoder:
        """The encoder of a transformers `BertForMaskedLM` (what chinese-roberta's folder loads as) with its
        weights (copies: the transformers model can be dropped). Only what chinese-roberta is (absolute positions, erf GELU,
        post-norm layers) is accepted; anything else is a ValueError naming the setting."""
        cfg = model.config
        positions = getattr(cfg, "position_embedding_type", None) or "absolute"  # transformers 5: absolute only
        if positions != "absolute":
            raise ValueError(f"BERT with {positions} position embeddings is not supported")
        if cfg.hidden_act != "gelu":
            raise ValueError(f"BERT with activation {cfg.hidden_act!r} is not supported (chinese-roberta uses gelu)")
        if cfg.num_hidden_layers <= SKIPPED_LAYERS:
            raise ValueError(f"BERT with {cfg.num_hidden_layers} layers has no hidden_states[-3] layer output")
        bert = model.bert
        emb = bert.embeddings
        enc = cls(cfg.vocab_size, cfg.hidden_size, cfg.num_attention_heads, cfg.num_hidden_layers - SKIPPED_LAYERS,
                  cfg.intermediate_size, cfg.max_position_embeddings, cfg.layer_norm_eps)
        with torch.no_grad():
            enc.word.weight.copy_(emb.word_embeddings.weight)
            enc.pos.copy_(emb.position_embeddings.weight + emb.token_type_embeddings.weight[0])
            enc.ln.load_state_dict(emb.LayerNorm.state_dict())
            for mine, theirs in zip(enc.layers, bert.encoder.layer, strict=False):
                att = theirs.attention
                mine.qkv.weight.copy_(torch.cat([att.self.query.weight, att.self.key.weight, att.self.value.weight]))
                mine.qkv.bias.copy_(torch.cat([att.self.query.bias, att.self.key.bias, att.self.value.bias]))
                mine.out.load_state_dict(att.output.dense.state_dict())
                mine.ln1.load_state_dict(att.output.LayerNorm.state_dict())
                mine.up.load_state_dict(theirs.intermediate.dense.state_dict())
                mine.down.load_state_dict(theirs.output.dense.state_dict())
                mine.ln2.load_state_dict(theirs.output.LayerNorm.state_dict())
        return enc.eval()

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, w = ids.shape
        x = self.word(ids) + self.pos[:w]
        x = self.ln(x)
        bias = (1 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min  # [B, 1, 1, W]: keys only
        d = x.shape[-1] // self.heads
        for layer in self.layers:
            q, k, v = layer.qkv(x).view(b, w, 3, self.heads, d).permute(2, 0, 3, 1, 4)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
            x = layer.ln1(x + layer.out(att.transpose(1, 2).reshape(b, w, -1)))
            x = layer.ln2(x + layer.down(F.gelu(layer.up(x))))
        return x
