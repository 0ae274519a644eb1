"""``python -m asap_deploy.parity``: every backend's output against the FP32 PyTorch reference.

Reports max and mean absolute error, PSNR, and the share of pixels whose 8-bit value (the
authors' truncating conversion) differs; the pass/fail verdict comes from Polygraphy's comparator
(per-precision tolerance) together with the project's criteria (FP32 max abs <= 1e-4, FP16
PSNR >= 40 dB). Writes parity.json, parity.md and, per backend, a PNG with the reference, the
backend's image and an error heat map.

Before anything runs: the flags, the --out folder (writable), every export against its manifest
and the checkpoint the reference is reloaded from. Exit codes: 0 every backend that can run here
passed; 1 a backend is outside tolerance (do not deploy it); 3 no backend could run here; 4 a
backend failed with an error. The reports are written in each of these cases.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from . import cli
from .errors import AsapDeployError, VerificationError
from .harness import cli_common
from .harness.report import environment, markdown_table, save_figure, terminal_table, write_json, write_text
from .metrics import compare, to_uint8
from .onnx_export.verify import passes
from .runners import registry

#: Polygraphy CompareFunc.simple tolerances on the mean absolute error, per precision
POLYGRAPHY_ATOL = {"fp32": 1e-5, "fp16": 5e-3}
HEADER = ["model", "backend", "max abs", "mean abs", "PSNR dB", "8-bit differ %", "polygraphy", "status"]


def polygraphy_verdict(ref: np.ndarray, out: np.ndarray, name: str, precision: str) -> Optional[bool]:
    try:
        from polygraphy.comparator import Comparator, RunResults
        from polygraphy.comparator.struct import IterationResult
        from polygraphy.logger import G_LOGGER
    except ImportError:
        return None
    G_LOGGER.module_severity = G_LOGGER.ERROR
    results = RunResults()
    results.append(("reference", [IterationResult({"image": ref}, runner_name="reference")]))
    results.append((name, [IterationResult({"image": out}, runner_name=name)]))
    try:
        from polygraphy.comparator import SimpleCompareFunc as simple
    except ImportError:  # Polygraphy < 0.50
        from polygraphy.comparator import CompareFunc

        simple = CompareFunc.simple
    func = simple(atol=POLYGRAPHY_ATOL[precision], rtol=0.0, check_error_stat="mean")
    return bool(Comparator.compare_accuracy(results, compare_func=func))


def save_panels(path: Path, ref: np.ndarray, out: np.ndarray, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = lambda a: np.transpose(to_uint8(a[0][:3]), (1, 2, 0)).squeeze()  # noqa: E731
    err = np.abs(out[0].astype(np.float64) - ref[0]).max(axis=0)
    h, w = err.shape
    fig, axes = plt.subplots(1, 3, figsize=(12, 12 * h / (3 * w) + 0.8), dpi=110)
    for ax, a, t in zip(axes, [img(ref), img(out)], ["reference (PyTorch FP32)", title]):
        ax.imshow(a)
        ax.set_title(t, fontsize=8)
    hm = axes[2].imshow(err, cmap="inferno")
    axes[2].set_title(f"|error| (max {err.max():.2e})", fontsize=8)
    fig.colorbar(hm, ax=axes[2], fraction=0.03)
    for ax in axes:
        ax.axis("off")
    try:
        fig.tight_layout()
        save_figure(fig, path)
    finally:
        plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m asap_deploy.parity", description=__doc__)
    cli_common.add_model_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    cli_common.check_args(args, "parity report folder")
    names = cli_common.backends(args)
    sources = cli_common.models(args, source=True)  # the reference is the source model
    import torch

    torch.set_grad_enabled(False)
    results: List[Dict] = []
    for src in sources:
        feeds = src.feeds(args.batch, args.seed)
        ref = src.gen(torch.from_numpy(feeds["label"])).numpy()
        ctx = cli_common.context(src, args)
        for name in names:
            base = {"model": src.name, "resolution": f"{src.height}x{src.width}", "backend": name}
            r = _compare_one(registry.get(name), ctx, feeds, ref, src.name, args.out)
            results.append({**base, **r})
    body = []
    for r in results:
        if r.get("skipped"):
            body.append([r["model"], r["backend"], "", "", "", "", "", "skipped: " + r["skipped"]])
        elif r.get("error"):
            body.append([r["model"], r["backend"], "", "", "", "", "", "FAILED: " + r["error"]])
        else:
            body.append(
                [
                    r["model"],
                    r["runner"]["name"],
                    f"{r['max_abs']:.2e}",
                    f"{r['mean_abs']:.2e}",
                    f"{r['psnr_db']:.1f}",
                    f"{100 * r['pixels_8bit_differ']:.3f}",
                    {True: "pass", False: "FAIL", None: "n/a"}[r["polygraphy_pass"]],
                    "pass" if r["pass"] else "FAIL",
                ]
            )
    print(terminal_table(HEADER, body))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)  # also when no backend could run
        env = environment("python -m asap_deploy.parity")
        write_json(args.out / "parity.json", {"environment": env, "results": results})
        write_text(
            args.out / "parity.md",
            f"Device: {env.get('gpu') or env['cpu']}; command: "
            f"`{env['command']}`\n\n" + markdown_table(HEADER, body),
        )
        print(f"\nwrote {args.out}/parity.json, parity.md")
    verdict(results)
    return 0


def verdict(results: List[Dict]) -> None:
    """Raise the command's one error line: a backend outside tolerance (exit 1), one that failed
    (4), or none that could run here (3)."""
    off = [r for r in results if "pass" in r and not r["pass"] and not r.get("error")]
    if off:
        what = ", ".join(
            f"{r['backend']} ({r['model']}: max abs {r['max_abs']:.2e}, PSNR {r['psnr_db']:.1f} dB)"
            for r in off
        )
        raise VerificationError(f"outside tolerance: {what}; do not deploy these")
    cli_common.raise_failed_or_none_ran(results, "error")


def _compare_one(backend, ctx, feeds, ref: np.ndarray, model: str, out: Optional[Path]) -> Dict:
    """One backend against the reference; its runner is deactivated before the next one starts."""
    runner = cli_common.start_runner(backend, ctx, "error")
    if isinstance(runner, dict):
        return {**runner, "pass": False} if "error" in runner else runner
    try:
        got = runner.infer(feeds)
        describe = runner.describe()
    except AsapDeployError as exc:
        return {"error": str(exc), "pass": False}
    finally:
        runner.deactivate()
    if got.shape != ref.shape:
        return {
            "error": f"{describe['name']} returned shape {list(got.shape)}, the reference {list(ref.shape)}",
            "pass": False,
        }
    m = compare(got, ref)
    prec = backend.precision
    ours = passes(m, prec, image=True)
    poly = polygraphy_verdict(ref, got, describe["name"], prec)
    ok = ours and poly is not False
    if out:
        out.mkdir(parents=True, exist_ok=True)
        save_panels(
            out / f"{model}_{describe['name']}.png",
            ref,
            got,
            f"{describe['name']} (PSNR {m['psnr_db']:.1f} dB)",
        )
    return {"runner": describe, **m, "polygraphy_pass": poly, "pass": ok}


main = cli.entry(build_parser, run)


if __name__ == "__main__":
    sys.exit(main())
