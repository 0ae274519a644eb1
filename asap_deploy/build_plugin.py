"""``python -m asap_deploy.build_plugin``: compile the fused MLP kernel library and the TensorRT plugin.

Produces, in ``--out`` (default ``build/engines``):
  libasap_spatial_mlp.so      CUDA kernels + C API (nvcc only; used by the Python plugin and tests)
  libasap_spatial_mlp_cpu.so  CPU reference of the same header (host compiler only)
  libasap_trt_plugin.so       IPluginV3 TensorRT plugin, registers itself when loaded (ctypes,
                              polygraphy --plugins, trtexec --staticPlugins, C++ apps linking it)
  libasap_trt_plugin_dynamic.so  the same exporting getCreators/setLoggerFinder instead
                              (IPluginRegistry.load_library, trtexec --dynamicPlugins)
  (both plugin libraries need TensorRT headers and libnvinfer)

With ``--emulate`` (no CUDA, no GPU: the host compiler runs the same kernel source on the CPU,
see engines/emulation/README.md):
  libasap_spatial_mlp_emu.so  the kernels' C API on host pointers (what CI tests)
  --trace                     + libasap_spatial_mlp_emu_trace.so, for the access report
  --sanitize address|thread   + the case runner under ASan+UBSan or TSan

CMake (``engines/CMakeLists.txt``) builds the same targets; this helper exists so a Python user
needs nothing but nvcc. Compilation goes to a temporary file renamed into place on success.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence

from . import emulation
from .errors import MissingDependencyError
from .fused_mlp import CPU_LIBRARY, DEFAULT_DIR, KERNEL_LIBRARY
from .native_build import ENGINES, KERNELS, BuildError, atomic_output, find_cxx, find_nvcc
from .native_build import run as compile_step

PLUGIN = ENGINES / "plugin" / "spatialMLPPlugin"
#: sm_75 (RTX 2080 Ti) .. sm_90 (H100), plus PTX for newer GPUs
DEFAULT_ARCHS = ("75", "80", "86", "89", "90")
KERNEL_SOURCES = ("spatial_mlp_kernel.cu", "spatial_mlp_validate.cpp")
CPU_SOURCES = ("spatial_mlp_cpu.cpp", "spatial_mlp_validate.cpp")
PLUGIN_SOURCES = ("spatialMLPPlugin.cpp",)
__all__ = [
    "BuildError",
    "build_kernel_library",
    "build_cpu_reference",
    "build_cuda_case_runner",
    "build_trt_plugin",
    "main",
]


def gencode_flags(archs: Sequence[str]) -> List[str]:
    if list(archs) == ["native"]:  # the GPU of this machine only (fast to build)
        return ["-arch=native"]
    flags = []
    for a in archs:
        flags += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
    last = max(archs, key=int)
    return flags + ["-gencode", f"arch=compute_{last},code=compute_{last}"]


def build_kernel_library(
    out_dir: Path, archs: Sequence[str] = DEFAULT_ARCHS, compile_only: bool = False
) -> Path:
    """nvcc -> libasap_spatial_mlp.so (or, with compile_only, just check that it compiles)."""
    nvcc = find_nvcc()
    srcs = [str(KERNELS / s) for s in KERNEL_SOURCES]
    base = [nvcc, "-std=c++17", "-O3", "-Xcompiler", "-fPIC", f"-I{KERNELS}"] + gencode_flags(archs)
    out = Path(out_dir) / KERNEL_LIBRARY
    if compile_only:
        with tempfile.TemporaryDirectory() as d:
            compile_step(base + ["-c", srcs[0], "-o", str(Path(d) / "k.o")], "the CUDA kernels")
        return out
    return atomic_output(
        out,
        lambda tmp: compile_step(
            base + ["-shared", "-Xlinker", "-Bsymbolic", *srcs, "-o", tmp, "-lcudart"],
            "the CUDA kernel library",
        ),
    )


def build_cuda_case_runner(out_dir: Path, archs: Sequence[str] = ("native",)) -> Path:
    """nvcc -> asap_cuda_cases: the kernel test cases (tests/kernel_cases.py) on a GPU against
    the CPU reference, one process, no Python: what compute-sanitizer runs."""
    nvcc = find_nvcc()
    emulation_dir = ENGINES / "emulation"
    srcs = [
        str(KERNELS / s) for s in ("spatial_mlp_kernel.cu", "spatial_mlp_cpu.cpp", "spatial_mlp_validate.cpp")
    ] + [str(emulation_dir / "case_runner.cpp")]
    out = Path(out_dir) / "asap_cuda_cases"
    cmd = [nvcc, "-std=c++17", "-O2", "-lineinfo", "-DASAP_CASE_RUNNER_CUDA", f"-I{KERNELS}"]
    cmd += gencode_flags(archs)
    return atomic_output(out, lambda tmp: compile_step(cmd + [*srcs, "-o", tmp], "the CUDA case runner"))


def build_cpu_reference(out_dir: Path) -> Path:
    cxx = find_cxx()
    srcs = [str(KERNELS / s) for s in CPU_SOURCES]
    out = Path(out_dir) / CPU_LIBRARY
    return atomic_output(
        out,
        lambda tmp: compile_step(
            [
                cxx,
                "-std=c++17",
                "-O2",
                "-shared",
                "-fPIC",
                "-Wl,-Bsymbolic",
                f"-I{KERNELS}",
                *srcs,
                "-o",
                tmp,
            ],
            "the CPU reference library",
        ),
    )


def find_tensorrt(root: Optional[str]) -> Path:
    cands = [
        root,
        os.environ.get("TensorRT_ROOT"),
        os.environ.get("TENSORRT_ROOT"),
        "/usr",
        "/usr/local/tensorrt",
        "/opt/tensorrt",
    ]
    for c in cands:
        if c and (Path(c) / "include" / "NvInfer.h").is_file():
            return Path(c)
    raise MissingDependencyError(
        "TensorRT headers (NvInfer.h) not found: pass --tensorrt-root or set TensorRT_ROOT to the "
        "TensorRT install (the folder with include/ and lib/); the Python plugin "
        "(asap_deploy.engine.python_plugin) works without them"
    )


PLUGIN_LIBRARIES = {"static": "libasap_trt_plugin.so", "dynamic": "libasap_trt_plugin_dynamic.so"}


def build_trt_plugin(
    out_dir: Path,
    trt_root: Path,
    archs: Sequence[str] = DEFAULT_ARCHS,
    link: bool = True,
    registration: str = "static",
) -> Path:
    """The IPluginV3 plugin library: kernels + plugin class in one .so linked to libnvinfer."""
    nvcc = find_nvcc()
    srcs = [str(KERNELS / s) for s in KERNEL_SOURCES] + [str(PLUGIN / s) for s in PLUGIN_SOURCES]
    flags = [
        nvcc,
        "-std=c++17",
        "-O3",
        "-Xcompiler",
        "-fPIC",
        f"-I{KERNELS}",
        f"-I{PLUGIN}",
        f"-I{trt_root / 'include'}",
        "-Xcompiler",
        "-Wno-deprecated-declarations",
    ]
    flags += gencode_flags(archs)
    if registration == "static":
        flags.append("-DASAP_PLUGIN_STATIC_REGISTRATION")
    out = Path(out_dir) / PLUGIN_LIBRARIES[registration]
    if not link:
        with tempfile.TemporaryDirectory() as d:
            compile_step(flags + ["-c", srcs[-1], "-o", str(Path(d) / "p.o")], "the TensorRT plugin")
        return out
    libdirs = [
        d for d in (trt_root / "lib", trt_root / "lib64", trt_root / "lib" / "x86_64-linux-gnu") if d.is_dir()
    ]
    libs = [f"-L{d}" for d in libdirs] + ["-lnvinfer", "-lcudart"]
    return atomic_output(
        out,
        lambda tmp: compile_step(flags + ["-shared", *srcs, "-o", tmp] + libs, "the TensorRT plugin library"),
    )


def build_parser() -> argparse.ArgumentParser:
    from . import cli

    p = cli.ArgumentParser(prog="python -m asap_deploy.build_plugin", description=__doc__)
    p.add_argument("--out", type=Path, default=DEFAULT_DIR)
    p.add_argument(
        "--arch",
        nargs="+",
        default=list(DEFAULT_ARCHS),
        help="SM versions (default: 75 80 86 89 90, plus PTX of the newest), or "
        "`native` for this machine's GPU only",
    )
    p.add_argument("--tensorrt-root", help="TensorRT install with include/ and lib/")
    p.add_argument("--no-plugin", action="store_true", help="skip the TensorRT plugin")
    p.add_argument("--no-cpu", action="store_true", help="skip the CPU reference library")
    p.add_argument(
        "--emulate",
        action="store_true",
        help="build the CPU emulation of the kernels instead (no CUDA needed)",
    )
    p.add_argument("--trace", action="store_true", help="with --emulate: also the traced build")
    p.add_argument(
        "--sanitize",
        choices=["address", "thread"],
        action="append",
        default=[],
        help="with --emulate: also the case runner under this sanitizer",
    )
    return p


def run(args: argparse.Namespace) -> int:
    from .errors import UsageError
    from .paths import output_dir

    if (args.trace or args.sanitize) and not args.emulate:
        raise UsageError("--trace and --sanitize go with --emulate")
    output_dir(args.out, "library folder")
    if args.emulate:
        for flavour in ["plain"] + (["trace"] if args.trace else []) + args.sanitize:
            print(f"built {emulation.build_emulation(args.out, flavour)}")
        if not args.no_cpu:
            print(f"built {build_cpu_reference(args.out)}")
        return 0
    built = [build_kernel_library(args.out, args.arch)]
    print(f"built {built[-1]}")
    if not args.no_cpu:
        built.append(build_cpu_reference(args.out))
        print(f"built {built[-1]}")
    if not args.no_plugin:
        try:
            root = find_tensorrt(args.tensorrt_root)
        except MissingDependencyError as exc:
            print(f"skipped the TensorRT plugin: {exc}")
        else:
            for registration in PLUGIN_LIBRARIES:
                built.append(build_trt_plugin(args.out, root, args.arch, registration=registration))
                print(f"built {built[-1]}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    from . import cli

    return cli.entry(build_parser, run)(argv)


if __name__ == "__main__":
    sys.exit(main())
