"""One small interface for every way of running ASAP-Net (Polygraphy-style runners).

The public methods check the runner's state and the feeds against the runner's input metadata,
then call the ``*_impl`` methods a backend implements. A runner is given the source of its
model (a lazy loader: a callable returning a session, engine or generator) and loads it in
``activate``; ``deactivate`` drops engines, sessions and buffers and returns GPU memory.
Runners are context managers::

    with OrtRunner(SessionFromOnnx(path)) as r:
        image = r.infer({"label_map": ids})

Per iteration the timing harness calls ``upload(feeds)`` (host -> device), ``compute()``
(asynchronous on a GPU), ``synchronize()`` and ``download()`` (device -> host), so that transfers
and compute are timed apart, trtexec-style; ``infer`` is those four after a full input check.
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from ..errors import AsapDeployError, EnvironmentProblem
from .input_checks import TensorMeta, ValueRule, check_feeds


class RunnerUnavailable(EnvironmentProblem):
    """This backend cannot run here; the message says why (listed, never silently dropped).
    The input is fine, this machine is not (exit code 3)."""


class RunnerStateError(AsapDeployError):
    """A runner was used before ``activate()`` or after ``deactivate()``, or activated twice."""


class InferenceError(AsapDeployError):
    """The backend failed while running valid inputs (the message names the backend)."""


class Runner:
    name: str = "runner"
    device: str = "cpu"  # "cpu" or "cuda": decides CPU timers vs CUDA events
    precision: str = "fp32"
    graph_capturable = False  # compute() may be captured into a CUDA graph

    def __init__(self, value_rules: Optional[Mapping[str, ValueRule]] = None) -> None:
        self.is_active = False
        self.value_rules: Dict[str, ValueRule] = dict(value_rules or {})
        self._metadata: Optional[Dict[str, TensorMeta]] = None

    # -- lifecycle ----------------------------------------------------------------------------
    def activate(self) -> Runner:
        """Load the model; RunnerUnavailable(reason) when this backend cannot run here."""
        if self.is_active:
            raise RunnerStateError(f"{self.name} is already active; deactivate() it first")
        self.activate_impl()
        self.is_active = True
        self._metadata = None
        return self

    def deactivate(self) -> None:
        """Release the model and its buffers (GPU memory included). Safe to call twice."""
        if not self.is_active:
            return
        try:
            self.deactivate_impl()
        finally:
            self.is_active = False
            self._metadata = None

    def __enter__(self) -> Runner:
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def __del__(self) -> None:
        if getattr(self, "is_active", False):
            warnings.warn(
                f"runner {self.name} was never deactivated: call deactivate() or use it "
                f"as a context manager, or its GPU memory stays in use",
                ResourceWarning,
                stacklevel=2,
            )

    def _require_active(self) -> None:
        if not self.is_active:
            raise RunnerStateError(
                f"{self.name} is not active: call activate() first (or use `with runner:`)"
            )

    # -- what it takes ------------------------------------------------------------------------
    def input_metadata(self) -> Dict[str, TensorMeta]:
        """Name -> expected dtype, shape (None: dynamic batch) and value rule, from the model."""
        self._require_active()
        if self._metadata is None:
            self._metadata = {
                n: TensorMeta(m.name, m.dtype, m.shape, self.value_rules.get(n, m.rule))
                for n, m in self.input_metadata_impl().items()
            }
        return self._metadata

    def batch_range(self) -> Optional[Tuple[int, int]]:
        """The batch sizes this runner accepts (None: any)."""
        return None

    def check(self, feeds: Mapping[str, Any], values: bool = True) -> int:
        """Raise InputError naming the first problem of ``feeds``; return the batch size."""
        return check_feeds(self.input_metadata(), feeds, values, self.batch_range())

    # -- inference ----------------------------------------------------------------------------
    def infer(self, feeds: Mapping[str, Any], check_values: bool = True) -> np.ndarray:
        """Check ``feeds`` (shape, dtype and, unless told not to, values), run, return the image
        (B, output_nc, H, W) float32 in [-1, 1] on the host."""
        self._require_active()
        self.check(feeds, values=check_values)
        self.upload_impl(feeds)
        self.compute_impl()
        self.synchronize_impl()
        return self.download_impl()

    def upload(self, feeds: Mapping[str, Any]) -> None:
        """Host -> device (shape and dtype checked; values are not: call check() once)."""
        self._require_active()
        self.check(feeds, values=False)
        self.upload_impl(feeds)

    def compute(self) -> None:
        self._require_active()
        self.compute_impl()

    def synchronize(self) -> None:
        self._require_active()
        self.synchronize_impl()

    def download(self) -> np.ndarray:
        self._require_active()
        return self.download_impl()

    def output(self) -> Any:
        """The last image where it was computed (a torch tensor on the GPU for GPU runners, so an
        application can post-process it there); ``synchronize()`` first."""
        self._require_active()
        return self.output_impl()

    def cuda_stream(self) -> Any:
        """The torch.cuda.Stream compute() runs on (None: the current stream)."""
        return None

    def describe(self) -> Dict[str, Optional[str]]:
        return {"name": self.name, "device": self.device, "precision": self.precision}

    # -- what a backend implements ----------------------------------------------------------
    def activate_impl(self) -> None:
        raise NotImplementedError

    def deactivate_impl(self) -> None:
        raise NotImplementedError

    def input_metadata_impl(self) -> Dict[str, TensorMeta]:
        raise NotImplementedError

    def upload_impl(self, feeds: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def compute_impl(self) -> None:
        raise NotImplementedError

    def synchronize_impl(self) -> None:
        pass

    def output_impl(self) -> Any:
        raise NotImplementedError

    def download_impl(self) -> np.ndarray:
        out = self.output_impl()
        if isinstance(out, np.ndarray):
            return out.astype(np.float32, copy=False)
        result: np.ndarray = out.float().cpu().numpy()
        return result
