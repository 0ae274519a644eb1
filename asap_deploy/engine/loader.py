"""Load a serialized engine after checking it and its sidecar against this process and GPU.

Each way an engine can fail to load has its own message and class, decided before TensorRT gets
the bytes wherever possible:

* damaged file: its size or SHA-256 differs from the sidecar's (``EngineDamagedError``, exit 2);
* another TensorRT version, another GPU, no CUDA GPU at all, or a plugin that is not available
  here (``EngineIncompatibleError`` with ``reason``, exit 3: the engine is fine, this machine
  cannot run it);
* what TensorRT still refuses is classified from its log instead of "may be damaged".
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List, Optional, Tuple

from .. import paths
from ..errors import AsapDeployError, EnvironmentProblem, InputPathError
from .builder import sidecar_path
from .cuda_device import probe
from .trt_module import import_tensorrt, trt_version

__all__ = [
    "EngineMismatchError",
    "EngineDamagedError",
    "EngineIncompatibleError",
    "read_sidecar",
    "check_integrity",
    "check_compatible",
    "load_engine",
]


class EngineMismatchError(AsapDeployError):
    """The engine cannot be used (base class of the two below; exit 2)."""


class EngineDamagedError(EngineMismatchError):
    """The engine or its sidecar is not what the build wrote."""


class EngineIncompatibleError(EngineMismatchError, EnvironmentProblem):
    """A good engine that this machine cannot run (exit 3). ``reason``: no_gpu, tensorrt, gpu,
    plugin or unknown."""

    def __init__(self, message: str, reason: str = "unknown") -> None:
        super().__init__(message)
        self.reason = reason


def _rebuild(sidecar: Dict[str, Any], engine: Optional[Path] = None) -> str:
    out = f" --out {engine}" if engine is not None else ""
    return f"rebuild it: python -m asap_deploy.build {sidecar.get('onnx', 'MODEL.onnx')}{out}"


def read_sidecar(engine_path: Path) -> Dict[str, Any]:
    side = sidecar_path(engine_path)
    if not side.is_file():
        raise EngineMismatchError(
            f"{side} is missing: engines from `python -m asap_deploy.build` carry it; rebuild the "
            f"engine with that command so its TensorRT version, GPU and plugin can be checked"
        )
    try:
        data = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EngineDamagedError(f"{side} is not valid JSON ({exc}); rebuild the engine") from None
    if not isinstance(data, dict):
        raise EngineDamagedError(
            f"{side} holds a JSON {type(data).__name__}, not an engine "
            f"sidecar; rebuild the engine with python -m asap_deploy.build"
        )
    return data


def _check_sidecar(engine_path: Path, sidecar: Dict[str, Any]) -> None:
    """What loading needs from the sidecar (``read_sidecar`` alone also serves cache checks)."""
    missing = [k for k in ("tensorrt_module", "tensorrt_version", "engine_sha256") if k not in sidecar]
    if missing:
        raise EngineDamagedError(
            f"{sidecar_path(engine_path)} is not an engine sidecar (no "
            f"{', '.join(missing)}); rebuild the engine with python -m "
            f"asap_deploy.build"
        )


def check_integrity(engine_path: Path, sidecar: Dict[str, Any]) -> None:
    """The engine file is byte for byte what the build wrote (size, then SHA-256)."""
    from ..export_folder import sha256_file

    size = engine_path.stat().st_size
    want = sidecar.get("engine_bytes")
    if isinstance(want, int) and size != want:
        raise EngineDamagedError(
            f"{engine_path} has {size} bytes but its sidecar says {want}"
            f"{' (truncated?)' if size < want else ''}: the file was damaged or replaced after the "
            f"build; {_rebuild(sidecar, engine_path)}"
        )
    if sha256_file(engine_path) != sidecar["engine_sha256"]:
        raise EngineDamagedError(
            f"{engine_path} does not match its sidecar (SHA-256 differs, {size} bytes): the file "
            f"was damaged or replaced after the build; {_rebuild(sidecar, engine_path)}"
        )


def check_compatible(
    sidecar: Dict[str, Any], flavour: str, version: str, gpu: Optional[Dict[str, Any]]
) -> None:
    """Raise with the reason and the fix when the engine cannot run here."""
    rebuild = _rebuild(sidecar)
    if sidecar.get("tensorrt_module") != flavour or sidecar.get("tensorrt_version") != version:
        raise EngineIncompatibleError(
            f"engine was built with {sidecar.get('tensorrt_module')} "
            f"{sidecar.get('tensorrt_version')}, this process has {flavour} {version}; engines "
            f"only load in the TensorRT version that built them: {rebuild}",
            "tensorrt",
        )
    built_on = sidecar.get("gpu")
    # TensorRT for RTX engines are portable across its supported GPUs; full TensorRT's are not
    if (
        flavour == "tensorrt"
        and built_on
        and gpu
        and built_on["compute_capability"] != gpu["compute_capability"]
    ):
        raise EngineIncompatibleError(
            f"engine was built for {built_on['name']} (sm {built_on['compute_capability']}), this "
            f"GPU is {gpu['name']} (sm {gpu['compute_capability']}): {rebuild} on this GPU",
            "gpu",
        )


def _plugin(
    trt: ModuleType,
    flavour: str,
    sidecar: Dict[str, Any],
    engine_path: Path,
    plugin: str,
    kernel_library: Optional[Path],
) -> None:
    from .plugins import enable_plugin

    used = sidecar.get("plugin") or {}
    if not used or used.get("kind") == "none":
        return
    try:
        enable_plugin(trt, flavour, plugin, kernel_library, parsing=False)
    except AsapDeployError as exc:
        raise EngineIncompatibleError(
            f"{engine_path} uses the {used.get('name', 'ASAP_SpatialMLP')} plugin "
            f"({used.get('kind')} at build time), which is not available here: {exc}",
            "plugin",
        ) from None


def _classify(engine_path: Path, sidecar: Dict[str, Any], errors: List[str]) -> EngineMismatchError:
    """What TensorRT's log says went wrong, after our own checks all passed."""
    text = " ".join(errors)
    low = text.lower()
    first = errors[0] if errors else "TensorRT logged no error"
    first = first if len(first) <= 240 else first[:237] + "..."
    if "cudaerror" in low or "cuda runtime" in low or "cuda driver" in low:
        return EngineIncompatibleError(
            f"TensorRT cannot use the GPU to load {engine_path} ({first}): check the NVIDIA driver "
            f"(nvidia-smi) and that it is recent enough for this TensorRT",
            "no_gpu",
        )
    if "plugin" in low or "creator" in low:
        return EngineIncompatibleError(
            f"{engine_path} needs a plugin that is not registered in this process ({first}): "
            f"pass --plugin with the library the engine was built with",
            "plugin",
        )
    if any(
        s in low
        for s in (
            "version tag",
            "serialization version",
            "expecting library version",
            "not compatible with this version",
            "magic tag",
        )
    ):
        return EngineIncompatibleError(
            f"{engine_path} was serialized by another TensorRT version than this process's "
            f"({first}); {_rebuild(sidecar, engine_path)}",
            "tensorrt",
        )
    if "compute capability" in low or "not supported on this" in low or "platform" in low:
        return EngineIncompatibleError(
            f"{engine_path} was built for another GPU ({first}); {_rebuild(sidecar, engine_path)} "
            f"on this GPU",
            "gpu",
        )
    return EngineIncompatibleError(
        f"TensorRT refused {engine_path}, which matches its sidecar byte for byte ({first})", "unknown"
    )


