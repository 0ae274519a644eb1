"""PyTorch backends: the eager generator (the authors' way of running it) and G + fused kernel."""
from __future__ import annotations

import copy
from typing import Dict, Optional

import numpy as np

from ..model import ASAPNetGenerator
from .base import Runner, RunnerUnavailable


def _torch_device(device: str):
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise RunnerUnavailable("needs a CUDA GPU (torch.cuda.is_available() is False)")
    return torch.device(device)


class TorchEagerRunner(Runner):
    """``ASAPNetGenerator`` eager, FP32 or FP16 (convs and MLP in half, norms in float)."""

    def __init__(self, gen: ASAPNetGenerator, precision: str = "fp32", device: str = "cuda") -> None:
        self.name = f"torch-eager-{precision}-{device}"
        self.gen0, self.precision, self.device = gen, precision, device

    def activate(self) -> None:
        import torch

        dev = _torch_device(self.device)
        if self.precision == "fp16" and self.device == "cpu":
            raise RunnerUnavailable("FP16 convolutions on the CPU are emulated (minutes per image); "
                                    "measured on a GPU only")
        self.gen = copy.deepcopy(self.gen0).to(dev).to_precision(self.precision).eval()
        self.torch, self.dev = torch, dev
        self.graph_capturable = self.device == "cuda"

    def upload(self, feeds: Dict[str, np.ndarray]) -> None:
        self.x = self.torch.from_numpy(feeds["label"]).to(self.dev, non_blocking=True)

    def compute(self) -> None:
        with self.torch.no_grad():
            self.y = self.gen(self.x)

    def synchronize(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def download(self) -> np.ndarray:
        return self.y.float().cpu().numpy()


class TorchFusedRunner(TorchEagerRunner):
    """G in PyTorch FP16 (channels-last), the pixelwise MLP in the fused CUDA kernel
    (libasap_spatial_mlp.so), fed the kernel's preferred parameter layout directly."""

    def __init__(self, gen: ASAPNetGenerator, kernel_library: Optional[str] = None) -> None:
        super().__init__(gen, "fp16", "cuda")
        self.name = "torch-fused-fp16-cuda"
        self.kernel_library = kernel_library

    def activate(self) -> None:
        import torch

        from ..errors import MissingDependencyError
        from ..fused_generator import FusedGenerator

        self.dev = _torch_device(self.device)
        self.torch = torch
        try:
            self.gen = FusedGenerator(self.gen0, "fp16", self.kernel_library).to(self.dev).eval()
        except MissingDependencyError as exc:
            raise RunnerUnavailable(str(exc)) from None
        self.graph_capturable = True

    def compute(self) -> None:
        with self.torch.no_grad():
            self.y = self.gen(self.x)
