"""An export folder and, optionally, a built engine, read into Triton model configurations.

The ONNX graph itself is the truth for an ONNX model's inputs and outputs; for a plan it is the
engine's sidecar (names, batch profile) together with the manifest entry of the exact ONNX file the
engine was built from (matched by SHA-256: dtypes and per-item shapes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import onnx

from ..hash_cache import sha256_file
from .triton_config import ModelSpec, TensorSpec
from .triton_schema import NUMPY_TO_TRITON, TritonRepoError, onnx_dtype

#: whole-generator graphs, by precision, that an ONNX Runtime model is made from
ONNX_GRAPHS = {"fp32": "asapnet.onnx", "fp16": "asapnet_fp16.onnx"}
#: graphs a served engine may be built from (the stages g / mlp alone are not a service)
ENGINE_GRAPHS = ("asapnet", "asapnet_plugin")
DEFAULT_MAX_BATCH = 4


@dataclass
class RepoOptions:
    name: str = "asapnet"
    onnx: Sequence[str] = ("fp32", "fp16")  # precisions to serve with ONNX Runtime
    onnx_required: bool = False  # True when the user named the precisions
    onnx_device: str = "gpu"  # cpu | gpu
    engine: Optional[Path] = None
    plugin: Optional[Path] = None
    max_batch: Optional[int] = None
    instances: int = 1
    max_queue_delay_us: int = 1000
    warmup: bool = True


@dataclass
class Export:
    path: Path
    manifest: Dict[str, Any]

    @property
    def files(self) -> Dict[str, Dict[str, Any]]:
        return {f["file"]: f for f in self.manifest.get("files", [])}


@dataclass
class EngineInfo:
    path: Path
    sidecar: Dict[str, Any]
    graph: Dict[str, Any]  # the manifest entry of the ONNX file it was built from
    batch: Tuple[int, int]  # profile (min, max) of the batch axis
    plugin: Optional[Path]  # library Triton must load, or None
    notes: List[str] = field(default_factory=list)


def open_export(path: Path) -> Export:
    """The export, verified as every consumer opens it: manifest schema, and the size and
    SHA-256 of every graph and indexed engine (a damaged export is one line naming the file)."""
    from ..artifacts import open_export as open_verified

    path = Path(path)
    return Export(path, open_verified(path).manifest)


def onnx_io(path: Path) -> Tuple[List[Tuple[str, int, List[int]]], List[Tuple[str, int, List[int]]]]:
    """(inputs, outputs) of an ONNX file as (name, elem_type, dims); -1 marks a symbolic dim."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise TritonRepoError(f"{path} is not a readable ONNX model ({exc})") from None
    inits = {i.name for i in model.graph.initializer}

    def conv(values):
        out = []
        for v in values:
            t = v.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
            out.append((v.name, t.elem_type, dims))
        return out

    return conv([i for i in model.graph.input if i.name not in inits]), conv(model.graph.output)


def batched_specs(path: Path) -> Tuple[List[TensorSpec], List[TensorSpec]]:
    """Triton tensors of an ONNX graph whose first axis is the (dynamic) batch axis."""
    ins, outs = onnx_io(path)
    specs = []
    for name, elem, dims in ins + outs:
        if not dims or dims[0] != -1:
            raise TritonRepoError(
                f"{path}: tensor {name!r} has shape {dims}, without a dynamic batch axis first; "
                f"Triton's dynamic batching needs one (python -m asap_deploy.export writes it)"
            )
        specs.append(TensorSpec(name, onnx_dtype(elem), tuple(dims[1:])))
    return specs[: len(ins)], specs[len(ins) :]


def _manifest_specs(entry: Dict[str, Any], key: str) -> List[TensorSpec]:
    return [
        TensorSpec(
            t["name"],
            NUMPY_TO_TRITON[t["dtype"]],
            tuple(d if isinstance(d, int) else -1 for d in t["shape"][1:]),
        )
        for t in entry[key]
    ]


