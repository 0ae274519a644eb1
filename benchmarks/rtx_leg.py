"""TensorRT for RTX on this GPU: does it build and run at all, and the plain FP16 engine's latency.

    python benchmarks/rtx_leg.py --out DIR [--rehearse]

Exports the demo model (cityscapes-256x512, full widths; a toy model with --rehearse), builds
the FP16 engine of ``asapnet_fp16.onnx`` with TensorRT for RTX (officially sm_75/86/89/120: an
H100 is sm_90, so whether it runs there is what this finds out), and times it with the harness
(``python -m asap_deploy.bench``, backend trt-fp16). Writes ``rtx.json`` with each step's outcome.
With --rehearse (a CPU) the engine is built ahead of time and the timing is reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def export(out: Path, rehearse: bool) -> Path:
    import torch

    from asap_deploy.export import main as export_main

    folder = out / "export"
    if rehearse:  # a toy checkpoint: the same graph structure in seconds
        from collections import OrderedDict

        from asap_deploy.config import GeneratorConfig
        from asap_deploy.demo import demo_generator

        cfg = GeneratorConfig(
            label_nc=5, downsampling=32, lr_width=8, lr_max_width=16, lr_depth=2, hr_width=16
        )
        ckpt = out / "toy_net_G.pth"
        torch.save(OrderedDict(demo_generator(cfg, seed=3).state_dict()), ckpt)
        argv = [str(ckpt), "--width", "64"]
    else:
        argv = ["--demo", "cityscapes-256x512"]
    rc = export_main(argv + ["--out", str(folder), "--precision", "fp16", "--no-parity", "--engine", "none"])
    if rc != 0:
        raise RuntimeError(f"export failed with exit code {rc}")
    return folder


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--rehearse", action="store_true")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    res: Dict[str, object] = {"command": " ".join(sys.argv)}
    status = 0
    try:
        from asap_deploy.engine.trt_module import import_tensorrt, trt_version

        res["tensorrt_rtx"] = trt_version(import_tensorrt("tensorrt_rtx")[0])
        t0 = time.perf_counter()
        folder = export(args.out, args.rehearse)
        res["export_seconds"] = round(time.perf_counter() - t0, 1)
        from asap_deploy.engine.builder import BuildOptions, build_engine
        from asap_deploy.engine.naming import engine_path

        onnx_path = folder / "asapnet_fp16.onnx"
        plan = engine_path(onnx_path, "tensorrt_rtx")
        side = build_engine(
            onnx_path, plan, BuildOptions(module="tensorrt_rtx", progress=False, plugin="none")
        )
        res["build"] = {
            "ok": True,
            "seconds": side["build_seconds"],
            "engine_mib": round(plan.stat().st_size / 2**20, 1),
            "gpu": side["gpu"],
        }
        from asap_deploy.bench import main as bench_main

        rc = bench_main(
            [
                "--export",
                str(folder),
                "--backends",
                "trt-fp16",
                "--trt-module",
                "tensorrt_rtx",
                "--out",
                str(args.out / "bench"),
                "--iterations",
                "50",
                "--duration",
                "1",
            ]
        )
        bench = json.loads((args.out / "bench" / "bench.json").read_text())["results"][0]
        res["run"] = {k: bench[k] for k in ("compute", "latency", "skipped", "failed") if k in bench}
        res["runs_on_this_gpu"] = "compute" in bench
        status = 0 if rc == 0 or args.rehearse else rc
    except Exception as exc:
        res["error"] = f"{type(exc).__name__}: {exc}"
        res["traceback"] = traceback.format_exc()
        status = 1
    (args.out / "rtx.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    summary = res.get("error") or (
        f"built in {res['build']['seconds']}s; "
        + (
            "ran: " + f"{res['run']['compute']['median']:.3f} ms"
            if res.get("runs_on_this_gpu")
            else "not run: " + str(res.get("run", {}).get("skipped") or res.get("run", {}).get("failed"))
        )
    )
    print(summary)
    return status


if __name__ == "__main__":
    sys.exit(main())
