"""The emulator can fail: each deliberately planted kernel bug is caught.

A copy of the kernel source gets one textual mutation, is built into the emulator's case
runner (plain, or under ThreadSanitizer for the race) and run on a tensor-core case; the run
must fail with the emulator's (or TSan's) diagnosis. The unmutated copy passes (control)."""

import subprocess
from pathlib import Path

import pytest
from kernel_cases import CASES, write_case_file

from asap_deploy import emulation

CASE = next(c for c in CASES if c.name == "35x16-one_hot-tc")

MUTANTS = {
    # the lanes' layer-0 operand rows are read by the whole warp's MMAs
    "removed __syncwarp": (
        "        if (t + kWarps < steps) fetch(t + kWarps);\n        __syncwarp();\n",
        "        if (t + kWarps < steps) fetch(t + kWarps);\n",
        "thread",
        "ThreadSanitizer: data race",
    ),
    "too little shared memory": (
        "grid, dim3(kThreads), L.total, stream",
        "grid, dim3(kThreads), L.total - kAlign, stream",
        "cases",
        "shared memory written",
    ),
    "missing zero padding": (
        "        zero_rows(W0 + (in + pe) * kLd, L.k0 - in - pe, kLd);\n",
        "",
        "cases",
        "FAIL 35x16-one_hot-tc: path=tensor_cores max_abs=inf",
    ),
    "misaligned WMMA pointer": (
        "asap_smem + L.stage) + warp * kMma * kStageLd;",
        "asap_smem + L.stage) + warp * kMma * kStageLd + 4;",
        "cases",
        "is not 256-bit aligned",
    ),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("planted")
    write_case_file([CASE], d / "case.txt")
    return d


def _run(workdir: Path, name: str, source: str, flavour: str) -> subprocess.CompletedProcess:
    kernel = workdir / f"{name}.cu"
    kernel.write_text(source)
    runner = emulation.build_emulation(
        workdir, flavour, kernel=kernel, output=workdir / f"runner-{name}", cache=workdir / "objects"
    )
    return subprocess.run(
        [str(runner), str(workdir / "case.txt")],
        capture_output=True,
        text=True,
        timeout=600,
        env={"TSAN_OPTIONS": "halt_on_error=1", "PATH": "/usr/bin:/bin"},
    )


def test_unmutated_source_passes(workdir):
    proc = _run(workdir, "control", emulation.KERNEL_SOURCE.read_text(), "cases")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 of 1 cases passed" in proc.stdout


@pytest.mark.parametrize("bug", list(MUTANTS))
def test_planted_bug_is_caught(workdir, bug):
    old, new, flavour, diagnosis = MUTANTS[bug]
    source = emulation.KERNEL_SOURCE.read_text()
    assert source.count(old) == 1, f"the mutation site of {bug!r} moved: update MUTANTS"
    proc = _run(workdir, bug.replace(" ", "-").replace("_", ""), source.replace(old, new), flavour)
    assert proc.returncode != 0, f"{bug} went unnoticed:\n{proc.stdout}{proc.stderr}"
    assert diagnosis in proc.stdout + proc.stderr, proc.stdout + proc.stderr
