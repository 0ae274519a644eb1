"""Export presets: the paper's five settings, one JSON file each beside this module.

They live inside the package (``package_data`` in setup.cfg) so that a regular, non-editable
install carries them; ``export/README.md`` documents them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

from ..config import GeneratorConfig
from ..errors import ConfigError

PRESET_DIR = Path(__file__).resolve().parent


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
        if not preset_names():
            raise ConfigError(
                f"no presets in {PRESET_DIR}: this installation of asap_deploy "
                f"lacks its data files; reinstall it (pip install asap_deploy)"
            )
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(preset_names())}")
    d = json.loads(path.read_text())
    return Preset(d["name"], int(d["height"]), int(d["width"]), dict(d["generator"]))
