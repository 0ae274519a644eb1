"""Lazy loaders: callables a runner is given and calls in ``activate()`` (Polygraphy's pattern).

``SessionFromOnnx`` -> an ONNX Runtime session; ``EngineFromPath`` -> a deserialised TensorRT
engine (sidecar checked); ``EngineFromOnnx`` -> the engine of an ONNX file under the naming rule,
built (in a child process) only when it is missing or was built from another ONNX file.
Nothing is loaded when a loader is made, so a harness can list all backends and hold one.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Optional, Sequence, Tuple

from ..errors import AsapDeployError
from ..hash_cache import sha256_file
from .base import RunnerUnavailable

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}


class SessionFromOnnx:
    def __init__(self, path: Path, provider: str = "cpu", device_id: int = 0) -> None:
        if provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {list(PROVIDERS)}, got {provider!r}")
        self.path, self.provider, self.device_id = Path(path), provider, device_id

    def __call__(self):
        import onnxruntime as ort

        want = PROVIDERS[self.provider]
        if want not in ort.get_available_providers():
            raise RunnerUnavailable(
                f"onnxruntime {ort.__version__} here has no {want} (install "
                f"onnxruntime-gpu for CUDA/TensorRT execution providers)"
            )
        if not self.path.is_file():
            raise RunnerUnavailable(f"{self.path} not exported")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        provider = want if self.provider == "cpu" else (want, {"device_id": self.device_id})
        try:
            sess = ort.InferenceSession(str(self.path), opts, providers=[provider])
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise RunnerUnavailable(f"{want} could not load {self.path.name}: {first}") from None
        if want not in sess.get_providers():
            raise RunnerUnavailable(f"{want} failed to initialise (no usable GPU/driver?)")
        return sess


class EngineFromPath:
    """A built engine (``.plan`` + sidecar): -> (engine, sidecar, tensorrt module)."""

    def __init__(
        self, plan: Path, module: str = "auto", plugin: str = "auto", kernel_library: Optional[Path] = None
    ) -> None:
        self.plan, self.module, self.plugin = Path(plan), module, plugin
        self.kernel_library = kernel_library

    def __call__(self) -> Tuple[Any, Dict[str, Any], ModuleType]:
        from ..engine.loader import load_engine

        return load_engine(self.plan, self.module, self.plugin, self.kernel_library)


def stale(plan: Path, onnx_path: Path, plugin: str = "auto") -> Optional[str]:
    """Why the cached engine ``plan`` cannot stand for ``onnx_path`` built with ``plugin``, or
    None when it can."""
    from ..engine.loader import EngineMismatchError, read_sidecar

    if not Path(plan).is_file():
        return "not built yet"
    try:
        side = read_sidecar(plan)
    except EngineMismatchError:
        return "no sidecar: unknown origin"
    if side.get("onnx_sha256") != sha256_file(onnx_path):
        return f"built from another version of {Path(onnx_path).name}"
    kind = (side.get("plugin") or {}).get("kind")
    if kind is None:  # a graph without the custom node
        return None
    if plugin == "none":
        return None if kind == "none" else "built with the plugin, wanted without"
    if kind != "none":
        return None
    if plugin != "auto":
        return "built without the plugin, wanted with"
    from ..engine.plugins import auto_choice

    if auto_choice(side.get("tensorrt_module", "")) != "none":
        return "built without the plugin, which is available now"
    return None


class EngineFromOnnx:
    """The engine of ``onnx_path`` under the naming rule, built first when needed."""

    def __init__(
        self,
        onnx_path: Path,
        module: str = "auto",
        plugin: str = "auto",
        batch: Sequence[int] = (1, 1, 1),
        kernel_library: Optional[Path] = None,
        progress: bool = False,
    ) -> None:
        self.onnx, self.module, self.plugin = Path(onnx_path), module, plugin
        self.batch = tuple(batch)
        self.kernel_library, self.progress = kernel_library, progress

    def __call__(self) -> Tuple[Any, Dict[str, Any], ModuleType]:
        from ..engine.naming import engine_path
        from ..engine.subprocess_build import build_engine_isolated
        from ..engine.trt_module import import_tensorrt

        _, flavour = import_tensorrt(self.module)
        plan = engine_path(self.onnx, flavour, self.batch)
        if stale(plan, self.onnx, self.plugin):
            build_engine_isolated(
                self.onnx,
                plan,
                module=flavour,
                plugin=self.plugin,
                batch=self.batch,
                kernel_library=self.kernel_library,
                progress=self.progress,
            )
        return EngineFromPath(plan, flavour, self.plugin, self.kernel_library)()


def unavailable(exc: AsapDeployError) -> RunnerUnavailable:
    return exc if isinstance(exc, RunnerUnavailable) else RunnerUnavailable(str(exc))
