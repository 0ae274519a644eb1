"""``python -m asap_deploy.kernel_report``: what the fused kernels ask of the memory system.

Runs one grid cell of every kernel path at every paper setting through the traced emulation
build (every load and store of the unmodified kernel source is recorded; WMMA loads/stores and
cp.async copies are recorded as the warp-level requests the hardware issues) and reports, per
run:

* global-load efficiency: useful bytes / bytes of the 32-byte sectors touched, per warp-level
  request, for the parameter staging (the ``params`` buffer) and for the label input;
* shared-memory bank conflicts: mean and max "ways" per warp-level request (1 = conflict-free;
  accesses wider than 4 bytes are served in 128-byte phases, ldmatrix in four 8-row phases);
* and, from ``nvcc -Xptxas -v``, registers, spills and stack per kernel for sm_75 and sm_90.

Writes ``kernel-access.json`` and ``kernel-access.md`` (``--out``, default
benchmarks/results/emulated) and, with ``--readme``, replaces the table between the markers in
engines/README.md. These are access counts from a model of the hardware, not timings.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from . import emulation
from .errors import AsapDeployError, MissingDependencyError
from .fused_mlp import KERNEL_PATHS, NCHW, NHWC, check, load_library, make_shape, make_tensors
from .mlp_spec import MLPSpec
from .native_build import KERNELS, find_nvcc

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "emulated"
README = ROOT / "engines" / "README.md"
MARK_BEGIN, MARK_END = "<!-- kernel-access:begin -->", "<!-- kernel-access:end -->"
PAPER = [
    ("cityscapes-256x512", 35, 16),
    ("cityscapes-512x1024", 35, 32),
    ("cityscapes-1024x2048", 35, 64),
    ("facades-512", 13, 32),
    ("facades-1024", 13, 64),
]
SM75, SM90 = 65536, 232448


@dataclass(frozen=True)
class Run:
    """One traced launch: a kernel path at a setting."""

    setting: str
    in_channels: int
    downsampling: int
    path: str  # expected kernel path
    dtype: str
    mode: str
    layout: str  # params grid layout
    optin: int

    @property
    def label(self) -> str:
        return f"{self.path} {self.dtype} {self.mode} {self.layout}"


def default_runs(settings: Sequence[str] = ()) -> List[Run]:
    runs = []
    for name, c, s in PAPER:
        if settings and name not in settings:
            continue
        runs += [
            Run(name, c, s, "tensor_cores", "float16", "one_hot", "nhwc", SM75),
            Run(name, c, s, "tensor_cores", "float16", "label_ids", "nhwc", SM75),
            Run(name, c, s, "tensor_cores", "float16", "one_hot", "nchw", SM75),
            Run(name, c, s, "generic_shared", "float32", "one_hot", "nhwc", SM90),
            Run(name, c, s, "generic_global", "float32", "one_hot", "nhwc", SM75),
        ]
    return runs


def _aligned(shape: Sequence[int], dtype) -> np.ndarray:
    """A zeroed array at a 256-byte boundary, as cudaMalloc returns (sector counts depend on it)."""
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.zeros(n + 256, np.uint8)
    start = -raw.ctypes.data % 256
    return raw[start : start + n].view(dtype).reshape(shape)


def _grid(run: Run) -> tuple:
    """The setting's real parameter grid: 16 rows, 32 (Cityscapes) or 16 (facades) columns."""
    return 16, 32 if run.setting.startswith("cityscapes") else 16


def _inputs(run: Run, rng: np.random.Generator):
    spec = MLPSpec(run.in_channels, run.downsampling)
    s, np_ = run.downsampling, spec.num_params
    gh, gw = _grid(run)
    h, w = gh * s, gw * s
    dt = np.float16 if run.dtype == "float16" else np.float32
    ids = rng.integers(0, run.in_channels, (1, 1, h, w), dtype=np.int32)
    if run.mode == "label_ids":
        x = _aligned(ids.shape, np.int32)
        x[...] = ids
    else:
        x = _aligned((1, run.in_channels, h, w), dt)
        x[...] = ids == np.arange(run.in_channels).reshape(1, -1, 1, 1)
    nhwc = run.layout == "nhwc"
    pitch = np_ + (-np_ % 8) if nhwc else 0  # TensorRT's kHWC8 padding
    params = _aligned((gh * gw * (pitch if nhwc else np_),), dt)
    params[...] = rng.standard_normal(params.size) * 0.1
    return spec, x, params, (NHWC if nhwc else NCHW), pitch


