"""Load a serialized engine after checking its sidecar against this process and GPU."""
from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Optional, Tuple

from ..errors import AsapDeployError
from .builder import gpu_identity, sidecar_path
from .plugins import enable_plugin
from .trt_module import import_tensorrt, trt_version


class EngineMismatchError(AsapDeployError):
    pass


def read_sidecar(engine_path: Path) -> Dict[str, Any]:
    side = sidecar_path(engine_path)
    if not side.is_file():
        raise EngineMismatchError(
            f"{side} is missing: engines from `python -m asap_deploy.build` carry it; rebuild the "
            f"engine with that command so its TensorRT version, GPU and plugin can be checked")
    try:
        return json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise EngineMismatchError(f"{side} is not valid JSON ({exc}); rebuild the engine") from None


def check_compatible(sidecar: Dict[str, Any], flavour: str, version: str,
                     gpu: Optional[Dict[str, Any]]) -> None:
    """Raise with the reason and the fix when the engine cannot run here."""
    rebuild = f"rebuild it: python -m asap_deploy.build {sidecar.get('onnx', 'MODEL.onnx')}"
    if sidecar.get("tensorrt_module") != flavour or sidecar.get("tensorrt_version") != version:
        raise EngineMismatchError(
            f"engine was built with {sidecar.get('tensorrt_module')} "
            f"{sidecar.get('tensorrt_version')}, this process has {flavour} {version}; engines "
            f"only load in the TensorRT version that built them: {rebuild}")
    built_on = sidecar.get("gpu")
    # TensorRT for RTX engines are portable across its supported GPUs; full TensorRT's are not
    if flavour == "tensorrt" and built_on and gpu and \
            built_on["compute_capability"] != gpu["compute_capability"]:
        raise EngineMismatchError(
            f"engine was built for {built_on['name']} (sm {built_on['compute_capability']}), this "
            f"GPU is {gpu['name']} (sm {gpu['compute_capability']}): {rebuild} on this GPU")


def load_engine(engine_path: Path, module: str = "auto", plugin: str = "auto",
                kernel_library: Optional[Path] = None) -> Tuple[Any, Dict[str, Any], ModuleType]:
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        raise EngineMismatchError(f"engine not found: {engine_path}")
    sidecar = read_sidecar(engine_path)
    trt, flavour = import_tensorrt(module if module != "auto" else
                                   sidecar.get("tensorrt_module", "auto"))
    check_compatible(sidecar, flavour, trt_version(trt), gpu_identity())
    if sidecar.get("plugin") and sidecar["plugin"].get("kind") != "none":
        enable_plugin(trt, flavour, plugin, kernel_library)
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise EngineMismatchError(
            f"TensorRT could not deserialize {engine_path} (see the messages above): the file may "
            f"be damaged, or the plugin it uses is not registered")
    return engine, sidecar, trt
