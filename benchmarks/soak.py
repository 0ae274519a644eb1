"""Soak: memory and correctness over many inferences through the runner interface.

    python benchmarks/soak.py --out benchmarks/results/<machine>

1. Per backend (default ``ort-cpu-fp32`` and ``torch-eager-fp32``): one runner, --inferences
   calls of ``Runner.infer`` (the input checks included, as an application calls it) on a
   rotation of --scenes distinct label maps. The resident set size (RSS, /proc/self/statm) is
   sampled every --sample-every inferences; every output is compared with the first output of
   its scene, so a runner that leaks or whose state drifts shows up as growth or a difference.
2. Two runners on one model from two threads, each thread on its own scenes, every output
   compared with the single-threaded output of its scene:
   * ONNX Runtime: ONE ``InferenceSession`` shared by two ``OrtRunner`` objects. ORT documents
     concurrent ``run`` calls on one session as safe, and that is what a server with several
     request threads does (one copy of the weights and of the initialised kernels); two sessions
     on one file would share nothing but the file and test nothing about concurrency. Each
     runner keeps its own feeds and outputs, so runners are per thread, sessions are not.
   * PyTorch: two ``TorchEagerRunner`` objects made from the one generator. A torch runner
     copies the model when it is activated (so that a caller's model keeps its device and
     precision), so each thread runs its own copy: what is shared is the generator they come
     from and the process's allocator.

The model is small (built in a temporary folder unless --export is given) so that 10,000
inferences take minutes on a CPU: G at toy widths with the paper's 5 x 64 MLP, 256 x 32 pixels.
Reports RSS at the start (after the first inference), end, minimum and maximum, the least-squares
slope in KiB per 1,000 inferences (all samples, and after --warmup-inferences, when allocator
arenas have grown to their working size), throughput, and the largest output difference. Writes
soak.json and soak.md into --out. Exit 1 when an output differs, or when --max-growth-mib is
given and RSS grew more than that after the warm-up.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from asap_deploy import cli, paths  # noqa: E402
from asap_deploy.errors import EnvironmentProblem, UsageError, VerificationError  # noqa: E402

BACKENDS = ("ort-cpu-fp32", "torch-eager-fp32")
PROG = "python benchmarks/soak.py"


def rss_bytes() -> int:
    """Resident set size of this process now."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        raise EnvironmentProblem("the soak reads RSS from /proc/self/statm (Linux)") from None


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog=PROG, description=__doc__)
    p.add_argument("--out", type=Path, required=True, help="folder for soak.json and soak.md")
    p.add_argument(
        "--export",
        type=Path,
        help="export folder to soak (default: a small model made in a temporary folder)",
    )
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    p.add_argument("--inferences", type=int, default=10_000, help="per backend, one thread")
    p.add_argument("--sample-every", type=int, default=100, metavar="N", help="RSS sample every N inferences")
    p.add_argument(
        "--warmup-inferences",
        type=int,
        default=1000,
        metavar="N",
        help="inferences before the 'after warm-up' slope and growth are measured",
    )
    p.add_argument(
        "--thread-inferences",
        type=int,
        default=1000,
        metavar="N",
        help="inferences per thread in the two-thread run",
    )
    p.add_argument("--scenes", type=int, default=8, help="distinct inputs, used in rotation")
    p.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch intra-op threads (1: a shared or loaded machine; 0: torch's default)",
    )
    p.add_argument(
        "--max-growth-mib", type=float, help="fail (exit 1) when RSS grows more than this after the warm-up"
    )
    return p


# -- the model ---------------------------------------------------------------------------------
def small_export(folder: Path) -> Path:
    """A deterministic small model exported to ``folder`` (FP32 graphs, no engine)."""
    import torch

    from asap_deploy.config import GeneratorConfig
    from asap_deploy.demo import demo_generator
    from asap_deploy.export import build_parser as export_parser
    from asap_deploy.export import run as export_run

    cfg = GeneratorConfig(label_nc=5, downsampling=16, lr_width=8, lr_max_width=16, lr_depth=2, hr_width=64)
    ckpt = folder / "model" / "latest_net_G.pth"
    ckpt.parent.mkdir(parents=True)
    torch.save(OrderedDict(demo_generator(cfg).state_dict()), ckpt)
    out = folder / "export"
    with contextlib.redirect_stdout(io.StringIO()):  # its progress lines are not the soak's
        export_run(
            export_parser().parse_args(
                [
                    str(ckpt),
                    "--width",
                    "32",
                    "--out",
                    str(out),
                    "--precision",
                    "fp32",
                    "--no-parity",
                    "--engine",
                    "none",
                ]
            )
        )
    return out