def trace_run(lib: ctypes.CDLL, run: Run, seed: int = 0) -> Dict:
    """Launch ``run`` under the trace, emulating only the grid's first block (cell (0, 0) of
    image 0: every cell makes the same requests); the library's per-site statistics."""
    os.environ["ASAP_EMU_SMEM_OPTIN"] = str(run.optin)
    spec, x, params, layout, pitch = _inputs(run, np.random.default_rng(seed))
    gh, gw = _grid(run)
    shape = make_shape(spec, run.in_channels - 1, run.mode)
    t = make_tensors(
        x.shape,
        (1, spec.num_params, gh, gw),
        "int32" if run.mode == "label_ids" else run.dtype,
        run.dtype,
        layout,
        pitch,
    )
    out = _aligned((1, spec.out_channels) + x.shape[2:], np.float16 if run.dtype == "float16" else np.float32)
    path = lib.asap_spatial_mlp_path(ctypes.byref(shape), ctypes.byref(t))
    if path < 0 or KERNEL_PATHS[path] != run.path:
        raise AsapDeployError(
            f"{run.setting} {run.label}: the kernel would take path "
            f"{KERNEL_PATHS[path] if path >= 0 else path}, not {run.path}"
        )
    lib.asap_emu_trace_begin()
    for arr, name in ((x, b"label"), (params, b"params"), (out, b"output")):
        lib.asap_emu_trace_register(arr.ctypes.data, arr.nbytes, name)
    os.environ["ASAP_EMU_BLOCKS"] = "1"
    try:
        check(
            lib,
            lib.asap_spatial_mlp_forward(
                ctypes.byref(shape), ctypes.byref(t), x.ctypes.data, params.ctypes.data, out.ctypes.data, None
            ),
            run.label,
        )
    finally:
        del os.environ["ASAP_EMU_BLOCKS"]
    size = lib.asap_emu_trace_end(None, 0)
    buf = ctypes.create_string_buffer(size)
    lib.asap_emu_trace_end(buf, size)
    return json.loads(buf.value.decode())


def summarize(sites: List[Dict]) -> Dict:
    """Weighted figures of one run: each analysed request stands for executions / analyzed."""

    def weight(site: Dict) -> float:
        return site["executions"] / site["analyzed"] if site["analyzed"] else 0.0

    out: Dict[str, object] = {}
    for buffer, store in (("params", False), ("label", False), ("output", True)):
        group = [x for x in sites if x["buffer"] == buffer and x["store"] == store]
        useful = sum(x["useful_bytes"] * weight(x) for x in group)
        sectors = sum(x["sector_bytes"] * weight(x) for x in group)
        key = f"{buffer}_{'store' if store else 'load'}_efficiency"
        out[key] = round(useful / sectors, 4) if sectors else None
    shared = [x for x in sites if x["space"] == "shared"]
    n = sum(x["executions"] for x in shared)
    out["shared_requests"] = n
    out["shared_mean_ways"] = (
        round(sum(x["mean_ways"] * x["executions"] for x in shared) / n, 3) if n else None
    )
    out["shared_max_ways"] = max((x["max_ways"] for x in shared), default=None)
    return out


def resolve_sites(library: Path, sites: List[Dict]) -> None:
    """Attach the kernel source line to each site (addr2line through the inlining chain)."""
    tool = shutil.which("addr2line")
    if not tool or not sites:
        return
    proc = subprocess.run(
        [tool, "-a", "-i", "-e", str(library), *(hex(x["pc_offset"]) for x in sites)],
        capture_output=True,
        text=True,
    )
    chains: List[List[str]] = []
    for line in proc.stdout.splitlines():
        if line.startswith("0x"):
            chains.append([])
        elif chains:
            chains[-1].append(line)
    for x, chain in zip(sites, chains):
        x["source"] = _pick(chain)


