"""ONNX -> serialized TensorRT engine + JSON sidecar (strongly typed: the ONNX types decide)."""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List, Optional, Sequence, Tuple

import onnx

from ..errors import AsapDeployError
from ..fileio import atomic_write
from ..onnx_export.plugin_node import PLUGIN_NAMESPACE, PLUGIN_OP, PLUGIN_VERSION
from .plugins import enable_plugin
from .trt_module import import_tensorrt, trt_version

SIDECAR_VERSION = 1


class BuildError(AsapDeployError):
    pass


def sidecar_path(engine: Path) -> Path:
    return Path(str(engine) + ".json")


def gpu_identity() -> Optional[Dict[str, Any]]:
    """Name and compute capability of GPU 0, or None on a machine without one."""
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return {"name": torch.cuda.get_device_name(0), "compute_capability": f"{major}.{minor}"}
    except Exception:
        pass
    return None


def onnx_precision(model: onnx.ModelProto) -> str:
    fp16 = onnx.TensorProto.FLOAT16
    used = any(t.data_type == fp16 for t in model.graph.initializer) or any(
        v.type.tensor_type.elem_type == fp16 for v in model.graph.value_info)
    return "fp16" if used else "fp32"


class _Logger:
    """TensorRT logger that keeps errors for our messages and prints warnings once."""

    def __init__(self, trt: ModuleType, verbose: bool) -> None:
        self.errors: List[str] = []
        outer = self

        class L(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)

            def log(self, severity, msg) -> None:
                if severity in (trt.ILogger.ERROR, trt.ILogger.INTERNAL_ERROR):
                    outer.errors.append(msg)
                if verbose or severity in (trt.ILogger.ERROR, trt.ILogger.INTERNAL_ERROR):
                    print(f"[TensorRT] {msg}", file=sys.stderr)

        self.trt_logger = L()


def _progress_monitor(trt: ModuleType):
    class Progress(trt.IProgressMonitor):
        """One line per top-level phase with a text bar, fed by TensorRT's progress callbacks."""

        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.phases: Dict[str, Tuple[int, Optional[str]]] = {}

        def _print(self, *args, **kw):
            print(*args, file=sys.stderr, flush=True, **kw)

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.phases[phase_name] = (max(int(num_steps), 1), parent_phase)
            if parent_phase is None:
                self._print(f"  {phase_name} ...")

        def step_complete(self, phase_name, step):
            total, parent = self.phases.get(phase_name, (1, None))
            if parent is None:
                done = int(30 * (step + 1) / total)
                self._print(f"\r  [{'#' * done}{'.' * (30 - done)}] {phase_name} {step + 1}/{total}",
                            end="")
            return True  # never cancel

        def phase_finish(self, phase_name):
            total, parent = self.phases.pop(phase_name, (1, None))
            if parent is None:
                self._print(f"\r  [{'#' * 30}] {phase_name} done{' ' * 10}")

    return Progress()


@dataclass
class BuildOptions:
    module: str = "auto"                 # auto | tensorrt | tensorrt_rtx
    plugin: str = "auto"                 # auto | python | none | path to libasap_trt_plugin.so
    batch: Tuple[int, int, int] = (1, 1, 1)  # min, opt, max
    timing_cache: Optional[Path] = None
    optimization_level: Optional[int] = None
    workspace_mib: Optional[int] = None
    progress: bool = True
    verbose: bool = False
    kernel_library: Optional[Path] = None
    extra: Dict[str, Any] = field(default_factory=dict)


