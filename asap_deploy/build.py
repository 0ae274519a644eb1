"""``python -m asap_deploy.build MODEL.onnx``: ONNX -> serialized TensorRT engine + JSON sidecar.

Strongly typed (TensorRT 11 and TensorRT for RTX have no FP16 flag): build ``*_fp16.onnx`` for an
FP16 engine. Works with ``tensorrt`` or ``tensorrt_rtx``; the sidecar (``ENGINE.json``) records
the model hash, TensorRT version, GPU, precision, shapes and plugin, and is checked on load.

The engine is named by the rule every runner uses (``asap_deploy/engine/naming.py``):
``asapnet_plugin_fp16.onnx`` gives ``asapnet_plugin_fp16.tensorrt.plan`` (or ``.tensorrt_rtx.plan``,
``.b1-4-8.plan`` for a batch profile), and an engine built inside an export folder is added to its
manifest, so that applications and the harness use it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from .errors import AsapDeployError
from .engine.trt_module import CHOICES


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m asap_deploy.build", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("onnx", type=Path, help="an exported graph, e.g. build/x/asapnet_plugin_fp16.onnx")
    p.add_argument("--out", type=Path, help="engine path (default: beside the ONNX, named "
                                             "<graph>.<module>[.b<batch>].plan)")
    p.add_argument("--module", choices=CHOICES, default="auto",
                   help="TensorRT Python module (auto: tensorrt, else tensorrt_rtx)")
    p.add_argument("--plugin", default="auto",
                   help="for graphs with the ASAP_SpatialMLP node: auto (the C++ library in "
                        "build/engines if built, else the Python plugin), python, none (build the "
                        "node's standard-op ONNX function), or a path to libasap_trt_plugin.so")
    p.add_argument("--batch", type=int, nargs="+", default=[1],
                   help="batch profile: N (static) or MIN OPT MAX")
    p.add_argument("--timing-cache", type=Path, help="read and update this timing cache file")
    p.add_argument("--opt-level", type=int, help="builder optimisation level (0-5)")
    p.add_argument("--workspace", type=int, metavar="MiB", help="workspace memory limit")
    p.add_argument("--kernel-library", type=Path, help="libasap_spatial_mlp.so for the Python plugin")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    from .artifacts import find_export
    from .engine.builder import BuildOptions, build_engine, parse_batch
    from .engine.naming import engine_path
    from .engine.trt_module import import_tensorrt

    try:
        batch = parse_batch(args.batch)
        _, flavour = import_tensorrt(args.module)
        opts = BuildOptions(module=flavour, plugin=args.plugin, batch=batch,
                            timing_cache=args.timing_cache, optimization_level=args.opt_level,
                            workspace_mib=args.workspace, progress=not args.no_progress,
                            verbose=args.verbose, kernel_library=args.kernel_library)
        out = args.out or engine_path(args.onnx, flavour, batch)
        print(f"building {out} from {args.onnx}", flush=True)
        side = build_engine(args.onnx, out, opts)
        export = find_export(args.onnx)
        indexed = export is not None and export.register_engine(out, side)
    except AsapDeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    plugin = side["plugin"]["kind"] if side["plugin"] else "not used"
    gpu = side["gpu"]["name"] if side["gpu"] else "none (ahead-of-time build)"
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB) in {side['build_seconds']}s: "
          f"{side['tensorrt_module']} {side['tensorrt_version']}, {side['precision']}, "
          f"plugin {plugin}, GPU {gpu}")
    if indexed:
        print(f"added to {export.path / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
