"""Whole-generator latency on one GPU, PyTorch against PyTorch + the fused kernel, one run.

    python benchmarks/generator_bench.py --out DIR [--presets ...] [--batches 1 4]

Legs, each on the paper's demo model of every preset (full widths, deterministic weights):
* ``torch-eager-fp32``: the authors' way of running the generator (FP32, eager, no graph);
* ``torch-eager-fp16-cl``: FP16 convolutions and MLP, channels-last, with and without a CUDA graph;
* ``torch-fused-fp16``: G in FP16 channels-last writing the kernel's parameter layout directly,
  the pixelwise MLP in the fused kernel, with and without a CUDA graph.
Timing is the harness's (asap_deploy.harness.timing: warm-up, CUDA events around compute, H2D
and D2H apart, percentiles); results are written in the harness's schema (bench.json, bench.md,
latency.png), each with ``speedup_vs_fp32_eager``: the FP32 eager leg's median compute time at
the same preset and batch over this leg's.

``--rehearse`` runs the same script on the CPU at toy widths, the FP16 legs in FP32 and the fused
leg on the kernel's emulation build: a rehearsal of gpu_evidence.sh, not a measurement.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRESETS = ["cityscapes-256x512", "cityscapes-512x1024", "cityscapes-1024x2048", "facades-1024"]


def legs(rehearse: bool):
    """(name, runner factory(gen, lib, resolution), cuda graph) for every leg."""
    from asap_deploy.runners.torch_runner import TorchEagerRunner, TorchFusedRunner

    dev = "cpu" if rehearse else "cuda"
    half = "fp32" if rehearse else "fp16"  # FP16 convolutions on a CPU are emulated by PyTorch
    out = [("torch-eager-fp32", lambda g, lib, res: TorchEagerRunner(g, "fp32", dev, resolution=res), False)]
    for graph in (False,) if rehearse else (False, True):  # no CUDA graphs on a CPU
        out.append(
            (
                f"torch-eager-{half}-cl",
                lambda g, lib, res: TorchEagerRunner(g, half, dev, resolution=res, channels_last=True),
                graph,
            )
        )
        out.append(
            (
                f"torch-fused-{half}",
                lambda g, lib, res: TorchFusedRunner(g, lib, res, precision=half, device=dev),
                graph,
            )
        )
    return out


def model(preset: str, rehearse: bool):
    from asap_deploy.config import GeneratorConfig
    from asap_deploy.demo import demo_generator
    from asap_deploy.presets import load_preset

    p = load_preset(preset)
    fields = dict(p.generator)
    width = p.width
    if rehearse:  # toy widths and two grid columns: the same code paths in seconds on a CPU
        fields.update(lr_width=8, lr_max_width=16, lr_depth=2)
        width = 2 * (p.height // 16)
    return demo_generator(GeneratorConfig.from_dict(fields), seed=0), p.height, width


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--presets", nargs="+", default=PRESETS)
    p.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    p.add_argument("--warmup", type=float, default=200.0, metavar="MS")
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--duration", type=float, default=1.0, metavar="S")
    p.add_argument("--library", type=Path, help="the kernel library (default: build one)")
    p.add_argument("--rehearse", action="store_true", help="CPU, toy widths, emulated kernel")
    args = p.parse_args(argv)
    import torch

    from asap_deploy import build_plugin, emulation
    from asap_deploy.harness.report import environment, markdown_table, plot_latency, write_json
    from asap_deploy.harness.timing import TimingOptions, time_runner
    from asap_deploy.runners.base import RunnerUnavailable
    from asap_deploy.sample_inputs import scene_feeds

    if not args.rehearse and not torch.cuda.is_available():
        print("error: this benchmark needs a CUDA GPU (or --rehearse for a CPU rehearsal)", file=sys.stderr)
        return 2
    torch.set_grad_enabled(False)
    lib = args.library
    if lib is None:
        d = Path(tempfile.mkdtemp())
        lib = (
            emulation.build_emulation(d)
            if args.rehearse
            else build_plugin.build_kernel_library(d, ("native",))
        )
    results: List[Dict] = []
    for preset in args.presets:
        gen, h, w = model(preset, args.rehearse)
        for batch in args.batches:
            feeds = {"label": scene_feeds(gen.config, batch, h, w, seed=1)["label"]}
            for name, make, graph in legs(args.rehearse):
                base = {
                    "model": preset,
                    "resolution": f"{h}x{w}",
                    "megapixels": h * w / 1e6,
                    "backend": name + ("+graph" if graph else ""),
                    "batch": batch,
                }
                runner = make(gen, lib, (h, w))
                try:
                    runner.activate()
                except RunnerUnavailable as exc:
                    results.append({**base, "skipped": str(exc)})
                    continue
                try:
                    opts = TimingOptions(args.warmup, args.iterations, args.duration, graph, True, batch)
                    results.append({**base, **time_runner(runner, feeds, opts)})
                    print(
                        f"{preset} b{batch} {base['backend']}: {results[-1]['compute']['median']:.3f} ms",
                        flush=True,
                    )
                finally:
                    runner.deactivate()
            del feeds
        del gen
    for r in results:
        ref = next(
            (
                x
                for x in results
                if x["model"] == r["model"]
                and x["batch"] == r["batch"]
                and x["backend"] == "torch-eager-fp32"
                and "compute" in x
            ),
            None,
        )
        if ref and "compute" in r:
            r["speedup_vs_fp32_eager"] = ref["compute"]["median"] / r["compute"]["median"]
    args.out.mkdir(parents=True, exist_ok=True)
    env = environment("python benchmarks/generator_bench.py")
    if args.rehearse:
        env["note"] = "rehearsal on the CPU: toy widths, FP32 legs, emulated kernel: not a measurement"
    write_json(args.out / "bench.json", {"environment": env, "results": results})
    header = ["model", "batch", "backend", "compute median ms", "p90 ms", "p99 ms", "vs FP32 eager"]
    body = [
        [r["model"], str(r["batch"]), r["backend"]]
        + (
            [
                f"{r['compute']['median']:.3f}",
                f"{r['compute']['p90']:.3f}",
                f"{r['compute']['p99']:.3f}",
                f"{r.get('speedup_vs_fp32_eager', float('nan')):.2f}x",
            ]
            if "compute" in r
            else ["", "", "", "skipped: " + r.get("skipped", "")]
        )
        for r in results
    ]
    device = env.get("gpu") or env["cpu"]
    (args.out / "bench.md").write_text(
        f"Device: {device}; command: `{env['command']}`\n\n" + markdown_table(header, body)
    )
    why = plot_latency(
        [r for r in results if r["batch"] == args.batches[0]],
        args.out / "latency.png",
        f"ASAP-Net generator latency, batch {args.batches[0]}, {device}",
    )
    print(markdown_table(header, body))
    if why:
        print(f"no plot: {why}")
    return 0 if all("compute" in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
