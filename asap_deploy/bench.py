"""``python -m asap_deploy.bench``: trtexec-style latency of every backend, side by side.

Each backend is timed on the same seeded inputs: warm-up, then at least --iterations runs and at
least --duration seconds; GPU compute from CUDA events, H2D and D2H apart, end-to-end host latency,
enqueue time, min/mean/median/p90/p95/p99/max and throughput. A backend that cannot run here is
listed with the reason. Outputs: terminal table, bench.json, bench.md and latency.png in --out.

Before anything is timed: the flags, the --out folder (writable), and every export against its
manifest (a damaged file is exit 2, not a backend listed as skipped). Exit codes: 0 every backend
that can run here ran; 3 none could run here; 4 a backend failed (the results are written in
both cases and the error line names it).
"""

from __future__ import annotations

import argparse
import sys
from typing import Dict, List

from . import cli
from .errors import AsapDeployError, UsageError
from .harness import cli_common
from .harness.report import (
    HEADER,
    environment,
    markdown_table,
    plot_latency,
    rows,
    terminal_table,
    write_json,
    write_text,
)
from .harness.timing import TimingOptions, time_runner
from .runners import registry


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m asap_deploy.bench", description=__doc__)
    cli_common.add_model_args(p)
    p.add_argument("--warmup", type=float, default=200.0, metavar="MS")
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--duration", type=float, default=3.0, metavar="S")
    p.add_argument("--cuda-graph", action="store_true", help="replay compute from a CUDA graph")
    p.add_argument("--no-spin-wait", action="store_true", help="blocking-sync CUDA events")
    return p


def run(args: argparse.Namespace) -> int:
    if args.iterations < 1 or args.warmup < 0 or args.duration < 0:
        raise UsageError("--iterations must be >= 1, --warmup and --duration >= 0")
    cli_common.check_args(args, "bench results folder")
    names = cli_common.backends(args)
    sources = cli_common.models(args, source=cli_common.uses_pytorch(names))
    import torch

    torch.set_grad_enabled(False)
    opts = TimingOptions(
        args.warmup, args.iterations, args.duration, args.cuda_graph, not args.no_spin_wait, args.batch
    )
    results: List[Dict] = []
    for src in sources:
        feeds = src.feeds(args.batch, args.seed)
        ctx = cli_common.context(src, args)
        res = f"{src.height}x{src.width}"
        for name in names:
            base = {"model": src.name, "resolution": res, "megapixels": src.megapixels, "backend": name}
            outcome = _run_one(registry.get(name), ctx, feeds, opts)
            results.append({**base, **outcome})
            status = outcome.get("skipped") or outcome.get("failed")
            if status:
                print(
                    f"  {src.name} {name}: {'failed' if 'failed' in outcome else 'skipped'} ({status})",
                    flush=True,
                )
    body = rows(results)
    print()
    print(terminal_table(HEADER, body))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        env = environment("python -m asap_deploy.bench")
        write_json(args.out / "bench.json", {"environment": env, "results": results})
        title = f"ASAP-Net latency, batch {args.batch}, {env.get('gpu') or env['cpu']}"
        write_text(
            args.out / "bench.md",
            f"Device: {env.get('gpu') or env['cpu']}; load average (1 min) when written: "
            f"{env['load_average_1min']}; command: `{env['command']}`\n\n" + markdown_table(HEADER, body),
        )
        why = plot_latency(results, args.out / "latency.png", title)
        print(
            f"\nwrote {args.out}/bench.json, bench.md"
            + (", latency.png" if why is None else f" (no plot: {why})")
        )
    verdict(results)
    return 0


def verdict(results: List[Dict]) -> None:
    """Raise the command's one error line when a backend failed or none could run."""
    cli_common.raise_failed_or_none_ran(results, "failed")


def _run_one(backend, ctx, feeds, opts: TimingOptions) -> Dict:
    """Time one backend, holding only its engine/session: activated here, deactivated in any
    case before the next one starts."""
    runner = cli_common.start_runner(backend, ctx, "failed")
    if isinstance(runner, dict):
        return runner
    try:
        print(f"  {ctx.export.name} {runner.name}: timing ...", flush=True)
        runner.check(feeds)  # values once; the timed loop checks shapes only
        return time_runner(runner, feeds, opts)
    except AsapDeployError as exc:
        return {"failed": str(exc)}
    finally:
        runner.deactivate()


main = cli.entry(build_parser, run)


if __name__ == "__main__":
    sys.exit(main())
