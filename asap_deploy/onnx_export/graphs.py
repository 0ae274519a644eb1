"""The graphs we export, as thin nn.Module views of one ASAPNetGenerator.

Interface (every graph has a dynamic batch axis; H and W are fixed per export):

===============  ============================================  ==============================
graph            inputs                                         outputs
===============  ============================================  ==============================
g                ``label`` | ``label_map`` (+``instance_map``)  ``params`` (B, NP, H/S, W/S)
mlp              stage input (below) + ``params``               ``image``
asapnet          ``label`` | ``label_map`` (+``instance_map``)  ``image`` (B, 3, H, W) float32
===============  ============================================  ==============================

The mlp stage's input depends on how the pixelwise MLP reads labels (``stage_mode``):
``one_hot`` takes ``label`` (all generator input channels; the LR-only edge channel is skipped),
``label_ids`` takes ``label_map`` and does the one-hot itself (which the plugin turns into a row
gather), ``label_ids_edges`` also takes ``instance_map`` because the MLP sees the edge channel.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
from torch import nn

from ..config import GeneratorConfig
from ..model import ASAPNetGenerator, LabelEncoder

INPUT_MODES = ("one-hot", "labels")
STAGE_MODES = ("one_hot", "label_ids", "label_ids_edges")


def generator_input_names(cfg: GeneratorConfig, input_mode: str) -> List[str]:
    if input_mode == "one-hot":
        return ["label"]
    return ["label_map", "instance_map"] if cfg.instance_edge else ["label_map"]


def stage_mode_for(cfg: GeneratorConfig, input_mode: str) -> str:
    if input_mode == "one-hot":
        return "one_hot"
    return "label_ids_edges" if cfg.hr_uses_edges else "label_ids"


def stage_input_names(stage_mode: str) -> List[str]:
    return {"one_hot": ["label"], "label_ids": ["label_map"],
            "label_ids_edges": ["label_map", "instance_map"]}[stage_mode]


class _Inputs(nn.Module):
    """Graph inputs -> the generator's float ``label`` tensor."""

    def __init__(self, cfg: GeneratorConfig, labels: bool, with_edges: bool | None = None) -> None:
        super().__init__()
        self.encoder = LabelEncoder(cfg, with_edges) if labels else None

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return xs[0] if self.encoder is None else self.encoder(*xs)


class GGraph(nn.Module):
    def __init__(self, gen: ASAPNetGenerator, input_mode: str) -> None:
        super().__init__()
        self.gen, self.inputs = gen, _Inputs(gen.config, input_mode == "labels")

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.gen.predict_params(self.inputs(*xs))


class StageGraph(nn.Module):
    def __init__(self, gen: ASAPNetGenerator, stage_mode: str) -> None:
        super().__init__()
        cfg = gen.config
        self.gen = gen
        self.inputs = _Inputs(cfg, stage_mode != "one_hot", stage_mode == "label_ids_edges")
        self.hr = cfg.hr_in_channels  # what the MLP reads; the LR-only edge channel is skipped

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        *inputs, params = xs
        label = self.inputs(*inputs)
        hr = label[:, :self.hr]
        return self.gen.pixelwise_mlp(hr.to(self.gen.compute_dtype), params)


class FullGraph(nn.Module):
    def __init__(self, gen: ASAPNetGenerator, input_mode: str) -> None:
        super().__init__()
        self.gen, self.inputs = gen, _Inputs(gen.config, input_mode == "labels")

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.gen(self.inputs(*xs))


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name
    shape: Tuple[object, ...]  # "batch" for the dynamic axis

    def to_dict(self) -> Dict[str, object]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


def input_specs(cfg: GeneratorConfig, names: List[str], height: int, width: int,
                label_dtype: str = "float32") -> List[TensorSpec]:
    out = []
    for n in names:
        if n == "label":
            out.append(TensorSpec(n, label_dtype, ("batch", cfg.in_channels, height, width)))
        else:
            out.append(TensorSpec(n, "int32", ("batch", 1, height, width)))
    return out


def params_spec(cfg: GeneratorConfig, height: int, width: int, dtype: str) -> TensorSpec:
    s = cfg.downsampling
    return TensorSpec("params", dtype, ("batch", cfg.num_params, height // s, width // s))


def image_spec(cfg: GeneratorConfig, height: int, width: int, dtype: str) -> TensorSpec:
    return TensorSpec("image", dtype, ("batch", cfg.output_nc, height, width))