def scenes(export, n: int) -> List[Dict[str, Any]]:
    from asap_deploy.sample_inputs import scene_feeds

    return [
        {"label": scene_feeds(export.config, 1, export.height, export.width, seed)["label"]}
        for seed in range(1, n + 1)
    ]


# -- measurements ------------------------------------------------------------------------------
def slope_kib_per_1k(samples: List[List[float]]) -> Optional[float]:
    """Least-squares slope of RSS (MiB) against inferences, in KiB per 1,000 inferences."""
    import numpy as np

    if len(samples) < 2:
        return None
    x = np.array([s[0] for s in samples], dtype=np.float64)
    y = np.array([s[1] for s in samples], dtype=np.float64)
    if np.ptp(x) == 0:
        return None
    return float(np.polyfit(x, y, 1)[0] * 1024 * 1000)


def rss_summary(samples: List[List[float]], warmup: int) -> Dict[str, Any]:
    after = [s for s in samples if s[0] >= warmup]
    mib = [s[1] for s in samples]
    return {
        "start_mib": round(samples[0][1], 2),
        "end_mib": round(samples[-1][1], 2),
        "min_mib": round(min(mib), 2),
        "max_mib": round(max(mib), 2),
        "slope_kib_per_1k": _round(slope_kib_per_1k(samples)),
        "slope_after_warmup_kib_per_1k": _round(slope_kib_per_1k(after)),
        "growth_after_warmup_mib": round(after[-1][1] - after[0][1], 2) if after else None,
        "warmup_inferences": warmup,
    }


def _round(v: Optional[float]) -> Optional[float]:
    return None if v is None else round(v, 2)


