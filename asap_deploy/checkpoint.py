"""Read the authors' ``*_net_G.pth`` checkpoints and infer the generator configuration.

The authors save ``netG.state_dict()`` (a plain OrderedDict, no ``module.`` prefix) and load it
with ``strict=False``, which silently ignores missing keys. Here every architecture option the
tensors determine is read off them, ``opt.txt``/``opt.pkl`` beside the file fill in what they do
not (label split, replicate vs reflect padding, width), explicit overrides win over both, and the
weights are checked key by key and shape by shape before anything is built.

Who wins when sources disagree:

* an explicit override (command-line flag or preset) that contradicts the tensors is an error;
* an options-file value that contradicts something the tensors fix on their own (lr_width,
  lr_max_width, lr_depth, learned_ds_factor, zero vs. reflect/replicate padding, the MLP shape
  when the output convolution fits exactly one, the training height) is a warning, and the
  tensors are used;
* options-file values the tensors can only check together (label_nc + contain_dontcare_label +
  instance edge against the first convolution's input channels) are an error when they disagree,
  because nothing tells which of them is wrong.
"""

from __future__ import annotations

import argparse
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple

import torch

from .config import GeneratorConfig
from .errors import CheckpointError, ConfigError, InputPathError
from .mlp_spec import MLPSpec
from .paths import input_file
from .training_options import (
    TrainingOptions,
    describe_field,
    load_training_options,
    options_to_overrides,
    read_training_options,
)

if TYPE_CHECKING:  # imported by build_generator, where a model is built
    from .model.generator import ASAPNetGenerator

_PREFIX = "lowres_stream.model."
_STEM = re.compile(r"^lowres_stream\.model\.(\d+)\.0\.weight$")
_BLOCK = re.compile(r"^lowres_stream\.model\.(\d+)\.conv_block\.(\d+)\.0\.weight$")
_FINAL = re.compile(r"^lowres_stream\.model\.(\d+)\.weight$")
_WRAPPER_KEYS = ("state_dict", "netG", "net_G", "model", "generator", "G")
_SPECTRAL = ("weight_orig", "weight_u", "weight_v")
_RESAVE = "the file mixes checkpoints or was edited: use the *_net_G.pth that training saved"

_MAX_S = 256  # H = 16 * S = 4096: beyond any ASAP-Net setting
_HR_DEFAULTS = {"hr_width": 64, "hr_depth": 5, "output_nc": 3}
_MLP_FIELDS = ("hr_width", "hr_depth", "output_nc", "lr_instance")
_FLAGS = {
    "label_nc": "--label-nc",
    "contain_dontcare_label": "--contain-dontcare-label",
    "instance_edge": "--instance-edge",
    "lr_instance": "--lr-instance",
    "padding": "--padding",
    "hr_width": "--hr-width",
    "hr_depth": "--hr-depth",
    "output_nc": "--output-nc",
}

__all__ = [
    "LoadedCheckpoint",
    "read_state_dict",
    "read_training_options",
    "options_to_overrides",
    "infer_config",
    "check_state_dict",
    "expected_shapes",
    "load_checkpoint",
]


@dataclass
class LoadedCheckpoint:
    config: GeneratorConfig
    state_dict: Dict[str, torch.Tensor]
    path: Optional[Path] = None
    options: Dict[str, Any] = field(default_factory=dict)  # from opt.txt / opt.pkl
    suggested_width: Optional[int] = None
    notes: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)  # contradictions the tensors settled

    def build_generator(self) -> ASAPNetGenerator:
        from .model import ASAPNetGenerator

        check_state_dict(self.state_dict, self.config, self._where())
        gen = ASAPNetGenerator(self.config)
        try:
            gen.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as exc:  # check_state_dict should have said why; keep one line
            raise CheckpointError(
                f"{self._where()}weights do not fit the inferred architecture ({_first_sentence(str(exc))})"
            ) from None
        return gen.eval()

    def _where(self) -> str:
        return f"{self.path}: " if self.path else ""


