"""Check a Triton model repository offline, the way Triton will read it.

Each ``config.pbtxt`` is parsed with Triton's own protobuf schema (misspelt fields, bad enums,
duplicated fields), then checked against the rules Triton applies when it loads a model (name =
folder, platform/backend pair, batching, instance kinds, version folders, warmup) and against the
model files themselves: the ONNX graph's inputs and outputs (names, dtypes, dims without the batch
axis), or a plan's sidecar (names, batch profile, engine hash) and the repository record (dtypes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..hash_cache import sha256_file
from .triton_config import MODEL_FILES, PLATFORMS, TensorSpec
from .triton_schema import TritonRepoError, dtype_name, kind_name, onnx_dtype, parse_config
from .triton_sources import onnx_io

RECORD = "asap_repository.json"


@dataclass
class CheckReport:
    repository: Path
    models: List[str] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.models) and not self.problems


def _tensors(ios) -> List[TensorSpec]:
    return [TensorSpec(t.name, dtype_name(t.data_type), tuple(t.dims)) for t in ios]


def compare_io(kind: str, have: Sequence[TensorSpec], want: Sequence[TensorSpec], against: str) -> List[str]:
    """Problems of the config's ``kind`` (input/output) tensors against the model's."""
    problems = []
    names = [t.name for t in have]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        problems.append(f"{kind} {dupes} listed more than once")
    by_name = {t.name: t for t in want}
    missing = [t.name for t in want if t.name not in names]
    extra = [n for n in dict.fromkeys(names) if n not in by_name]
    if missing:
        problems.append(f"{kind} {missing} of {against} missing from the config")
    if extra:
        problems.append(f"{kind} {extra} not in {against} (it has {list(by_name)})")
    for t in have:
        w = by_name.get(t.name)
        if w is None:
            continue
        if t.data_type != w.data_type:
            problems.append(f"{kind} {t.name!r}: data_type {t.data_type}, but {against} has {w.data_type}")
        if tuple(t.dims) != tuple(w.dims):
            problems.append(
                f"{kind} {t.name!r}: dims {list(t.dims)}, but {against} has "
                f"{list(w.dims)} (without the batch axis)"
            )
    return problems


def _onnx_expected(path: Path, batched: bool) -> tuple:
    ins, outs = onnx_io(path)
    problems: List[str] = []

    def spec(name, elem, dims):
        if batched:
            if not dims or dims[0] != -1:
                problems.append(
                    f"max_batch_size > 0 but {name!r} of {path.name} has no dynamic batch axis (shape {dims})"
                )
            dims = dims[1:]
        return TensorSpec(name, onnx_dtype(elem), tuple(dims))

    return [spec(*i) for i in ins], [spec(*o) for o in outs], problems


def _check_plan(cfg, version_dir: Path, record: Optional[Dict[str, Any]], model_dir: Path) -> List[str]:
    problems: List[str] = []
    plan = version_dir / (cfg.default_model_filename or MODEL_FILES["tensorrt_plan"])
    side_path = Path(str(plan) + ".json")
    if not side_path.is_file():
        return [
            f"{side_path.relative_to(model_dir)} (the engine's sidecar) is missing: the plan's "
            f"inputs, outputs and batch profile cannot be checked"
        ]
    try:
        side = json.loads(side_path.read_text())
    except json.JSONDecodeError as exc:
        return [f"{side_path.name} is not valid JSON ({exc})"]
    if side.get("engine_sha256") and sha256_file(plan) != side["engine_sha256"]:
        problems.append(f"{plan.name} does not match the engine_sha256 of {side_path.name}")
    if side.get("tensorrt_module") != "tensorrt":
        problems.append(
            f"{plan.name} was built with {side.get('tensorrt_module')}; Triton's "
            f"TensorRT backend runs engines of full TensorRT only"
        )
    profiles = side.get("inputs") or {}
    in_names = [t.name for t in cfg.input]
    if sorted(profiles) != sorted(in_names):
        problems.append(f"inputs {sorted(in_names)} differ from the engine's {sorted(profiles)}")
    out_names = [t.name for t in cfg.output]
    if sorted(side.get("outputs", [])) != sorted(out_names):
        problems.append(
            f"outputs {sorted(out_names)} differ from the engine's {sorted(side.get('outputs', []))}"
        )
    for t in cfg.input:
        prof = profiles.get(t.name)
        if prof is None:
            continue
        if cfg.max_batch_size > 0:
            if list(t.dims) != list(prof["max"][1:]) or prof["min"][1:] != prof["max"][1:]:
                problems.append(
                    f"input {t.name!r}: dims {list(t.dims)}, but the engine's profile "
                    f"is {prof['min']}..{prof['max']}"
                )
            if cfg.max_batch_size > prof["max"][0]:
                problems.append(
                    f"max_batch_size {cfg.max_batch_size} exceeds the engine's profile "
                    f"(max batch {prof['max'][0]} for {t.name!r})"
                )
            if prof["min"][0] > 1:
                problems.append(
                    f"the engine's profile for {t.name!r} starts at batch "
                    f"{prof['min'][0]}; Triton sends batches from 1"
                )
        elif list(t.dims) != list(prof["max"]) or prof["min"] != prof["max"]:
            problems.append(
                f"input {t.name!r}: dims {list(t.dims)} do not fit the engine's "
                f"profile {prof['min']}..{prof['max']}"
            )
    plugin = side.get("plugin") or {}
    if plugin and plugin.get("kind") != "none":
        lib = (record or {}).get("plugin")
        if not lib or not (model_dir / lib).is_file():
            problems.append(
                f"the engine uses the {plugin.get('name')} plugin, but its library is "
                f"not beside the model ({lib or 'none recorded'})"
            )
    if record is not None:
        ins = [TensorSpec.from_dict(d) for d in record.get("inputs", [])]
        outs = [TensorSpec.from_dict(d) for d in record.get("outputs", [])]
        problems += compare_io("input", _tensors(cfg.input), ins, "the engine's ONNX graph")
        problems += compare_io("output", _tensors(cfg.output), outs, "the engine's ONNX graph")
    return problems


def _check_warmup(cfg) -> List[str]:
    problems = []
    inputs = {t.name: t for t in cfg.input}
    for w in cfg.model_warmup:
        if cfg.max_batch_size > 0 and not 1 <= w.batch_size <= cfg.max_batch_size:
            problems.append(f"warmup {w.name!r}: batch_size {w.batch_size} not in 1..{cfg.max_batch_size}")
        if set(w.inputs) != set(inputs):
            problems.append(f"warmup {w.name!r} feeds {sorted(w.inputs)}, the model takes {sorted(inputs)}")
        for name, data in w.inputs.items():
            t = inputs.get(name)
            if t is not None and (data.data_type != t.data_type or list(data.dims) != list(t.dims)):
                problems.append(
                    f"warmup {w.name!r} input {name!r}: "
                    f"{dtype_name(data.data_type)} {list(data.dims)}, the model takes "
                    f"{dtype_name(t.data_type)} {list(t.dims)}"
                )
    return problems


def check_model(model_dir: Path, record: Optional[Dict[str, Any]] = None) -> List[str]:
    """Problems of one model folder, each a sentence (without the folder name)."""
    cfg_path = model_dir / "config.pbtxt"
    if not cfg_path.is_file():
        return ["config.pbtxt is missing"]
    try:
        cfg = parse_config(cfg_path.read_text(), "config.pbtxt")
    except TritonRepoError as exc:
        return [f"does not parse with Triton's schema: {exc}"]
    problems: List[str] = []
    if cfg.name != model_dir.name:
        problems.append(
            f"name {cfg.name!r} differs from the folder name {model_dir.name!r} (Triton requires them equal)"
        )
    platform = cfg.platform or {b: p for p, b in PLATFORMS.items()}.get(cfg.backend, "")
    if platform not in PLATFORMS:
        return problems + [
            f"platform {cfg.platform!r} / backend {cfg.backend!r}: not a model "
            f"kind this checker knows ({', '.join(PLATFORMS)})"
        ]
    if cfg.backend and cfg.backend != PLATFORMS[platform]:
        problems.append(f"platform {platform!r} needs backend {PLATFORMS[platform]!r}, not {cfg.backend!r}")
    if cfg.max_batch_size < 0:
        problems.append(f"max_batch_size {cfg.max_batch_size} is negative")
    if cfg.HasField("dynamic_batching"):
        if cfg.max_batch_size < 1:
            problems.append("dynamic_batching is set but max_batch_size is 0: nothing can be batched")
        for size in cfg.dynamic_batching.preferred_batch_size:
            if not 1 <= size <= max(cfg.max_batch_size, 1):
                problems.append(f"preferred_batch_size {size} not in 1..{cfg.max_batch_size}")
    if not cfg.instance_group:
        problems.append("no instance_group")
    for g in cfg.instance_group:
        if platform == "tensorrt_plan" and kind_name(g.kind) == "KIND_CPU":
            problems.append("instance_group kind KIND_CPU: TensorRT plans run on GPUs only (KIND_GPU)")
    problems += _check_warmup(cfg)

    versions = sorted(
        (d for d in model_dir.iterdir() if d.is_dir() and d.name.isdigit()), key=lambda d: int(d.name)
    )
    if not versions:
        return problems + ["no version folder (1/, 2/, ...)"]
    model_file = cfg.default_model_filename or MODEL_FILES[platform]
    for v in versions:
        path = v / model_file
        if not path.exists():
            problems.append(f"{v.name}/{model_file} is missing")
            continue
        if platform == "onnxruntime_onnx":
            try:
                ins, outs, batch_problems = _onnx_expected(path, cfg.max_batch_size > 0)
            except TritonRepoError as exc:
                problems.append(str(exc))
                continue
            what = f"{v.name}/{model_file}"
            problems += batch_problems
            problems += compare_io("input", _tensors(cfg.input), ins, what)
            problems += compare_io("output", _tensors(cfg.output), outs, what)
        else:
            problems += _check_plan(cfg, v, record, model_dir)
    return problems


def read_record(repo: Path) -> Dict[str, Any]:
    path = Path(repo) / RECORD
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TritonRepoError(f"{path} is not valid JSON ({exc}): regenerate the repository") from None


def check_repository(repo: Path) -> CheckReport:
    repo = Path(repo)
    if not repo.is_dir():
        raise TritonRepoError(
            f"model repository not found: {repo} (write one with python -m "
            f"asap_deploy.triton EXPORT --out {repo})"
        )
    model_dirs = sorted(d for d in repo.iterdir() if d.is_dir())
    if not model_dirs:
        raise TritonRepoError(
            f"{repo} holds no model folder: not a Triton model repository (write one with "
            f"python -m asap_deploy.triton EXPORT --out {repo})"
        )
    records = read_record(repo).get("models", {})
    report = CheckReport(repo)
    for model_dir in model_dirs:
        report.models.append(model_dir.name)
        report.problems += [
            f"{model_dir.name}: {p}" for p in check_model(model_dir, records.get(model_dir.name))
        ]
    return report
