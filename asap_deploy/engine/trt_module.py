"""Pick the TensorRT Python module: ``tensorrt`` or TensorRT for RTX, imported only when needed."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Tuple

from ..errors import MissingDependencyError

#: import name -> flavour recorded in engine sidecars
MODULES = {"tensorrt": "tensorrt", "tensorrt_rtx": "tensorrt_rtx", "tensorrt_rtx_bindings": "tensorrt_rtx"}
CHOICES = ("auto", "tensorrt", "tensorrt_rtx")


def import_tensorrt(which: str = "auto") -> Tuple[ModuleType, str]:
    """(module, flavour). ``auto`` prefers full TensorRT, then TensorRT for RTX."""
    if which not in CHOICES:
        raise ValueError(f"TensorRT module must be one of {CHOICES}, got {which!r}")
    names = [n for n, f in MODULES.items() if which in ("auto", f)]
    errors = []
    for name in names:
        try:
            return importlib.import_module(name), MODULES[name]
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
    hint = {
        "tensorrt": "pip install tensorrt (NVIDIA's index) or a TensorRT tarball's wheel",
        "tensorrt_rtx": "pip install tensorrt-rtx-cu13-bindings tensorrt-rtx-cu13-libs",
    }
    fixes = " or ".join(hint[f] for f in dict.fromkeys(MODULES[n] for n in names))
    raise MissingDependencyError(f"TensorRT is not installed ({'; '.join(errors)}): {fixes}")


def resolve_flavour(which: str = "auto") -> str:
    """The flavour ``import_tensorrt(which)`` would give, found without importing TensorRT (an
    engine's file name depends on it, and requests are checked before TensorRT is loaded)."""
    import importlib.util

    if which not in CHOICES:
        raise ValueError(f"TensorRT module must be one of {CHOICES}, got {which!r}")
    for name, flavour in MODULES.items():
        if which in ("auto", flavour):
            try:
                if importlib.util.find_spec(name) is not None:
                    return flavour
            except (ImportError, ValueError):
                continue
    import_tensorrt(which)  # raises the MissingDependencyError that says how to install one
    raise AssertionError("unreachable")


def trt_version(trt: ModuleType) -> str:
    return str(getattr(trt, "__version__", "unknown"))
