"""The authors' training options (``opt.txt`` / ``opt.pkl`` beside a checkpoint), read strictly.

Training writes every option to ``opt.txt`` (``name: value<TAB>[default: x]`` per line between two
banner lines) and pickles the argparse Namespace to ``opt.pkl``. The options that decide the
architecture are typed below; a value of the wrong type is an error naming the file, line, option
and value. A file that is not an options file at all is an error too, not a silent skip: the
options it should carry (label split, replicate padding) are ones the tensors cannot tell, so
ignoring it would export a wrong model that still passes parity against itself. ``--no-opt-file``
is the way to skip it on purpose.
"""

from __future__ import annotations

import argparse
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from .errors import CheckpointError, ConfigError

SKIP_HINT = "fix or remove it, or pass --no-opt-file to ignore it"


def _as_int(text: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ValueError("an integer")
    return int(text)


def _as_bool(text: str) -> bool:
    if text not in ("True", "False"):
        raise ValueError("True or False")
    return text == "True"


def _as_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError("a number") from None


def _as_str_or_none(text: str) -> Optional[str]:
    return None if text == "None" else text


#: option -> (parse opt.txt text, accept an opt.pkl value, what it must be)
_INT = (_as_int, lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer")
_BOOL = (_as_bool, lambda v: isinstance(v, bool), "True or False")
_FLOAT = (_as_float, lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number")
_STR = (_as_str_or_none, lambda v: v is None or isinstance(v, str), "a string or None")
OPTION_TYPES: Dict[str, Tuple[Callable[[str], Any], Callable[[Any], bool], str]] = {
    "label_nc": _INT,
    "contain_dontcare_label": _BOOL,
    "no_instance_edge": _BOOL,
    "no_instance_dist": _BOOL,
    "lr_instance": _BOOL,
    "reflection_pad": _BOOL,
    "replicate_pad": _BOOL,
    "lr_width": _INT,
    "lr_max_width": _INT,
    "lr_depth": _INT,
    "learned_ds_factor": _INT,
    "hr_width": _INT,
    "hr_depth": _INT,
    "output_nc": _INT,
    "crop_size": _INT,
    "load_size": _INT,
    "aspect_ratio": _FLOAT,
    "hr_coor": _STR,
    "no_one_hot": _BOOL,
}

#: GeneratorConfig fields taken over unchanged from the option of the same name
SAME_NAME = (
    "label_nc",
    "contain_dontcare_label",
    "lr_instance",
    "lr_width",
    "lr_max_width",
    "lr_depth",
    "learned_ds_factor",
    "hr_width",
    "hr_depth",
    "output_nc",
)

_BANNER = re.compile(r"^\s*-{3,}.*$")
_OPTION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*:(.*)$")


@dataclass
class TrainingOptions:
    path: Optional[Path] = None
    values: Dict[str, Any] = field(default_factory=dict)
    lines: Dict[str, int] = field(default_factory=dict)  # opt.txt line of each option

    def where(self, option: str) -> str:
        """``opt.txt line 5`` / ``opt.pkl``: where an option came from, for messages."""
        name = self.path.name if self.path else "options file"
        return f"{name} line {self.lines[option]}" if option in self.lines else name

    def says(self, option: str) -> str:
        return f"{self.where(option)} says {option}: {self.values.get(option)!r}"


class _NamespaceOnly(pickle.Unpickler):
    """opt.pkl is a pickled argparse.Namespace; refuse anything else (pickle runs code)."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("argparse", "Namespace"):
            return argparse.Namespace
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from an options file")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _read_pkl(path: Path) -> TrainingOptions:
    try:
        with open(path, "rb") as f:
            obj = _NamespaceOnly(f).load()
    except Exception as exc:
        raise CheckpointError(
            f"{path} is not a readable options file ({_first_line(exc)}); {SKIP_HINT}"
        ) from None
    if not isinstance(obj, argparse.Namespace):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not the training options; {SKIP_HINT}")
    values = dict(vars(obj))
    for name, (_, accepts, what) in OPTION_TYPES.items():
        if name in values and not accepts(values[name]):
            raise CheckpointError(f"{path}: option {name} is {values[name]!r}, expected {what}; {SKIP_HINT}")
    return TrainingOptions(path, values)


def _read_txt(path: Path) -> TrainingOptions:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    if b"\0" in raw:
        raise CheckpointError(
            f"{path} is not a text file (binary data at byte {raw.index(0)}), so "
            f"not the authors' options file; {SKIP_HINT}"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(
            f"{path} is not UTF-8 text (bad byte at {exc.start}), so not the "
            f"authors' options file; {SKIP_HINT}"
        ) from None
    opts = TrainingOptions(path)
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip() or _BANNER.match(line):
            continue
        m = _OPTION.match(line)
        if not m:
            shown = line.strip()
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise CheckpointError(
                f"{path} line {no} is not 'name: value' ({shown!r}), so this is "
                f"not the authors' options file; {SKIP_HINT}"
            )
        name, value = m.group(1), m.group(2).split("[default", 1)[0].strip()
        if name in opts.lines:
            raise CheckpointError(
                f"{path} line {no} sets {name} again (first on line {opts.lines[name]}); {SKIP_HINT}"
            )
        if name in OPTION_TYPES:
            parse, _, what = OPTION_TYPES[name]
            try:
                opts.values[name] = parse(value)
            except ValueError:
                raise CheckpointError(
                    f"{path} line {no}: {name}: {value!r} is not {what}; {SKIP_HINT}"
                ) from None
        else:
            opts.values[name] = value
        opts.lines[name] = no
    if not opts.values:
        raise CheckpointError(
            f"{path} holds no 'name: value' options, so it is not the authors' options file; {SKIP_HINT}"
        )
    return opts


def load_training_options(checkpoint: Path) -> TrainingOptions:
    """opt.pkl, else opt.txt, beside ``checkpoint``; empty options when neither is there."""
    folder = Path(checkpoint).parent
    pkl, txt = folder / "opt.pkl", folder / "opt.txt"
    if pkl.is_file():
        return _read_pkl(pkl)
    if txt.is_file():
        return _read_txt(txt)
    for p in (pkl, txt):
        if p.exists():
            raise CheckpointError(f"{p} is not a regular file; {SKIP_HINT}")
    return TrainingOptions()


def read_training_options(checkpoint: Path) -> Dict[str, Any]:
    """The options as a plain dict ({} when there is no options file)."""
    return dict(load_training_options(checkpoint).values)


def options_to_overrides(opts: Mapping[str, Any]) -> Dict[str, Any]:
    """Map the authors' option names onto GeneratorConfig fields."""
    out: Dict[str, Any] = {}
    for name in SAME_NAME:
        if opts.get(name) is not None:
            out[name] = opts[name]
    if opts.get("no_one_hot"):  # RGB input: the authors require --label_nc 3 with it
        out.update(no_one_hot=True, label_nc=3)
    if opts.get("no_instance_edge") is not None:
        out["instance_edge"] = not opts["no_instance_edge"]
    if opts.get("reflection_pad"):
        out["padding"] = "reflect"
    elif opts.get("replicate_pad"):
        out["padding"] = "replicate"
    elif opts.get("reflection_pad") is False and opts.get("replicate_pad") is False:
        out["padding"] = "zero"
    if opts.get("hr_coor", "cosine") != "cosine":
        raise ConfigError(
            f"hr_coor: {opts['hr_coor']!r} is not supported: the positional "
            f"encoding must be 'cosine' (the authors' CLI cannot switch it off "
            f"either)"
        )
    return out


#: GeneratorConfig field -> the options that set it (for messages)
FIELD_OPTIONS = {
    **{n: (n,) for n in SAME_NAME},
    "instance_edge": ("no_instance_edge",),
    "no_one_hot": ("no_one_hot",),
    "padding": ("reflection_pad", "replicate_pad"),
    # --no_one_hot forces label_nc 3: a message about label_nc must quote it when it is set
    "label_nc": ("label_nc", "no_one_hot"),
}
#: options that settle another field only when true (a false no_one_hot says nothing of label_nc)
_QUOTED_ONLY_WHEN_SET = {"no_one_hot"}


def describe_field(opts: TrainingOptions, field_name: str) -> str:
    """``opt.txt line 7 says no_instance_edge: True`` for the options behind a config field."""
    names = [
        n
        for n in FIELD_OPTIONS.get(field_name, (field_name,))
        if n in opts.values and (n == field_name or n not in _QUOTED_ONLY_WHEN_SET or opts.values[n])
    ]
    return ", ".join(opts.says(n) for n in names) or f"{opts.where(field_name)}"