# -- messages --------------------------------------------------------------------------------
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _first_sentence(text: str, limit: int = 200) -> str:
    """The first complete sentence of a library's message, never cut mid-word."""
    lines = [l.strip() for l in _ANSI.sub("", text).splitlines() if l.strip()]
    if not lines:
        return ""
    line = lines[0]
    if len(line) <= limit:
        return line.rstrip(".")
    cut = line.find(". ")
    if 0 < cut <= limit:
        return line[:cut]
    return line[:limit].rsplit(" ", 1)[0] + " ..."


def _first_line(exc: BaseException) -> str:
    return _first_sentence(str(exc)) or type(exc).__name__


def _shape(t: Any) -> str:
    return str(list(t.shape) if hasattr(t, "shape") else list(t))


def _explain_load_failure(path: Path, exc: BaseException) -> str:
    """Why torch.load refused ``path``, in words that say what to do."""
    msg = _ANSI.sub("", str(exc))
    size = path.stat().st_size
    if "central directory" in msg or isinstance(exc, EOFError) or "Ran out of input" in msg:
        return (
            f"{path} is truncated or damaged ({size} bytes; the archive ends early): "
            f"re-download or re-save it"
        )
    if "Weights only load failed" in msg:
        m = re.search(r"GLOBAL ([\w.]*)", msg)
        name = m.group(1) if m else "?"
        if re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", name):
            return (
                f"{path} holds a Python object ({name}) besides tensors, which is refused "
                f"because unpickling it could run code: save the generator with "
                f"torch.save(netG.state_dict(), path)"
            )
        return (
            f"{path} is not a readable PyTorch checkpoint (its pickle stream is malformed, "
            f"{size} bytes); the file may be truncated or not a .pth at all: re-download or "
            f"re-save it"
        )
    return (
        f"{path} is not a readable PyTorch checkpoint ({_first_line(exc)}); the file may be "
        f"truncated or not a .pth at all: re-download or re-save it"
    )


# -- reading files ---------------------------------------------------------------------------
def read_state_dict(path: Path) -> Dict[str, torch.Tensor]:
    path = Path(path)
    try:
        input_file(
            path, "checkpoint", "the authors' files are named like checkpoints/<name>/latest_net_G.pth"
        )
    except InputPathError as exc:
        raise CheckpointError(str(exc)) from None
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        raise CheckpointError(_explain_load_failure(path, exc)) from None
    return _find_generator_dict(obj, path)


def _find_generator_dict(obj: Any, path: Path) -> Dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{path} holds a {type(obj).__name__}, not a state dict: save the "
            f"generator with torch.save(netG.state_dict(), path)"
        )
    if not any(isinstance(k, str) and _PREFIX in k for k in obj):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                return _find_generator_dict(obj[key], path)
        raise CheckpointError(
            f"{path} has no 'lowres_stream.model.*' tensors, so it is not an "
            f"ASAP-Net generator checkpoint (pass *_net_G.pth, not *_net_D.pth)"
        )
    # a state dict: every key must be a generator tensor, under one common prefix
    # (DataParallel's "module.", a wrapper's "netG."); nothing is dropped silently
    foreign = [k for k in obj if not isinstance(k, str) or _PREFIX not in k]
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise CheckpointError(
            f"{path}: key {foreign[0]!r}{more} is not a tensor of the ASAP-Net "
            f"generator (all of whose keys are lowres_stream.model.*); "
            f"{_RESAVE}"
        )
    example: Dict[str, str] = {}
    for k in obj:
        example.setdefault(k[: k.index(_PREFIX)], k)
    if len(example) > 1:
        shown = ", ".join(f"{p!r} as in {k!r}" for p, k in sorted(example.items()))
        raise CheckpointError(
            f"{path}: keys have different prefixes ({shown}), so the file holds "
            f"more than one model; {_RESAVE}"
        )
    out: Dict[str, torch.Tensor] = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f"{path}: entry {k!r} is a {type(v).__name__}, not a tensor")
        out[k[k.index(_PREFIX) :]] = v.float() if v.is_floating_point() else v
    return out


