"""ONNX Runtime backends: CPU, CUDA and TensorRT execution providers."""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np

from .base import Runner, RunnerUnavailable

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
             "trt": "TensorrtExecutionProvider"}


class OrtRunner(Runner):
    """ORT on one exported graph. Transfers are inside ``run``: H2D/D2H are not separable."""

    def __init__(self, onnx_path: Path, provider: str, precision: str) -> None:
        self.name = f"ort-{provider}-{precision}"
        self.path, self.provider, self.precision = Path(onnx_path), provider, precision
        self.device = "cpu"  # run() blocks until outputs are on the host

    def activate(self) -> None:
        import onnxruntime as ort

        want = PROVIDERS[self.provider]
        if want not in ort.get_available_providers():
            raise RunnerUnavailable(f"onnxruntime {ort.__version__} here has no {want} (install "
                                    f"onnxruntime-gpu for CUDA/TensorRT execution providers)")
        if not self.path.is_file():
            raise RunnerUnavailable(f"{self.path} not exported")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:
            self.sess = ort.InferenceSession(str(self.path), opts, providers=[want])
        except Exception as exc:
            raise RunnerUnavailable(f"{want} could not load {self.path.name}: {exc}") from None
        if want not in self.sess.get_providers():
            raise RunnerUnavailable(f"{want} failed to initialise (no usable GPU/driver?)")

    def upload(self, feeds: Dict[str, np.ndarray]) -> None:
        self.feeds = {i.name: feeds[i.name] for i in self.sess.get_inputs()}

    def compute(self) -> None:
        self.y = self.sess.run(None, self.feeds)[0]

    def download(self) -> np.ndarray:
        return np.asarray(self.y, dtype=np.float32)
