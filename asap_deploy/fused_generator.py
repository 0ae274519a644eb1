"""The whole generator with the pixelwise MLP in the fused kernel: G in PyTorch, channels-last.

G's last 1x1 convolution is run with its output channels padded to a multiple of 8 in
channels-last memory, so the parameter grid it writes is exactly what the kernel stages fastest
(each cell's parameters contiguous and 16-byte aligned: TensorRT's kHWC8 layout), with no
transpose in between. With the emulation build of the kernel library it runs on CPU tensors.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from .fused_mlp import FusedMLP
from .model import ASAPNetGenerator


class FusedGenerator(nn.Module):
    """``FusedGenerator(gen, precision, library)(label) -> image`` (B, 3, H, W) in ``precision``."""

    def __init__(
        self, gen: ASAPNetGenerator, precision: str = "fp16", library: Optional[Path] = None
    ) -> None:
        super().__init__()
        cfg = gen.config
        self.config = cfg
        self.gen = copy.deepcopy(gen).to_precision(precision)
        self.dtype = self.gen.compute_dtype
        head = self.gen.lowres_stream.model[-1]
        padded = nn.Conv2d(head.in_channels, cfg.num_params + (-cfg.num_params % 8), 1, bias=True)
        with torch.no_grad():
            padded.weight.zero_()
            padded.bias.zero_()
            padded.weight[: cfg.num_params] = head.weight.float()
            padded.bias[: cfg.num_params] = head.bias.float()
        self.body = self.gen.lowres_stream.model[:-1]
        self.head = padded.to(self.dtype)
        self.mlp = FusedMLP(cfg.mlp_spec, cfg.label_nc, "one_hot", library)
        self.to(memory_format=torch.channels_last)

    def params(self, label: torch.Tensor) -> torch.Tensor:
        """The parameter grid as a channels-last view (B, NP, H/S, W/S) of a kHWC8-padded tensor."""
        x = label.float()
        if self.gen.downsample is not None:
            x = self.gen.downsample(x)
        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
        return self.head(self.body(x))[:, : self.config.num_params]

    def forward(self, label: torch.Tensor, out: Optional[torch.Tensor] = None) -> Any:
        self.gen.check_input(label)
        return self.mlp(label.to(self.dtype).contiguous(), self.params(label), out)
