"""ONNX -> serialized TensorRT engine + JSON sidecar (strongly typed: the ONNX types decide).

``build_engine`` checks the request in the calling process (paths, batch profile, the export's
manifest) before TensorRT is imported, then builds in a child process (``build_worker``):
TensorRT can end the whole process (TensorRT for RTX 1.7 aborts with SIGABRT when it parses a
graph holding our node while a Python plugin creator is registered), and such a crash must reach
the caller as one error line, not as its own death. ``build_engine_here`` is the same build in
the calling process.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .. import paths
from ..errors import AsapDeployError, ToolFailure
from ..fileio import atomic_write
from .cuda_device import gpu_identity

SIDECAR_VERSION = 1
ONNX_HINT = "export one with python -m asap_deploy.export"

__all__ = [
    "BuildError",
    "BuildFailed",
    "BuildOptions",
    "build_engine",
    "build_engine_here",
    "check_request",
    "gpu_identity",
    "parse_batch",
    "sidecar_path",
]


class BuildError(AsapDeployError):
    """The build request cannot work (bad path, batch profile, ONNX file)."""


class BuildFailed(BuildError, ToolFailure):
    """TensorRT failed, or crashed, on a request we accepted (exit code 4)."""


def sidecar_path(engine: Path) -> Path:
    return Path(str(engine) + ".json")


def onnx_precision(model) -> str:
    import onnx

    fp16 = onnx.TensorProto.FLOAT16
    used = any(t.data_type == fp16 for t in model.graph.initializer) or any(
        v.type.tensor_type.elem_type == fp16 for v in model.graph.value_info
    )
    return "fp16" if used else "fp32"


class _Logger:
    """TensorRT logger that keeps errors for our one-line messages (printed only if verbose)."""

    def __init__(self, trt: ModuleType, verbose: bool) -> None:
        self.errors: List[str] = []
        outer = self

        class L(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)

            def log(self, severity, msg) -> None:
                if severity in (trt.ILogger.ERROR, trt.ILogger.INTERNAL_ERROR):
                    outer.errors.append(msg)
                if verbose:
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
                self._print(f"\r  [{'#' * done}{'.' * (30 - done)}] {phase_name} {step + 1}/{total}", end="")
            return True  # never cancel

        def phase_finish(self, phase_name):
            total, parent = self.phases.pop(phase_name, (1, None))
            if parent is None:
                self._print(f"\r  [{'#' * 30}] {phase_name} done{' ' * 10}")

    return Progress()


@dataclass
class BuildOptions:
    module: str = "auto"  # auto | tensorrt | tensorrt_rtx
    plugin: str = "auto"  # auto | python | none | path to libasap_trt_plugin.so
    batch: Tuple[int, int, int] = (1, 1, 1)  # min, opt, max
    timing_cache: Optional[Path] = None
    optimization_level: Optional[int] = None
    workspace_mib: Optional[int] = None
    progress: bool = True
    verbose: bool = False
    kernel_library: Optional[Path] = None
    extra: Dict[str, Any] = field(default_factory=dict)
    #: Python modules imported in the build process before parsing, e.g. one that registers
    #: your own plugin creators with TensorRT's registry
    preload: Tuple[str, ...] = ()

    def to_json(self) -> Dict[str, Any]:
        d = asdict(self)
        for k in ("timing_cache", "kernel_library"):
            d[k] = None if d[k] is None else str(d[k])
        d["batch"], d["preload"] = list(self.batch), list(self.preload)
        return d

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> BuildOptions:
        d = dict(d)
        for k in ("timing_cache", "kernel_library"):
            d[k] = None if d[k] is None else Path(d[k])
        d["batch"], d["preload"] = tuple(d["batch"]), tuple(d["preload"])
        return cls(**d)


def check_request(onnx_path: Path, engine_path: Path, opts: BuildOptions) -> None:
    """Everything that can be wrong with a build request, found before TensorRT is imported."""
    from ..errors import InputPathError, OutputPathError
    from ..export_folder import export_of

    lo, mid, hi = opts.batch
    if not 1 <= lo <= mid <= hi:
        raise BuildError(f"batch profile must satisfy 1 <= min <= opt <= max, got {opts.batch}")
    try:
        paths.input_file(onnx_path, "ONNX file", ONNX_HINT)
        paths.output_file(engine_path, "engine")
        if opts.timing_cache is not None:
            paths.output_file(opts.timing_cache, "timing cache")
            if Path(opts.timing_cache).exists():
                paths.input_file(opts.timing_cache, "timing cache", allow_empty=True)
        if opts.kernel_library is not None:
            paths.input_file(
                opts.kernel_library, "kernel library", "build it with python -m asap_deploy.build_plugin"
            )
    except (InputPathError, OutputPathError) as exc:
        raise BuildError(str(exc)) from None
    export_of(onnx_path)  # inside an export folder: the file must match its manifest


def _read_onnx(onnx_path: Path):
    import onnx

    data = onnx_path.read_bytes()
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BuildError(f"{onnx_path} is not a readable ONNX model ({first}): {ONNX_HINT}") from None
    if not model.graph.node or not model.graph.output:
        raise BuildError(f"{onnx_path} holds no ONNX graph (no nodes or no outputs): {ONNX_HINT}")
    return data, model


def build_engine_here(onnx_path: Path, engine_path: Path, opts: BuildOptions) -> Dict[str, Any]:
    """Build in this process, write the engine and its sidecar atomically, return the sidecar."""
    check_request(Path(onnx_path), Path(engine_path), opts)
    return _build(Path(onnx_path), Path(engine_path), opts)


def _build(onnx_path: Path, engine_path: Path, opts: BuildOptions) -> Dict[str, Any]:
    """The build itself, for a request ``check_request`` accepted."""
    from ..onnx_export.plugin_node import PLUGIN_NAMESPACE, PLUGIN_OP, PLUGIN_VERSION
    from .plugins import enable_plugin
    from .trt_module import import_tensorrt, trt_version

    lo, mid, hi = opts.batch
    data, model = _read_onnx(onnx_path)
    uses_plugin = any(n.op_type == PLUGIN_OP for n in model.graph.node)

    trt, flavour = import_tensorrt(opts.module)
    plugin = (
        enable_plugin(trt, flavour, opts.plugin if uses_plugin else "none", opts.kernel_library)
        if uses_plugin
        else {"kind": "none"}
    )
    log = _Logger(trt, opts.verbose)
    builder = trt.Builder(log.trt_logger)
    network = builder.create_network(0)  # TensorRT 11 / RTX: always strongly typed
    parser = trt.OnnxParser(network, log.trt_logger)
    if not parser.parse(data, str(onnx_path)):
        errs = "; ".join(parser.get_error(i).desc() for i in range(parser.num_errors))
        raise BuildFailed(f"TensorRT could not parse {onnx_path}: {errs or 'no error was given'}")
    if uses_plugin and plugin["kind"] != "none":
        kinds = {str(network.get_layer(i).type) for i in range(network.num_layers)}
        if not any("PLUGIN" in k for k in kinds):
            raise BuildFailed(f"{PLUGIN_OP} was registered but the parser did not use it")

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
        raise BuildError(
            f"TensorRT rejected the batch profile {opts.batch} for inputs "
            f"{', '.join(shapes)}" + (f": {log.errors[-1]}" if log.errors else "")
        )
    if opts.optimization_level is not None:
        config.builder_optimization_level = opts.optimization_level
    if opts.workspace_mib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts.workspace_mib << 20)
    cache, notes = None, []
    if plugin.get("note"):
        notes.append(plugin["note"])
        print(f"note: {notes[-1]}", file=sys.stderr)
    if opts.timing_cache is not None and flavour == "tensorrt_rtx":
        notes.append(
            "TensorRT for RTX has no timing cache (it specialises kernels at run time; "
            "its runtime cache plays that role): --timing-cache ignored"
        )
        print(f"note: {notes[-1]}", file=sys.stderr)
    elif opts.timing_cache is not None:
        blob = Path(opts.timing_cache).read_bytes() if Path(opts.timing_cache).is_file() else b""
        cache = config.create_timing_cache(blob)
        if cache is None:
            raise BuildError(
                f"{opts.timing_cache} is not a TensorRT timing cache: delete it or "
                f"pass another --timing-cache path"
            )
        if not config.set_timing_cache(cache, ignore_mismatch=False):
            raise BuildError(
                f"timing cache {opts.timing_cache} was made by another TensorRT "
                f"version or GPU: delete it or pass another --timing-cache path"
            )
    if opts.progress:
        config.progress_monitor = _progress_monitor(trt)

    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildFailed(
            "TensorRT failed to build the engine: " + ("; ".join(log.errors[-5:]) or "no error was logged")
        )
    engine_bytes = bytes(serialized)
    sidecar = {
        "sidecar_version": SIDECAR_VERSION,
        "onnx": str(onnx_path.resolve()),
        "onnx_sha256": hashlib.sha256(data).hexdigest(),
        "engine_sha256": hashlib.sha256(engine_bytes).hexdigest(),
        "engine_bytes": len(engine_bytes),
        "tensorrt_module": flavour,
        "tensorrt_version": trt_version(trt),
        "gpu": gpu_identity(),
        "precision": onnx_precision(model),
        "inputs": shapes,
        "outputs": [network.get_output(i).name for i in range(network.num_outputs)],
        "plugin": (
            {"name": PLUGIN_OP, "version": PLUGIN_VERSION, "namespace": PLUGIN_NAMESPACE, **plugin}
            if uses_plugin
            else None
        ),
        "build_seconds": round(time.perf_counter() - t0, 2),
        "notes": notes,
        **opts.extra,
    }
    atomic_write(engine_path, engine_bytes)
    atomic_write(sidecar_path(engine_path), (json.dumps(sidecar, indent=2) + "\n").encode())
    if cache is not None:
        atomic_write(Path(opts.timing_cache), bytes(cache.serialize()))
    return sidecar


# -- the child process -----------------------------------------------------------------------
_ERROR_MODULES = ("asap_deploy.",)


def error_from_child(err: Dict[str, Any]) -> AsapDeployError:
    """Rebuild the child's exception (only asap_deploy error classes; anything else -> BuildFailed)."""
    import importlib

    cls: type = BuildFailed
    module, name = str(err.get("module", "")), str(err.get("class", ""))
    if module.startswith(_ERROR_MODULES) and name.isidentifier():
        try:
            found = getattr(importlib.import_module(module), name)
            if isinstance(found, type) and issubclass(found, AsapDeployError):
                cls = found
        except (ImportError, AttributeError):
            pass
    exc = cls(str(err.get("message", "the engine build failed")))
    return exc


