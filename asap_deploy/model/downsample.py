"""The authors' fixed input blur (``MySeparableBilinearDownsample``), applied when S1 = S/S2 > 1."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def tent_kernel(stride: int) -> torch.Tensor:
    """[1, 3, ..., 2s-1, 2s-1, ..., 3, 1] / (2 s^2): length 2s, sums to one."""
    half = torch.arange(1, 2 * stride, 2, dtype=torch.float64)
    return (torch.cat([half, half.flip(0)]) / (2 * stride * stride)).float()


class TentDownsample(nn.Module):
    """Depthwise separable tent filter with reflect padding s//2, stride s on both axes.

    The kernels are non-persistent buffers: the authors rebuild the module on every call, so it
    never appears in their state dict.
    """

    def __init__(self, stride: int, channels: int) -> None:
        super().__init__()
        self.stride = stride
        k = tent_kernel(stride)
        self.register_buffer("kernel_h", k.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), persistent=False)
        self.register_buffer("kernel_v", k.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, c = self.stride, x.shape[1]
        p = s // 2
        x = F.pad(x, (p, p, p, p), mode="reflect")
        x = F.conv2d(x, self.kernel_h.to(x.dtype), stride=(1, s), groups=c)
        return F.conv2d(x, self.kernel_v.to(x.dtype), stride=(s, 1), groups=c)
