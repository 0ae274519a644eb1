"""Options and model/backends selection shared by ``bench`` and ``parity``."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Tuple

from ..runners import BACKENDS, make_runner
from ..runners.base import Runner
from .source import ModelSource, ensure_export, open_export


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models (one or more; each is one point of the latency plot)")
    g.add_argument("--export", type=Path, nargs="*", default=[],
                   help="export folders made by python -m asap_deploy.export")
    g.add_argument("--demo", nargs="*", default=[], metavar="PRESET",
                   help="built-in demo models (exported into --work if needed)")
    g.add_argument("--work", type=Path, default=Path("build/harness"),
                   help="where demo exports and engines are cached")
    p.add_argument("--backends", nargs="+", default=["all"],
                   help=f"'all' or some of: {', '.join(BACKENDS)}")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seed", type=int, default=1, help="seed of the synthetic label maps")
    p.add_argument("--trt-module", choices=["auto", "tensorrt", "tensorrt_rtx"], default="auto")
    p.add_argument("--kernel-library", help="libasap_spatial_mlp.so for the fused backends")
    p.add_argument("--out", type=Path, help="folder for JSON, Markdown and PNG outputs")


def models(args) -> List[ModelSource]:
    dirs = list(args.export) + [ensure_export(d, None, args.work / d) for d in args.demo]
    if not dirs:
        raise SystemExit("error: give --export DIR or --demo PRESET")
    return [open_export(d) for d in dirs]


def backends(args) -> List[str]:
    names = list(BACKENDS) if args.backends == ["all"] else args.backends
    bad = [n for n in names if n not in BACKENDS]
    if bad:
        raise SystemExit(f"error: unknown backends {bad}; choose from {', '.join(BACKENDS)}")
    return names


def runners_for(src: ModelSource, names: List[str], args) -> List[Tuple[str, Runner]]:
    return [(n, make_runner(n, src.gen, src.export_dir, args.batch, args.trt_module,
                            kernel_library=args.kernel_library)) for n in names]
