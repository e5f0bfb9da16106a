"""VITS-style transformer encoder used by the SoVITS content encoder (pure nn.Module).

Channel-first tensors [B, C, T]. Self-attention uses learned relative-position
key/value tables (window 4, shared by heads); a 0/1 mask [B, 1, T] marks valid
frames. Parameter names follow upstream (`attn_layers.i.conv_q`, `emb_rel_k`,
`norm_layers_1.i.gamma`, `ffn_layers.i.conv_1` ...).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of [B, C, T] (params `gamma`, `beta`)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, -1)
        x = F.layer_norm(x, self.gamma.shape, self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


class RelativeAttention(nn.Module):
    """Multi-head attention with 1x1 conv projections; optional relative positions."""

    def __init__(self, channels: int, out_channels: int, n_heads: int, window_size: int | None = None) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.k_channels = channels // n_heads
        self.window_size = window_size
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, out_channels, 1)
        if window_size is not None:
            std = self.k_channels**-0.5
            self.emb_rel_k = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
            self.emb_rel_v = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)

    def forward(self, x: torch.Tensor, c: torch.Tensor, mask: torch.Tensor | None, rel: tuple | None = None
                ) -> torch.Tensor:
        """x [B,C,Tq] queries, c [B,C,Tk] keys/values, mask [B,1,Tq,Tk] (0 = blocked); `rel`: the
        `relative_positions` of this length (an encoder computes them once for all its layers)."""
        q, k, v = self.conv_q(x), self.conv_k(c), self.conv_v(c)
        b, d, tk = k.shape
        tq = q.shape[2]
        h, dk = self.n_heads, self.k_channels
        q = q.view(b, h, dk, tq).transpose(2, 3) / math.sqrt(dk)
        k = k.view(b, h, dk, tk).transpose(2, 3)
        v = v.view(b, h, dk, tk).transpose(2, 3)
        scores = q @ k.transpose(-2, -1)
        if self.window_size is not None:
            rel = rel if rel is not None else relative_positions(tq, self.window_size, q.device)
            scores = scores + self._relative_logits(q, rel)
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e4)
        p = torch.softmax(scores, dim=-1)
        out = p @ v
        if self.window_size is not None:
            out = out + self._relative_values(p, rel)
        out = out.transpose(2, 3).contiguous().view(b, d, tq)
        return self.conv_o(out)

    def _relative_logits(self, q: torch.Tensor, rel: tuple) -> torch.Tensor:
        """[b,h,l,d] (already scaled) -> [b,h,l,l]: q_i . emb_rel_k[j-i+w] inside the window, 0 outside."""
        key_idx, key_valid = rel[0], rel[1]
        small = q @ self.emb_rel_k.unsqueeze(0).transpose(-2, -1)  # [b,h,l,2w+1]
        return torch.gather(small, -1, key_idx.expand(q.shape[0], q.shape[1], -1, -1)) * key_valid

    def _relative_values(self, p: torch.Tensor, rel: tuple) -> torch.Tensor:
        """Attention weights [b,h,l,l] -> sum_k p[i, i+k-w] . emb_rel_v[k] over the window -> [b,h,l,d]."""
        value_idx, value_valid = rel[2], rel[3]
        picked = torch.gather(p, -1, value_idx.expand(p.shape[0], p.shape[1], -1, -1)) * value_valid
        return picked @ self.emb_rel_v.unsqueeze(0)


def relative_positions(n: int, w: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Gather indices and in-window masks of the relative-position terms for length n and window w:
    key index [n, n] (key j of query i sits at j - i + w of the window) and its mask, value index
    [n, 2w + 1] (window slot k of query i reads position i + k - w) and its mask; indices clamped."""
    pos = torch.arange(n, device=device)
    key = pos[None, :] - pos[:, None] + w
    value = pos[:, None] + torch.arange(2 * w + 1, device=device)[None, :] - w
    return (key.clamp(0, 2 * w), (key >= 0) & (key <= 2 * w), value.clamp(0, n - 1), (value >= 0) & (value < n))


class ConvFFN(nn.Module):
    """conv(k) -> relu -> conv(k) with "same" padding, masked."""

    def __init__(self, channels: int, filter_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, channels, kernel_size)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        return x if k == 1 else F.pad(x, ((k - 1) // 2, k // 2))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv_1(self._pad(x * mask)))
        return self.conv_2(self._pad(x * mask)) * mask


class RelEncoder(nn.Module):
    """Post-norm stack of relative self-attention + conv FFN over [B, C, T]."""

    def __init__(
        self, channels: int, filter_channels: int, n_heads: int, n_layers: int, kernel_size: int, window_size: int = 4
    ) -> None:
        super().__init__()
        self.attn_layers = nn.ModuleList(
            RelativeAttention(channels, channels, n_heads, window_size) for _ in range(n_layers)
        )
        self.norm_layers_1 = nn.ModuleList(ChannelLayerNorm(channels) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(ConvFFN(channels, filter_channels, kernel_size) for _ in range(n_layers))
        self.norm_layers_2 = nn.ModuleList(ChannelLayerNorm(channels) for _ in range(n_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B,C,T], mask [B,1,T] -> [B,C,T]."""
        attn_mask = mask.unsqueeze(2) * mask.unsqueeze(-1)
        rel = relative_positions(x.shape[2], self.attn_layers[0].window_size, x.device)  # the same for every layer
        x = x * mask
        for attn, n1, ffn, n2 in zip(self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2):
            x = n1(x + attn(x, x, attn_mask, rel))
            x = n2(x + ffn(x, mask))
        return x * mask