# -- checking shapes -------------------------------------------------------------------------
def expected_shapes(cfg: GeneratorConfig) -> Dict[str, Tuple[int, ...]]:
    """Every state-dict key of the generator for ``cfg`` and its shape (nothing allocated)."""
    from .model import ASAPNetGenerator

    with torch.device("meta"):
        gen = ASAPNetGenerator(cfg)
    return {k: tuple(v.shape) for k, v in gen.state_dict().items()}


def _summary(cfg: GeneratorConfig) -> str:
    return (
        f"in_channels={cfg.in_channels}, lr_width={cfg.lr_width}, lr_max_width="
        f"{cfg.lr_max_width}, lr_depth={cfg.lr_depth}, padding={cfg.padding}, "
        f"{cfg.num_params} MLP parameters"
    )


def check_state_dict(state: Mapping[str, torch.Tensor], cfg: GeneratorConfig, where: str = "") -> None:
    """Every key present, no other key, every shape right: the error names the tensor."""
    want = expected_shapes(cfg)
    unexpected = [k for k in state if k not in want]
    if unexpected:
        k = unexpected[0]
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        why = (
            " (a spectral-norm tensor: ASAP-Net's generator uses norm_G=instanceaffine, "
            "without spectral norm)"
            if k.rsplit(".", 1)[-1] in _SPECTRAL
            else ""
        )
        raise CheckpointError(
            f"{where}unexpected tensor {k} {_shape(state[k])}{more}: the "
            f"generator for the inferred architecture ({_summary(cfg)}) has no "
            f"such key{why}; {_RESAVE}"
        )
    missing = [k for k in want if k not in state]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise CheckpointError(
            f"{where}missing tensor {missing[0]} {_shape(want[missing[0]])}"
            f"{more}: the inferred architecture ({_summary(cfg)}) needs it; "
            f"{_RESAVE}"
        )
    wrong = [k for k in want if tuple(state[k].shape) != want[k]]
    if wrong:
        k = wrong[0]
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        raise CheckpointError(
            f"{where}tensor {k} has shape {_shape(state[k])}, expected "
            f"{_shape(want[k])}{more} for the architecture the other tensors "
            f"give ({_summary(cfg)}); {_RESAVE}"
        )


# -- inferring the architecture --------------------------------------------------------------
def _conv(state: Mapping[str, torch.Tensor], key: str, kernel: int, role: str, where: str) -> torch.Tensor:
    t = state[key]
    if t.dim() != 4 or tuple(t.shape[2:]) != (kernel, kernel):
        raise CheckpointError(
            f"{where}{role} {key} has shape {_shape(t)}; ASAP-Net's is "
            f"[out_channels, in_channels, {kernel}, {kernel}]; {_RESAVE}"
        )
    return t


def _architecture_from_tensors(state: Mapping[str, torch.Tensor], where: str) -> Dict[str, Any]:
    stem = sorted((int(m.group(1)), k) for k in state if (m := _STEM.match(k)))
    blocks = sorted((int(m.group(1)), k) for k in state if (m := _BLOCK.match(k)))
    final = sorted((int(m.group(1)), k) for k in state if (m := _FINAL.match(k)))
    if len(stem) < 2 or not final:
        raise CheckpointError(
            f"{where}the low-res stream is incomplete (found {len(stem)} stem "
            f"convolutions and {len(final)} output convolution); the file is "
            f"not a full ASAP-Net generator"
        )
    # each convolution must take what the one before it gives: the first break is named
    chain = (
        [
            (k, _conv(state, k, 3, "the first convolution" if i == 0 else "strided convolution", where))
            for i, (_, k) in enumerate(stem)
        ]
        + [(k, _conv(state, k, 3, "block convolution", where)) for _, k in blocks]
        + [(final[-1][1], _conv(state, final[-1][1], 1, "the output convolution", where))]
    )
    for (k0, t0), (k1, t1) in zip(chain, chain[1:]):
        if t1.shape[1] != t0.shape[0]:
            raise CheckpointError(
                f"{where}{k0} {_shape(t0)} outputs {t0.shape[0]} channels but the next "
                f"convolution {k1} {_shape(t1)} takes {t1.shape[1]}: the tensors do not form one "
                f"network; {_RESAVE}"
            )
    first, out_w = state[stem[0][1]], state[final[-1][1]]
    return {
        "zero_padded": stem[0][0] == 0,
        "first_key": stem[0][1],
        "first_shape": _shape(first),
        "final_key": final[-1][1],
        "in_channels": int(first.shape[1]),
        "lr_width": int(first.shape[0]),
        "learned_ds_factor": 2 ** (len(stem) - 1),
        "lr_depth": len({i for i, _ in blocks}),
        "lr_max_width": int(out_w.shape[1]),
        "num_params": int(out_w.shape[0]),
    }


