"""One small interface for every way of running ASAP-Net (Polygraphy-style runners).

A runner owns its model and buffers. The harness calls ``activate()`` once, then per iteration
``upload(feeds)`` (host -> device), ``compute()`` (asynchronous on a GPU), ``synchronize()`` and
``download()`` (device -> host), so transfers and compute are timed apart, trtexec-style.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from ..errors import AsapDeployError


class RunnerUnavailable(AsapDeployError):
    """This backend cannot run here; the message says why (listed, never silently dropped)."""


class Runner:
    name: str = "runner"
    device: str = "cpu"         # "cpu" or "cuda": decides CPU timers vs CUDA events
    precision: str = "fp32"
    graph_capturable = False    # compute() may be captured into a CUDA graph

    def activate(self) -> None:
        """Load the model; raise RunnerUnavailable(reason) when this backend cannot run here."""

    def upload(self, feeds: Dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def compute(self) -> None:
        raise NotImplementedError

    def synchronize(self) -> None:
        pass

    def download(self) -> np.ndarray:
        raise NotImplementedError

    def infer(self, feeds: Dict[str, np.ndarray]) -> np.ndarray:
        self.upload(feeds)
        self.compute()
        self.synchronize()
        return self.download()

    def cuda_stream(self):
        """The torch.cuda.Stream compute() runs on (None: the current stream)."""
        return None

    def deactivate(self) -> None:
        pass

    def describe(self) -> Dict[str, Optional[str]]:
        return {"name": self.name, "device": self.device, "precision": self.precision}
