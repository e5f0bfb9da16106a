"""HiFi-GAN style discriminators for SoVITS fine-tuning: one scale discriminator on the raw
waveform and period discriminators (periods 2, 3, 5, 7, 11) on the waveform folded by period.
Layer names follow upstream (`discriminators.<i>.convs.<j>`, `conv_post`); weight norm is folded;
`width` scales the channels (1.0 = upstream sizes).
Each returns (score map flattened [B, N], feature maps list) for the LSGAN and feature-matching losses.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SLOPE = 0.1


class PeriodDiscriminator(nn.Module):
    def __init__(self, period: int, kernel_size: int = 5, stride: int = 3, width: float = 1.0) -> None:
        super().__init__()
        self.period = period
        chans = (1, *(_w(c, width) for c in (32, 128, 512, 1024, 1024)))
        pad = (kernel_size - 1) // 2
        self.convs = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], (kernel_size, 1), (stride if i < 4 else 1, 1), (pad, 0)) for i in range(5)
        )
        self.conv_post = nn.Conv2d(chans[-1], 1, (3, 1), 1, (1, 0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x [B, 1, T] -> ([B, N], features)."""
        b, c, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), "reflect")
        return _stack(self.convs, self.conv_post, x.view(b, c, -1, self.period))


class ScaleDiscriminator(nn.Module):
    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        spec = ((1, 16, 15, 1, 1, 7), (16, 64, 41, 4, 4, 20), (64, 256, 41, 4, 16, 20), (256, 1024, 41, 4, 64, 20),
                (1024, 1024, 41, 4, 256, 20), (1024, 1024, 5, 1, 1, 2))
        layers = []
        for i, o, k, s, g, p in spec:
            i, o = (i if i == 1 else _w(i, width)), _w(o, width)
            layers.append(nn.Conv1d(i, o, k, s, groups=math.gcd(g, math.gcd(i, o)), padding=p))
        self.convs = nn.ModuleList(layers)
        self.conv_post = nn.Conv1d(_w(1024, width), 1, 3, 1, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x [B, 1, T] -> ([B, N], features)."""
        return _stack(self.convs, self.conv_post, x)


class MultiPeriodDiscriminator(nn.Module):
    """Scale discriminator first, then one per period (upstream's ordering)."""

    def __init__(self, periods: tuple[int, ...] = (2, 3, 5, 7, 11), width: float = 1.0) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            [ScaleDiscriminator(width), *(PeriodDiscriminator(p, width=width) for p in periods)]
        )

    def forward(self, real: torch.Tensor, fake: torch.Tensor):
        """-> (real scores, fake scores, real features, fake features), one entry per discriminator."""
        out = ([], [], [], [])
        for d in self.discriminators:
            r, fr = d(real)
            g, fg = d(fake)
            for lst, v in zip(out, (r, g, fr, fg), strict=True):
                lst.append(v)
        return out


def _stack(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Convs with leaky ReLU, then the 1-channel post conv; every activation kept for feature matching."""
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), SLOPE)
        feats.append(x)
    x = post(x)
    feats.append(x)
    return x.flatten(1), feats


def _w(channels: int, width: float) -> int:
    """Channel count scaled by `width` (1.0 = upstream sizes; small widths for tiny test models)."""
    return max(4, int(round(channels * width)))
