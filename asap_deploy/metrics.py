"""Accuracy figures used by every parity report: one definition for export, tests and harness."""

from __future__ import annotations

from typing import Dict

import numpy as np


def to_uint8(image: np.ndarray) -> np.ndarray:
    """The authors' saving: (y + 1) / 2 * 255 in float32, clipped, truncated (not rounded)."""
    from .postprocess import to_uint8_nchw

    return to_uint8_nchw(image)


def psnr(test: np.ndarray, ref: np.ndarray, peak_to_peak: float = 2.0) -> float:
    """PSNR in dB for signals spanning ``peak_to_peak`` (2 for images in [-1, 1])."""
    mse = float(np.mean((test.astype(np.float64) - ref.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak_to_peak**2 / mse)


def compare(test: np.ndarray, ref: np.ndarray, image: bool = True) -> Dict[str, float]:
    if test.shape != ref.shape:
        raise ValueError(f"shape mismatch: {test.shape} vs reference {ref.shape}")
    diff = np.abs(test.astype(np.float64) - ref.astype(np.float64))
    out = {"max_abs": float(diff.max()), "mean_abs": float(diff.mean())}
    if image:
        out["psnr_db"] = psnr(test, ref)
        out["pixels_8bit_differ"] = float(np.mean(to_uint8(test) != to_uint8(ref)))
    return out


def format_metrics(m: Dict[str, float]) -> str:
    parts = [f"max abs {m['max_abs']:.2e}", f"mean abs {m['mean_abs']:.2e}"]
    if "psnr_db" in m:
        parts.append(f"PSNR {m['psnr_db']:.1f} dB" if np.isfinite(m["psnr_db"]) else "PSNR inf")
        parts.append(f"8-bit differ {100 * m['pixels_8bit_differ']:.3f}%")
    return ", ".join(parts)