def _mlp_candidates(num_params: int, in_channels: int, s2: int, fixed: Mapping[str, Any]):
    """Every (hr_width, hr_depth, output_nc, lr_instance, S) consistent with num_params."""
    widths = [fixed["hr_width"]] if "hr_width" in fixed else [64] + [w for w in range(8, 513, 8) if w != 64]
    depths = [fixed["hr_depth"]] if "hr_depth" in fixed else [5] + [d for d in range(2, 11) if d != 5]
    outs = [fixed["output_nc"]] if "output_nc" in fixed else [3, 1]
    lris = [fixed["lr_instance"]] if "lr_instance" in fixed else [True, False]
    found = []
    for hw, d, oc, lri in itertools.product(widths, depths, outs, lris):
        if hw < 1 or d < 2 or oc < 1:
            continue
        c0 = MLPSpec.solve_first_width(num_params, hw, d, oc)
        if c0 is None:
            continue
        pe = c0 - (in_channels - int(lri))
        if pe <= 0 or pe % 4:
            continue
        if not s2 <= 2 ** (pe // 4) <= _MAX_S:
            continue
        found.append(
            {
                "hr_width": hw,
                "hr_depth": d,
                "output_nc": oc,
                "lr_instance": lri,
                "downsampling": 2 ** (pe // 4),
            }
        )
    return found


def _pick_mlp(arch: Mapping[str, Any], fixed: Mapping[str, Any]):
    """(the one MLP these tensors and ``fixed`` give or None, how many fit, whether the paper's
    64x5x3 defaults were what made it unique)."""
    cands = _mlp_candidates(arch["num_params"], arch["in_channels"], arch["learned_ds_factor"], fixed)
    default = [c for c in cands if all(c[k] == fixed.get(k, v) for k, v in _HR_DEFAULTS.items())]
    if len(default) == 1:
        return default[0], len(cands), True
    if len(cands) == 1:
        return cands[0], 1, False
    return None, len(cands), False


def _requested(name: str, value: Any) -> str:
    return f"{name}={value!r} was requested"


def infer_config(
    state: Mapping[str, torch.Tensor],
    overrides: Optional[Mapping[str, Any]] = None,
    where: str = "",
    options: Optional[TrainingOptions] = None,
) -> Tuple[GeneratorConfig, List[str]]:
    """The GeneratorConfig these tensors were trained with, plus notes on what was assumed.

    ``overrides`` (GeneratorConfig fields, from flags or presets) must agree with the tensors.
    ``options`` (the training options file) yields to the tensors with a note starting with
    ``warning:`` where they settle the question alone (see the module docstring).
    """
    hard = dict(overrides or {})
    opts = options or TrainingOptions()
    try:
        soft = {k: v for k, v in options_to_overrides(opts.values).items() if k not in hard}
    except ConfigError as exc:
        # ``where`` already ends in ": " (or is empty); the options file is named when there is one
        raise CheckpointError(f"{opts.path}: {exc}" if opts.path else f"{where}{exc}") from None
    arch = _architecture_from_tensors(state, where)
    notes: List[str] = []

    def settled(name: str, value: Any, tensors: str) -> None:
        """A value the tensors fix alone: a flag must agree, an options file yields."""
        if name in hard and hard[name] != value:
            raise CheckpointError(
                f"{where}{_requested(name, hard[name])} but the checkpoint's "
                f"tensors have {name}={value} ({tensors})"
            )
        if name in soft and soft[name] != value:
            notes.append(
                f"warning: {describe_field(opts, name)}, but the checkpoint has "
                f"{name}={value} ({tensors}); using the checkpoint's value"
            )

    settled("lr_width", arch["lr_width"], f"{arch['first_key']} {arch['first_shape']}")
    settled("lr_max_width", arch["lr_max_width"], f"input of {arch['final_key']}")
    settled("lr_depth", arch["lr_depth"], "number of conv_block layers")
    settled("learned_ds_factor", arch["learned_ds_factor"], "number of strided convolutions")

    padding = _padding(arch, hard, soft, opts, where, notes)
    mlp = _mlp(arch, hard, soft, opts, where, notes)
    lr_instance = mlp["lr_instance"]
    label_nc, dontcare, instance_edge = _label_split(arch, hard, soft, opts, lr_instance, where)
    try:
        cfg = GeneratorConfig(
            label_nc=label_nc,
            contain_dontcare_label=dontcare,
            instance_edge=instance_edge,
            lr_instance=lr_instance,
            downsampling=mlp["downsampling"],
            padding=padding,
            lr_width=arch["lr_width"],
            lr_max_width=arch["lr_max_width"],
            lr_depth=arch["lr_depth"],
            learned_ds_factor=arch["learned_ds_factor"],
            hr_width=mlp["hr_width"],
            hr_depth=mlp["hr_depth"],
            output_nc=mlp["output_nc"],
            no_one_hot=bool(hard.get("no_one_hot", soft.get("no_one_hot", False))),
        )
    except ConfigError as exc:
        raise CheckpointError(f"{where}{exc}") from None
    check_state_dict(state, cfg, where)
    return cfg, notes


def _padding(arch, hard, soft, opts: TrainingOptions, where: str, notes: List[str]) -> str:
    asked, said = hard.get("padding"), soft.get("padding")
    if arch["zero_padded"]:
        if asked not in (None, "zero"):
            raise CheckpointError(
                f"{where}padding={asked} was requested but the checkpoint was "
                f"trained with zero padding (no pad layers)"
            )
        if said not in (None, "zero"):
            notes.append(
                f"warning: {describe_field(opts, 'padding')}, but the checkpoint has no "
                f"pad layers ({arch['first_key']} is layer 0): using zero padding"
            )
        return "zero"
    if asked == "zero":
        raise CheckpointError(
            f"{where}padding=zero was requested but the checkpoint has "
            f"reflect/replicate pad layers (--padding reflect|replicate)"
        )
    if asked or said in ("reflect", "replicate"):
        return asked or said
    if said == "zero":
        notes.append(
            f"warning: {describe_field(opts, 'padding')}, but the checkpoint has pad "
            f"layers ({arch['first_key']} is not layer 0): assuming --reflection_pad "
            f"(pass --padding replicate if it was trained with --replicate_pad)"
        )
    else:
        notes.append(
            "pad layers found: assuming --reflection_pad (pass --padding replicate "
            "if it was trained with --replicate_pad)"
        )
    return "reflect"


def _mlp(arch, hard, soft, opts: TrainingOptions, where: str, notes: List[str]) -> Dict[str, Any]:
    fixed_hard = {k: hard[k] for k in _MLP_FIELDS if k in hard}
    fixed_soft = {k: soft[k] for k in _MLP_FIELDS if k in soft}
    mlp, count, by_default = _pick_mlp(arch, {**fixed_hard, **fixed_soft})
    head = f"the output convolution {arch['final_key']} predicts {arch['num_params']} MLP parameters"
    if mlp is None and fixed_soft:
        alone, _, by_default = _pick_mlp(arch, fixed_hard)
        if alone is not None:
            differ = [k for k in fixed_soft if alone[k] != fixed_soft[k]]
            if differ:
                said = "; ".join(describe_field(opts, k) for k in differ)
                got = ", ".join(f"{k}={alone[k]}" for k in differ)
                notes.append(
                    f"warning: {said}, but {head}, which fits only {got}; using the checkpoint's values"
                )
            mlp = alone
    if mlp is None:
        what = "no" if not count else f"{count}"
        given = [_requested(k, v) for k, v in fixed_hard.items()] + [
            describe_field(opts, k) for k in fixed_soft
        ]
        src = f" ({'; '.join(given)})" if given else ""
        raise CheckpointError(
            f"{where}{head} and {what} pixelwise-MLP configurations fit it{src}; pass "
            f"--hr-width, --hr-depth, --output-nc and --lr-instance/--no-lr-instance as used in "
            f"training"
        )
    if not by_default:
        notes.append(
            f"pixelwise MLP is not the default 64x5: inferred hr_width={mlp['hr_width']}, "
            f"hr_depth={mlp['hr_depth']}, output_nc={mlp['output_nc']}"
        )
    return mlp


def _label_split(arch, hard, soft, opts: TrainingOptions, lr_instance: bool, where: str):
    vals: Dict[str, Any] = {}
    said: List[str] = []
    from_file = False
    for k in ("label_nc", "contain_dontcare_label", "instance_edge"):
        if k in hard:
            vals[k] = hard[k]
            said.append(_requested(k, hard[k]))
        elif k in soft:
            vals[k] = soft[k]
            said.append(describe_field(opts, k))
            from_file = True
    edge = vals.get("instance_edge", lr_instance)
    dontcare = vals.get("contain_dontcare_label", False)
    n_in = arch["in_channels"]
    label_nc = vals.get("label_nc", n_in - int(edge) - int(dontcare))
    total = label_nc + int(edge) + int(dontcare)
    fix = (
        "the options file may belong to another training run: fix it, or pass "
        "--no-opt-file with --label-nc / --instance-edge / --contain-dontcare-label as "
        "trained"
        if from_file
        else "fix --label-nc / --instance-edge / --contain-dontcare-label"
    )
    if total != n_in:
        raise CheckpointError(
            f"{where}the first convolution {arch['first_key']} {arch['first_shape']} takes "
            f"{n_in} input channels but {'; '.join(said)}, which makes label_nc {label_nc} + "
            f"dontcare {int(dontcare)} + instance edge {int(edge)} = {total}; {fix}"
        )
    if label_nc < 1:  # the flags or the options file asked for too many special channels
        raise CheckpointError(
            f"{where}the first convolution {arch['first_key']} {arch['first_shape']} takes "
            f"{n_in} input channels, too few for {int(edge)} instance-edge and {int(dontcare)} "
            f"don't-care channels plus at least one label"
            + (f" ({'; '.join(said)}); {fix}" if said else f"; {_RESAVE}")
        )
    return label_nc, dontcare, edge


def _suggested_width(opts: TrainingOptions, cfg: GeneratorConfig, notes: List[str]) -> Optional[int]:
    """Width from crop_size (the authors' W), unless the options contradict the tensors' S."""
    crop = opts.values.get("crop_size")
    if not crop:
        return None
    aspect = opts.values.get("aspect_ratio")
    if not aspect:  # the dataset sets it (2 for Cityscapes): without it, nothing to check
        return int(crop) if int(crop) % cfg.downsampling == 0 else None
    height = crop / aspect
    if abs(height - cfg.height) < 0.5:
        return int(crop)
    width = cfg.height * aspect
    notes.append(
        f"warning: {opts.says('crop_size')} and aspect_ratio: {aspect!r} (an image height "
        f"of {height:g}), but the checkpoint's positional encoding fixes S="
        f"{cfg.downsampling}, so H={cfg.height}; using the checkpoint's height"
    )
    ok = width == int(width) and int(width) % cfg.downsampling == 0
    return int(width) if ok else None


def load_checkpoint(
    path: Path, overrides: Optional[Mapping[str, Any]] = None, use_options_file: bool = True
) -> LoadedCheckpoint:
    """Read ``path`` (and opt.txt/opt.pkl beside it) and infer its configuration.

    ``overrides`` (GeneratorConfig field names) win over the options file.
    """
    path = Path(path)
    state = read_state_dict(path)
    opts = load_training_options(path) if use_options_file else TrainingOptions()
    cfg, notes = infer_config(state, overrides, where=f"{path}: ", options=opts)
    width = _suggested_width(opts, cfg, notes)
    warnings = [n[len("warning: ") :] for n in notes if n.startswith("warning: ")]
    notes = [n for n in notes if not n.startswith("warning: ")]
    return LoadedCheckpoint(cfg, dict(state), path, dict(opts.values), width, notes, warnings)