def onnx_model(export: Export, precision: str, opts: RepoOptions, max_batch: int) -> ModelSpec:
    fname = ONNX_GRAPHS[precision]
    path = export.path / fname
    entry = export.files.get(fname)
    if entry is None or not path.is_file():
        flag = "--precision fp32 fp16" if precision == "fp16" else "--precision fp32"
        raise TritonRepoError(
            f"{export.path} has no {fname} (the whole-generator {precision} "
            f"graph): export it with python -m asap_deploy.export ... {flag}"
        )
    if entry.get("sha256") and sha256_file(path) != entry["sha256"]:
        raise TritonRepoError(
            f"{path} does not match the SHA-256 in manifest.json (changed after "
            f"the export?): re-export the model"
        )
    ins, outs = batched_specs(path)
    if (_manifest_specs(entry, "inputs"), _manifest_specs(entry, "outputs")) != (ins, outs):
        raise TritonRepoError(
            f"{path}: the graph's inputs/outputs differ from manifest.json's record: re-export the model"
        )
    suffix = "" if precision == "fp32" else f"_{precision}"
    return ModelSpec(
        name=f"{opts.name}_onnx{suffix}",
        platform="onnxruntime_onnx",
        inputs=ins,
        outputs=outs,
        max_batch_size=max_batch,
        kind=f"KIND_{opts.onnx_device.upper()}",
        instances=opts.instances,
        max_queue_delay_us=opts.max_queue_delay_us,
        warmup=opts.warmup,
        source=str(path.resolve()),
        precision=precision,
    )


def onnx_precisions(export: Export, opts: RepoOptions) -> List[str]:
    """The precisions to serve: as asked, or every whole-generator graph the export has."""
    if opts.onnx_required:
        return list(opts.onnx)
    return [p for p in opts.onnx if ONNX_GRAPHS[p] in export.files]


def _plugin_library(
    engine: Path, side: Dict[str, Any], given: Optional[Path], notes: List[str]
) -> Optional[Path]:
    plugin = side.get("plugin") or {}
    needed = bool(plugin) and plugin.get("kind") != "none"
    if not needed:
        if given is not None:
            raise TritonRepoError(
                f"{engine} does not use the ASAP_SpatialMLP plugin (its sidecar says "
                f"{'plugin kind none' if plugin else 'no plugin node'}): drop --plugin"
            )
        return None
    recorded = plugin.get("library") if plugin.get("kind") == "cpp" else None
    if given is None:
        if recorded and Path(recorded).is_file():
            notes.append(f"plugin library taken from the engine's sidecar: {recorded}")
            given = Path(recorded)
        else:
            raise TritonRepoError(
                f"{engine} uses the ASAP_SpatialMLP plugin ({plugin.get('kind')}): pass --plugin "
                f"PATH/libasap_trt_plugin.so, built against TensorRT "
                f"{side.get('tensorrt_version')} (python -m asap_deploy.build_plugin)"
            )
    given = Path(given)
    if not given.is_file():
        raise TritonRepoError(
            f"plugin library not found: {given} (build it with python -m "
            f"asap_deploy.build_plugin --tensorrt-root ...)"
        )
    with open(given, "rb") as f:
        if f.read(4) != b"\x7fELF":
            raise TritonRepoError(
                f"{given} is not a shared library (no ELF header): pass libasap_trt_plugin.so"
            )
    if "_dynamic" in given.name:
        raise TritonRepoError(
            f"{given.name} registers its creator only through getCreators(), but Triton dlopen()s "
            f"plugin libraries: pass the self-registering libasap_trt_plugin.so"
        )
    if plugin.get("kind") == "python":
        notes.append(
            "the engine was built with the Python plugin; Triton deserialises it with the "
            "C++ library, which has the same name, version, namespace and fields"
        )
    return given


