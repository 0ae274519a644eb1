"""``python -m asap_deploy.triton EXPORT --out REPO``: a Triton model repository from an export.

Writes an ``onnxruntime_onnx`` model for the whole-generator graph in each exported precision
(asapnet.onnx, asapnet_fp16.onnx) and, with ``--engine``, a ``tensorrt_plan`` model with its plugin
library beside it; each with dynamic batching, instance groups and a warmup request, plus a README
with the exact tritonserver launch line. The repository is validated with Triton's schema before it
is renamed into place. ``--check REPO`` validates an existing repository (exit 1 on problems).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Optional, Sequence

from . import cli, paths

EXIT_INVALID = 1


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m asap_deploy.triton", description=__doc__)
    p.add_argument(
        "export",
        nargs="?",
        type=Path,
        help="export folder of python -m asap_deploy.export (with manifest.json)",
    )
    p.add_argument("--out", type=Path, help="repository folder to write")
    p.add_argument("--check", type=Path, metavar="REPO", help="only validate an existing repository")
    p.add_argument(
        "--engine",
        type=Path,
        metavar="PLAN",
        help="a TensorRT engine from python -m asap_deploy.build (with PLAN.json "
        "beside it), built from one of EXPORT's whole-generator graphs",
    )
    p.add_argument(
        "--plugin",
        type=Path,
        metavar="LIB",
        help="libasap_trt_plugin.so for an engine with ASAP_SpatialMLP layers "
        "(default: the library its sidecar records, if it exists)",
    )
    p.add_argument(
        "--onnx",
        nargs="+",
        choices=["fp32", "fp16", "none"],
        help="ONNX Runtime models to write (default: every whole-generator graph the export has)",
    )
    p.add_argument(
        "--onnx-device",
        choices=["cpu", "gpu"],
        default="gpu",
        help="instance kind of the ONNX Runtime models (plans always run on GPUs)",
    )
    p.add_argument(
        "--max-batch",
        type=int,
        metavar="N",
        help="max_batch_size of every model (default: the engine profile's max "
        "batch, else 4); at most the engine profile's max",
    )
    p.add_argument("--instances", type=int, default=1, metavar="N", help="instances of each model per device")
    p.add_argument(
        "--max-queue-delay",
        type=int,
        default=1000,
        metavar="US",
        help="how long the dynamic batcher waits for more requests (microseconds)",
    )
    p.add_argument("--name", default="asapnet", help="model name prefix: NAME_onnx, NAME_onnx_fp16, NAME_trt")
    p.add_argument("--no-warmup", action="store_true", help="no warmup request at model load")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace --out even if it holds something other than an earlier repository",
    )
    return p


def _check(repo: Path) -> int:
    from .serving.triton_check import check_repository

    report = check_repository(repo)
    for problem in report.problems:
        print(f"{repo}/{problem}", file=sys.stderr)
    if not report.ok:
        print(
            f"error: {repo}: {len(report.problems)} problem(s) in {len(report.models)} model(s)",
            file=sys.stderr,
        )
        return EXIT_INVALID
    print(f"{repo}: {len(report.models)} model(s) valid: {', '.join(report.models)}")
    return 0


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .serving.triton_repo import write_repository
    from .serving.triton_schema import TritonRepoError
    from .serving.triton_sources import RepoOptions

    if args.check is not None:
        if args.export is not None or args.out is not None:
            raise TritonRepoError("--check REPO validates a repository: give no EXPORT or --out")
        return _check(args.check)
    if args.export is None or args.out is None:
        raise TritonRepoError("give an export folder and --out REPO (or --check REPO)")
    onnx = args.onnx or ["fp32", "fp16"]
    if "none" in onnx and len(onnx) > 1:
        raise TritonRepoError("--onnx none cannot be combined with precisions")
    if onnx == ["none"] and args.engine is None:
        raise TritonRepoError("nothing to serve: --onnx none needs --engine PLAN")
    if not 1 <= len(args.name) <= 64 or not all(c.isalnum() or c in "_-" for c in args.name):
        raise TritonRepoError(f"--name {args.name!r}: use letters, digits, '_' or '-'")
    opts = RepoOptions(
        name=args.name,
        onnx=[] if onnx == ["none"] else onnx,
        onnx_required=args.onnx is not None,
        onnx_device=args.onnx_device,
        engine=args.engine,
        plugin=args.plugin,
        max_batch=args.max_batch,
        instances=args.instances,
        max_queue_delay_us=args.max_queue_delay,
        warmup=not args.no_warmup,
    )
    paths.output_dir(args.out, "repository folder")
    command = " ".join(["python -m asap_deploy.triton", *(shlex.quote(a) for a in argv)])
    written = write_repository(
        args.export,
        args.out,
        opts,
        force=args.force,
        command=command,
        log=lambda s: print(f"  {s}", flush=True),
    )
    print(f"wrote {written.path}: {len(written.models)} model(s), validated with Triton's schema")
    for note in (n for m in written.models for n in m.notes):
        print(f"note: {note}")
    print(f"launch: {written.launch}")
    print(f"details: {written.path / 'README.md'}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point (``cli.entry``): one ``error:`` line and the shared exit codes; ``--check``
    exits 1 when the repository has problems (each printed on its own line first)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return cli.entry(build_parser, lambda args: run(args, argv))(argv)


if __name__ == "__main__":
    sys.exit(main())
