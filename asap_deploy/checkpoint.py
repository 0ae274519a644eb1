"""Read the authors' ``*_net_G.pth`` checkpoints and infer the generator configuration.

The authors save ``netG.state_dict()`` (a plain OrderedDict, no ``module.`` prefix) and load it
with ``strict=False``, which silently ignores missing keys. Here every architecture option the
tensors determine is read off them, ``opt.txt``/``opt.pkl`` beside the file fill in what they do
not (label split, replicate vs reflect padding, width), explicit overrides win over both, and the
weights load with strict key checking.
"""
from __future__ import annotations

import argparse
import itertools
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from .config import GeneratorConfig
from .errors import CheckpointError, ConfigError
from .mlp_spec import MLPSpec

_PREFIX = "lowres_stream.model."
_STEM = re.compile(r"^lowres_stream\.model\.(\d+)\.0\.weight$")
_BLOCK = re.compile(r"^lowres_stream\.model\.(\d+)\.conv_block\.(\d+)\.0\.weight$")
_FINAL = re.compile(r"^lowres_stream\.model\.(\d+)\.weight$")
_WRAPPER_KEYS = ("state_dict", "netG", "net_G", "model", "generator", "G")

#: options that come only from opt files or overrides (the tensors cannot tell them)
_MAX_S = 256  # H = 16 * S = 4096: beyond any ASAP-Net setting
_HR_DEFAULTS = {"hr_width": 64, "hr_depth": 5, "output_nc": 3}


@dataclass
class LoadedCheckpoint:
    config: GeneratorConfig
    state_dict: Dict[str, torch.Tensor]
    path: Optional[Path] = None
    options: Dict[str, Any] = field(default_factory=dict)  # from opt.txt / opt.pkl
    suggested_width: Optional[int] = None
    notes: List[str] = field(default_factory=list)

    def build_generator(self):
        from .model import ASAPNetGenerator

        gen = ASAPNetGenerator(self.config)
        try:
            gen.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as exc:
            missing, unexpected = _key_diff(gen.state_dict(), self.state_dict)
            raise CheckpointError(
                f"{self._where()}weights do not fit the inferred architecture "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]}; {_first_line(exc)}); "
                f"pass the architecture flags this checkpoint was trained with") from None
        return gen.eval()

    def _where(self) -> str:
        return f"{self.path}: " if self.path else ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _key_diff(expected: Mapping[str, Any], got: Mapping[str, Any]) -> Tuple[List[str], List[str]]:
    return sorted(set(expected) - set(got)), sorted(set(got) - set(expected))


# -- reading files ---------------------------------------------------------------------------
def read_state_dict(path: Path) -> Dict[str, torch.Tensor]:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path} (check the path; the authors' files "
                              f"are named like checkpoints/<name>/latest_net_G.pth)")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory: pass the *_net_G.pth file inside it")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({_first_line(exc)}); the file may be "
            f"truncated or not a .pth at all: re-download or re-save it") from None
    return _find_generator_dict(obj, path)


def _find_generator_dict(obj: Any, path: Path) -> Dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict: save the "
                              f"generator with torch.save(netG.state_dict(), path)")
    if not any(isinstance(k, str) and _PREFIX in k for k in obj):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                return _find_generator_dict(obj[key], path)
        raise CheckpointError(f"{path} has no 'lowres_stream.model.*' tensors, so it is not an "
                              f"ASAP-Net generator checkpoint (pass *_net_G.pth, not *_net_D.pth)")
    out: Dict[str, torch.Tensor] = {}
    for k, v in obj.items():
        if not isinstance(k, str) or _PREFIX not in k:
            continue
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f"{path}: entry {k!r} is a {type(v).__name__}, not a tensor")
        out[k[k.index(_PREFIX):]] = v.float() if v.is_floating_point() else v
    return out


