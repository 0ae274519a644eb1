"""ONNX Runtime backends: CPU, CUDA and TensorRT execution providers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Union

import numpy as np

from ..errors import AsapDeployError
from .base import InferenceError, Runner
from .input_checks import TensorMeta, ValueRule, is_torch
from .loaders import SessionFromOnnx, unavailable

_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


class OrtRunner(Runner):
    """ORT on one graph. Transfers are inside ``run``: H2D/D2H are not separable."""

    def __init__(
        self,
        source: Union[Path, str, Callable[[], Any]],
        precision: str = "fp32",
        name: Optional[str] = None,
        value_rules: Optional[Mapping[str, ValueRule]] = None,
    ) -> None:
        super().__init__(value_rules)
        self.source = source if callable(source) else SessionFromOnnx(Path(source))
        self.provider = getattr(self.source, "provider", "cpu")
        self.precision = precision
        self.name = name or f"ort-{self.provider}-{precision}"
        self.device = "cpu"  # run() blocks until outputs are on the host

    def activate_impl(self) -> None:
        try:
            self.sess = self.source()
        except AsapDeployError as exc:
            raise unavailable(exc) from None
        self.inputs = [i.name for i in self.sess.get_inputs()]

    def deactivate_impl(self) -> None:
        self.sess = self.feeds = self.y = None

    def input_metadata_impl(self) -> Dict[str, TensorMeta]:
        out = {}
        for i in self.sess.get_inputs():
            shape = tuple(d if isinstance(d, int) else None for d in i.shape)
            out[i.name] = TensorMeta(i.name, np.dtype(_ORT_DTYPES.get(i.type, np.float32)), shape)
        return out

    def upload_impl(self, feeds: Mapping[str, Any]) -> None:
        self.feeds = {
            n: (feeds[n].detach().cpu().numpy() if is_torch(feeds[n]) else feeds[n]) for n in self.inputs
        }

    def compute_impl(self) -> None:
        try:
            self.y = self.sess.run(None, self.feeds)[0]
        except Exception as exc:  # ORT's messages span lines and name its internals
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise InferenceError(f"{self.name}: ONNX Runtime failed: {first}") from None

    def output_impl(self) -> np.ndarray:
        return self.y
