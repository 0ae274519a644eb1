"""One rehearsed command that turns GPU time into committed evidence (run by gpu_evidence.sh).

Stages, each time-boxed, none stopping the next (a failed stage is recorded and the run goes on):

  build      the kernel library and the CUDA case runner, for this GPU only
  kernels    the GPU-marked tests: the emulated suite's case list on the GPU, every path and mode
  sanitizer  compute-sanitizer memcheck, racecheck, synccheck on one small case per kernel path
  generator  whole-generator latency: PyTorch FP32 eager / FP16 channels-last / FP16 G + fused kernel
  stage      the pixelwise stage alone: fused kernel vs PyTorch FP16, TFLOP/s vs a dense FP16 matmul
  profile    ncu on the tensor-core kernel: occupancy, tensor pipe, bank conflicts, DRAM and L2
  rtx        optional: TensorRT for RTX on this GPU, when its wheels were staged (see README)

Writes to the output folder: stages.json, bench.json, bench.md, latency.png, summary.md and
evidence.tar.gz (logs, test reports, stage JSON, ncu CSV, environment): six files, so everything
comes back from a device machine. ``--dry-run`` rehearses every stage on a CPU: the kernels
through the emulation build (sanitizers: its ASan and TSan builds), PyTorch on the CPU at toy
sizes, the access report instead of ncu; CI runs it so the script cannot rot.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
#: seconds per stage on the GPU, and for the whole run (a budget sized for an H100; never run on a GPU yet)
#: (each stage gets the smaller of its box and what is left of the total)
BOXES = {"build": 75, "kernels": 90, "sanitizer": 50, "generator": 140, "stage": 40, "profile": 45, "rtx": 60}
TOTAL = 470
SANITIZER_CASES = ("35x16-one_hot-tc", "35x16-one_hot-fp16-shared", "13x32-label_ids-fp32-global")
NCU_METRICS = ",".join(
    [
        "sm__warps_active.avg.pct_of_peak_sustained_active",  # achieved occupancy
        "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active",
        "l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum",
        "l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_st.sum",
        "l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum",
        "dram__throughput.avg.pct_of_peak_sustained_elapsed",
        "lts__throughput.avg.pct_of_peak_sustained_elapsed",
        "gpu__time_duration.sum",
    ]
)


class Run:
    def __init__(self, out: Path, dry: bool) -> None:
        self.out, self.dry = out, dry
        self.work = out / "evidence"
        self.logs = self.work / "logs"
        self.engines = self.work / "engines"
        for d in (self.logs, self.engines):
            d.mkdir(parents=True, exist_ok=True)
        self.stages: List[Dict] = []
        self.deadline = time.monotonic() + TOTAL * (6 if dry else 1)
        self.env = dict(
            os.environ,
            PYTHONUNBUFFERED="1",
            PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        )

    def sh(self, name: str, cmd: List[str], box: float, log: str, **kw) -> Tuple[int, str]:
        """Run ``cmd`` within what is left of the stage's box; its output goes to logs/``log``."""
        path = self.logs / log
        with open(path, "a") as f:
            f.write(f"$ {' '.join(map(str, cmd))}\n")
            f.flush()
            try:
                rc = subprocess.run(
                    [str(c) for c in cmd],
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                    env=kw.get("env", self.env),
                    timeout=max(box, 1),
                ).returncode
            except subprocess.TimeoutExpired:
                f.write(f"\n[gpu_evidence] {name}: timed out after {box:.0f} s\n")
                rc = 124
            except OSError as exc:
                f.write(f"\n[gpu_evidence] {name}: {exc}\n")
                rc = 127
        tail = path.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        return rc, tail[0][-300:]

    def stage(self, name: str, fn: Callable[[float], Tuple[str, str]]) -> None:
        scale = 6 if self.dry else 1  # the emulator and two CPU cores are slower
        t0 = time.monotonic()
        box = min(BOXES[name] * scale, self.deadline - t0)
        if box < 5:
            self.stages.append(
                {
                    "stage": name,
                    "status": "skipped",
                    "seconds": 0.0,
                    "detail": "no time left in the run's total box",
                }
            )
            print(f"[{name}] skipped: no time left", flush=True)
            return
        print(f"[{name}] ...", flush=True)
        try:
            status, detail = fn(box)
        except Exception as exc:  # a bug in a stage must not cost the other stages
            status, detail = "failed", f"{type(exc).__name__}: {exc}"
        took = round(time.monotonic() - t0, 1)
        self.stages.append({"stage": name, "status": status, "seconds": took, "detail": detail})
        print(f"[{name}] {status} in {took}s: {detail}", flush=True)