class _NamespaceOnly(pickle.Unpickler):
    """opt.pkl is a pickled argparse.Namespace; refuse anything else (pickle runs code)."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("argparse", "Namespace"):
            return argparse.Namespace
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from an options file")


def _parse_value(text: str) -> Any:
    text = text.strip()
    if text in ("True", "False"):
        return text == "True"
    if text == "None":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def read_training_options(checkpoint: Path) -> Dict[str, Any]:
    """The authors' opt.pkl or opt.txt beside the checkpoint, as a dict ({} when absent)."""
    folder = Path(checkpoint).parent
    pkl, txt = folder / "opt.pkl", folder / "opt.txt"
    if pkl.is_file():
        try:
            with open(pkl, "rb") as f:
                return dict(vars(_NamespaceOnly(f).load()))
        except Exception as exc:
            raise CheckpointError(f"{pkl} is not a readable options file ({_first_line(exc)}); "
                                  f"move it away or fix it") from None
    if txt.is_file():
        opts = {}
        for line in txt.read_text(errors="replace").splitlines():
            if ":" not in line or line.lstrip().startswith("-"):
                continue
            key, value = line.split(":", 1)
            value = value.split("[default", 1)[0]
            opts[key.strip()] = _parse_value(value)
        return opts
    return {}


def options_to_overrides(opts: Mapping[str, Any]) -> Dict[str, Any]:
    """Map the authors' option names onto GeneratorConfig fields."""
    out: Dict[str, Any] = {}
    for name in ("label_nc", "contain_dontcare_label", "lr_instance", "lr_width", "lr_max_width",
                 "lr_depth", "learned_ds_factor", "hr_width", "hr_depth", "output_nc"):
        if opts.get(name) is not None:
            out[name] = opts[name]
    if opts.get("no_one_hot"):  # RGB input: the authors require --label_nc 3 with it
        out.update(no_one_hot=True, label_nc=3)
    if "no_instance_edge" in opts:
        out["instance_edge"] = not opts["no_instance_edge"]
    if opts.get("reflection_pad"):
        out["padding"] = "reflect"
    elif opts.get("replicate_pad"):
        out["padding"] = "replicate"
    if opts.get("hr_coor", "cosine") != "cosine":
        raise ConfigError("hr_coor other than 'cosine' is not supported (the authors' CLI cannot "
                          "switch the positional encoding off either)")
    return out


# -- inferring the architecture --------------------------------------------------------------
def _architecture_from_tensors(state: Mapping[str, torch.Tensor], where: str) -> Dict[str, Any]:
    stem = sorted((int(m.group(1)), k) for k in state if (m := _STEM.match(k)))
    blocks = {int(m.group(1)) for k in state if (m := _BLOCK.match(k))}
    final = sorted((int(m.group(1)), k) for k in state if (m := _FINAL.match(k)))
    if len(stem) < 2 or not final:
        raise CheckpointError(f"{where}the low-res stream is incomplete (found {len(stem)} stem "
                              f"convolutions and {len(final)} output convolution); the file is "
                              f"not a full ASAP-Net generator")
    first = state[stem[0][1]]
    out_w = state[final[-1][1]]
    if first.dim() != 4 or out_w.dim() != 4:
        raise CheckpointError(f"{where}unexpected tensor ranks in the low-res stream")
    return {
        "zero_padded": stem[0][0] == 0,
        "in_channels": int(first.shape[1]),
        "lr_width": int(first.shape[0]),
        "learned_ds_factor": 2 ** (len(stem) - 1),
        "lr_depth": len(blocks),
        "lr_max_width": int(out_w.shape[1]),
        "num_params": int(out_w.shape[0]),
    }


