"""Where the harness gets a model: an export folder (manifest.json + ONNX), made on demand."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from ..config import GeneratorConfig
from ..errors import ConfigError
from ..model import ASAPNetGenerator
from ..sample_inputs import scene_feeds


@dataclass
class ModelSource:
    name: str
    export_dir: Path
    manifest: Dict
    gen: ASAPNetGenerator

    @property
    def config(self) -> GeneratorConfig:
        return self.gen.config

    @property
    def height(self) -> int:
        return int(self.manifest["height"])

    @property
    def width(self) -> int:
        return int(self.manifest["width"])

    @property
    def megapixels(self) -> float:
        return self.height * self.width / 1e6

    def feeds(self, batch: int, seed: int) -> Dict[str, np.ndarray]:
        """``label`` plus, for label-map exports, ``label_map``/``instance_map``: each runner
        takes the inputs its graph has, all describing the same scene."""
        return scene_feeds(self.config, batch, self.height, self.width, seed)


def ensure_export(demo: Optional[str], checkpoint: Optional[str], out: Path, extra=()) -> Path:
    """Export (FP32 + FP16, no parity) into ``out`` unless a manifest is already there."""
    if (out / "manifest.json").is_file():
        return out
    from ..export import main as export_main

    argv = (["--demo", demo] if demo else [checkpoint]) + ["--out", str(out), "--precision",
                                                          "fp32", "fp16", "--no-parity", *extra]
    if export_main(argv) != 0:
        raise ConfigError(f"export into {out} failed (see above)")
    return out


def open_export(export_dir: Path) -> ModelSource:
    export_dir = Path(export_dir)
    man_path = export_dir / "manifest.json"
    if not man_path.is_file():
        raise ConfigError(f"{export_dir} has no manifest.json: export it first with python -m "
                          f"asap_deploy.export (or pass --demo PRESET)")
    manifest = json.loads(man_path.read_text())
    cfg = GeneratorConfig.from_dict(manifest["config"])
    src = manifest["source"]
    if "demo" in src:
        from ..demo import demo_generator

        gen, name = demo_generator(cfg), src["demo"]
    else:
        from ..checkpoint import load_checkpoint

        ck = load_checkpoint(Path(src["checkpoint"]), cfg.to_dict())
        gen, name = ck.build_generator(), Path(src["checkpoint"]).parent.name
    return ModelSource(name, export_dir, manifest, gen)


__all__ = ["ModelSource", "ensure_export", "open_export"]