def _max_diff(a, b) -> float:
    import numpy as np

    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def soak_one(runner, feeds: List[Dict[str, Any]], n: int, every: int, warmup: int, log) -> Dict[str, Any]:
    """``n`` inferences through one runner, RSS sampled; outputs compared with the first of each
    scene."""
    ref: List[Any] = [None] * len(feeds)
    worst = 0.0
    samples: List[List[float]] = []
    activated = rss_bytes() / 2**20
    t0 = time.perf_counter()
    for i in range(n):
        k = i % len(feeds)
        y = runner.infer(feeds[k])
        if ref[k] is None:
            ref[k] = y.copy()
        else:
            worst = max(worst, _max_diff(y, ref[k]))
        done = i + 1
        if done == 1 or done % every == 0 or done == n:
            samples.append([done, rss_bytes() / 2**20])
        if done % max(1, n // 10) == 0:
            log(f"    {done}/{n}: RSS {samples[-1][1]:.1f} MiB")
    wall = time.perf_counter() - t0
    return {
        "backend": runner.name,
        "inferences": n,
        "seconds": round(wall, 2),
        "throughput_per_s": round(n / wall, 2),
        "rss_after_activate_mib": round(activated, 2),
        "rss": rss_summary(samples, warmup),
        "max_abs_output_drift": worst,
        "samples": [[int(i), round(m, 3)] for i, m in samples],
    }


def two_threads(
    runners: Sequence, feeds: List[Dict[str, Any]], refs: List[Any], n: int, every: int
) -> Dict[str, Any]:
    """Each runner in its own thread, ``n`` inferences each on its own half of the scenes."""
    worst = [0.0] * len(runners)
    errors: List[str] = []
    samples: List[List[float]] = []
    count = [0]
    lock = threading.Lock()
    start = threading.Barrier(len(runners))

    def work(t: int) -> None:
        mine = [k for k in range(len(feeds)) if k % len(runners) == t]
        try:
            start.wait()
            for i in range(n):
                k = mine[i % len(mine)]
                y = runners[t].infer(feeds[k])
                worst[t] = max(worst[t], _max_diff(y, refs[k]))
                with lock:
                    count[0] += 1
                    if count[0] % every == 0:
                        samples.append([count[0], rss_bytes() / 2**20])
        except Exception as exc:  # reported, and the run fails
            errors.append(f"thread {t}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(len(runners))]
    samples.append([0, rss_bytes() / 2**20])
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    total = n * len(runners)
    return {
        "threads": len(runners),
        "inferences_per_thread": n,
        "seconds": round(wall, 2),
        "throughput_per_s": round(total / wall, 2),
        "max_abs_vs_single_thread": max(worst),
        "errors": errors,
        # the first inferences of each runner allocate its buffers: growth counts after
        "rss": rss_summary(samples, every),
        "samples": [[int(i), round(m, 3)] for i, m in samples],
    }


# -- the command -------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    for flag in ("inferences", "sample_every", "thread_inferences", "scenes"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least 1")
    if args.scenes < 2:
        raise UsageError("--scenes must be at least 2 (one per thread in the two-thread run)")
    paths.output_dir(args.out, "soak results folder")
    rss_bytes()
    import torch

    from asap_deploy.artifacts import open_export
    from asap_deploy.harness.report import environment, write_json, write_text

    torch.set_grad_enabled(False)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    log = lambda s: print(s, flush=True)  # noqa: E731
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="asap-soak-") as tmp:
        folder = args.export or small_export(Path(tmp))
        export = open_export(folder)
        feeds = scenes(export, args.scenes)
        model = {
            "height": export.height,
            "width": export.width,
            "config": export.config.to_dict(),
            "export": str(args.export or "temporary"),
            "scenes": args.scenes,
        }
        soaks, pairs = [], []
        for name in args.backends:
            log(f"{name}: {args.inferences} inferences")
            soak, pair = _backend(name, export, feeds, args, log)
            soaks.append(soak)
            pairs.append(pair)
    env = environment(PROG)
    env["torch_threads"] = torch.get_num_threads()
    env["load_average_start_end"] = [list(load_start), list(os.getloadavg())]
    report = {"environment": env, "model": model, "soak": soaks, "two_threads": pairs}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "soak.json", report)
    write_text(args.out / "soak.md", markdown(report))
    log(f"wrote {args.out / 'soak.json'}, soak.md")
    _verdict(report, args.max_growth_mib)
    return 0


def _backend(name: str, export, feeds, args, log):
    from asap_deploy.runners import registry
    from asap_deploy.runners.ort_runner import OrtRunner

    ctx = registry.RunContext(export, device="cpu")
    backend = registry.get(name)
    why = backend.reason(ctx)
    if why:
        raise EnvironmentProblem(f"{name} cannot run here: {why}")
    with backend.create(ctx) as runner:
        soak = soak_one(runner, feeds, args.inferences, args.sample_every, args.warmup_inferences, log)
        refs = [runner.infer(f) for f in feeds]  # single-threaded outputs of every scene
        log(
            f"  {soak['throughput_per_s']} inferences/s; RSS start {soak['rss']['start_mib']} "
            f"MiB, end {soak['rss']['end_mib']}, max {soak['rss']['max_mib']}, slope "
            f"{soak['rss']['slope_after_warmup_kib_per_1k']} KiB/1k after warm-up; max output "
            f"drift {soak['max_abs_output_drift']:.3g}"
        )
        if backend.family == "onnxruntime":
            sess = runner.sess
            pair = [
                OrtRunner(
                    lambda: sess, backend.precision, name=f"{runner.name}-shared", value_rules=ctx.rules()
                )
                for _ in range(2)
            ]
            sharing = (
                "one InferenceSession shared by two OrtRunner objects (ORT's run is "
                "thread-safe; one copy of the weights, as a multi-threaded server runs)"
            )
        else:
            pair = [backend.create(ctx) for _ in range(2)]
            sharing = (
                "two TorchEagerRunner objects from one generator; each activates its own "
                "copy of the weights (the runner copies the model it is given)"
            )
        log(f"  two threads x {args.thread_inferences}: {sharing.split(' (')[0]}")
        for r in pair:
            r.activate()
        try:
            res = two_threads(pair, feeds, refs, args.thread_inferences, args.sample_every)
        finally:
            for r in pair:
                r.deactivate()
        log(
            f"  {res['throughput_per_s']} inferences/s together; max difference from the "
            f"single-threaded outputs {res['max_abs_vs_single_thread']:.3g}"
            + (f"; ERRORS: {res['errors']}" if res["errors"] else "")
        )
    return soak, {"backend": name, "sharing": sharing, **res}


