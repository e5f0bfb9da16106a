"""1-D convolutions run as 2-D ones over [B, C, 1, T] tensors kept in channels-last memory.

In half precision cuDNN runs convolutions in NHWC: a 1-D convolution over a [B, C, T] tensor
(NCHW with H = 1) pays a layout conversion of its input and of its output each time. The same
convolution over a channels-last [B, C, 1, T] tensor needs none, and element-wise ops between
convolutions keep the layout. Pure nn.Module code; same weights, same arithmetic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelsLastConv1d(nn.Module):
    """The 2-D form of an nn.Conv1d or nn.ConvTranspose1d (its weights shared, viewed as [.., .., 1, k])."""

    def __init__(self, conv: nn.Conv1d | nn.ConvTranspose1d) -> None:
        super().__init__()
        self.transposed = isinstance(conv, nn.ConvTranspose1d)
        self.weight = nn.Parameter(conv.weight.detach()[:, :, None, :].contiguous(memory_format=torch.channels_last),
                                   requires_grad=False)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach(), requires_grad=False)
        self.stride, self.padding = (1, conv.stride[0]), (0, conv.padding[0])
        self.dilation, self.groups = (1, conv.dilation[0]), conv.groups
        self.output_padding = (0, conv.output_padding[0]) if self.transposed else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.transposed:
            return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                      self.groups, self.dilation)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