def open_engine(export: Export, engine: Path, plugin: Optional[Path]) -> EngineInfo:
    from ..engine.loader import EngineMismatchError, read_sidecar

    engine = Path(engine)
    if not engine.is_file():
        raise TritonRepoError(
            f"engine not found: {engine} (build one with python -m "
            f"asap_deploy.build {export.path}/asapnet_plugin_fp16.onnx)"
        )
    try:
        side = read_sidecar(engine)
    except EngineMismatchError as exc:
        raise TritonRepoError(str(exc)) from None
    if side.get("engine_sha256") and sha256_file(engine) != side["engine_sha256"]:
        raise TritonRepoError(
            f"{engine} does not match its sidecar's engine_sha256 (the sidecar "
            f"is from another build): rebuild with python -m asap_deploy.build"
        )
    module = side.get("tensorrt_module")
    if module != "tensorrt":
        raise TritonRepoError(
            f"{engine} was built with {module} {side.get('tensorrt_version')}; Triton's TensorRT "
            f"backend runs engines of full TensorRT only: rebuild it on the serving GPU with "
            f"python -m asap_deploy.build {side.get('onnx', 'ONNX')} --module tensorrt"
        )
    by_hash = {f.get("sha256"): f for f in export.manifest.get("files", [])}
    graph = by_hash.get(side.get("onnx_sha256"))
    if graph is None:
        raise TritonRepoError(
            f"{engine} was built from {side.get('onnx')}, which is not one of {export.path}'s "
            f"graphs (no SHA-256 match): pass the export it was built from, or rebuild the engine "
            f"from this export"
        )
    if graph["graph"] not in ENGINE_GRAPHS:
        raise TritonRepoError(
            f"{engine} was built from {graph['file']}, one stage of the generator; serve an "
            f"engine of the whole generator (asapnet_plugin*.onnx or asapnet*.onnx)"
        )
    names = [t["name"] for t in graph["inputs"]]
    profiles = side.get("inputs") or {}
    if sorted(profiles) != sorted(names) or list(side.get("outputs", [])) != [
        t["name"] for t in graph["outputs"]
    ]:
        raise TritonRepoError(
            f"{engine}'s sidecar names inputs {sorted(profiles)} and outputs "
            f"{side.get('outputs')}, but {graph['file']} has {names} and "
            f"{[t['name'] for t in graph['outputs']]}: rebuild the engine"
        )
    for t in graph["inputs"]:
        prof = profiles[t["name"]]
        if prof["min"][1:] != t["shape"][1:] or prof["max"][1:] != t["shape"][1:]:
            raise TritonRepoError(
                f"{engine}: profile of {t['name']} {prof} does not fit "
                f"{graph['file']}'s shape {t['shape']}: rebuild the engine"
            )
    lo = max(p["min"][0] for p in profiles.values())
    hi = min(p["max"][0] for p in profiles.values())
    if lo > 1:
        raise TritonRepoError(
            f"{engine}'s profile starts at batch {lo}, but Triton's dynamic batcher sends any "
            f"batch from 1: rebuild with python -m asap_deploy.build {side.get('onnx', 'ONNX')} "
            f"--batch 1 OPT {hi}"
        )
    notes: List[str] = []
    lib = _plugin_library(engine, side, plugin, notes)
    return EngineInfo(engine, side, graph, (lo, hi), lib, notes)


def plan_model(info: EngineInfo, opts: RepoOptions, max_batch: int) -> ModelSpec:
    if max_batch > info.batch[1]:
        raise TritonRepoError(
            f"--max-batch {max_batch} exceeds the engine's profile (batch {info.batch[0]}.."
            f"{info.batch[1]}): rebuild it with python -m asap_deploy.build "
            f"{info.sidecar.get('onnx', 'ONNX')} --batch 1 OPT {max_batch}, or pass --max-batch "
            f"{info.batch[1]} or less"
        )
    return ModelSpec(
        name=f"{opts.name}_trt",
        platform="tensorrt_plan",
        inputs=_manifest_specs(info.graph, "inputs"),
        outputs=_manifest_specs(info.graph, "outputs"),
        max_batch_size=max_batch,
        kind="KIND_GPU",
        instances=opts.instances,
        max_queue_delay_us=opts.max_queue_delay_us,
        warmup=opts.warmup,
        source=str(info.path.resolve()),
        precision=info.sidecar.get("precision", "?"),
        plugin=info.plugin.name if info.plugin else None,
        notes=list(info.notes),
    )


def plan_models(export: Export, opts: RepoOptions) -> Tuple[List[ModelSpec], Optional[EngineInfo]]:
    """Every model of the repository, in the order they are listed; checks the options."""
    if opts.plugin is not None and opts.engine is None:
        raise TritonRepoError("--plugin is the library of an engine's plugin: give --engine too")
    if opts.max_batch is not None and opts.max_batch < 1:
        raise TritonRepoError(f"--max-batch must be at least 1, got {opts.max_batch}")
    if opts.instances < 1:
        raise TritonRepoError(f"--instances must be at least 1, got {opts.instances}")
    if opts.max_queue_delay_us < 0:
        raise TritonRepoError("--max-queue-delay must not be negative")
    info = open_engine(export, opts.engine, opts.plugin) if opts.engine is not None else None
    max_batch = opts.max_batch or (info.batch[1] if info else DEFAULT_MAX_BATCH)
    models = []
    if info is not None:
        models.append(plan_model(info, opts, max_batch))
    for precision in onnx_precisions(export, opts):
        models.append(onnx_model(export, precision, opts, max_batch))
    if not models:
        raise TritonRepoError(
            f"nothing to serve: {export.path} has no whole-generator graph "
            f"({' or '.join(ONNX_GRAPHS.values())}) and no --engine was given"
        )
    return models, info
