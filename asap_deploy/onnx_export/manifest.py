"""manifest.json: everything a later step (engine build, runner, benchmark) needs to know.

Reading and verifying a manifest (file hashes, schema) is ``asap_deploy.export_folder``.
"""

from __future__ import annotations

import hashlib
import platform
from typing import Any, Dict, List

import onnx
import torch

from ..config import GeneratorConfig
from ..export_folder import MANIFEST_VERSION
from .exporter import ExportedGraph
from .plugin_node import PLUGIN_DOMAIN, PLUGIN_NAMESPACE, PLUGIN_OP, PLUGIN_VERSION, node_attributes
from .torch_export import OPSET


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def versions() -> Dict[str, str]:
    import onnxruntime

    from .. import __version__

    return {
        "asap_deploy": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }


def build_manifest(
    cfg: GeneratorConfig,
    height: int,
    width: int,
    input_mode: str,
    files: List[Dict[str, Any]],
    source: Dict[str, Any],
    parity: Dict[str, Any],
    plugin_mode: str,
) -> Dict[str, Any]:
    spec = cfg.mlp_spec
    return {
        "manifest_version": MANIFEST_VERSION,
        "source": source,
        "config": cfg.to_dict(),
        "height": height,
        "width": width,
        "grid": [height // cfg.downsampling, width // cfg.downsampling],
        "input_mode": input_mode,
        "opset": OPSET,
        "dynamic_axes": ["batch"],
        "mlp": {
            "channels": spec.channels,
            "num_params": spec.num_params,
            "layers": [
                {
                    "c_in": l.c_in,
                    "c_out": l.c_out,
                    "bias_offset": l.bias_offset,
                    "weight_offset": l.weight_offset,
                }
                for l in spec.layers
            ],
            "periods": spec.periods,
            "macs_per_pixel": spec.macs_per_pixel,
        },
        "plugin": {
            "op_type": PLUGIN_OP,
            "domain": PLUGIN_DOMAIN,
            "version": PLUGIN_VERSION,
            "namespace": PLUGIN_NAMESPACE,
            "attributes": node_attributes(cfg, plugin_mode),
        },
        "files": files,
        "parity": parity,
        "versions": versions(),
    }


def file_entry(art: ExportedGraph, data: bytes) -> Dict[str, Any]:
    return {
        "file": art.filename,
        "graph": art.graph,
        "precision": art.precision,
        "sha256": sha256(data),
        "bytes": len(data),
        "inputs": [t.to_dict() for t in art.inputs],
        "outputs": [t.to_dict() for t in art.outputs],
    }
