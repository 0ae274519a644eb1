"""Backends by name: a registry of factories, each with a cheap availability check (mmdeploy's
pattern). ``available(ctx)`` says why a backend cannot run here without loading anything;
``create(ctx)`` returns an inactive runner holding only lazy loaders.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..artifacts import ExportFolder
from ..errors import ConfigError
from .base import Runner
from .input_checks import ValueRule, value_rules


@dataclass
class RunContext:
    """What a backend is made from: an export, and how to run it."""

    export: ExportFolder
    batch: int = 1
    trt_module: str = "auto"
    device: Optional[str] = None  # torch device for the PyTorch backends
    kernel_library: Optional[Path] = None
    input_mode: str = "one-hot"  # what the PyTorch backends are fed
    load_generator: Optional[Callable[[], object]] = None  # default: the export's source model
    _generator: object = field(default=None, repr=False)

    def generator(self) -> Any:
        """The PyTorch model, loaded once per context (only PyTorch backends need it)."""
        if self._generator is None:
            self._generator = (self.load_generator or self.export.load_generator)()
        return self._generator

    def rules(self) -> Dict[str, ValueRule]:
        return value_rules(self.export.config)


@dataclass(frozen=True)
class Backend:
    name: str
    family: str  # torch | onnxruntime | tensorrt
    precision: str
    summary: str
    factory: Callable[[RunContext], Runner]
    requirement: Callable[[RunContext], Optional[str]]  # None: can run here; else why not

    def reason(self, ctx: RunContext) -> Optional[str]:
        return self.requirement(ctx)

    def is_available(self, ctx: RunContext) -> bool:
        return self.requirement(ctx) is None

    def create(self, ctx: RunContext) -> Runner:
        return self.factory(ctx)


_REGISTRY: Dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    if backend.name in _REGISTRY:
        raise ValueError(f"backend {backend.name!r} is registered already")
    _REGISTRY[backend.name] = backend
    return backend


def names() -> List[str]:
    return list(_REGISTRY)


def get(name: str) -> Backend:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown backend {name!r}; choose from {', '.join(_REGISTRY)}") from None


# -- availability checks (cheap: nothing is loaded) --------------------------------------------
@functools.cache
def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@functools.cache
def ort_providers() -> Tuple[str, ...]:
    import onnxruntime

    return tuple(onnxruntime.get_available_providers())


def tensorrt_missing(module: str = "auto") -> Optional[str]:
    from ..engine.trt_module import import_tensorrt
    from ..errors import MissingDependencyError

    try:
        import_tensorrt(module)
    except MissingDependencyError as exc:
        return str(exc)
    return None


def _needs_cuda(ctx: RunContext) -> Optional[str]:
    return None if cuda_available() else "needs a CUDA GPU (torch.cuda.is_available() is False)"


def _graph_missing(ctx: RunContext, graph: str, precision: str) -> Optional[str]:
    if ctx.export.has_graph(graph, precision):
        return None
    return f"no {precision} {graph} graph in {ctx.export.path} (export with --precision fp32 fp16)"


def _first(*checks: Callable[[], Optional[str]]) -> Optional[str]:
    for check in checks:
        why = check()
        if why:
            return why
    return None


# -- the built-in backends ---------------------------------------------------------------------
def _resolution(ctx: RunContext) -> Tuple[int, int]:
    return ctx.export.height, ctx.export.width


def _torch_eager(precision: str) -> Backend:
    def factory(ctx: RunContext) -> Runner:
        from .torch_runner import TorchEagerRunner

        device = ctx.device or ("cuda" if cuda_available() else "cpu")
        return TorchEagerRunner(
            ctx.generator, precision, device, ctx.input_mode, _resolution(ctx), ctx.rules()
        )

    def requirement(ctx: RunContext) -> Optional[str]:
        if precision == "fp16" and not cuda_available():
            return "FP16 convolutions on the CPU are emulated (minutes per image); measured on a GPU only"
        return None

    return Backend(
        f"torch-eager-{precision}",
        "torch",
        precision,
        "the PyTorch generator, eager (the authors' way)",
        factory,
        requirement,
    )


def _torch_fused() -> Backend:
    def factory(ctx: RunContext) -> Runner:
        from .torch_runner import TorchFusedRunner

        return TorchFusedRunner(ctx.generator, ctx.kernel_library, _resolution(ctx), ctx.rules())

    def requirement(ctx: RunContext) -> Optional[str]:
        from ..fused_mlp import DEFAULT_DIR, KERNEL_LIBRARY

        lib = Path(ctx.kernel_library or DEFAULT_DIR / KERNEL_LIBRARY)
        return _first(
            lambda: _needs_cuda(ctx),
            lambda: (
                None if ctx.input_mode == "one-hot" else "fed the one-hot label only (the harness's input)"
            ),
            lambda: (
                None
                if lib.is_file()
                else f"kernel library {lib} not built (python -m asap_deploy.build_plugin)"
            ),
        )

    return Backend(
        "torch-fused-fp16", "torch", "fp16", "G in PyTorch + the fused MLP kernel", factory, requirement
    )


def _ort(provider: str, precision: str) -> Backend:
    from .loaders import PROVIDERS

    def factory(ctx: RunContext) -> Runner:
        from .loaders import SessionFromOnnx
        from .ort_runner import OrtRunner

        device_id = int(ctx.device.split(":")[1]) if ctx.device and ":" in ctx.device else 0
        path = ctx.export.graph_path("asapnet", precision)
        return OrtRunner(SessionFromOnnx(path, provider, device_id), precision, value_rules=ctx.rules())

    def requirement(ctx: RunContext) -> Optional[str]:
        import onnxruntime

        want = PROVIDERS[provider]
        return _first(
            lambda: (
                None
                if want in ort_providers()
                else f"onnxruntime {onnxruntime.__version__} here has no {want} (install "
                f"onnxruntime-gpu for CUDA/TensorRT execution providers)"
            ),
            lambda: _graph_missing(ctx, "asapnet", precision),
        )

    return Backend(
        f"ort-{provider}-{precision}",
        "onnxruntime",
        precision,
        f"ONNX Runtime, {PROVIDERS[provider]}",
        factory,
        requirement,
    )


def _trt(graph: str, precision: str) -> Backend:
    plugin = "auto" if graph == "asapnet_plugin" else "none"

    def factory(ctx: RunContext) -> Runner:
        from .loaders import EngineFromOnnx
        from .trt_runner import TrtRunner

        path = ctx.export.graph_path(graph, precision)
        source = EngineFromOnnx(path, ctx.trt_module, plugin, (ctx.batch,) * 3, ctx.kernel_library)
        return TrtRunner(
            source,
            precision,
            ctx.trt_module,
            plugin,
            ctx.batch,
            device=ctx.device if ctx.device and ctx.device.startswith("cuda") else "cuda",
            value_rules=ctx.rules(),
        )

    def plugin_missing(ctx: RunContext) -> Optional[str]:
        from ..engine.plugins import NO_PLUGIN_NOTE, auto_choice
        from ..engine.trt_module import import_tensorrt

        if plugin == "none" or auto_choice(import_tensorrt(ctx.trt_module)[1], ctx.kernel_library) != "none":
            return None
        return NO_PLUGIN_NOTE.split(":")[0] + " (python -m asap_deploy.build_plugin)"

    def requirement(ctx: RunContext) -> Optional[str]:
        return _first(
            lambda: _needs_cuda(ctx),
            lambda: tensorrt_missing(ctx.trt_module),
            lambda: _graph_missing(ctx, graph, precision),
            lambda: plugin_missing(ctx),
        )

    tag = "-plugin" if graph == "asapnet_plugin" else ""
    return Backend(
        f"trt{tag}-{precision}",
        "tensorrt",
        precision,
        f"TensorRT engine of {graph}" + (" with the ASAP_SpatialMLP plugin" if tag else " (standard ops)"),
        factory,
        requirement,
    )


for _b in (
    _torch_eager("fp32"),
    _torch_eager("fp16"),
    _torch_fused(),
    _ort("cpu", "fp32"),
    _ort("cpu", "fp16"),
    _ort("cuda", "fp32"),
    _ort("cuda", "fp16"),
    _ort("trt", "fp16"),
    _trt("asapnet", "fp32"),
    _trt("asapnet", "fp16"),
    _trt("asapnet_plugin", "fp16"),
):
    register(_b)
