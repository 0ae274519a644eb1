"""Every backend behind one interface; ``make_runners`` lists what was asked for, runnable or not."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

from ..model import ASAPNetGenerator
from .base import Runner, RunnerUnavailable

BACKENDS = ("torch-eager-fp32", "torch-eager-fp16", "torch-fused-fp16", "ort-cpu-fp32",
            "ort-cpu-fp16", "ort-cuda-fp32", "ort-cuda-fp16", "ort-trt-fp16", "trt-fp32",
            "trt-fp16", "trt-plugin-fp16")


def make_runner(name: str, gen: ASAPNetGenerator, export_dir: Path, batch: int = 1,
                trt_module: str = "auto", device: Optional[str] = None,
                kernel_library: Optional[str] = None) -> Runner:
    from .ort_runner import OrtRunner
    from .torch_runner import TorchEagerRunner, TorchFusedRunner
    from .trt_runner import TrtRunner

    def onnx(graph: str, precision: str) -> Path:
        return export_dir / (f"{graph}.onnx" if precision == "fp32" else f"{graph}_{precision}.onnx")

    kind, _, precision = name.rpartition("-")
    if kind == "torch-eager":
        return TorchEagerRunner(gen, precision, device or _default_device())
    if kind == "torch-fused":
        return TorchFusedRunner(gen, kernel_library)
    if kind.startswith("ort-"):
        return OrtRunner(onnx("asapnet", precision), kind[4:], precision)
    if kind == "trt":
        return TrtRunner(onnx("asapnet", precision), precision, trt_module, "none", batch)
    if kind == "trt-plugin":
        return TrtRunner(onnx("asapnet_plugin", precision), precision, trt_module, "auto", batch)
    raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def activate_all(runners: List[Runner]) -> Dict[str, str]:
    """Activate each runner; return {name: reason} for those that cannot run here."""
    skipped: Dict[str, str] = {}
    for r in runners:
        try:
            r.activate()
        except RunnerUnavailable as exc:
            skipped[r.name] = str(exc)
    return skipped


__all__ = ["BACKENDS", "Runner", "RunnerUnavailable", "activate_all", "make_runner"]
