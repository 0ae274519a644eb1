"""ASAP-Net generator: low-res stream G predicts an MLP per grid cell, the MLP runs per pixel."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..config import GeneratorConfig
from .downsample import TentDownsample
from .lowres_stream import InstanceNormFP32, LowResStream
from .pixelwise_mlp import PixelwiseMLP

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16}


class ASAPNetGenerator(nn.Module):
    """``forward(label) -> image``; ``label`` is what the authors' generator receives.

    Unlike the authors' ``forward`` this returns only the image, accepts any batch size and width
    without re-creating state, and can run its convolutions and MLP in FP16 (``to_precision``)
    while instance-norm statistics, the input blur and the encoding's generation stay in FP32.
    """

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.config = cfg
        s1 = cfg.input_downsampling
        self.downsample = TentDownsample(s1, cfg.in_channels) if s1 > 1 else None
        self.lowres_stream = LowResStream(cfg)
        self.pixelwise_mlp = PixelwiseMLP(cfg.mlp_spec)
        self.compute_dtype = torch.float32

    def to_precision(self, precision: str) -> ASAPNetGenerator:
        """Convert conv weights to ``precision``; norm affine parameters stay FP32."""
        dtype = PRECISIONS[precision]
        for m in self.lowres_stream.modules():
            if isinstance(m, nn.Conv2d):
                m.to(dtype)
            elif isinstance(m, InstanceNormFP32):
                m.float()
        self.compute_dtype = dtype
        return self

    def predict_params(self, label: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> parameter grid (B, num_params, H/S, W/S) in compute dtype."""
        x = label.float()
        if self.downsample is not None:
            x = self.downsample(x)
        return self.lowres_stream(x.to(self.compute_dtype))

    def render(self, label: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Run the pixelwise MLP; ``label`` may still carry the LR-only edge channel."""
        hr = label[:, : self.config.hr_in_channels] if self.config.lr_instance else label
        return self.pixelwise_mlp(hr.to(self.compute_dtype), params.to(self.compute_dtype))

    def forward(self, label: torch.Tensor) -> torch.Tensor:
        self.check_input(label)
        return self.render(label, self.predict_params(label)).float()

    def check_input(self, label: torch.Tensor, instance_map: Optional[torch.Tensor] = None) -> None:
        cfg = self.config
        if label.dim() != 4 or label.shape[1] != cfg.in_channels:
            raise ValueError(f"label must be (B, {cfg.in_channels}, H, W), got {tuple(label.shape)}")
        cfg.check_resolution(int(label.shape[2]), int(label.shape[3]))