def environment(dry: bool) -> Dict[str, object]:
    env: Dict[str, object] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "dry_run": dry,
        "command": " ".join(sys.argv),
    }
    try:
        import torch

        env["torch"], env["cuda_runtime"] = torch.__version__, torch.version.cuda
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            env.update(
                gpu=p.name,
                compute_capability=f"{p.major}.{p.minor}",
                sm_count=p.multi_processor_count,
                gpu_memory_gib=round(p.total_memory / 2**30, 1),
            )
    except Exception as exc:  # recorded, not fatal
        env["torch_error"] = str(exc)
    for key, cmd in (
        ("driver", ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]),
        ("nvcc", ["nvcc", "--version"]),
    ):
        try:
            text = subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
            env[key] = text.splitlines()[-1] if text else None
        except (OSError, subprocess.SubprocessError):
            env[key] = None
    env.setdefault("gpu", None)
    return env


def ok(rc: int, tail: str, what: str) -> Tuple[str, str]:
    if rc == 0:
        return "ok", what
    return "failed", f"exit {rc}{' (time box)' if rc == 124 else ''}: {tail}"


# -- stages ---------------------------------------------------------------------------------------
def build(r: Run, box: float) -> Tuple[str, str]:
    t0 = time.monotonic()
    if r.dry:
        cmd = [PY, "-m", "asap_deploy.build_plugin", "--emulate", "--out", r.engines]
        return ok(*r.sh("build", cmd, box, "build.log"), "emulation build and CPU reference")
    rc, tail = r.sh(
        "build",
        [PY, "-m", "asap_deploy.build_plugin", "--arch", "native", "--no-plugin", "--out", r.engines],
        box,
        "build.log",
    )
    if rc:
        return ok(rc, tail, "")
    left = box - (time.monotonic() - t0)
    code = f"from asap_deploy.build_plugin import build_cuda_case_runner as b; print(b({str(r.engines)!r}))"
    return ok(
        *r.sh("build", [PY, "-c", code], left, "build.log"),
        "libasap_spatial_mlp.so, asap_cuda_cases, CPU reference (sm of this GPU)",
    )


def kernels(r: Run, box: float) -> Tuple[str, str]:
    report = r.work / "kernel-tests.xml"
    pytest = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"]
    if r.dry:  # the same cases' core, emulated on the CPU
        cmd = [*pytest, "tests/test_kernel_emulated.py", "-k", "35x16 or S8 or ids-wide"]
    else:
        cmd = [*pytest, "-m", "gpu", "-rs", "tests/test_kernel_gpu.py"]
    env = dict(r.env, ASAP_KERNEL_LIBRARY=str(r.engines / "libasap_spatial_mlp.so"))
    rc, tail = r.sh("kernels", cmd, box, "kernel-tests.log", env=env)
    return ok(rc, tail, tail)


def _case_file(r: Run) -> Path:
    code = (
        "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; "
        "from kernel_cases import CASES, write_case_file; "
        f"write_case_file([c for c in CASES if c.name in {SANITIZER_CASES!r}], "
        f"Path({str(r.work / 'sanitizer-cases.txt')!r}))"
    )
    subprocess.run([PY, "-c", code], cwd=ROOT, env=r.env, check=True, timeout=120)
    return r.work / "sanitizer-cases.txt"


def sanitizer(r: Run, box: float) -> Tuple[str, str]:
    t0 = time.monotonic()
    cases = _case_file(r)
    results = []
    if r.dry:
        for flavour in ("address", "thread"):
            code = (
                "from asap_deploy.emulation import build_emulation; "
                f"print(build_emulation({str(r.engines)!r}, {flavour!r}))"
            )
            rc, tail = r.sh("sanitizer", [PY, "-c", code], box - (time.monotonic() - t0), "sanitizer.log")
            if rc:
                return ok(rc, tail, "")
        runs = [
            ("asan+ubsan", [r.engines / "asap_emu_cases_asan", cases]),
            ("tsan", [r.engines / "asap_emu_cases_tsan", cases]),
        ]
    else:
        tool = shutil.which("compute-sanitizer") or "/usr/local/cuda/bin/compute-sanitizer"
        runs = [
            (t, [tool, "--tool", t, "--error-exitcode", "99", r.engines / "asap_cuda_cases", cases])
            for t in ("memcheck", "racecheck", "synccheck")
        ]
    for name, cmd in runs:
        rc, tail = r.sh("sanitizer", cmd, box - (time.monotonic() - t0), "sanitizer.log")
        results.append(f"{name}: {'clean' if rc == 0 else f'exit {rc}'}")
    failed = any("exit" in x for x in results)
    return ("failed" if failed else "ok"), "; ".join(results)


