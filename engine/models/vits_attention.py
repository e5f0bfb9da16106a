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
        x = F.layer_norm(x, (x.shape[-1],), self.gamma, self.beta, self.eps)
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

    def forward(self, x: torch.Tensor, c: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x [B,C,Tq] queries, c [B,C,Tk] keys/values, mask [B,1,Tq,Tk] (0 = blocked)."""
        q, k, v = self.conv_q(x), self.conv_k(c), self.conv_v(c)
        b, d, tk = k.shape
        tq = q.shape[2]
        h, dk = self.n_heads, self.k_channels
        q = q.view(b, h, dk, tq).transpose(2, 3) / math.sqrt(dk)
        k = k.view(b, h, dk, tk).transpose(2, 3)
        v = v.view(b, h, dk, tk).transpose(2, 3)
        scores = q @ k.transpose(-2, -1)
        if self.window_size is not None:
            rel_k = self._relative_table(self.emb_rel_k, tk)
            scores = scores + _rel_to_abs(q @ rel_k.unsqueeze(0).transpose(-2, -1))
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e4)
        p = torch.softmax(scores, dim=-1)
        out = p @ v
        if self.window_size is not None:
            rel_v = self._relative_table(self.emb_rel_v, tk)
            out = out + _abs_to_rel(p) @ rel_v.unsqueeze(0)
        out = out.transpose(2, 3).contiguous().view(b, d, tq)
        return self.conv_o(out)

    def _relative_table(self, table: torch.Tensor, length: int) -> torch.Tensor:
        """[1, 2W+1, d] -> [1, 2L-1, d], zero-padded beyond the window."""
        w = self.window_size
        pad = max(length - (w + 1), 0)
        start = max((w + 1) - length, 0)
        if pad > 0:
            table = F.pad(table, (0, 0, pad, pad))
        return table[:, start : start + 2 * length - 1]


def _rel_to_abs(x: torch.Tensor) -> torch.Tensor:
    """[b, h, l, 2l-1] relative logits -> [b, h, l, l] absolute."""
    b, h, length, _ = x.shape
    x = F.pad(x, (0, 1))
    flat = F.pad(x.reshape(b, h, length * 2 * length), (0, length - 1))
    return flat.view(b, h, length + 1, 2 * length - 1)[:, :, :length, length - 1 :]


def _abs_to_rel(x: torch.Tensor) -> torch.Tensor:
    """[b, h, l, l] absolute weights -> [b, h, l, 2l-1] relative."""
    b, h, length, _ = x.shape
    x = F.pad(x, (0, length - 1))
    flat = F.pad(x.reshape(b, h, length**2 + length * (length - 1)), (length, 0))
    return flat.view(b, h, length, 2 * length)[:, :, :, 1:]


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
        x = x * mask
        for attn, n1, ffn, n2 in zip(self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2):
            x = n1(x + attn(x, x, attn_mask))
            x = n2(x + ffn(x, mask))
        return x * mask
