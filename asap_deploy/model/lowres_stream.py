"""The low-resolution stream G: a plain conv net that predicts the per-cell MLP parameters.

Module indices reproduce the authors' ``ASAPNetsLRStream`` so that their state dicts load with
strict key checking (``lowres_stream.model.<i>...``); see the architecture note, section 5.
"""

from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from ..config import GeneratorConfig

_PAD_MODULES = {"reflect": nn.ReflectionPad2d, "replicate": nn.ReplicationPad2d}


class InstanceNormFP32(nn.InstanceNorm2d):
    """InstanceNorm2d(affine) whose statistics are always computed in float32.

    Half-precision mean/variance over a 256x512 plane loses too much; keeping the norm in
    float32 is what lets the rest of the stream run in FP16 (the FP16 ONNX graph gets Casts here).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32:
            return super().forward(x)
        y = F.instance_norm(x.float(), weight=self.weight.float(), bias=self.bias.float(), eps=self.eps)
        return y.to(x.dtype)


def _conv_norm(c_in: int, c_out: int, stride: int, zero_pad: bool) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1 if zero_pad else 0, bias=False)
    return nn.Sequential(conv, InstanceNormFP32(c_out, affine=True, eps=1e-5))


class LowResBlock(nn.Module):
    """conv3x3 + norm + ReLU, no residual (the authors' ``ASAPNetsBlock``)."""

    def __init__(self, width: int, padding: str) -> None:
        super().__init__()
        zero = padding == "zero"
        layers: List[nn.Module] = [] if zero else [_PAD_MODULES[padding](1)]
        layers += [_conv_norm(width, width, 1, zero), nn.ReLU()]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_block(x)


class LowResStream(nn.Module):
    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        zero = cfg.padding == "zero"

        def pad() -> List[nn.Module]:
            return [] if zero else [_PAD_MODULES[cfg.padding](1)]

        layers: List[nn.Module] = pad() + [_conv_norm(cfg.in_channels, cfg.lr_width, 1, zero), nn.ReLU()]
        n = cfg.num_strided_convs
        for i in range(n):
            c_out = cfg.lr_max_width if i == n - 1 else cfg.lr_width
            layers += pad() + [_conv_norm(cfg.lr_width, c_out, 2, zero), nn.ReLU()]
        layers += [LowResBlock(cfg.lr_max_width, cfg.padding) for _ in range(cfg.lr_depth)]
        layers.append(nn.Conv2d(cfg.lr_max_width, cfg.num_params, kernel_size=1, bias=True))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
