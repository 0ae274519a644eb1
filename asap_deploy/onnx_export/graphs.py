"""The graphs we export, as thin nn.Module views of one ASAPNetGenerator.

Interface (every graph has a dynamic batch axis; H and W are fixed per export):

===============  ============================================  ==============================
graph            inputs                                         outputs
===============  ============================================  ==============================
g                ``label`` | ``label_map`` | ``rgb`` (+inst.)   ``params`` (B, NP, H/S, W/S)
mlp              stage input (below) + ``params``               ``image``
asapnet          ``label`` | ``label_map`` | ``rgb`` (+inst.)   ``image`` (B, 3, H, W) float32
===============  ============================================  ==============================

``rgb`` (B, H, W, 3) uint8 is the input of models trained with ``--no_one_hot``; the graph
normalises it as the authors' loader does. The mlp stage's input depends on how the pixelwise
MLP reads labels (``stage_mode``): ``one_hot`` takes ``label`` (all generator input channels; the
LR-only edge channel is skipped), ``label_ids`` takes ``label_map`` and does the one-hot itself
(which the plugin turns into a row gather), ``label_ids_edges`` also takes ``instance_map``
because the MLP sees the edge channel; ``rgb``/``rgb_edges`` likewise for RGB input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
from torch import nn

from ..config import GeneratorConfig
from ..model import ASAPNetGenerator, InputEncoder

INPUT_MODES = ("one-hot", "labels", "rgb")
STAGE_MODES = ("one_hot", "label_ids", "label_ids_edges", "rgb", "rgb_edges")
_FIRST_INPUT = {"one-hot": "label", "labels": "label_map", "rgb": "rgb"}
_STAGE_INPUT_MODE = {
    "one_hot": "one-hot",
    "label_ids": "labels",
    "label_ids_edges": "labels",
    "rgb": "rgb",
    "rgb_edges": "rgb",
}


def generator_input_names(cfg: GeneratorConfig, input_mode: str) -> List[str]:
    if input_mode == "one-hot":
        return ["label"]
    first = _FIRST_INPUT[input_mode]
    return [first, "instance_map"] if cfg.instance_edge else [first]


def stage_mode_for(cfg: GeneratorConfig, input_mode: str) -> str:
    if input_mode == "one-hot":
        return "one_hot"
    base = "label_ids" if input_mode == "labels" else "rgb"
    return f"{base}_edges" if cfg.hr_uses_edges else base


def stage_input_names(stage_mode: str) -> List[str]:
    first = _FIRST_INPUT[_STAGE_INPUT_MODE[stage_mode]]
    return [first, "instance_map"] if stage_mode.endswith("_edges") else [first]


def composes_encoder(stage_mode: str) -> bool:
    """The plugin graph encodes its inputs in-graph and feeds the float ``label`` to the node
    (the node reads label ids itself only when no edge channel reaches the MLP)."""
    return stage_mode not in ("one_hot", "label_ids")


def _Inputs(cfg: GeneratorConfig, input_mode: str, with_edges: bool | None = None) -> nn.Module:
    """Graph inputs -> the generator's float ``label`` tensor."""
    return InputEncoder(cfg, input_mode, with_edges)


class GGraph(nn.Module):
    def __init__(self, gen: ASAPNetGenerator, input_mode: str) -> None:
        super().__init__()
        self.gen, self.inputs = gen, _Inputs(gen.config, input_mode)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.gen.predict_params(self.inputs(*xs))


class StageGraph(nn.Module):
    def __init__(self, gen: ASAPNetGenerator, stage_mode: str) -> None:
        super().__init__()
        cfg = gen.config
        self.gen = gen
        self.inputs = _Inputs(cfg, _STAGE_INPUT_MODE[stage_mode], stage_mode.endswith("_edges"))
        self.hr = cfg.hr_in_channels  # what the MLP reads; the LR-only edge channel is skipped

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        *inputs, params = xs
        label = self.inputs(*inputs)
        hr = label[:, : self.hr]
        return self.gen.pixelwise_mlp(hr.to(self.gen.compute_dtype), params)


class FullGraph(nn.Module):
    def __init__(self, gen: ASAPNetGenerator, input_mode: str) -> None:
        super().__init__()
        self.gen, self.inputs = gen, _Inputs(gen.config, input_mode)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.gen(self.inputs(*xs))


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name
    shape: Tuple[object, ...]  # "batch" for the dynamic axis

    def to_dict(self) -> Dict[str, object]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


def input_specs(
    cfg: GeneratorConfig, names: List[str], height: int, width: int, label_dtype: str = "float32"
) -> List[TensorSpec]:
    out = []
    for n in names:
        if n == "label":
            out.append(TensorSpec(n, label_dtype, ("batch", cfg.in_channels, height, width)))
        elif n == "rgb":
            out.append(TensorSpec(n, "uint8", ("batch", height, width, 3)))
        else:
            out.append(TensorSpec(n, "int32", ("batch", 1, height, width)))
    return out


def params_spec(cfg: GeneratorConfig, height: int, width: int, dtype: str) -> TensorSpec:
    s = cfg.downsampling
    return TensorSpec("params", dtype, ("batch", cfg.num_params, height // s, width // s))


def image_spec(cfg: GeneratorConfig, height: int, width: int, dtype: str) -> TensorSpec:
    return TensorSpec("image", dtype, ("batch", cfg.output_nc, height, width))