def build_engine(onnx_path: Path, engine_path: Path, opts: BuildOptions) -> Dict[str, Any]:
    """Build, write the engine and its sidecar atomically, and return the sidecar."""
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    lo, mid, hi = opts.batch
    if not 1 <= lo <= mid <= hi:
        raise BuildError(f"batch profile must satisfy 1 <= min <= opt <= max, got {opts.batch}")
    if not onnx_path.is_file():
        raise BuildError(f"ONNX file not found: {onnx_path} (export one with python -m "
                         f"asap_deploy.export)")
    data = onnx_path.read_bytes()
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:
        raise BuildError(f"{onnx_path} is not a readable ONNX model ({exc})") from None
    uses_plugin = any(n.op_type == PLUGIN_OP for n in model.graph.node)

    trt, flavour = import_tensorrt(opts.module)
    plugin = enable_plugin(trt, flavour, opts.plugin if uses_plugin else "none",
                           opts.kernel_library) if uses_plugin else {"kind": "none"}
    log = _Logger(trt, opts.verbose)
    builder = trt.Builder(log.trt_logger)
    network = builder.create_network(0)  # TensorRT 11 / RTX: always strongly typed
    parser = trt.OnnxParser(network, log.trt_logger)
    if not parser.parse(data, str(onnx_path)):
        errs = "; ".join(parser.get_error(i).desc() for i in range(parser.num_errors))
        raise BuildError(f"TensorRT could not parse {onnx_path}: {errs}")
    if uses_plugin and plugin["kind"] != "none":
        kinds = {str(network.get_layer(i).type) for i in range(network.num_layers)}
        if not any("PLUGIN" in k for k in kinds):
            raise BuildError(f"{PLUGIN_OP} was registered but the parser did not use it")

    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    shapes = {}
    for i in range(network.num_inputs):
        t = network.get_input(i)
        dims = tuple(t.shape)
        if any(d < 0 for d in dims[1:]):
            raise BuildError(f"input {t.name} has dynamic dims {dims}: only the batch axis may be")
        shapes[t.name] = {"min": [lo, *dims[1:]], "opt": [mid, *dims[1:]], "max": [hi, *dims[1:]]}
        profile.set_shape(t.name, *(tuple(shapes[t.name][k]) for k in ("min", "opt", "max")))
    if config.add_optimization_profile(profile) < 0:
        raise BuildError(f"TensorRT rejected the batch profile {opts.batch} for inputs "
                         f"{', '.join(shapes)}" + (f": {log.errors[-1]}" if log.errors else ""))
    if opts.optimization_level is not None:
        config.builder_optimization_level = opts.optimization_level
    if opts.workspace_mib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts.workspace_mib << 20)
    cache, notes = None, []
    if plugin.get("note"):
        notes.append(plugin["note"])
        print(f"note: {notes[-1]}", file=sys.stderr)
    if opts.timing_cache is not None and flavour == "tensorrt_rtx":
        notes.append("TensorRT for RTX has no timing cache (it specialises kernels at run time; "
                     "its runtime cache plays that role): --timing-cache ignored")
        print(f"note: {notes[-1]}", file=sys.stderr)
    elif opts.timing_cache is not None:
        blob = Path(opts.timing_cache).read_bytes() if Path(opts.timing_cache).is_file() else b""
        cache = config.create_timing_cache(blob)
        if cache is None:
            raise BuildError(f"{opts.timing_cache} is not a TensorRT timing cache: delete it or "
                             f"pass another --timing-cache path")
        if not config.set_timing_cache(cache, ignore_mismatch=False):
            raise BuildError(f"timing cache {opts.timing_cache} was made by another TensorRT "
                             f"version or GPU: delete it or pass another --timing-cache path")
    if opts.progress:
        config.progress_monitor = _progress_monitor(trt)

    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildError("TensorRT failed to build the engine: " + ("; ".join(log.errors[-5:]) or
                                                                    "no error was logged"))
    engine_bytes = bytes(serialized)
    sidecar = {
        "sidecar_version": SIDECAR_VERSION,
        "onnx": str(onnx_path.resolve()),
        "onnx_sha256": hashlib.sha256(data).hexdigest(),
        "engine_sha256": hashlib.sha256(engine_bytes).hexdigest(),
        "tensorrt_module": flavour,
        "tensorrt_version": trt_version(trt),
        "gpu": gpu_identity(),
        "precision": onnx_precision(model),
        "inputs": shapes,
        "outputs": [network.get_output(i).name for i in range(network.num_outputs)],
        "plugin": ({"name": PLUGIN_OP, "version": PLUGIN_VERSION, "namespace": PLUGIN_NAMESPACE,
                    **plugin} if uses_plugin else None),
        "build_seconds": round(time.perf_counter() - t0, 2),
        "notes": notes,
        **opts.extra,
    }
    atomic_write(engine_path, engine_bytes)
    atomic_write(sidecar_path(engine_path), (json.dumps(sidecar, indent=2) + "\n").encode())
    if cache is not None:
        atomic_write(Path(opts.timing_cache), bytes(cache.serialize()))
    return sidecar


def parse_batch(values: Sequence[int]) -> Tuple[int, int, int]:
    if len(values) == 1:
        return (values[0],) * 3
    if len(values) == 3:
        return tuple(values)  # type: ignore[return-value]
    raise BuildError("--batch takes one value (static) or three (min opt max)")