def _pick(chain: List[str]) -> str:
    """The outermost frame in the kernel source (the line a reader would look at)."""
    for line in reversed(chain):
        if "spatial_mlp_kernel.cu" in line:
            return "spatial_mlp_kernel.cu:" + line.rsplit(":", 1)[-1].split()[0]
    return Path(chain[0].split(":")[0]).name + ":" + chain[0].rsplit(":", 1)[-1] if chain else "?"


def ptxas_report(archs: Sequence[str] = ("75", "90")) -> Dict[str, Dict[str, Dict]]:
    """Registers, spills, stack per kernel from ``nvcc -Xptxas -v`` for each architecture."""
    nvcc = find_nvcc()
    out: Dict[str, Dict[str, Dict]] = {}
    with tempfile.TemporaryDirectory() as d:
        for arch in archs:
            proc = subprocess.run(
                [
                    nvcc,
                    "-std=c++17",
                    "-O3",
                    f"-I{KERNELS}",
                    f"-arch=sm_{arch}",
                    "-Xptxas",
                    "-v",
                    "-c",
                    str(KERNELS / "spatial_mlp_kernel.cu"),
                    "-o",
                    str(Path(d) / "k.o"),
                ],
                capture_output=True,
                text=True,
            )
            if proc.returncode:
                raise AsapDeployError(f"nvcc failed for sm_{arch}:\n{proc.stderr[-2000:]}")
            out[f"sm_{arch}"] = _parse_ptxas(proc.stderr)
    return out


def _parse_ptxas(text: str) -> Dict[str, Dict]:
    kernels: Dict[str, Dict] = {}
    name = None
    for line in text.splitlines():
        m = re.search(r"Compiling entry function '(\S+)'", line)
        if m:
            name = _kernel_label(m.group(1))
            continue
        if name is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            kernels.setdefault(name, {}).update(
                stack=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3))
            )
        m = re.search(r"Used (\d+) registers", line)
        if m:
            kernels.setdefault(name, {})["registers"] = int(m.group(1))
    return kernels


def _kernel_label(mangled: str) -> str:
    """_ZN...14generic_kernelI6__halfLi2ELb1EE... -> generic_kernel<__half,2,true>"""
    if "tensor_core_kernel" in mangled:
        return "tensor_core_kernel"
    m = re.search(r"generic_kernelI(f|6__half)Li(\d+)ELb([01])E", mangled)
    if m:
        t = "float" if m.group(1) == "f" else "__half"
        return f"generic_kernel<{t},{m.group(2)},{'true' if m.group(3) == '1' else 'false'}>"
    return mangled


