"""ERes2NetV2 speaker model (v2Pro/v2ProPlus speaker-verification branch). Pure nn.Module code.

Parameter names equal the upstream/ModelScope checkpoint `pretrained_eres2netv2w24s4ep4.ckpt`
(baseWidth 24, scale 4, expansion 4). `embed()` is the fused layer3/layer4 feature map
flattened over channels x frequency and averaged over time -> [B, 20480]; the
pooling + `seg_1` head exists only so the checkpoint loads strictly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _relu20(x: torch.Tensor) -> torch.Tensor:
    return F.hardtanh(x, 0.0, 20.0)


class AFF(nn.Module):
    """Attentional feature fusion of two maps of the same shape."""

    def __init__(self, channels: int, r: int = 4) -> None:
        super().__init__()
        inter = channels // r
        self.local_att = nn.Sequential(
            nn.Conv2d(channels * 2, inter, 1), nn.BatchNorm2d(inter), nn.SiLU(),
            nn.Conv2d(inter, channels, 1), nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        att = 1.0 + torch.tanh(self.local_att(torch.cat((x, y), dim=1)))
        return x * att + y * (2.0 - att)


class Block(nn.Module):
    """Res2Net-style block; `fuse=True` joins the splits with AFF instead of addition."""

    def __init__(self, in_planes: int, planes: int, stride: int, base_width: int, scale: int, expansion: int, fuse: bool) -> None:
        super().__init__()
        width = int(math.floor(planes * (base_width / 64.0)))
        self.width, self.nums = width, scale
        self.conv1 = nn.Conv2d(in_planes, width * scale, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1, bias=False) for _ in range(scale))
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(scale))
        if fuse:
            self.fuse_models = nn.ModuleList(AFF(width, 4) for _ in range(scale - 1))
        self.fuse = fuse
        self.conv3 = nn.Conv2d(width * scale, planes * expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * expansion)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, expansion * planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(expansion * planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spx = torch.split(_relu20(self.bn1(self.conv1(x))), self.width, 1)
        outs = []
        sp = spx[0]
        for i in range(self.nums):
            if i > 0:
                sp = self.fuse_models[i - 1](sp, spx[i]) if self.fuse else sp + spx[i]
            sp = _relu20(self.bns[i](self.convs[i](sp)))
            outs.append(sp)
        out = self.bn3(self.conv3(torch.cat(outs, 1)))
        return _relu20(out + self.shortcut(x))


class ERes2NetV2(nn.Module):
    def __init__(
        self,
        num_blocks: tuple[int, ...] = (3, 4, 6, 3),
        m_channels: int = 64,
        feat_dim: int = 80,
        embedding_size: int = 192,
        base_width: int = 24,
        scale: int = 4,
        expansion: int = 4,
    ) -> None:
        super().__init__()
        self._in = m_channels
        self._cfg = (base_width, scale, expansion)
        self.conv1 = nn.Conv2d(1, m_channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m_channels)
        self.layer1 = self._layer(m_channels, num_blocks[0], 1, fuse=False)
        self.layer2 = self._layer(m_channels * 2, num_blocks[1], 2, fuse=False)
        self.layer3 = self._layer(m_channels * 4, num_blocks[2], 2, fuse=True)
        self.layer4 = self._layer(m_channels * 8, num_blocks[3], 2, fuse=True)
        self.layer3_ds = nn.Conv2d(m_channels * 4 * expansion, m_channels * 8 * expansion, 3, padding=1, stride=2, bias=False)
        self.fuse34 = AFF(m_channels * 8 * expansion, 4)
        stats_dim = int(feat_dim / 8) * m_channels * 8 * expansion
        self.seg_1 = nn.Linear(stats_dim * 2, embedding_size)

    def _layer(self, planes: int, n: int, stride: int, fuse: bool) -> nn.Sequential:
        base_width, scale, expansion = self._cfg
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(Block(self._in, planes, s, base_width, scale, expansion, fuse))
            self._in = planes * expansion
        return nn.Sequential(*layers)

    def embed(self, feats: torch.Tensor) -> torch.Tensor:
        """fbank [B, T, 80] -> [B, C*F'] (20480 for the real model), the mean over time."""
        x = feats.permute(0, 2, 1).unsqueeze(1)
        out = F.relu(self.bn1(self.conv1(x)))
        out3 = self.layer3(self.layer2(self.layer1(out)))
        fused = self.fuse34(self.layer4(out3), self.layer3_ds(out3))
        return fused.flatten(start_dim=1, end_dim=2).mean(-1)
