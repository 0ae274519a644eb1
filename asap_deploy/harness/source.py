"""Where the harness gets a model: an export folder (its manifest indexes every file), verified
before any backend runs, and exported on demand for the built-in demo models."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import numpy as np

from .. import artifacts
from ..artifacts import ExportFolder
from ..config import GeneratorConfig
from ..errors import ConfigError
from ..sample_inputs import scene_feeds


class ModelSource:
    def __init__(self, export: ExportFolder) -> None:
        self.export = export
        self._gen = None

    @property
    def name(self) -> str:
        return self.export.name

    @property
    def export_dir(self) -> Path:
        return self.export.path

    @property
    def manifest(self) -> Dict:
        return self.export.manifest

    @property
    def config(self) -> GeneratorConfig:
        return self.export.config

    @property
    def gen(self):
        """The PyTorch generator (loaded on first use: only the reference and torch backends need
        it)."""
        if self._gen is None:
            self._gen = self.export.load_generator()
        return self._gen

    @property
    def height(self) -> int:
        return self.export.height

    @property
    def width(self) -> int:
        return self.export.width

    @property
    def megapixels(self) -> float:
        return self.height * self.width / 1e6

    def feeds(self, batch: int, seed: int) -> Dict[str, np.ndarray]:
        """``label`` plus ``label_map`` / ``rgb`` (and ``instance_map``): each runner takes the
        inputs its graph has, all describing the same scene."""
        return scene_feeds(self.config, batch, self.height, self.width, seed)


def ensure_export(demo: Optional[str], checkpoint: Optional[str], out: Path, extra=()) -> Path:
    """Reuse the export in ``out`` (e.g. the set-up's ``build/<preset>``), or export FP32 + FP16
    there (no parity, no engine: the harness builds the engines it runs)."""
    out = Path(out)
    if (out / "manifest.json").is_file():
        have = ExportFolder(out)
        if demo and have.manifest.get("source", {}).get("demo") != demo:
            raise ConfigError(
                f"{out} holds an export of another model, not the demo {demo!r}: "
                f"pass --work DIR to keep the demo exports elsewhere"
            )
        if {"fp32", "fp16"} <= set(have.precisions):
            return out
        print(f"  {out} has only {', '.join(have.precisions)} graphs: exporting FP32 + FP16", flush=True)
    from ..export import build_parser, run

    argv = (["--demo", demo] if demo else [checkpoint]) + [
        "--out",
        str(out),
        "--precision",
        "fp32",
        "fp16",
        "--no-parity",
        "--engine",
        "none",
        *extra,
    ]
    run(build_parser().parse_args(argv))  # its errors are the caller's one error line
    return out


def open_export(export_dir: Path, source: bool = False) -> ModelSource:
    """The export, every graph and indexed engine checked against the manifest (a damaged file
    is an error before anything is timed or compared, not a backend listed as "skipped");
    ``source``: also the checkpoint the PyTorch reference is reloaded from."""
    return ModelSource(artifacts.open_export(export_dir, source=source))


__all__ = ["ModelSource", "ensure_export", "open_export"]
