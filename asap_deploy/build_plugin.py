"""``python -m asap_deploy.build_plugin``: compile the fused MLP kernel library and the TensorRT plugin.

Produces, in ``--out`` (default ``build/engines``):
  libasap_spatial_mlp.so      CUDA kernels + C API (nvcc only; used by the Python plugin and tests)
  libasap_spatial_mlp_cpu.so  CPU reference of the same header (host compiler only)
  libasap_trt_plugin.so       IPluginV3 TensorRT plugin, registers itself when loaded (ctypes,
                              polygraphy --plugins, trtexec --staticPlugins, C++ apps linking it)
  libasap_trt_plugin_dynamic.so  the same exporting getCreators/setLoggerFinder instead
                              (IPluginRegistry.load_library, trtexec --dynamicPlugins)
  (both plugin libraries need TensorRT headers and libnvinfer)

CMake (``engines/CMakeLists.txt``) builds the same targets; this helper exists so a Python user
needs nothing but nvcc. Compilation goes to a temporary file renamed into place on success.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence

from .errors import AsapDeployError, MissingDependencyError
from .fused_mlp import DEFAULT_DIR, KERNEL_LIBRARY

ENGINES = Path(__file__).resolve().parents[1] / "engines"
KERNELS = ENGINES / "kernels"
PLUGIN = ENGINES / "plugin" / "spatialMLPPlugin"
#: sm_75 (RTX 2080 Ti) .. sm_90 (H100), plus PTX for newer GPUs
DEFAULT_ARCHS = ("75", "80", "86", "89", "90")
KERNEL_SOURCES = ("spatial_mlp_kernel.cu", "status.cpp")
CPU_SOURCES = ("spatial_mlp_cpu.cpp", "status.cpp")
PLUGIN_SOURCES = ("spatialMLPPlugin.cpp",)


class BuildError(AsapDeployError):
    pass


def find_nvcc() -> str:
    for cand in (os.environ.get("NVCC"), shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if cand and Path(cand).is_file():
            return cand
    raise MissingDependencyError("nvcc not found: install the CUDA toolkit (12.x or 13.x) or set "
                                 "NVCC=/path/to/nvcc")


def find_cxx() -> str:
    for cand in (os.environ.get("CXX"), shutil.which("c++"), shutil.which("g++"),
                 shutil.which("clang++")):
        if cand:
            return cand
    raise MissingDependencyError("no C++ compiler found: install g++ or set CXX")


def gencode_flags(archs: Sequence[str]) -> List[str]:
    flags = []
    for a in archs:
        flags += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
    last = max(archs, key=int)
    return flags + ["-gencode", f"arch=compute_{last},code=compute_{last}"]


def _run(cmd: List[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"building {what} failed:\n$ {' '.join(cmd)}\n{proc.stderr.strip()}")


def _atomic(out: Path, build) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        build(tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def build_kernel_library(out_dir: Path, archs: Sequence[str] = DEFAULT_ARCHS,
                         compile_only: bool = False) -> Path:
    """nvcc -> libasap_spatial_mlp.so (or, with compile_only, just check that it compiles)."""
    nvcc = find_nvcc()
    srcs = [str(KERNELS / s) for s in KERNEL_SOURCES]
    base = [nvcc, "-std=c++17", "-O3", "-Xcompiler", "-fPIC", f"-I{KERNELS}"] + gencode_flags(archs)
    out = Path(out_dir) / KERNEL_LIBRARY
    if compile_only:
        with tempfile.TemporaryDirectory() as d:
            _run(base + ["-c", srcs[0], "-o", str(Path(d) / "k.o")], "the CUDA kernels")
        return out
    return _atomic(out, lambda tmp: _run(base + ["-shared", *srcs, "-o", tmp, "-lcudart"],
                                         "the CUDA kernel library"))


def build_cpu_reference(out_dir: Path) -> Path:
    cxx = find_cxx()
    srcs = [str(KERNELS / s) for s in CPU_SOURCES]
    out = Path(out_dir) / "libasap_spatial_mlp_cpu.so"
    return _atomic(out, lambda tmp: _run(
        [cxx, "-std=c++17", "-O2", "-shared", "-fPIC", f"-I{KERNELS}", *srcs, "-o", tmp],
        "the CPU reference library"))


def find_tensorrt(root: Optional[str]) -> Path:
    cands = [root, os.environ.get("TensorRT_ROOT"), os.environ.get("TENSORRT_ROOT"), "/usr",
             "/usr/local/tensorrt", "/opt/tensorrt"]
    for c in cands:
        if c and (Path(c) / "include" / "NvInfer.h").is_file():
            return Path(c)
    raise MissingDependencyError(
        "TensorRT headers (NvInfer.h) not found: pass --tensorrt-root or set TensorRT_ROOT to the "
        "TensorRT install (the folder with include/ and lib/); the Python plugin "
        "(asap_deploy.engine.python_plugin) works without them")


PLUGIN_LIBRARIES = {"static": "libasap_trt_plugin.so", "dynamic": "libasap_trt_plugin_dynamic.so"}


def build_trt_plugin(out_dir: Path, trt_root: Path, archs: Sequence[str] = DEFAULT_ARCHS,
                     link: bool = True, registration: str = "static") -> Path:
    """The IPluginV3 plugin library: kernels + plugin class in one .so linked to libnvinfer."""
    nvcc = find_nvcc()
    srcs = [str(KERNELS / s) for s in KERNEL_SOURCES] + [str(PLUGIN / s) for s in PLUGIN_SOURCES]
    flags = [nvcc, "-std=c++17", "-O3", "-Xcompiler", "-fPIC", f"-I{KERNELS}", f"-I{PLUGIN}",
             f"-I{trt_root / 'include'}", "-Xcompiler", "-Wno-deprecated-declarations"]
    flags += gencode_flags(archs)
    if registration == "static":
        flags.append("-DASAP_PLUGIN_STATIC_REGISTRATION")
    out = Path(out_dir) / PLUGIN_LIBRARIES[registration]
    if not link:
        with tempfile.TemporaryDirectory() as d:
            _run(flags + ["-c", srcs[-1], "-o", str(Path(d) / "p.o")], "the TensorRT plugin")
        return out
    libdirs = [d for d in (trt_root / "lib", trt_root / "lib64", trt_root / "lib" / "x86_64-linux-gnu")
               if d.is_dir()]
    libs = [f"-L{d}" for d in libdirs] + ["-lnvinfer", "-lcudart"]
    return _atomic(out, lambda tmp: _run(flags + ["-shared", *srcs, "-o", tmp] + libs,
                                         "the TensorRT plugin library"))


def build_parser() -> argparse.ArgumentParser:
    from . import cli

    p = cli.ArgumentParser(prog="python -m asap_deploy.build_plugin", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=DEFAULT_DIR)
    p.add_argument("--arch", nargs="+", default=list(DEFAULT_ARCHS),
                   help="SM versions (default: 75 80 86 89 90, plus PTX of the newest)")
    p.add_argument("--tensorrt-root", help="TensorRT install with include/ and lib/")
    p.add_argument("--no-plugin", action="store_true", help="skip the TensorRT plugin")
    p.add_argument("--no-cpu", action="store_true", help="skip the CPU reference library")
    return p


def run(args: argparse.Namespace) -> int:
    from .paths import output_dir

    output_dir(args.out, "library folder")
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
                built.append(build_trt_plugin(args.out, root, args.arch,
                                              registration=registration))
                print(f"built {built[-1]}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    from . import cli

    return cli.entry(build_parser, run)(argv)


if __name__ == "__main__":
    sys.exit(main())
