"""PyTorch backends: the eager generator (the authors' way of running it) and G + fused kernel."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Union

import numpy as np

from ..model import ASAPNetGenerator
from .base import Runner, RunnerUnavailable
from .input_checks import TensorMeta, ValueRule, value_rules


def _torch_device(device: str):
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RunnerUnavailable("needs a CUDA GPU (torch.cuda.is_available() is False)")
    return torch.device(device)


class TorchEagerRunner(Runner):
    """``ASAPNetGenerator`` eager, FP32 or FP16 (convs and MLP in half, norms in float).

    ``input_mode`` is what it is fed, as an export's graphs are: the float one-hot ``label``
    (the harness), ``label_map`` (+``instance_map``) or ``rgb``, encoded on the device.
    """

    def __init__(
        self,
        gen: Union[ASAPNetGenerator, Callable[[], ASAPNetGenerator]],
        precision: str = "fp32",
        device: str = "cuda",
        input_mode: str = "one-hot",
        resolution: Optional[tuple] = None,
        value_rules: Optional[Mapping[str, ValueRule]] = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__(value_rules)
        suffix = "-cl" if channels_last else ""
        self.name = f"torch-eager-{precision}{suffix}-{device.split(':')[0]}"
        self.gen_source, self.precision, self.device = gen, precision, device
        self.input_mode, self.resolution = input_mode, resolution
        # NHWC activations: what cuDNN's tensor-core convolutions prefer in FP16
        self.channels_last = channels_last

    def _load(self) -> ASAPNetGenerator:
        src = self.gen_source
        return src if isinstance(src, ASAPNetGenerator) else src()

    def activate_impl(self) -> None:
        import torch

        from ..model import InputEncoder

        dev = _torch_device(self.device)
        if self.precision == "fp16" and dev.type == "cpu":
            raise RunnerUnavailable(
                "FP16 convolutions on the CPU are emulated (minutes per image); measured on a GPU only"
            )
        gen0 = self._load()
        # a copy: the caller's generator (the parity reference) keeps its device and precision
        self.gen = copy.deepcopy(gen0).to(dev).to_precision(self.precision).eval()
        if self.channels_last:
            self.gen = self.gen.to(memory_format=torch.channels_last)
        self.encoder = InputEncoder(gen0.config, self.input_mode).to(dev)
        self.value_rules = {**value_rules(gen0.config), **self.value_rules}
        self.torch, self.dev = torch, dev
        self.graph_capturable = dev.type == "cuda"

    def deactivate_impl(self) -> None:
        cuda = self.dev.type == "cuda"
        self.gen = self.encoder = self.x = self.y = self.mlp = None
        if cuda:
            self.torch.cuda.empty_cache()

    def input_metadata_impl(self) -> Dict[str, TensorMeta]:
        from ..onnx_export.graphs import generator_input_names, input_specs

        cfg = self.gen.config
        h, w = self.resolution or (cfg.height, 2 * cfg.height)
        names = generator_input_names(cfg, self.input_mode)
        return {
            s.name: TensorMeta(s.name, np.dtype(s.dtype), (None,) + tuple(s.shape[1:]))
            for s in input_specs(cfg, names, h, w)
        }

    def upload_impl(self, feeds: Mapping[str, Any]) -> None:
        torch = self.torch
        xs = [torch.as_tensor(feeds[n]).to(self.dev, non_blocking=True) for n in self.input_metadata()]
        with torch.no_grad():
            self.x = self.encoder(*xs)  # the generator's float `label`
            if self.channels_last:
                self.x = self.x.contiguous(memory_format=torch.channels_last)

    def compute_impl(self) -> None:
        with self.torch.no_grad():
            self.y = self.gen(self.x)

    def synchronize_impl(self) -> None:
        if self.dev.type == "cuda":
            self.torch.cuda.synchronize(self.dev)

    def output_impl(self) -> Any:
        return self.y


class TorchFusedRunner(TorchEagerRunner):
    """G in PyTorch FP16 (channels-last), the pixelwise MLP in the fused CUDA kernel
    (libasap_spatial_mlp.so), fed the kernel's preferred parameter layout directly."""

    def __init__(
        self,
        gen: Union[ASAPNetGenerator, Callable[[], ASAPNetGenerator]],
        kernel_library: Optional[Path] = None,
        resolution: Optional[tuple] = None,
        value_rules: Optional[Mapping[str, ValueRule]] = None,
        precision: str = "fp16",
        device: str = "cuda",
    ) -> None:
        # precision/device other than fp16/cuda: a rehearsal on the CPU with the emulation build
        super().__init__(gen, precision, device, "one-hot", resolution, value_rules)
        self.name = f"torch-fused-{precision}-{device.split(':')[0]}"
        self.kernel_library = kernel_library

    def activate_impl(self) -> None:
        super().activate_impl()
        from ..errors import MissingDependencyError
        from ..fused_generator import FusedGenerator

        try:
            self.gen = FusedGenerator(self._load(), self.precision, self.kernel_library).to(self.dev).eval()
        except MissingDependencyError as exc:
            self.deactivate_impl()
            raise RunnerUnavailable(str(exc)) from None

    def compute_impl(self) -> None:
        with self.torch.no_grad():
            self.y = self.gen(self.x)
