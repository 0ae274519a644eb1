"""The emulated kernel suite (tests/kernel_cases.py) under AddressSanitizer + UndefinedBehavior-
Sanitizer (every case) and ThreadSanitizer (the paper settings), through the case runner
executable: sanitizer runtimes cannot be loaded into the Python process."""

import os
import subprocess

import pytest
from kernel_cases import CASES, TSAN_CASES, write_case_file

from asap_deploy import emulation

SANITIZERS = {
    "address": (
        CASES,
        {
            "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1",
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
        },
    ),
    "thread": (TSAN_CASES, {"TSAN_OPTIONS": "halt_on_error=1:second_deadlock_stack=1"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("sanitizer", list(SANITIZERS))
def test_emulated_suite_under_sanitizer(tmp_path, sanitizer):
    cases, options = SANITIZERS[sanitizer]
    runner = emulation.build_emulation(tmp_path, sanitizer)
    case_file = write_case_file(cases, tmp_path / "cases.txt")
    env = dict(os.environ, **options)
    env.pop("LD_PRELOAD", None)
    proc = subprocess.run(
        [str(runner), str(case_file)], capture_output=True, text=True, env=env, timeout=1200
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert f"{len(cases)} of {len(cases)} cases passed" in proc.stdout, out[-3000:]
    assert "Sanitizer" not in proc.stderr, proc.stderr[-6000:]
