"""Deterministic, realistic test inputs: piecewise-constant label and instance maps."""
from __future__ import annotations

from typing import Dict

import numpy as np
import torch

from .config import GeneratorConfig
from .model import LabelEncoder


def _blocky(rng: np.random.Generator, batch: int, height: int, width: int, cell: int,
            high: int) -> np.ndarray:
    h, w = -(-height // cell), -(-width // cell)
    coarse = rng.integers(0, high, size=(batch, 1, h, w), dtype=np.int32)
    return np.ascontiguousarray(coarse.repeat(cell, 2).repeat(cell, 3)[:, :, :height, :width])


def label_maps(cfg: GeneratorConfig, batch: int, height: int, width: int,
               seed: int = 0) -> Dict[str, np.ndarray]:
    """``label_map`` (and ``instance_map``) int32 arrays, regions of 8 px (labels) / 4 px (ids)."""
    rng = np.random.default_rng(seed)
    out = {"label_map": _blocky(rng, batch, height, width, 8, cfg.one_hot_channels)}
    if cfg.contain_dontcare_label:  # exercise the 255 -> label_nc mapping
        lm = out["label_map"]
        lm[lm == cfg.label_nc] = 255
    if cfg.instance_edge:
        out["instance_map"] = _blocky(rng, batch, height, width, 4, 1000)
    return out


def one_hot_label(cfg: GeneratorConfig, maps: Dict[str, np.ndarray]) -> np.ndarray:
    """The float ``label`` the authors' generator receives for these maps."""
    enc = LabelEncoder(cfg)
    inst = maps.get("instance_map")
    with torch.no_grad():
        t = enc(torch.from_numpy(maps["label_map"]),
                None if inst is None else torch.from_numpy(inst))
    return t.numpy()


def scene_feeds(cfg: GeneratorConfig, batch: int, height: int, width: int,
                seed: int = 0) -> Dict[str, np.ndarray]:
    """One scene in every input form: ``label`` plus ``label_map`` (and ``instance_map``), so
    graphs of either input mode, the stage graphs and PyTorch all see the same thing."""
    maps = label_maps(cfg, batch, height, width, seed)
    return {"label": one_hot_label(cfg, maps), **maps}


def generator_feeds(cfg: GeneratorConfig, input_mode: str, batch: int, height: int, width: int,
                    seed: int = 0) -> Dict[str, np.ndarray]:
    """Feeds for the g/asapnet graphs in ``input_mode`` ("one-hot" or "labels")."""
    scene = scene_feeds(cfg, batch, height, width, seed)
    if input_mode == "one-hot":
        return {"label": scene.pop("label")}
    scene.pop("label")
    return scene