def generator(r: Run, box: float) -> Tuple[str, str]:
    lib = r.engines / ("libasap_spatial_mlp_emu.so" if r.dry else "libasap_spatial_mlp.so")
    cmd = [PY, "benchmarks/generator_bench.py", "--out", r.out, "--library", lib]
    if r.dry:
        cmd += [
            "--rehearse",
            "--presets",
            "cityscapes-256x512",
            "--batches",
            "1",
            "2",
            "--iterations",
            "2",
            "--duration",
            "0",
            "--warmup",
            "0",
        ]
    rc, tail = r.sh("generator", cmd, box, "generator.log")
    if rc == 0:
        res = json.loads((r.out / "bench.json").read_text())["results"]
        best = [x for x in res if x["backend"].startswith("torch-fused") and "speedup_vs_fp32_eager" in x]
        if best:
            top = max(best, key=lambda x: x["megapixels"] * 10 + x["batch"])
            tail = (
                f"{len(res)} results; {top['model']} batch {top['batch']} {top['backend']}: "
                f"{top['compute']['median']:.3f} ms, {top['speedup_vs_fp32_eager']:.1f}x vs FP32 eager"
            )
    return ok(rc, tail, tail)


def stage_bench(r: Run, box: float) -> Tuple[str, str]:
    lib = r.engines / ("libasap_spatial_mlp_emu.so" if r.dry else "libasap_spatial_mlp.so")
    out = r.work / "stage"
    t0 = time.monotonic()
    sizes = (
        [("256", "32", "one_hot")]
        if r.dry
        else [("1024", "2048", "one_hot"), ("1024", "2048", "label_ids"), ("256", "512", "one_hot")]
    )
    details = []
    for h, w, mode in sizes:
        cmd = [
            PY,
            "benchmarks/fused_mlp_stage.py",
            "--height",
            h,
            "--width",
            w,
            "--mode",
            mode,
            "--library",
            lib,
            "--out",
            out,
        ]
        cmd += ["--emulate", "--iterations", "1", "--warmup", "0"] if r.dry else ["--iterations", "50"]
        rc, tail = r.sh("stage", cmd, box - (time.monotonic() - t0), "stage.log")
        if rc:
            return ok(rc, tail, "")
        res = json.loads((out / f"fused_mlp_stage_{h}x{w}_{mode}.json").read_text())
        frac = res.get("fraction_of_dense_fp16")
        details.append(
            f"{h}x{w} {mode}: {res['fused_channels_last_ms']['median']:.3f} ms, "
            f"{res['fused_tflops']:.1f} TFLOP/s" + (f" ({100 * frac:.0f}% of dense FP16)" if frac else "")
        )
    return "ok", "; ".join(details)


def profile(r: Run, box: float) -> Tuple[str, str]:
    if r.dry:  # no ncu on a CPU: the emulated access counts stand in
        cmd = [
            PY,
            "-m",
            "asap_deploy.kernel_report",
            "--settings",
            "cityscapes-256x512",
            "--no-ptxas",
            "--out",
            r.work / "access-report",
        ]
        return ok(*r.sh("profile", cmd, box, "profile.log"), "emulated access report (no ncu on a CPU)")
    ncu = shutil.which("ncu") or "/usr/local/cuda/bin/ncu"
    csv = r.work / "ncu.csv"
    lib = r.engines / "libasap_spatial_mlp.so"
    cmd = [
        ncu,
        "--metrics",
        NCU_METRICS,
        "--kernel-name",
        "regex:tensor_core_kernel",
        "--launch-count",
        "2",
        "--csv",
        "--log-file",
        csv,
        PY,
        "benchmarks/fused_mlp_stage.py",
        "--height",
        "1024",
        "--width",
        "2048",
        "--iterations",
        "1",
        "--warmup",
        "0",
        "--library",
        lib,
    ]
    rc, tail = r.sh("profile", cmd, box, "profile.log")
    return ok(rc, tail, f"ncu metrics in {csv.name}")


