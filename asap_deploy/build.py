"""``python -m asap_deploy.build MODEL.onnx``: ONNX -> serialized TensorRT engine + JSON sidecar.

Strongly typed (TensorRT 11 and TensorRT for RTX have no FP16 flag): build ``*_fp16.onnx`` for an
FP16 engine. Works with ``tensorrt`` or ``tensorrt_rtx``; the sidecar (``ENGINE.json``) records
the model hash, TensorRT version, GPU, precision, shapes and plugin, and is checked on load.

The engine is named by the rule every runner uses (``asap_deploy/engine/naming.py``):
``asapnet_plugin_fp16.onnx`` gives ``asapnet_plugin_fp16.tensorrt.plan`` (or ``.tensorrt_rtx.plan``,
``.b1-4-8.plan`` for a batch profile), and an engine built inside an export folder is added to its
manifest, so that applications and the harness use it.

Paths, the batch profile and (for a file of an export folder) the manifest's SHA-256 are checked
before TensorRT is imported; TensorRT runs in a child process, so even a crash inside it ends in
one error line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import cli
from .engine.trt_module import CHOICES


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m asap_deploy.build", description=__doc__)
    p.add_argument("onnx", type=Path, help="an exported graph, e.g. build/x/asapnet_plugin_fp16.onnx")
    p.add_argument(
        "--out",
        type=Path,
        help="engine path (default: beside the ONNX, named <graph>.<module>[.b<batch>].plan)",
    )
    p.add_argument(
        "--module",
        choices=CHOICES,
        default="auto",
        help="TensorRT Python module (auto: tensorrt, else tensorrt_rtx)",
    )
    p.add_argument(
        "--plugin",
        default="auto",
        help="for graphs with the ASAP_SpatialMLP node: auto (the C++ library in "
        "build/engines if built, else the Python plugin), python, none (build the "
        "node's standard-op ONNX function), or a path to libasap_trt_plugin.so",
    )
    p.add_argument(
        "--batch", type=int, nargs="+", default=[1], help="batch profile: N (static) or MIN OPT MAX"
    )
    p.add_argument("--timing-cache", type=Path, help="read and update this timing cache file")
    p.add_argument(
        "--opt-level", type=int, choices=range(6), metavar="0-5", help="builder optimisation level (0-5)"
    )
    p.add_argument("--workspace", type=int, metavar="MiB", help="workspace memory limit")
    p.add_argument("--kernel-library", type=Path, help="libasap_spatial_mlp.so for the Python plugin")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--verbose", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    from .artifacts import find_export
    from .engine.builder import BuildOptions, build_engine, check_request, parse_batch
    from .engine.naming import engine_path
    from .engine.trt_module import resolve_flavour
    from .errors import UsageError

    if args.workspace is not None and args.workspace < 1:
        raise UsageError(f"--workspace must be a positive number of MiB, got {args.workspace}")
    batch = parse_batch(args.batch)
    flavour = resolve_flavour(args.module)  # names the engine; TensorRT is imported in the child
    opts = BuildOptions(
        module=flavour,
        plugin=args.plugin,
        batch=batch,
        timing_cache=args.timing_cache,
        optimization_level=args.opt_level,
        workspace_mib=args.workspace,
        progress=not args.no_progress,
        verbose=args.verbose,
        kernel_library=args.kernel_library,
    )
    out = args.out or engine_path(args.onnx, flavour, batch)
    check_request(args.onnx, out, opts)  # paths, batch, manifest: before the first line of output
    print(f"building {out} from {args.onnx}", flush=True)
    side = build_engine(args.onnx, out, opts, checked=True)
    export = find_export(args.onnx)
    indexed = export is not None and export.register_engine(out, side)
    plugin = side["plugin"]["kind"] if side["plugin"] else "not used"
    gpu = side["gpu"]["name"] if side["gpu"] else "none (ahead-of-time build)"
    print(
        f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB) in {side['build_seconds']}s: "
        f"{side['tensorrt_module']} {side['tensorrt_version']}, {side['precision']}, "
        f"plugin {plugin}, GPU {gpu}"
    )
    if indexed:
        print(f"added to {export.path / 'manifest.json'}")
    return 0


main = cli.entry(build_parser, run)


if __name__ == "__main__":
    sys.exit(main())
