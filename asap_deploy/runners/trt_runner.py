"""TensorRT backends (``tensorrt`` or ``tensorrt_rtx``), with or without the ASAP_SpatialMLP plugin.

The runner is given its engine source: an ``EngineFromPath`` (a built ``.plan``), an
``EngineFromOnnx`` (the engine of an ONNX file under the naming rule, built when missing or
stale), or any callable returning ``(engine, sidecar, tensorrt module)``; a path is turned into
the matching loader. Buffers are torch CUDA tensors; a torch CUDA tensor of the right dtype and
layout is bound as it is (no copy). Every TensorRT call that reports failure is checked and the
error names the tensor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

import numpy as np

from ..errors import AsapDeployError
from .base import InferenceError, Runner, RunnerUnavailable
from .input_checks import TensorMeta, ValueRule, is_torch
from .loaders import EngineFromOnnx, EngineFromPath, unavailable

OUTPUT = "image"


class TrtRunner(Runner):
    device = "cuda"
    graph_capturable = True

    def __init__(
        self,
        source: Union[Path, str, Callable[[], Tuple[Any, Dict, Any]]],
        precision: Optional[str] = None,
        module: str = "auto",
        plugin: str = "auto",
        batch: int = 1,
        name: Optional[str] = None,
        device: str = "cuda",
        value_rules: Optional[Mapping[str, ValueRule]] = None,
        kernel_library: Optional[Path] = None,
    ) -> None:
        super().__init__(value_rules)
        if not callable(source):
            path = Path(source)
            source = (
                EngineFromPath(path, module, plugin, kernel_library)
                if path.suffix != ".onnx"
                else EngineFromOnnx(path, module, plugin, (batch,) * 3, kernel_library)
            )
        self.source = source
        graph = Path(getattr(source, "onnx", getattr(source, "plan", "engine"))).name
        self.precision = precision or ("fp16" if "fp16" in graph else "fp32")
        self.name = name or f"trt{'-plugin' if 'plugin' in graph else ''}-{self.precision}"
        self.batch_hint, self.cuda_device = batch, device

    # -- lifecycle ----------------------------------------------------------------------------
    def activate_impl(self) -> None:
        import torch

        if not torch.cuda.is_available():
            raise RunnerUnavailable("needs a CUDA GPU to run the engine (building works without)")
        self.torch = torch
        dev = torch.device(self.cuda_device)
        # with its index, so that a tensor on this GPU compares equal (cuda != cuda:0)
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        self.dev = dev
        try:
            with torch.cuda.device(self.dev):
                self.engine, self.sidecar, self.trt = self.source()
        except AsapDeployError as exc:
            raise unavailable(exc) from None
        flavour = self.sidecar.get("tensorrt_module", "")
        if flavour and not self.name.endswith(flavour):
            self.name = f"{self.name}-{flavour}"
        trt = self.trt
        with torch.cuda.device(self.dev):
            self.context = self.engine.create_execution_context()
            if self.context is None:
                self.engine = None
                raise RunnerUnavailable(
                    f"{self.name}: TensorRT could not create an execution context (out of GPU memory?)"
                )
            self.stream = torch.cuda.Stream(self.dev)
        self.inputs, self.outputs, self.meta = [], [], {}
        self.profile: Dict[str, Tuple[tuple, tuple, tuple]] = {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(self.engine.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            self.meta[name] = TensorMeta(name, dtype, tuple(None if d < 0 else d for d in shape))
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.inputs.append(name)
                self.profile[name] = tuple(tuple(s) for s in self.engine.get_tensor_profile_shape(name, 0))
            else:
                self.outputs.append(name)
        if OUTPUT not in self.outputs:
            raise RunnerUnavailable(
                f"{self.name}: the engine has no output {OUTPUT!r} (outputs: "
                f"{', '.join(self.outputs)}): not an asap_deploy generator"
            )
        self.buffers: Dict[str, Any] = {}
        self.bound: Dict[str, int] = {}
        self.batch = 0
        self._keep: Dict[str, Any] = {}
        self._set_batch(self._clamp(self.batch_hint))

    def deactivate_impl(self) -> None:
        self.context = self.engine = self.buffers = self._keep = self.stream = None
        self.torch.cuda.empty_cache()

    # -- metadata -----------------------------------------------------------------------------
    def input_metadata_impl(self) -> Dict[str, TensorMeta]:
        return {n: self.meta[n] for n in self.inputs}

    def batch_range(self) -> Optional[Tuple[int, int]]:
        lo, _, hi = self.profile[self.inputs[0]]
        return int(lo[0]), int(hi[0])

    def _clamp(self, b: int) -> int:
        lo, hi = self.batch_range()
        return min(max(b, lo), hi)

    # -- binding ------------------------------------------------------------------------------
    def _bind(self, name: str, ptr: int) -> None:
        if self.bound.get(name) != ptr:
            if not self.context.set_tensor_address(name, ptr):
                raise InferenceError(
                    f"{self.name}: TensorRT refused the address of tensor "
                    f"{name!r} (misaligned or not device memory)"
                )
            self.bound[name] = ptr

    def _set_batch(self, b: int) -> None:
        """Set every input's shape for batch ``b``; (re)allocate buffers that are too small."""
        torch = self.torch
        for name in self.inputs:
            shape = (b,) + tuple(self.meta[name].shape[1:])
            if not self.context.set_input_shape(name, shape):
                raise InferenceError(
                    f"{self.name}: TensorRT rejected shape {list(shape)} for input "
                    f"{name!r} (engine profile {self.profile[name]})"
                )
        for name in self.inputs + self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise InferenceError(
                    f"{self.name}: TensorRT left tensor {name!r} with unknown "
                    f"shape {list(shape)} at batch {b}"
                )
            buf = self.buffers.get(name)
            if buf is None or buf.shape[0] < shape[0]:
                dtype = getattr(torch, self.meta[name].dtype.name)
                self.buffers[name] = torch.empty(shape, dtype=dtype, device=self.dev)
            if name in self.outputs:
                self._bind(name, self.buffers[name].data_ptr())
        self.batch = b

    def upload_impl(self, feeds: Mapping[str, Any]) -> None:
        torch = self.torch
        b = int(feeds[self.inputs[0]].shape[0])
        if b != self.batch:
            self._set_batch(b)
        self._keep = {}
        with torch.cuda.stream(self.stream):
            for name in self.inputs:
                x = feeds[name]
                if is_torch(x) and x.device == self.dev and x.is_contiguous():
                    # bound as is; work queued on the caller's stream that wrote it comes first
                    self.stream.wait_stream(torch.cuda.current_stream(self.dev))
                    self._keep[name] = x
                    self._bind(name, x.data_ptr())
                    continue
                buf = self.buffers[name][:b]
                src = x if is_torch(x) else torch.from_numpy(np.ascontiguousarray(x))
                buf.copy_(src, non_blocking=True)
                self._bind(name, buf.data_ptr())

    def compute_impl(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise InferenceError(
                f"{self.name}: execute_async_v3 failed (see TensorRT's message "
                f"above); inputs were {', '.join(self.inputs)} at batch "
                f"{self.batch}"
            )

    def synchronize_impl(self) -> None:
        self.stream.synchronize()

    def cuda_stream(self):
        return self.stream

    def output_impl(self) -> Any:
        return self.buffers[OUTPUT][: self.batch]
