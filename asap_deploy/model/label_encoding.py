"""Input preprocessing the authors do outside the generator (their data loader and
pix2pix_model.preprocess_input), as modules that export to ONNX.

``label_map`` (B, 1, H, W) integer class ids -> one-hot channels, id 255 meaning ``label_nc``
(the don't-care class), plus the instance-edge channel last. Written with comparisons rather
than ``scatter_`` so it exports to plain ONNX ops; an id with no channel gives an all-zero
one-hot vector instead of the authors' index error.

``rgb`` (B, H, W, 3) uint8 (models trained with ``--no_one_hot``) -> the image normalised as the
authors' loader does (ToTensor's x/255, then Normalize(0.5, 0.5)), channels first, plus the edge
channel when the model has one.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..config import GeneratorConfig


def instance_edges(instance_map: torch.Tensor) -> torch.Tensor:
    """1.0 where a pixel differs from a 4-neighbour, on both sides of each boundary (get_edges)."""
    t = instance_map
    dx = (t[..., :, 1:] != t[..., :, :-1]).float()
    dy = (t[..., 1:, :] != t[..., :-1, :]).float()
    ex = torch.maximum(nn.functional.pad(dx, (1, 0)), nn.functional.pad(dx, (0, 1)))
    ey = torch.maximum(nn.functional.pad(dy, (0, 0, 1, 0)), nn.functional.pad(dy, (0, 0, 0, 1)))
    return torch.maximum(ex, ey)


class LabelEncoder(nn.Module):
    def __init__(self, cfg: GeneratorConfig, with_edges: bool | None = None) -> None:
        super().__init__()
        self.label_nc = cfg.label_nc
        self.instance_edge = cfg.instance_edge if with_edges is None else with_edges
        self.register_buffer(
            "classes",
            torch.arange(cfg.one_hot_channels, dtype=torch.int32).view(1, -1, 1, 1),
            persistent=False,
        )

    def forward(self, label_map: torch.Tensor, instance_map: Optional[torch.Tensor] = None) -> torch.Tensor:
        ids = label_map.to(torch.int32)
        ids = torch.where(ids == 255, torch.full_like(ids, self.label_nc), ids)
        one_hot = (ids == self.classes).float()
        if not self.instance_edge:
            return one_hot
        if instance_map is None:
            raise ValueError("this model uses instance edges: pass instance_map")
        return torch.cat([one_hot, instance_edges(instance_map)], dim=1)


class RGBEncoder(nn.Module):
    def __init__(self, cfg: GeneratorConfig, with_edges: bool | None = None) -> None:
        super().__init__()
        self.instance_edge = cfg.instance_edge if with_edges is None else with_edges

    def forward(self, rgb: torch.Tensor, instance_map: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = rgb.float().permute(0, 3, 1, 2)  # cast first: TensorRT moves uint8 only through Cast
        x = (x / 255.0 - 0.5) / 0.5  # two roundings, as torchvision's ToTensor then Normalize
        if not self.instance_edge:
            return x
        if instance_map is None:
            raise ValueError("this model uses instance edges: pass instance_map")
        return torch.cat([x, instance_edges(instance_map)], dim=1)


class InputEncoder(nn.Module):
    """Graph inputs of ``input_mode`` ("one-hot", "labels", "rgb") -> the generator's ``label``."""

    def __init__(self, cfg: GeneratorConfig, input_mode: str, with_edges: bool | None = None) -> None:
        super().__init__()
        if input_mode not in ("one-hot", "labels", "rgb"):
            raise ValueError(f"input_mode must be one-hot, labels or rgb, got {input_mode!r}")
        self.encoder = {"one-hot": None, "labels": LabelEncoder, "rgb": RGBEncoder}[input_mode]
        if self.encoder is not None:
            self.encoder = self.encoder(cfg, with_edges)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return xs[0] if self.encoder is None else self.encoder(*xs)
