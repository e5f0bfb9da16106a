"""Single-codebook vector quantizer of SoVITS (EnCodec-style EMA codebook, frozen at inference).

Buffers keep upstream's names (`vq.layers.0._codebook.inited/cluster_size/embed/embed_avg`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _Codebook(nn.Module):
    def __init__(self, dim: int, bins: int) -> None:
        super().__init__()
        self.register_buffer("inited", torch.ones(1))
        self.register_buffer("cluster_size", torch.zeros(bins))
        self.register_buffer("embed", torch.randn(bins, dim))
        self.register_buffer("embed_avg", torch.randn(bins, dim))


class _Layer(nn.Module):
    def __init__(self, dim: int, bins: int) -> None:
        super().__init__()
        self._codebook = _Codebook(dim, bins)


class _Stack(nn.Module):
    def __init__(self, dim: int, bins: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([_Layer(dim, bins)])


class VectorQuantizer(nn.Module):
    def __init__(self, dim: int = 768, bins: int = 1024) -> None:
        super().__init__()
        self.vq = _Stack(dim, bins)

    @property
    def codebook(self) -> torch.Tensor:
        return self.vq.layers[0]._codebook.embed  # [bins, dim]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, D, T] -> nearest code ids [B, T] (squared Euclidean distance)."""
        b, d, t = x.shape
        flat = x.transpose(1, 2).reshape(-1, d)
        embed = self.codebook.t()
        dist = -(flat.pow(2).sum(1, keepdim=True) - 2 * flat @ embed + embed.pow(2).sum(0, keepdim=True))
        return dist.max(dim=-1).indices.view(b, t)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, T] -> [B, D, T]."""
        return F.embedding(codes, self.codebook).transpose(1, 2)
