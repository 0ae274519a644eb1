"""Options, checks, models and backends shared by ``bench`` and ``parity``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, List, Union

from .. import paths
from ..errors import AsapDeployError, EnvironmentProblem, ToolFailure, UsageError
from ..runners import registry
from ..runners.base import Runner, RunnerUnavailable
from ..runners.registry import Backend, RunContext
from .source import ModelSource, ensure_export, open_export


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models (one or more; bench plots each as one point of its latency plot)")
    g.add_argument(
        "--export",
        type=Path,
        nargs="*",
        default=[],
        help="export folders made by python -m asap_deploy.export",
    )
    g.add_argument(
        "--demo",
        nargs="*",
        default=[],
        metavar="PRESET",
        help="built-in demo models: the export in WORK/PRESET is reused (the set-up's "
        "build/PRESET), or made there",
    )
    g.add_argument(
        "--work",
        type=Path,
        default=Path("build"),
        help="folder of the demo exports (default: build, where python -m "
        "asap_deploy.export --demo writes); engines are built beside the ONNX",
    )
    p.add_argument(
        "--backends", nargs="+", default=["all"], help=f"'all' or some of: {', '.join(registry.names())}"
    )
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seed", type=int, default=1, help="seed of the synthetic label maps")
    p.add_argument("--trt-module", choices=["auto", "tensorrt", "tensorrt_rtx"], default="auto")
    p.add_argument("--kernel-library", type=Path, help="libasap_spatial_mlp.so for the fused backends")
    p.add_argument("--out", type=Path, help="folder for JSON, Markdown and PNG outputs")


def check_args(args: argparse.Namespace, what: str) -> None:
    """Everything that can be checked before a model is loaded, exported or timed: flags, the
    backends' names, the kernel library, the demo export folders and the ``--out`` folder (a
    benchmark that runs for minutes must not find out at the end that it cannot write)."""
    if not args.export and not args.demo:
        raise UsageError("give --export DIR or --demo PRESET")
    if args.batch < 1:
        raise UsageError(f"--batch must be at least 1, got {args.batch}")
    backends(args)
    if args.demo:
        from ..presets import load_preset

        for d in args.demo:
            load_preset(d)
            if not (args.work / d / "manifest.json").is_file():  # exported there first
                paths.output_dir(args.work / d, "demo export folder")
    if args.kernel_library is not None:
        paths.input_file(
            args.kernel_library, "kernel library", "build it with python -m asap_deploy.build_plugin"
        )
    if args.out is not None:
        paths.output_dir(args.out, what)


def models(args: argparse.Namespace, source: bool = False) -> List[ModelSource]:
    """The models, every one verified against its manifest before any backend runs (the export
    folders given first, so that a damaged one is found before a demo is exported);
    ``source``: the PyTorch reference is reloaded, so its checkpoint is checked too."""
    given = [open_export(d, source) for d in args.export]
    return given + [open_export(ensure_export(d, None, args.work / d), source) for d in args.demo]


def backends(args: argparse.Namespace) -> List[str]:
    names = registry.names() if args.backends == ["all"] else args.backends
    bad = [n for n in names if n not in registry.names()]
    if bad:
        raise UsageError(
            f"unknown backend{'s' * (len(bad) > 1)} {', '.join(bad)}; choose from "
            f"{', '.join(registry.names())}"
        )
    return names


def uses_pytorch(names: List[str]) -> bool:
    return any(registry.get(n).family == "torch" for n in names)


def context(src: ModelSource, args: argparse.Namespace) -> RunContext:
    """Torch backends are fed the one-hot ``label``; the PyTorch model is shared (loaded once)."""
    return RunContext(
        src.export,
        batch=args.batch,
        trt_module=args.trt_module,
        kernel_library=args.kernel_library,
        input_mode="one-hot",
        load_generator=lambda: src.gen,
    )


def start_runner(backend: Backend, ctx: RunContext, failed: str) -> Union[Runner, Dict[str, Any]]:
    """The backend's runner, activated; or the result row that says why not: ``{"skipped": why}``
    when it cannot run here, ``{failed: message}`` when it failed to start (the key is the
    command's own: bench.json and parity.json name a failure differently)."""
    why = backend.reason(ctx)
    if why:
        return {"skipped": why}
    try:
        runner = backend.create(ctx)
        runner.activate()
    except RunnerUnavailable as exc:
        return {"skipped": str(exc)}
    except AsapDeployError as exc:
        return {failed: str(exc)}
    return runner


def raise_failed_or_none_ran(results: List[Dict[str, Any]], failed: str) -> None:
    """The command's one error line when a backend failed (its result has the key ``failed``),
    naming the first, or when none could run here."""
    failures = [r for r in results if r.get(failed)]
    if failures:
        r = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise ToolFailure(f"{r['backend']} failed on {r['model']}{more}: {r[failed]}")
    if results and all(r.get("skipped") for r in results):
        why = "; ".join(sorted({f"{r['backend']}: {r['skipped']}" for r in results}))
        raise EnvironmentProblem(f"no backend could run here ({why})")
