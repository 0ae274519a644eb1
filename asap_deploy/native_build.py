"""Compiler plumbing shared by the native builds (kernel library, plugin, emulation): finding
the compilers, running them with readable errors, and writing outputs atomically."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, List

from .errors import AsapDeployError, MissingDependencyError

ENGINES = Path(__file__).resolve().parents[1] / "engines"
KERNELS = ENGINES / "kernels"


class BuildError(AsapDeployError):
    pass


def find_nvcc() -> str:
    for cand in (os.environ.get("NVCC"), shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if cand and Path(cand).is_file():
            return cand
    raise MissingDependencyError(
        "nvcc not found: install the CUDA toolkit (12.x or 13.x) or set NVCC=/path/to/nvcc"
    )


def find_cxx() -> str:
    for cand in (os.environ.get("CXX"), shutil.which("c++"), shutil.which("g++"), shutil.which("clang++")):
        if cand:
            return cand
    raise MissingDependencyError("no C++ compiler found: install g++ or set CXX")


def run(cmd: List[str], what: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"building {what} failed:\n$ {' '.join(cmd)}\n{proc.stderr.strip()}")
    return proc.stderr


def atomic_output(out: Path, build: Callable[[str], object]) -> Path:
    """Build into a temporary file beside ``out`` and rename it into place on success."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        build(tmp)
        os.chmod(tmp, 0o755 & ~_umask())
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