def _mlp_candidates(num_params: int, in_channels: int, s2: int, fixed: Mapping[str, Any]):
    """Every (hr_width, hr_depth, output_nc, lr_instance, S) consistent with num_params."""
    widths = [fixed["hr_width"]] if "hr_width" in fixed else [64] + [w for w in range(8, 513, 8)
                                                                       if w != 64]
    depths = [fixed["hr_depth"]] if "hr_depth" in fixed else [5] + [d for d in range(2, 11) if d != 5]
    outs = [fixed["output_nc"]] if "output_nc" in fixed else [3, 1]
    lris = [fixed["lr_instance"]] if "lr_instance" in fixed else [True, False]
    found = []
    for hw, d, oc, lri in itertools.product(widths, depths, outs, lris):
        c0 = MLPSpec.solve_first_width(num_params, hw, d, oc)
        if c0 is None:
            continue
        pe = c0 - (in_channels - int(lri))
        if pe <= 0 or pe % 4:
            continue
        if not s2 <= 2 ** (pe // 4) <= _MAX_S:
            continue
        found.append({"hr_width": hw, "hr_depth": d, "output_nc": oc, "lr_instance": lri,
                      "downsampling": 2 ** (pe // 4)})
    return found


def infer_config(state: Mapping[str, torch.Tensor], overrides: Optional[Mapping[str, Any]] = None,
                 where: str = "") -> Tuple[GeneratorConfig, List[str]]:
    """The GeneratorConfig these tensors were trained with, plus notes on what was assumed."""
    overrides = dict(overrides or {})
    arch = _architecture_from_tensors(state, where)
    notes: List[str] = []
    for name in ("lr_width", "lr_max_width", "lr_depth", "learned_ds_factor"):
        if name in overrides and overrides[name] != arch[name]:
            raise CheckpointError(f"{where}{name}={overrides[name]} was requested but the "
                                  f"checkpoint's tensors have {name}={arch[name]}")
    if arch["zero_padded"]:
        if overrides.get("padding", "zero") != "zero":
            raise CheckpointError(f"{where}padding={overrides['padding']} was requested but the "
                                  f"checkpoint was trained with zero padding (no pad layers)")
        padding = "zero"
    else:
        padding = overrides.get("padding", "reflect")
        if padding == "zero":
            raise CheckpointError(f"{where}padding=zero was requested but the checkpoint has "
                                  f"reflect/replicate pad layers (--padding reflect|replicate)")
        if "padding" not in overrides:
            notes.append("pad layers found: assuming --reflection_pad (pass --padding replicate "
                         "if it was trained with --replicate_pad)")

    fixed = {k: overrides[k] for k in ("hr_width", "hr_depth", "output_nc", "lr_instance")
             if k in overrides}
    cands = _mlp_candidates(arch["num_params"], arch["in_channels"], arch["learned_ds_factor"],
                            fixed)
    default = [c for c in cands if all(c[k] == fixed.get(k, v) for k, v in _HR_DEFAULTS.items())]
    if len(default) == 1:
        mlp = default[0]
    elif len(cands) == 1:
        mlp = cands[0]
        notes.append(f"pixelwise MLP is not the default 64x5: inferred hr_width={mlp['hr_width']}, "
                     f"hr_depth={mlp['hr_depth']}, output_nc={mlp['output_nc']}")
    else:
        what = "no" if not cands else f"{len(cands)}"
        raise CheckpointError(
            f"{where}the output convolution predicts {arch['num_params']} MLP parameters and "
            f"{what} pixelwise-MLP configurations fit it; pass --hr-width, --hr-depth, "
            f"--output-nc and --lr-instance/--no-lr-instance as used in training")

    lr_instance = mlp["lr_instance"]
    instance_edge = overrides.get("instance_edge", lr_instance)
    dontcare = overrides.get("contain_dontcare_label", False)
    label_nc = overrides.get("label_nc", arch["in_channels"] - int(instance_edge) - int(dontcare))
    if label_nc + int(instance_edge) + int(dontcare) != arch["in_channels"]:
        raise CheckpointError(
            f"{where}the first convolution takes {arch['in_channels']} input channels but "
            f"label_nc={label_nc} + dontcare={int(dontcare)} + instance edge={int(instance_edge)} "
            f"= {label_nc + int(instance_edge) + int(dontcare)}; fix --label-nc / "
            f"--instance-edge / --contain-dontcare-label")
    try:
        cfg = GeneratorConfig(
            label_nc=label_nc, contain_dontcare_label=dontcare, instance_edge=instance_edge,
            lr_instance=lr_instance, downsampling=mlp["downsampling"], padding=padding,
            lr_width=arch["lr_width"], lr_max_width=arch["lr_max_width"],
            lr_depth=arch["lr_depth"], learned_ds_factor=arch["learned_ds_factor"],
            hr_width=mlp["hr_width"], hr_depth=mlp["hr_depth"], output_nc=mlp["output_nc"],
            no_one_hot=bool(overrides.get("no_one_hot", False)))
    except ConfigError as exc:
        raise CheckpointError(f"{where}{exc}") from None
    return cfg, notes


def load_checkpoint(path: Path, overrides: Optional[Mapping[str, Any]] = None,
                    use_options_file: bool = True) -> LoadedCheckpoint:
    """Read ``path`` (and opt.txt/opt.pkl beside it) and infer its configuration.

    ``overrides`` (GeneratorConfig field names) win over the options file.
    """
    path = Path(path)
    state = read_state_dict(path)
    opts = read_training_options(path) if use_options_file else {}
    merged = {**options_to_overrides(opts), **(overrides or {})}
    cfg, notes = infer_config(state, merged, where=f"{path}: ")
    width = None
    if opts.get("crop_size"):
        width = int(opts["crop_size"])
    return LoadedCheckpoint(cfg, dict(state), path, opts, width, notes)
