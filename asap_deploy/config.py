"""Architecture options of the ASAP-Net generator (the authors' ``opt`` fields that matter).

Names follow the authors' options so that ``opt.txt`` maps onto them one to one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Tuple

from .errors import ConfigError, ResolutionError
from .mlp_spec import MLPSpec

PADDINGS = ("zero", "reflect", "replicate")
GRID_ROWS = 16  # S = H / 16 in the authors' code, so the parameter grid always has 16 rows
_FIELD_TYPES = {"int": int, "bool": bool, "str": str}


@dataclass(frozen=True)
class GeneratorConfig:
    label_nc: int = 35
    contain_dontcare_label: bool = False
    instance_edge: bool = True  # not no_instance_edge: an edge channel is appended last
    lr_instance: bool = True  # the edge channel feeds only the low-res stream
    downsampling: int = 16  # S = H / 16; fixed by the checkpoint (encoding width)
    padding: str = "zero"
    lr_width: int = 64
    lr_max_width: int = 1024
    lr_depth: int = 7
    learned_ds_factor: int = 16  # S2
    hr_width: int = 64
    hr_depth: int = 5
    output_nc: int = 3
    no_one_hot: bool = False  # the authors' --no_one_hot: the input is an RGB image

    def __post_init__(self) -> None:
        self._check_types()
        if self.no_one_hot and (self.label_nc != 3 or self.contain_dontcare_label):
            raise ConfigError(
                f"no_one_hot (RGB input) needs label_nc=3 and no don't-care label, "
                f"got label_nc={self.label_nc}, contain_dontcare_label="
                f"{self.contain_dontcare_label}"
            )
        if self.padding not in PADDINGS:
            raise ConfigError(f"padding must be one of {PADDINGS}, got {self.padding!r}")
        for name in ("label_nc", "lr_width", "lr_max_width", "hr_width", "output_nc"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.lr_depth < 0:
            raise ConfigError(f"lr_depth must be >= 0, got {self.lr_depth}")
        s, s2 = self.downsampling, self.learned_ds_factor
        for name, v in (("downsampling S", s), ("learned_ds_factor S2", s2)):
            if v < 2 or v & (v - 1):
                raise ConfigError(f"{name} must be a power of two >= 2, got {v}")
        if s < s2:
            raise ConfigError(
                f"downsampling S={s} is smaller than learned_ds_factor S2={s2}: "
                f"the authors' input blur would have stride 0"
            )
        if self.hr_in_channels < 1:
            raise ConfigError("the pixelwise MLP would get no label channel")
        self.mlp_spec  # noqa: B018 (the property validates hr_depth)

    def _check_types(self) -> None:
        """Each field has its annotated type (bool is not an int here): a value read from a file
        fails with the option's name instead of a TypeError deep inside the model."""
        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), _FIELD_TYPES[str(f.type)]
            if kind is bool and not isinstance(value, bool):
                raise ConfigError(f"{f.name} must be True or False, got {value!r}")
            if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{f.name} must be an integer, got {value!r}")
            if kind is str and not isinstance(value, str):
                raise ConfigError(f"{f.name} must be a string, got {value!r}")

    # -- derived quantities ------------------------------------------------------------------
    @property
    def in_channels(self) -> int:
        """Channels of the generator's ``label`` input (authors' ``num_inputs``)."""
        return self.label_nc + int(self.contain_dontcare_label) + int(self.instance_edge)

    @property
    def one_hot_channels(self) -> int:
        return self.label_nc + int(self.contain_dontcare_label)

    @property
    def hr_in_channels(self) -> int:
        """Label channels the pixelwise MLP sees: the authors drop the last one if lr_instance."""
        return self.in_channels - int(self.lr_instance)

    @property
    def hr_uses_edges(self) -> bool:
        return self.instance_edge and not self.lr_instance

    @property
    def input_downsampling(self) -> int:
        """S1: the fixed tent-filter stride applied before the low-res stream."""
        return self.downsampling // self.learned_ds_factor

    @property
    def num_strided_convs(self) -> int:
        return self.learned_ds_factor.bit_length() - 1

    @property
    def height(self) -> int:
        return GRID_ROWS * self.downsampling

    @property
    def mlp_spec(self) -> MLPSpec:
        try:
            return MLPSpec(
                self.hr_in_channels, self.downsampling, self.hr_width, self.hr_depth, self.output_nc
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    @property
    def num_params(self) -> int:
        return self.mlp_spec.num_params

    def check_resolution(self, height: int, width: int) -> Tuple[int, int]:
        """The (grid rows, grid cols) for H x W, or a ResolutionError saying what would work."""
        s = self.downsampling
        if height != self.height:
            raise ResolutionError(
                f"height {height} does not fit this model: its positional encoding fixes S={s}, "
                f"so it runs only at H=16*S={self.height} (pass --height {self.height}, or use a "
                f"checkpoint trained at H={height})"
            )
        if width < s or width % s:
            lo = max(s, width - width % s)
            raise ResolutionError(
                f"width {width} is not a positive multiple of S={s}: the MLP tiles must cover the "
                f"image exactly (try --width {lo} or {lo + s})"
            )
        return height // s, width // s

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> GeneratorConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown generator options: {sorted(unknown)}")
        return cls(**d)

    def replace(self, **changes: Any) -> GeneratorConfig:
        return dataclasses.replace(self, **changes)
