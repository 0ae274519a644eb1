"""engines/CMakeLists.txt builds what ``python -m asap_deploy.build_plugin`` builds: the same
sources, and libraries with the same C API (a user who prefers CMake gets the same kernels)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from asap_deploy import build_plugin

ROOT = Path(__file__).resolve().parents[1]
CMAKE_LISTS = ROOT / "engines" / "CMakeLists.txt"


def _cmake_sources(target: str) -> set:
    """The ${KERNELS}/... and ${PLUGIN}/... sources of one add_library() call."""
    call = re.search(
        rf"add_library\(\$?\{{?{re.escape(target)}\}}? SHARED ([^)]*)\)", CMAKE_LISTS.read_text()
    )
    assert call, f"no add_library({target} ...) in {CMAKE_LISTS}"
    return {Path(tok).name for tok in call.group(1).split()}


def test_cmake_lists_the_build_helpers_sources():
    assert _cmake_sources("asap_spatial_mlp") == set(build_plugin.KERNEL_SOURCES)
    assert _cmake_sources("asap_spatial_mlp_cpu") == set(build_plugin.CPU_SOURCES)
    assert _cmake_sources("target") == set(build_plugin.KERNEL_SOURCES + build_plugin.PLUGIN_SOURCES)
    for name in build_plugin.KERNEL_SOURCES + build_plugin.CPU_SOURCES:
        assert (build_plugin.KERNELS / name).is_file(), name


def _exported(lib: Path) -> set:
    out = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True, check=True)
    return {line.split()[-1] for line in out.stdout.splitlines() if line.split()[-1].startswith("asap_")}


@pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("nm") is None, reason="needs cmake and nm")
def test_cmake_builds_the_kernel_libraries_with_the_same_api(tmp_path, cpu_lib):
    try:
        from asap_deploy.native_build import find_nvcc

        nvcc = find_nvcc()
    except Exception as exc:  # the CMake project declares CUDA: without nvcc it cannot configure
        pytest.skip(f"needs nvcc: {exc}")
    build = tmp_path / "cmake"
    configure = ["cmake", "-S", str(ROOT / "engines"), "-B", str(build), "-DCMAKE_CUDA_ARCHITECTURES=75"]
    r = subprocess.run([*configure, f"-DCMAKE_CUDA_COMPILER={nvcc}"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    targets = ["--target", "asap_spatial_mlp", "asap_spatial_mlp_cpu"]
    r = subprocess.run(["cmake", "--build", str(build), "-j2", *targets], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    helper_api = _exported(Path(cpu_lib._name))
    assert "asap_spatial_mlp_validate" in helper_api
    assert _exported(build / "libasap_spatial_mlp_cpu.so") == helper_api
    assert _exported(build / "libasap_spatial_mlp.so") >= {
        "asap_spatial_mlp_forward",
        "asap_spatial_mlp_validate",
    }