def markdown(report: Dict) -> str:
    rows = [
        "| setting | path | input | params grid | params staging | label loads | output stores "
        "| shared mean / max ways |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def pct(v: Optional[float]) -> str:
        return "-" if v is None else f"{100 * v:.0f}%"

    for r in report["runs"]:
        f = r["figures"]
        ways = (
            "-"
            if f["shared_mean_ways"] is None
            else f"{f['shared_mean_ways']:.2f} / {f['shared_max_ways']:.0f}"
        )
        rows.append(
            f"| {r['setting']} | {r['path']} ({r['dtype']}) | {r['mode']} | {r['layout']} | "
            f"{pct(f['params_load_efficiency'])} | {pct(f['label_load_efficiency'])} | "
            f"{pct(f['output_store_efficiency'])} | {ways} |"
        )
    if report.get("ptxas"):
        rows += [
            "",
            "| kernel | " + " | ".join(report["ptxas"]) + " |",
            "|---|" + "---|" * len(report["ptxas"]),
        ]
        names = sorted({k for arch in report["ptxas"].values() for k in arch})
        for k in names:
            cells = []
            for arch in report["ptxas"].values():
                v = arch.get(k, {})
                cells.append(
                    f"{v.get('registers', '?')} regs, {v.get('spill_stores', '?')} B spills, "
                    f"{v.get('stack', '?')} B stack"
                )
            rows.append(f"| `{k}` | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def worst_sites(runs: List[Dict], limit: int = 8) -> List[Dict]:
    """The shared-memory sites with the most conflict cycles over all runs."""
    total: Dict[str, Dict] = {}
    for r in runs:
        for x in r["sites"]:
            if x["space"] != "shared" or x["mean_ways"] <= 1.0:
                continue
            key = f"{x.get('source', '?')} ({'store' if x['store'] else 'load'}{', modeled' if x['modeled'] else ''})"
            e = total.setdefault(key, {"site": key, "excess_cycles": 0.0, "max_ways": 0.0})
            e["excess_cycles"] += (x["mean_ways"] - 1.0) * x["executions"]
            e["max_ways"] = max(e["max_ways"], x["max_ways"])
    return sorted(total.values(), key=lambda e: -e["excess_cycles"])[:limit]


def build_report(library: Path, runs: Sequence[Run], ptxas: bool = True) -> Dict:
    lib = load_library(library)
    if not hasattr(lib, "asap_emu_trace_begin") or not lib.asap_emu_is_trace_build():
        raise AsapDeployError(
            f"{library} is not the traced emulation build "
            f"(python -m asap_deploy.build_plugin --emulate --trace)"
        )
    lib.asap_emu_trace_begin.argtypes = []
    lib.asap_emu_trace_register.restype = ctypes.c_int
    saved = os.environ.get("ASAP_EMU_SMEM_OPTIN")
    results = []
    try:
        for run in runs:
            sites = trace_run(lib, run)["sites"]
            resolve_sites(library, sites)
            results.append(
                {
                    "setting": run.setting,
                    "path": run.path,
                    "dtype": run.dtype,
                    "mode": run.mode,
                    "layout": run.layout,
                    "smem_optin": run.optin,
                    "figures": summarize(sites),
                    "sites": sites,
                }
            )
            print(f"{run.setting:22s} {run.label:42s} {results[-1]['figures']}", flush=True)
    finally:
        if saved is None:
            os.environ.pop("ASAP_EMU_SMEM_OPTIN", None)
        else:
            os.environ["ASAP_EMU_SMEM_OPTIN"] = saved
    report = {
        "what": "warp-level memory requests of one grid cell, traced in the CPU emulation of "
        "engines/kernels/spatial_mlp_kernel.cu (a model of the hardware's sectors and "
        "banks, not a timing)",
        "command": "python -m asap_deploy.kernel_report " + " ".join(sys.argv[1:]),
        "runs": results,
        "worst_shared_sites": worst_sites(results),
    }
    if ptxas:
        try:
            report["ptxas"] = ptxas_report()
        except MissingDependencyError as exc:
            report["ptxas_skipped"] = str(exc)
    return report


def update_readme(readme: Path, table: str) -> None:
    from .fileio import replace_between_markers

    try:
        replace_between_markers(readme, MARK_BEGIN, MARK_END, table)
    except ValueError as exc:
        raise AsapDeployError(str(exc)) from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m asap_deploy.kernel_report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--library", type=Path, help="a traced emulation build (default: build it)")
    p.add_argument("--settings", nargs="+", choices=[n for n, _, _ in PAPER], default=[])
    p.add_argument("--no-ptxas", action="store_true", help="skip the nvcc register report")
    p.add_argument("--readme", action="store_true", help=f"update the table in {README}")
    args = p.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as d:
            library = args.library or emulation.build_emulation(Path(d), "trace")
            report = build_report(library, default_runs(args.settings), not args.no_ptxas)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "kernel-access.json").write_text(json.dumps(report, indent=1) + "\n")
        table = markdown(report)
        (args.out / "kernel-access.md").write_text(table)
        if args.readme:
            update_readme(README, table)
        print(f"wrote {args.out / 'kernel-access.json'}")
    except AsapDeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
