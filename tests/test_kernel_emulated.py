"""The fused kernel's exact CUDA source, run on the CPU by the emulation build, against the CPU
reference and the PyTorch model: every path (tensor cores, generic with weights in shared or
global memory) x FP32/FP16 x one-hot/ids at the paper's settings, and the odd cases
(tests/kernel_cases.py)."""

import pytest
from kernel_cases import CASES, check_case


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_emulated_kernel(emu_lib, cpu_lib, monkeypatch, case):
    monkeypatch.setenv("ASAP_EMU_SMEM_OPTIN", str(case.optin))
    assert check_case(case, emu_lib, cpu_lib) == case.path
