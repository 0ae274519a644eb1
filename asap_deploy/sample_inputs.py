"""Deterministic, realistic test inputs: piecewise-constant label and instance maps, or for
models with RGB input (``no_one_hot``) a smooth RGB image with edges."""

from __future__ import annotations

from typing import Dict

import numpy as np
import torch

from .config import GeneratorConfig
from .model import InputEncoder


def _blocky(
    rng: np.random.Generator, batch: int, height: int, width: int, cell: int, high: int
) -> np.ndarray:
    h, w = -(-height // cell), -(-width // cell)
    coarse = rng.integers(0, high, size=(batch, 1, h, w), dtype=np.int32)
    return np.ascontiguousarray(coarse.repeat(cell, 2).repeat(cell, 3)[:, :, :height, :width])


def _rgb(rng: np.random.Generator, batch: int, height: int, width: int) -> np.ndarray:
    """(B, H, W, 3) uint8: blocks of colour over a gradient, like a photo's range of values."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    ramp = 127 * (x / max(width - 1, 1) + y / max(height - 1, 1))
    blocks = _blocky(rng, batch, height, width, 8, 128).transpose(0, 2, 3, 1)
    img = ramp[None, :, :, None] + blocks * np.array([1.0, 0.5, 0.25])
    return np.clip(img, 0, 255).astype(np.uint8)


def label_maps(
    cfg: GeneratorConfig, batch: int, height: int, width: int, seed: int = 0
) -> Dict[str, np.ndarray]:
    """``label_map`` (and ``instance_map``) int32 arrays, regions of 8 px (labels) / 4 px (ids);
    ``rgb`` (B, H, W, 3) uint8 instead of ``label_map`` for RGB-input models."""
    rng = np.random.default_rng(seed)
    if cfg.no_one_hot:
        out = {"rgb": _rgb(rng, batch, height, width)}
        if cfg.instance_edge:
            out["instance_map"] = _blocky(rng, batch, height, width, 4, 1000)
        return out
    out = {"label_map": _blocky(rng, batch, height, width, 8, cfg.one_hot_channels)}
    if cfg.contain_dontcare_label:  # exercise the 255 -> label_nc mapping
        lm = out["label_map"]
        lm[lm == cfg.label_nc] = 255
    if cfg.instance_edge:
        out["instance_map"] = _blocky(rng, batch, height, width, 4, 1000)
    return out


def one_hot_label(cfg: GeneratorConfig, maps: Dict[str, np.ndarray]) -> np.ndarray:
    """The float ``label`` the authors' generator receives for these maps (or RGB image)."""
    mode = "rgb" if cfg.no_one_hot else "labels"
    enc = InputEncoder(cfg, mode)
    inst = maps.get("instance_map")
    with torch.no_grad():
        t = enc(
            torch.from_numpy(maps["rgb" if cfg.no_one_hot else "label_map"]),
            None if inst is None else torch.from_numpy(inst),
        )
    return t.numpy()


def scene_feeds(
    cfg: GeneratorConfig, batch: int, height: int, width: int, seed: int = 0
) -> Dict[str, np.ndarray]:
    """One scene in every input form: ``label`` plus ``label_map`` (and ``instance_map``), so
    graphs of either input mode, the stage graphs and PyTorch all see the same thing."""
    maps = label_maps(cfg, batch, height, width, seed)
    return {"label": one_hot_label(cfg, maps), **maps}


def generator_feeds(
    cfg: GeneratorConfig, input_mode: str, batch: int, height: int, width: int, seed: int = 0
) -> Dict[str, np.ndarray]:
    """Feeds for the g/asapnet graphs in ``input_mode`` ("one-hot" or "labels")."""
    scene = scene_feeds(cfg, batch, height, width, seed)
    if input_mode == "one-hot":
        return {"label": scene.pop("label")}
    scene.pop("label")
    return scene
