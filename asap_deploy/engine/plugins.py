"""Making the ASAP_SpatialMLP plugin available to a TensorRT process (C++ library or Python)."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from types import ModuleType
from typing import Dict, Optional

from ..errors import AsapDeployError, MissingDependencyError
from ..fused_mlp import DEFAULT_DIR, KERNEL_LIBRARY
from ..onnx_export.plugin_node import PLUGIN_NAMESPACE, PLUGIN_OP, PLUGIN_VERSION

DEFAULT_CPP = DEFAULT_DIR / "libasap_trt_plugin.so"
_loaded_cpp: Dict[str, ctypes.CDLL] = {}


class PluginError(AsapDeployError):
    pass


def registered(trt: ModuleType) -> bool:
    reg = trt.get_plugin_registry()
    try:
        return reg.get_creator(PLUGIN_OP, PLUGIN_VERSION, PLUGIN_NAMESPACE) is not None
    except Exception:  # older bindings raise instead of returning None
        return False


def load_cpp_plugin(trt: ModuleType, path: Path) -> Dict[str, str]:
    """Load the self-registering C++ library (after ``trt`` so libnvinfer is resident)."""
    path = Path(path)
    if not path.is_file():
        raise MissingDependencyError(
            f"plugin library {path} not found: build it with `python -m asap_deploy.build_plugin "
            f"--tensorrt-root $TensorRT_ROOT`"
        )
    key = str(path.resolve())
    if key not in _loaded_cpp:
        try:
            _loaded_cpp[key] = ctypes.CDLL(key, mode=getattr(os, "RTLD_GLOBAL", 0))
        except OSError as exc:
            raise PluginError(
                f"cannot load {path}: {exc}; it must be built against this "
                f"TensorRT ({getattr(trt, '__version__', '?')})"
            ) from None
    if not registered(trt):
        raise PluginError(
            f"{path} loaded but {PLUGIN_OP} v{PLUGIN_VERSION} ({PLUGIN_NAMESPACE}) is "
            f"not registered: was it built as the dynamic (getCreators) variant? Use "
            f"libasap_trt_plugin.so, or load_library() the dynamic one"
        )
    return {"kind": "cpp", "library": key}


def rtx_plugin_blocker() -> Optional[str]:
    """Why TensorRT for RTX would abort on a plugin node in this process, or None.

    Its ONNX parser (1.7.1) dlopen()s the unversioned "libtensorrt_rtx.so" when it imports a node
    bound to a registered plugin creator; the pip wheel ships only libtensorrt_rtx.so.1, and the
    failed load ends in std::terminate (exit 134). The parser's RPATH is $ORIGIN, so a link beside
    it, or one on LD_LIBRARY_PATH when the process starts, is enough.
    """
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    libs = None
    try:
        import tensorrt_rtx_libs  # type: ignore[import-not-found]

        libs = Path(tensorrt_rtx_libs.__file__).parent
        dirs.insert(0, str(libs))
    except ImportError:
        pass
    if any((Path(d) / "libtensorrt_rtx.so").exists() for d in dirs):
        return None
    where = libs or "a directory on LD_LIBRARY_PATH"
    return (
        f"its ONNX parser loads 'libtensorrt_rtx.so' when it imports the plugin node and "
        f"aborts the process when that fails; this install has only libtensorrt_rtx.so.1. "
        f"Fix: ln -s libtensorrt_rtx.so.1 {where}/libtensorrt_rtx.so"
    )


NO_PLUGIN_NOTE = (
    "no ASAP_SpatialMLP plugin is built here (python -m asap_deploy.build_plugin): "
    "the node runs as its standard-op ONNX function"
)


def auto_choice(flavour: str, kernel_library: Optional[Path] = None) -> str:
    """What ``auto`` means on this machine: the C++ library when it is built, else the Python
    plugin where it can run (full TensorRT and the compiled kernel library), else ``none``."""
    if DEFAULT_CPP.is_file():
        return str(DEFAULT_CPP)
    if flavour == "tensorrt" and Path(kernel_library or DEFAULT_DIR / KERNEL_LIBRARY).is_file():
        return "python"
    return "none"


def _refuse_rtx_abort(flavour: str) -> None:
    blocker = rtx_plugin_blocker() if flavour == "tensorrt_rtx" else None
    if blocker:
        raise PluginError(
            f"TensorRT for RTX cannot use the {PLUGIN_OP} plugin here: {blocker} "
            f"(or pass --plugin none to build the node's standard-op function)"
        )


def enable_plugin(
    trt: ModuleType,
    flavour: str,
    choice: str = "auto",
    kernel_library: Optional[Path] = None,
    parsing: bool = True,
) -> Dict[str, str]:
    """``choice``: "auto" (see ``auto_choice``), "python", "none", or a path. ``parsing``: an ONNX
    graph with the node will be parsed (a build), where TensorRT for RTX can abort; loading an
    engine does not parse."""
    if choice == "none":
        return {"kind": "none"}
    if registered(trt):
        if parsing:
            _refuse_rtx_abort(flavour)
        return {"kind": "preregistered"}
    if choice == "auto":
        choice = auto_choice(flavour, kernel_library)
        if choice == "none":
            return {"kind": "none", "note": NO_PLUGIN_NOTE}
    if parsing:
        _refuse_rtx_abort(flavour)
    if choice != "python":
        return load_cpp_plugin(trt, Path(choice))
    from .python_plugin import register_python_plugin

    register_python_plugin(trt, kernel_library)
    return {"kind": "python", "library": str(kernel_library or DEFAULT_DIR / KERNEL_LIBRARY)}