def rtx(r: Run, box: float) -> Tuple[str, str]:
    wheels = Path(os.environ.get("ASAP_RTX_WHEELS", ROOT / ".whl"))
    env = r.env
    if not r.dry:
        found = sorted(wheels.glob("tensorrt_rtx*.whl"))
        if not found:
            return "skipped", f"no TensorRT for RTX wheels in {wheels} (benchmarks/README.md: staging)"
        site = Path("/tmp/asap-rtx-site")
        rc, tail = r.sh(
            "rtx",
            [PY, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", site, *found],
            box,
            "rtx.log",
        )
        if rc:
            return ok(rc, tail, "")
        env = dict(r.env, PYTHONPATH=os.pathsep.join([str(site), r.env["PYTHONPATH"]]))
    else:
        from asap_deploy.engine.trt_module import resolve_flavour
        from asap_deploy.errors import MissingDependencyError

        try:
            resolve_flavour("tensorrt_rtx")
        except MissingDependencyError as exc:
            return "skipped", str(exc)
    cmd = [PY, "benchmarks/rtx_leg.py", "--out", r.work / "rtx"] + (["--rehearse"] if r.dry else [])
    rc, tail = r.sh("rtx", cmd, box, "rtx.log", env=env)
    return ok(rc, tail, tail)


def pack(r: Run, env: Dict) -> None:
    (r.work / "environment.json").write_text(json.dumps(env, indent=1) + "\n")
    (r.out / "stages.json").write_text(json.dumps({"environment": env, "stages": r.stages}, indent=1) + "\n")
    lines = [
        f"# GPU evidence: {env.get('gpu') or 'dry run on ' + platform.node()}",
        "",
        f"command: `{env['command']}`",
        "",
        "| stage | status | seconds | detail |",
        "|---|---|---|---|",
    ]
    lines += [f"| {s['stage']} | {s['status']} | {s['seconds']} | {s['detail']} |" for s in r.stages]
    if (r.out / "bench.md").is_file():
        lines += ["", (r.out / "bench.md").read_text()]
    (r.out / "summary.md").write_text("\n".join(lines) + "\n")
    with tarfile.open(r.out / "evidence.tar.gz", "w:gz") as tar:
        for p in sorted(r.work.rglob("*")):
            if (
                p.is_file()
                and p.suffix not in (".so", ".o")
                and p.stat().st_size < 8 << 20
                and not p.name.startswith("asap_")
            ):
                tar.add(p, arcname=str(p.relative_to(r.work)))
    shutil.rmtree(r.work, ignore_errors=True)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path(os.environ["OUT"]) if os.environ.get("OUT") else None)
    p.add_argument("--dry-run", action="store_true", help="rehearse every stage on a CPU")
    p.add_argument("--stages", nargs="+", default=list(BOXES), choices=list(BOXES))
    args = p.parse_args(argv)
    out = (args.out or ROOT / "build" / ("gpu-evidence-dry" if args.dry_run else "gpu-evidence")).resolve()
    if out.exists() and any(out.iterdir()):
        for name in ("stages.json", "bench.json", "bench.md", "latency.png", "summary.md", "evidence.tar.gz"):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    env = environment(args.dry_run)
    if not args.dry_run and not env.get("gpu"):
        print(
            "error: no CUDA GPU visible to PyTorch; on a machine without one, pass --dry-run", file=sys.stderr
        )
        return 2
    r = Run(out, args.dry_run)
    print(f"gpu_evidence: {env.get('gpu') or 'dry run'} -> {out}", flush=True)
    fns = {
        "build": build,
        "kernels": kernels,
        "sanitizer": sanitizer,
        "generator": generator,
        "stage": stage_bench,
        "profile": profile,
        "rtx": rtx,
    }
    for name in args.stages:
        r.stage(name, lambda box, f=fns[name]: f(r, box))
    env["total_seconds"] = round(time.monotonic() - t0, 1)
    pack(r, env)
    print((out / "summary.md").read_text())
    print(f"wrote {out}: " + ", ".join(sorted(x.name for x in out.iterdir())))
    return 0 if all(s["status"] in ("ok", "skipped") for s in r.stages) else 1


if __name__ == "__main__":
    sys.exit(main())