_loggers: Dict[int, Any] = {}
_load_lock = threading.Lock()


def _capturing_logger(trt: ModuleType):
    """One logger per TensorRT module, kept alive for the process (TensorRT holds a raw pointer
    to it for as long as the runtime and its engines live); collects errors of one load."""
    if id(trt) not in _loggers:

        class _Log(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self.errors: List[str] = []

            def log(self, severity, msg) -> None:
                if severity in (trt.ILogger.ERROR, trt.ILogger.INTERNAL_ERROR):
                    self.errors.append(str(msg))

        _loggers[id(trt)] = _Log()
    return _loggers[id(trt)]


def load_engine(
    engine_path: Path, module: str = "auto", plugin: str = "auto", kernel_library: Optional[Path] = None
) -> Tuple[Any, Dict[str, Any], ModuleType]:
    """(engine, sidecar, trt module) or the one error that says why not (see module doc)."""
    engine_path = Path(engine_path)
    try:
        paths.input_file(engine_path, "engine", "build one with python -m asap_deploy.build")
    except InputPathError as exc:
        raise EngineMismatchError(str(exc)) from None
    sidecar = read_sidecar(engine_path)
    _check_sidecar(engine_path, sidecar)
    check_integrity(engine_path, sidecar)
    trt, flavour = import_tensorrt(module if module != "auto" else sidecar.get("tensorrt_module", "auto"))
    found = probe()
    check_compatible(sidecar, flavour, trt_version(trt), found.first)
    if found.first is None:
        raise EngineIncompatibleError(
            f"{engine_path} is intact but needs a CUDA GPU to run, and this machine has none "
            f"({found.problem}); run it on a machine with an NVIDIA GPU (building works "
            f"without one)",
            "no_gpu",
        )
    _plugin(trt, flavour, sidecar, engine_path, plugin, kernel_library)
    with _load_lock:
        logger = _capturing_logger(trt)
        logger.errors = []
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        errors = list(logger.errors)
    if engine is None:
        raise _classify(engine_path, sidecar, errors)
    return engine, sidecar, trt