def _verdict(report: Dict[str, Any], max_growth: Optional[float]) -> None:
    bad = [
        f"{s['backend']}: outputs drifted by {s['max_abs_output_drift']:.3g}"
        for s in report["soak"]
        if s["max_abs_output_drift"] > 0
    ]
    for p in report["two_threads"]:
        if p["errors"]:
            bad.append(f"{p['backend']} two threads: {p['errors'][0]}")
        elif p["max_abs_vs_single_thread"] > 0:
            bad.append(
                f"{p['backend']} two threads: outputs differ from the single-threaded "
                f"ones by {p['max_abs_vs_single_thread']:.3g}"
            )
    if max_growth is not None:
        bad += [
            f"{s['backend']}: RSS grew {s['rss']['growth_after_warmup_mib']} MiB after the "
            f"warm-up (limit {max_growth})"
            for s in report["soak"]
            if (s["rss"]["growth_after_warmup_mib"] or 0) > max_growth
        ]
    if bad:
        raise VerificationError("; ".join(bad))


def markdown(report: Dict[str, Any]) -> str:
    env, model = report["environment"], report["model"]
    lines = [
        f"# Soak: {env['cpu']} ({env['cpu_count']} cores), "
        f"{'GPU ' + env['gpu'] if env.get('gpu') else 'no GPU'}",
        "",
        f"Command: `{env['command']}`  ",
        f"Model: {model['height']} x {model['width']}, {model['scenes']} scenes in rotation, "
        f"torch threads {env['torch_threads']}; load average (1/5/15 min) at start "
        f"{_load(env['load_average_start_end'][0])}, at end "
        f"{_load(env['load_average_start_end'][1])}",
        "",
        "| backend | inferences | inf/s | RSS start MiB | end | max | slope KiB/1k (all) "
        "| slope after warm-up | growth after warm-up MiB | max output drift |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in report["soak"]:
        r = s["rss"]
        lines.append(
            f"| {s['backend']} | {s['inferences']} | {s['throughput_per_s']} | "
            f"{r['start_mib']} | {r['end_mib']} | {r['max_mib']} | "
            f"{r['slope_kib_per_1k']} | {r['slope_after_warmup_kib_per_1k']} | "
            f"{r['growth_after_warmup_mib']} | {s['max_abs_output_drift']:.3g} |"
        )
    lines += [
        "",
        "Two runners on one model, two threads:",
        "",
        "| backend | sharing | inferences | inf/s (both) | RSS start MiB | end | max "
        "| growth after warm-up MiB | max diff vs one thread | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in report["two_threads"]:
        r = p["rss"]
        lines.append(
            f"| {p['backend']} | {p['sharing']} | {p['threads']} x "
            f"{p['inferences_per_thread']} | {p['throughput_per_s']} | {r['start_mib']} "
            f"| {r['end_mib']} | {r['max_mib']} | {r['growth_after_warmup_mib']} | "
            f"{p['max_abs_vs_single_thread']:.3g} | {len(p['errors'])} |"
        )
    soak_warm = report["soak"][0]["rss"]["warmup_inferences"] if report["soak"] else 0
    pair_warm = report["two_threads"][0]["rss"]["warmup_inferences"] if report["two_threads"] else 0
    lines += [
        "",
        "RSS from /proc/self/statm. One runner: start = after the first inference; "
        "slope = least-squares fit of RSS against inferences; warm-up = the first "
        f"{soak_warm} inferences, while allocator arenas grow to their working size. Two "
        "threads: start = both runners activated, before their first inference; growth "
        f"counted after the first {pair_warm} inferences of the two together (each runner's "
        "first calls allocate its buffers). Throughput on a shared machine: compare runs "
        "only on one machine at one load.",
    ]
    return "\n".join(lines) + "\n"


def _load(avg) -> str:
    return "/".join(f"{x:.1f}" for x in avg)


main = cli.entry(build_parser, run)


if __name__ == "__main__":
    sys.exit(main())
