"""TensorRT backends (``tensorrt`` or ``tensorrt_rtx``), with or without the ASAP_SpatialMLP plugin."""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np

from ..errors import AsapDeployError
from .base import Runner, RunnerUnavailable


def _stale(plan: Path, onnx_path: Path) -> bool:
    """A cached engine built from another version of the ONNX file (or of unknown origin)."""
    import hashlib

    from ..engine.loader import EngineMismatchError, read_sidecar

    try:
        built_from = read_sidecar(plan).get("onnx_sha256")
    except EngineMismatchError:
        return True
    return built_from != hashlib.sha256(onnx_path.read_bytes()).hexdigest()


class TrtRunner(Runner):
    """Builds (once, cached beside the ONNX) and runs an engine on torch-allocated CUDA buffers."""

    device = "cuda"
    graph_capturable = True

    def __init__(self, onnx_path: Path, precision: str, module: str = "auto",
                 plugin: str = "auto", batch: int = 1) -> None:
        uses_plugin = "plugin" in Path(onnx_path).stem
        self.name = f"trt{'-plugin' if uses_plugin else ''}-{precision}"
        self.onnx, self.precision, self.module, self.plugin = Path(onnx_path), precision, module, plugin
        self.batch = batch

    def activate(self) -> None:
        import torch

        if not torch.cuda.is_available():
            raise RunnerUnavailable("needs a CUDA GPU to run the engine (building works without)")
        from ..engine.builder import BuildOptions, build_engine
        from ..engine.loader import load_engine
        from ..engine.trt_module import import_tensorrt

        try:
            _, flavour = import_tensorrt(self.module)
            plan = self.onnx.with_name(f"{self.onnx.stem}.{flavour}.b{self.batch}.plan")
            if not plan.is_file() or _stale(plan, self.onnx):
                build_engine(self.onnx, plan, BuildOptions(module=flavour, plugin=self.plugin,
                                                           batch=(self.batch,) * 3, progress=False))
            self.engine, self.sidecar, trt = load_engine(plan, flavour, self.plugin)
        except AsapDeployError as exc:
            raise RunnerUnavailable(str(exc)) from None
        self.name = f"{self.name}-{flavour}"
        self.torch, self.trt = torch, trt
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self.buffers, self.inputs = {}, []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(self.engine.get_tensor_shape(name))
            shape = (self.batch,) + shape[1:] if shape[0] < 0 else shape
            dtype = getattr(torch, np.dtype(trt.nptype(self.engine.get_tensor_dtype(name))).name)
            self.buffers[name] = torch.empty(shape, dtype=dtype, device="cuda")
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.context.set_input_shape(name, shape)
                self.inputs.append(name)
            self.context.set_tensor_address(name, self.buffers[name].data_ptr())

    def upload(self, feeds: Dict[str, np.ndarray]) -> None:
        with self.torch.cuda.stream(self.stream):
            for name in self.inputs:
                self.buffers[name].copy_(self.torch.from_numpy(feeds[name]), non_blocking=True)

    def compute(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError(f"{self.name}: execute_async_v3 failed")

    def synchronize(self) -> None:
        self.stream.synchronize()

    def cuda_stream(self):
        return self.stream

    def download(self) -> np.ndarray:
        return self.buffers["image"].float().cpu().numpy()
