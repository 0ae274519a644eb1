"""An export folder read through its ``manifest.json``: the index of every file in it.

Runners and applications never guess file names: ONNX graphs are looked up in the manifest's
``files`` and engines in its ``engines`` (which ``python -m asap_deploy.build`` and the export
add to, under the naming rule of ``engine/naming.py``).

Opening an export checks the manifest (garbage, a foreign JSON file or another version is one
line). No file is used unverified: ``verify()`` checks the size and SHA-256 of every graph and
indexed engine against the manifest (bench and parity call it before any backend runs),
``graph_path`` / ``engine_path`` check the one file they return (``asap_deploy.load``), and
``load_generator`` checks the source checkpoint. Hashes are cached while a file is unchanged
(``hash_cache``), so the second check of a file costs a ``stat``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Union

from .errors import ConfigError, InputPathError
from .export_folder import (
    INPUT_MODES,
    MANIFEST,
    cached_sha256,
    config_of,
    read_manifest,
    reexport_command,
    verify_engine,
    verify_file,
    verify_source,
)
from .fileio import atomic_write

if TYPE_CHECKING:  # torch loads only with the PyTorch backends
    from .model.generator import ASAPNetGenerator

__all__ = ["ExportFolder", "open_export", "find_export", "MANIFEST", "INPUT_MODES"]


class ExportFolder:
    """Read-only view of an export, plus the one write it allows: registering an engine."""

    def __init__(self, path: Union[str, Path]) -> None:
        path = Path(path)
        if path.name == MANIFEST and path.is_file():
            path = path.parent
        self.path = path
        self.manifest: Dict[str, Any] = read_manifest(path)
        self.config = config_of(path, self.manifest)
        self.height, self.width = int(self.manifest["height"]), int(self.manifest["width"])

    # -- verification -------------------------------------------------------------------------
    @property
    def reexport(self) -> str:
        return f"re-export it: {reexport_command(self.path, self.manifest)}"

    def verify(self, files: Optional[Iterable[str]] = None, source: bool = False) -> ExportFolder:
        """Check files against the manifest (size, SHA-256); raise ExportIntegrityError naming the
        first that differs and the command that recreates it. ``files``: names of graphs or
        engines (default: every graph, and every indexed engine that is present). ``source``:
        also the checkpoint the export was made from."""
        graphs = {f["file"]: f for f in self.files}
        engines = {e["file"]: e for e in self.manifest.get("engines", [])}
        if files is None:
            names = list(graphs) + [e for e in engines if (self.path / e).exists()]
        else:
            names = list(files)
        for name in names:
            if name in graphs:
                verify_file(self.path, graphs[name], self.reexport)
            elif name in engines:
                verify_engine(self.path, engines[name])
            else:
                listed = ", ".join(sorted(graphs) + sorted(engines))
                raise InputPathError(
                    f"{self.path}: manifest.json does not list {name} (it lists {listed}): {self.reexport}"
                )
        if source:
            verify_source(self.path, self.manifest, self.reexport)
        return self

    # -- what the model is ------------------------------------------------------------------
    @property
    def input_mode(self) -> str:
        """``one-hot`` (float ``label``), ``labels`` (int32 ``label_map``) or ``rgb`` (uint8)."""
        return str(self.manifest["input_mode"])

    @property
    def name(self) -> str:
        src = self.manifest["source"]
        if "demo" in src:
            return str(src["demo"])
        return Path(str(src.get("checkpoint", self.path))).parent.name or self.path.name

    @property
    def precisions(self) -> List[str]:
        return sorted({f["precision"] for f in self.files})

    # -- graphs -----------------------------------------------------------------------------
    @property
    def files(self) -> List[Dict[str, Any]]:
        return list(self.manifest["files"])

    def file(self, name: str) -> Path:
        """A listed graph file by name, verified."""
        if name not in {f["file"] for f in self.files}:
            raise InputPathError(
                f"{self.path} has no {name} (it lists "
                f"{', '.join(sorted(f['file'] for f in self.files))}); "
                f"re-export with the precision you need: "
                f"{reexport_command(self.path, self.manifest)}"
            )
        self.verify([name])
        return self.path / str(name)

    def file_entry(self, graph: str, precision: str) -> Dict[str, Any]:
        for f in self.files:
            if f["graph"] == graph and f["precision"] == precision:
                return f
        have = ", ".join(self.precisions) or "none"
        raise ConfigError(
            f"{self.path} has no {precision} {graph} graph (exported precisions: "
            f"{have}); export again with --precision fp32 fp16"
        )

    def graph_path(self, graph: str, precision: str) -> Path:
        """The graph's file, verified against the manifest."""
        name = self.file_entry(graph, precision)["file"]
        self.verify([name])
        return self.path / str(name)

    def has_graph(self, graph: str, precision: str) -> bool:
        return any(f["graph"] == graph and f["precision"] == precision for f in self.files)

    # -- engines ----------------------------------------------------------------------------
    @property
    def engines(self) -> List[Dict[str, Any]]:
        """Engines registered in the manifest whose files are still there."""
        return [e for e in self.manifest.get("engines", []) if (self.path / e["file"]).is_file()]

    def engine_path(self, entry: Dict[str, Any]) -> Path:
        """An indexed engine's file, verified against the manifest."""
        self.verify([entry["file"]])
        return self.path / str(entry["file"])

    def listed_file(self, path: Path) -> Path:
        """``path`` (a graph or engine in this folder), verified; an unindexed file cannot be
        checked and is refused."""
        path = Path(path)
        listed = {f["file"] for f in self.files} | {e["file"] for e in self.manifest.get("engines", [])}
        if path.name not in listed or path.resolve().parent != self.path.resolve():
            raise InputPathError(
                f"{path} is not indexed in {self.path / MANIFEST}, so it cannot be checked "
                f"against it: pass the export folder, or build engines with python -m "
                f"asap_deploy.build (which indexes them)"
            )
        self.verify([path.name])
        return self.path / path.name

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
            "file": engine.name,
            "onnx": onnx_name,
            "graph": entry["graph"],
            "precision": entry["precision"],
            "tensorrt_module": sidecar["tensorrt_module"],
            "tensorrt_version": sidecar["tensorrt_version"],
            "batch": [
                sidecar["inputs"][n][k][0] for n in list(sidecar["inputs"])[:1] for k in ("min", "opt", "max")
            ],
            "plugin": plugin.get("kind", "not used"),
            "gpu": sidecar.get("gpu"),
            # what is on disk now, so that the index verifies whatever the sidecar says (the
            # loader compares the sidecar's own hash)
            "sha256": cached_sha256(engine),
            "bytes": engine.stat().st_size,
        }
        # re-read: another build may have registered its engine since this object was made
        man = read_manifest(self.path)
        man["engines"] = [e for e in man.get("engines", []) if e["file"] != engine.name] + [record]
        atomic_write(self.path / MANIFEST, (json.dumps(man, indent=2) + "\n").encode())
        self.manifest = man
        return True

    # -- the PyTorch model ------------------------------------------------------------------
    def load_generator(self) -> ASAPNetGenerator:
        """The ASAPNetGenerator this export came from (built-in demo or the source checkpoint,
        checked against the SHA-256 the manifest recorded)."""
        src = self.manifest["source"]
        if "demo" in src:
            from .demo import demo_generator

            return demo_generator(self.config)
        ckpt = Path(str(src.get("checkpoint", "")))
        if not ckpt.is_file():
            raise ConfigError(
                f"the checkpoint {ckpt} this export was made from is gone; the "
                f"PyTorch backends need it (the ONNX and TensorRT ones do not)"
            )
        verify_source(self.path, self.manifest, self.reexport)
        from .checkpoint import load_checkpoint

        loaded = load_checkpoint(ckpt, self.config.to_dict(), use_options_file=False)
        return loaded.build_generator()


def open_export(path: Path, files: Optional[Iterable[str]] = None, source: bool = False) -> ExportFolder:
    """The one call before using an export: read its manifest and verify its files (all graphs
    and present engines by default)."""
    return ExportFolder(path).verify(files, source=source)


def find_export(path: Path) -> Optional[ExportFolder]:
    """The export folder holding ``path`` (an ONNX file or engine inside it), or None."""
    folder = Path(path).parent if Path(path).is_file() else Path(path)
    return ExportFolder(folder) if (folder / MANIFEST).is_file() else None
