"""The fused kernel's exact CUDA source, run on the CPU by the emulation build, against the CPU
reference and the PyTorch model: every path (tensor cores, generic with weights in shared or
global memory) x FP32/FP16 x one-hot/ids at the paper's settings, and the odd cases
(tests/kernel_cases.py)."""
import math

import numpy as np
import pytest
import torch

from asap_deploy.fused_mlp import FusedMLP, forward_cpu, make_shape
from asap_deploy.model.pixelwise_mlp import PixelwiseMLP
from conftest import one_hot_of, random_ids, random_params
from kernel_cases import CASES, KernelCase

TORCH_DTYPES = {"float16": torch.float16, "float32": torch.float32}


def case_inputs(case: KernelCase):
    """(kernel input, params in the case's layout, float32 one-hot, float32 params) with the
    FP16 cases' values already rounded to FP16, so references see what the kernel sees."""
    spec, s = case.spec, case.downsampling
    h, w = case.gh * s, case.gw * s
    ids = random_ids(spec, case.batch, h, w, seed=case.seed)
    if case.ids == "wide":  # ids with no channel: negative, above in_channels, far above
        g = torch.Generator().manual_seed(case.seed)
        odd = torch.tensor([-1, -7, spec.in_channels, spec.in_channels + 5, 1000], dtype=torch.int32)
        pick = torch.randint(0, 8, ids.shape, generator=g) == 0
        ids = torch.where(pick, odd[torch.randint(0, len(odd), ids.shape, generator=g)], ids)
    one_hot = one_hot_of(ids, case.label_nc, spec.in_channels)
    if case.extra:
        g = torch.Generator().manual_seed(case.seed + 1)
        one_hot = torch.cat([one_hot, torch.randint(0, 2, (case.batch, case.extra, h, w), generator=g).float()], 1)
    params = random_params(spec, case.batch, case.gh, case.gw, seed=case.seed)
    dt = TORCH_DTYPES[case.dtype]
    params, one_hot = params.to(dt).float(), one_hot.to(dt).float()
    if case.layout == "nhwc":  # a channels-last grid, each cell padded with NaN (never read)
        pitch = spec.num_params + case.pitch_pad
        store = torch.full((case.batch, case.gh, case.gw, pitch), math.nan, dtype=dt)
        store[..., :spec.num_params] = params.permute(0, 2, 3, 1).to(dt)
        kparams = store[..., :spec.num_params].permute(0, 3, 1, 2)
    else:
        kparams = params.to(dt)
    x = ids if case.mode == "label_ids" else one_hot.to(dt)
    return x, kparams, one_hot, params


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_emulated_kernel(emu_lib, cpu_lib, monkeypatch, case):
    monkeypatch.setenv("ASAP_EMU_SMEM_OPTIN", str(case.optin))
    x, kparams, one_hot, params = case_inputs(case)
    fused = FusedMLP(case.spec, case.label_nc, case.mode, emu_lib)
    assert fused.path(x, kparams) == case.path
    out = fused(x, kparams).float()
    assert not out.isnan().any(), "NaN in the output: the kernel read memory it never wrote"

    shape = make_shape(case.spec, case.label_nc, case.mode)
    ref_in = x.numpy() if case.mode == "label_ids" else one_hot.numpy()
    ref = forward_cpu(cpu_lib, shape, ref_in, params.numpy())
    err = np.abs(out.numpy() - ref).max()
    assert err <= case.tolerance, f"max abs error {err:.3g} vs the CPU reference"

    model = PixelwiseMLP(case.spec)(one_hot[:, :case.in_channels], params).numpy()
    err_model = np.abs(out.numpy() - model).max()
    assert err_model <= case.tolerance + 2e-6, f"max abs error {err_model:.3g} vs the PyTorch model"
