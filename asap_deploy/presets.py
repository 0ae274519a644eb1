"""Export presets (``export/*.json`` at the repository root): the paper's five settings."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

from .config import GeneratorConfig
from .errors import ConfigError

PRESET_DIR = Path(__file__).resolve().parents[1] / "export"


@dataclass(frozen=True)
class Preset:
    name: str
    height: int
    width: int
    generator: Dict[str, Any]

    def config(self) -> GeneratorConfig:
        return GeneratorConfig.from_dict(self.generator)


def preset_names() -> List[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def load_preset(name: str) -> Preset:
    path = PRESET_DIR / f"{name}.json"
    if not path.is_file():
        if not PRESET_DIR.is_dir():
            raise ConfigError(f"presets folder {PRESET_DIR} is missing: presets ship with the "
                              f"source tree, install it with pip install -e")
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(preset_names())}")
    d = json.loads(path.read_text())
    return Preset(d["name"], int(d["height"]), int(d["width"]), dict(d["generator"]))