def _last_native_line(log: Path) -> str:
    try:
        lines = [l.strip() for l in log.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def _child_env() -> Dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # so a source checkout imports too
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _run_child(cmd: List[str]) -> int:
    """Run the worker, relaying its output live through this process's ``sys.stderr`` (so
    callers that capture or redirect it see the progress too); the child dies with us."""
    import codecs

    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_child_env()
    )
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    try:
        assert proc.stdout is not None
        while chunk := os.read(proc.stdout.fileno(), 4096):
            sys.stderr.write(decoder.decode(chunk))
            sys.stderr.flush()
        sys.stderr.write(decoder.decode(b"", final=True))
        return proc.wait()
    finally:
        if proc.poll() is None:  # interrupted: the engine is written atomically, so just stop it
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def build_engine(
    onnx_path: Path, engine_path: Path, opts: BuildOptions, isolate: bool = True, checked: bool = False
) -> Dict[str, Any]:
    """Build ``engine_path`` (+ sidecar) from ``onnx_path``; returns the sidecar.

    With ``isolate`` (the default) TensorRT runs in a child process: if it crashes, this raises
    ``BuildFailed`` naming the signal and nothing is written. ``checked``: the caller already
    ran ``check_request`` (it hashes the ONNX file against its export's manifest).
    """
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not checked:
        check_request(onnx_path, engine_path, opts)
    if not isolate:
        return _build(onnx_path, engine_path, opts)
    with tempfile.TemporaryDirectory(prefix="asap-build-") as work:
        req, res, native = (Path(work) / n for n in ("request.json", "result.json", "native.log"))
        req.write_text(
            json.dumps(
                {
                    "onnx": str(onnx_path),
                    "engine": str(engine_path),
                    "options": opts.to_json(),
                    "result": str(res),
                    "native_log": str(native),
                }
            )
        )
        rc = _run_child([sys.executable, "-m", "asap_deploy.engine.build_worker", str(req)])
        if res.is_file():
            result = json.loads(res.read_text())
            if "sidecar" in result:
                return result["sidecar"]
            raise error_from_child(result.get("error", {}))
        said = _last_native_line(native)
        said = f": {said!r}" if said else ""
        if rc < 0:
            try:
                how = f"{signal.Signals(-rc).name}, exit code {128 - rc}"
            except ValueError:
                how = f"signal {-rc}"
            hint = (
                "; for a graph with the ASAP_SpatialMLP node, --plugin none builds its "
                "standard-op function instead"
                if opts.plugin != "none"
                else ""
            )
            raise BuildFailed(
                f"TensorRT crashed while building {engine_path} from {onnx_path} "
                f"({how}){said}; nothing was written{hint}; rerun with --verbose "
                f"for TensorRT's log"
            )
        raise BuildFailed(
            f"the engine build process exited with code {rc} without a result"
            f"{said}; nothing was written; rerun with --verbose for TensorRT's log"
        )


def parse_batch(values: Sequence[int]) -> Tuple[int, int, int]:
    if len(values) == 1:
        return (values[0],) * 3
    if len(values) == 3:
        return tuple(values)  # type: ignore[return-value]
    raise BuildError("--batch takes one value (static) or three (min opt max)")
