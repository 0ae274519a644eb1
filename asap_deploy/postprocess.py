"""The authors' conversion of a generated image to 8 bits (util.tensor2im), exactly.

``(y + 1) / 2 * 255`` in float32, clipped to 0..255, truncated (not rounded) to uint8, channels
last. float32 matters: in float64 a value just below an integer can round up to it, and the
byte would differ from what test.py saves. The torch version runs where the tensor is (on the
GPU only bytes come back) and gives the same bytes: each step is one correctly rounded float32
operation in both.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def to_uint8_nchw(image: np.ndarray) -> np.ndarray:
    """(..., C, H, W) float in [-1, 1] -> same shape uint8."""
    y = np.asarray(image, dtype=np.float32)
    return np.clip((y + 1) / 2.0 * 255.0, 0, 255).astype(np.uint8)


def to_uint8_hwc(image: Any) -> Any:
    """(B, C, H, W) float -> (B, H, W, C) uint8, numpy or torch (same device) in, same out."""
    if isinstance(image, np.ndarray):
        return np.ascontiguousarray(to_uint8_nchw(image).transpose(0, 2, 3, 1))
    import torch

    y = image.to(torch.float32)
    return ((y + 1) / 2.0 * 255.0).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
