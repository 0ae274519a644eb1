"""Options, models and backends shared by ``bench`` and ``parity``."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List

from ..runners import registry
from ..runners.registry import RunContext
from .source import ModelSource, ensure_export, open_export


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models (one or more; each is one point of the latency plot)")
    g.add_argument("--export", type=Path, nargs="*", default=[],
                   help="export folders made by python -m asap_deploy.export")
    g.add_argument("--demo", nargs="*", default=[], metavar="PRESET",
                   help="built-in demo models: the export in WORK/PRESET is reused (the set-up's "
                        "build/PRESET), or made there")
    g.add_argument("--work", type=Path, default=Path("build"),
                   help="folder of the demo exports (default: build, where python -m "
                        "asap_deploy.export --demo writes); engines are built beside the ONNX")
    p.add_argument("--backends", nargs="+", default=["all"],
                   help=f"'all' or some of: {', '.join(registry.names())}")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seed", type=int, default=1, help="seed of the synthetic label maps")
    p.add_argument("--trt-module", choices=["auto", "tensorrt", "tensorrt_rtx"], default="auto")
    p.add_argument("--kernel-library", type=Path,
                   help="libasap_spatial_mlp.so for the fused backends")
    p.add_argument("--out", type=Path, help="folder for JSON, Markdown and PNG outputs")


def models(args) -> List[ModelSource]:
    dirs = list(args.export) + [ensure_export(d, None, args.work / d) for d in args.demo]
    if not dirs:
        raise SystemExit("error: give --export DIR or --demo PRESET")
    return [open_export(d) for d in dirs]


def backends(args) -> List[str]:
    names = registry.names() if args.backends == ["all"] else args.backends
    bad = [n for n in names if n not in registry.names()]
    if bad:
        raise SystemExit(f"error: unknown backends {bad}; choose from "
                         f"{', '.join(registry.names())}")
    return names


def context(src: ModelSource, args) -> RunContext:
    """Torch backends are fed the one-hot ``label``; the PyTorch model is shared (loaded once)."""
    return RunContext(src.export, batch=args.batch, trt_module=args.trt_module,
                      kernel_library=args.kernel_library, input_mode="one-hot",
                      load_generator=lambda: src.gen)
