"""An export folder read through its ``manifest.json``: the index of every file in it.

Runners and applications never guess file names: ONNX graphs are looked up in the manifest's
``files`` and engines in its ``engines`` (which ``python -m asap_deploy.build`` and the export
add to, under the naming rule of ``engine/naming.py``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from .config import GeneratorConfig
from .errors import ConfigError
from .fileio import atomic_write

MANIFEST = "manifest.json"
INPUT_MODES = ("one-hot", "labels", "rgb")


class ExportFolder:
    """Read-only view of an export, plus the one write it allows: registering an engine."""

    def __init__(self, path: Path) -> None:
        path = Path(path)
        if path.is_file() and path.name == MANIFEST:
            path = path.parent
        self.path = path
        man = path / MANIFEST
        if not path.is_dir():
            raise ConfigError(f"export folder {path} not found: export a model first with "
                              f"python -m asap_deploy.export CHECKPOINT (or --demo PRESET)")
        if not man.is_file():
            raise ConfigError(f"{path} has no {MANIFEST}, so it is not an asap_deploy export: "
                              f"export into it with python -m asap_deploy.export ... --out {path}")
        try:
            self.manifest: Dict[str, Any] = json.loads(man.read_text())
            self.config = GeneratorConfig.from_dict(self.manifest["config"])
            self.height, self.width = int(self.manifest["height"]), int(self.manifest["width"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{man} is damaged ({type(exc).__name__}: {exc}); export the model "
                              f"again") from None

    # -- what the model is ------------------------------------------------------------------
    @property
    def input_mode(self) -> str:
        """``one-hot`` (float ``label``), ``labels`` (int32 ``label_map``) or ``rgb`` (uint8)."""
        return str(self.manifest.get("input_mode", "one-hot"))

    @property
    def name(self) -> str:
        src = self.manifest.get("source", {})
        if "demo" in src:
            return str(src["demo"])
        return Path(src.get("checkpoint", self.path)).parent.name or self.path.name

    @property
    def precisions(self) -> List[str]:
        return sorted({f["precision"] for f in self.files})

    # -- graphs -----------------------------------------------------------------------------
    @property
    def files(self) -> List[Dict[str, Any]]:
        return list(self.manifest.get("files", []))

    def file_entry(self, graph: str, precision: str) -> Dict[str, Any]:
        for f in self.files:
            if f["graph"] == graph and f["precision"] == precision:
                return f
        have = ", ".join(self.precisions) or "none"
        raise ConfigError(f"{self.path} has no {precision} {graph} graph (exported precisions: "
                          f"{have}); export again with --precision fp32 fp16")

    def graph_path(self, graph: str, precision: str) -> Path:
        path = self.path / self.file_entry(graph, precision)["file"]
        if not path.is_file():
            raise ConfigError(f"{path} is listed in the manifest but missing: export again")
        return path

    def has_graph(self, graph: str, precision: str) -> bool:
        return any(f["graph"] == graph and f["precision"] == precision for f in self.files)

    # -- engines ----------------------------------------------------------------------------
    @property
    def engines(self) -> List[Dict[str, Any]]:
        """Engines registered in the manifest whose files are still there."""
        return [e for e in self.manifest.get("engines", []) if (self.path / e["file"]).is_file()]

    def register_engine(self, engine: Path, sidecar: Dict[str, Any]) -> bool:
        """Add an engine built from one of this export's graphs to the index (replacing an entry of
        the same name). False when the engine is not in this folder or not built from it."""
        engine = Path(engine).resolve()
        if engine.parent != self.path.resolve():
            return False
        onnx_name = Path(sidecar.get("onnx", "")).name
        entry = next((f for f in self.files if f["file"] == onnx_name), None)
        if entry is None or entry["sha256"] != sidecar.get("onnx_sha256"):
            return False
        plugin = sidecar.get("plugin") or {}
        record = {
            "file": engine.name, "onnx": onnx_name, "graph": entry["graph"],
            "precision": entry["precision"], "tensorrt_module": sidecar["tensorrt_module"],
            "tensorrt_version": sidecar["tensorrt_version"],
            "batch": [sidecar["inputs"][n][k][0] for n in list(sidecar["inputs"])[:1]
                      for k in ("min", "opt", "max")],
            "plugin": plugin.get("kind", "not used"), "gpu": sidecar.get("gpu"),
            "sha256": sidecar.get("engine_sha256"), "bytes": engine.stat().st_size,
        }
        # re-read: another build may have registered its engine since this object was made
        man = json.loads((self.path / MANIFEST).read_text())
        man["engines"] = [e for e in man.get("engines", []) if e["file"] != engine.name] + [record]
        atomic_write(self.path / MANIFEST, (json.dumps(man, indent=2) + "\n").encode())
        self.manifest = man
        return True

    # -- the PyTorch model ------------------------------------------------------------------
    def load_generator(self):
        """The ASAPNetGenerator this export came from (built-in demo or the source checkpoint)."""
        src = self.manifest.get("source", {})
        if "demo" in src:
            from .demo import demo_generator

            return demo_generator(self.config)
        ckpt = Path(src.get("checkpoint", ""))
        if not ckpt.is_file():
            raise ConfigError(f"the checkpoint {ckpt} this export was made from is gone; the "
                              f"PyTorch backends need it (the ONNX and TensorRT ones do not)")
        from .checkpoint import load_checkpoint

        ckpt = load_checkpoint(ckpt, self.config.to_dict(), use_options_file=False)
        return ckpt.build_generator()


def find_export(path: Path) -> Optional[ExportFolder]:
    """The export folder holding ``path`` (an ONNX file or engine inside it), or None."""
    folder = Path(path).parent if Path(path).is_file() else Path(path)
    return ExportFolder(folder) if (folder / MANIFEST).is_file() else None
