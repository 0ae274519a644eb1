"""asap_deploy: export, fuse and benchmark ASAP-Net generators (ONNX Runtime, TensorRT), and run
them in applications: ``asap_deploy.load(export_dir)(label_map) -> image``.

Importing the package is cheap: torch, ONNX Runtime and TensorRT load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["ImageGenerator", "load", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from .application import ImageGenerator, load


def __getattr__(name: str) -> Any:
    if name in ("load", "ImageGenerator"):
        from . import application

        return getattr(application, name)
    raise AttributeError(f"module 'asap_deploy' has no attribute {name!r}")
