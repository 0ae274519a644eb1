"""The fused kernel's test cases: one list for the emulated suite (CPU, every CI run), the
sanitizer runs of the emulation (case runner executables) and the GPU tests.

Each case names the kernel path it must take; the shared-memory opt-in limit it runs under
(`optin`, bytes: 65536 is sm_75's, 232448 sm_90's) is what selects the path, exactly as a GPU's
limit would. FP32 results must match the CPU reference within 1e-5, FP16 within 2e-3 (the
reference is fed the same FP16-rounded inputs).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterable, List

import torch
from conftest import one_hot_of, random_ids, random_params

from asap_deploy.mlp_spec import MLPSpec

SM75, SM90 = 65536, 232448
#: (label channels, S): the paper's five settings (Cityscapes 256x512 / 512x1024 / 1024x2048,
#: facades 512 / 1024)
PAPER = [(35, 16), (35, 32), (35, 64), (13, 32), (13, 64)]


@dataclass(frozen=True)
class KernelCase:
    name: str
    in_channels: int
    downsampling: int
    hidden: int = 64
    depth: int = 5
    out: int = 3
    mode: str = "one_hot"  # or "label_ids"
    dtype: str = "float16"  # or "float32"
    layout: str = "nhwc"  # params grid: "nchw" or "nhwc" (channels-last)
    pitch_pad: int = 0  # nhwc: elements after each cell's parameters (kHWC8 padding)
    batch: int = 1
    gh: int = 1
    gw: int = 1
    extra: int = 0  # one-hot: channels after the label channels (e.g. edges)
    ids: str = "normal"  # "wide": also ids without a channel (negative, too large)
    optin: int = SM75
    path: str = "tensor_cores"
    seed: int = 1

    @property
    def spec(self) -> MLPSpec:
        return MLPSpec(self.in_channels, self.downsampling, self.hidden, self.depth, self.out)

    @property
    def tolerance(self) -> float:
        return 2e-3 if self.dtype == "float16" else 1e-5

    @property
    def label_nc(self) -> int:
        return self.in_channels - 1  # id 255 -> the last channel, a don't-care class

    def line(self) -> str:
        """The case runner's format (engines/emulation/case_runner.cpp)."""
        d = asdict(self)
        keys = {"in_channels": "in", "downsampling": "S"}
        return " ".join(f"{keys.get(k, k)}={v}" for k, v in d.items()) + f" tol={self.tolerance}"


def _pitch_pad(spec: MLPSpec) -> int:
    """TensorRT's kHWC8 pads each cell's channels to a multiple of 8."""
    return -spec.num_params % 8


def paper_cases() -> List[KernelCase]:
    out = []
    for c, s in PAPER:
        for mode in ("one_hot", "label_ids"):
            base = KernelCase(f"{c}x{s}-{mode}", c, s, mode=mode)
            pad = _pitch_pad(base.spec)
            out += [
                replace(base, name=base.name + "-tc", pitch_pad=pad),
                replace(base, name=base.name + "-fp16-shared", optin=49152, path="generic_shared"),
                replace(
                    base, name=base.name + "-fp16-global", optin=32768, path="generic_global", layout="nchw"
                ),
                replace(
                    base, name=base.name + "-fp32-shared", dtype="float32", optin=SM90, path="generic_shared"
                ),
                replace(base, name=base.name + "-fp32-global", dtype="float32", path="generic_global"),
            ]
    return out


def odd_cases() -> List[KernelCase]:
    tc = KernelCase("odd", 35, 16)
    generic = replace(tc, dtype="float32", path="generic_shared", optin=SM90)
    return [
        replace(tc, name="batch3", batch=3, gw=2),
        replace(tc, name="gh2-gw1-nchw", gh=2, layout="nchw"),
        replace(generic, name="gh1-gw3-fp32", gw=3),
        replace(tc, name="extra-channel", extra=1),
        replace(generic, name="extra-channel-fp32", extra=2),
        replace(tc, name="ids-wide", mode="label_ids", ids="wide"),
        replace(tc, name="ids-wide-onehot", ids="wide"),
        replace(generic, name="ids-wide-fp32", mode="label_ids", ids="wide"),
        replace(tc, name="k0-above-64", in_channels=50, optin=SM90),
        replace(tc, name="k0-above-64-ids", in_channels=50, mode="label_ids", optin=SM90),
        replace(tc, name="depth2", in_channels=20, downsampling=32, depth=2),
        replace(tc, name="out16", out=16),
        replace(tc, name="out17", out=17, path="generic_shared", optin=SM90),
        replace(generic, name="hidden32", hidden=32, dtype="float16"),
        replace(generic, name="hidden96", hidden=96),
        replace(generic, name="hidden96-global", hidden=96, optin=49152, path="generic_global"),
        replace(generic, name="S8", downsampling=8, gw=2),
        replace(generic, name="S8-fp16", downsampling=8, dtype="float16"),
        replace(tc, name="nhwc-unaligned-pitch", pitch_pad=1),
        replace(generic, name="nhwc-fp32-pitch", pitch_pad=4),
        replace(tc, name="nchw-tc", layout="nchw"),
    ]


CASES: List[KernelCase] = paper_cases() + odd_cases()
#: what the TSan run covers (ThreadSanitizer is the slowest build): the tensor-core kernel at
#: every paper setting in both input modes, and one generic case per path and type
TSAN_CASES = [c for c in CASES if c.name.endswith("-tc")] + [
    c
    for c in CASES
    if c.name in ("35x16-one_hot-fp16-shared", "13x32-label_ids-fp32-global", "S8-fp16", "hidden96-global")
]


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
        one_hot = torch.cat(
            [one_hot, torch.randint(0, 2, (case.batch, case.extra, h, w), generator=g).float()], 1
        )
    params = random_params(spec, case.batch, case.gh, case.gw, seed=case.seed)
    dt = TORCH_DTYPES[case.dtype]
    params, one_hot = params.to(dt).float(), one_hot.to(dt).float()
    if case.layout == "nhwc":  # a channels-last grid, each cell padded with NaN (never read)
        pitch = spec.num_params + case.pitch_pad
        store = torch.full((case.batch, case.gh, case.gw, pitch), math.nan, dtype=dt)
        store[..., : spec.num_params] = params.permute(0, 2, 3, 1).to(dt)
        kparams = store[..., : spec.num_params].permute(0, 3, 1, 2)
    else:
        kparams = params.to(dt)
    x = ids if case.mode == "label_ids" else one_hot.to(dt)
    return x, kparams, one_hot, params


def check_case(case: KernelCase, library, cpu_lib, device: str = "cpu") -> str:
    """Run ``case`` through the kernel library on ``device`` (the emulation build: "cpu") and
    compare with the CPU reference and the PyTorch model; returns the path the kernel took."""
    import numpy as np

    from asap_deploy.fused_mlp import FusedMLP, forward_cpu, make_shape
    from asap_deploy.model.pixelwise_mlp import PixelwiseMLP

    x, kparams, one_hot, params = case_inputs(case)
    fused = FusedMLP(case.spec, case.label_nc, case.mode, library)
    x, kparams = x.to(device), kparams.to(device)
    path = fused.path(x, kparams)
    out = fused(x, kparams).float().cpu()
    assert not out.isnan().any(), "NaN in the output: the kernel read memory it never wrote"
    shape = make_shape(case.spec, case.label_nc, case.mode)
    ref_in = x.cpu().numpy() if case.mode == "label_ids" else one_hot.numpy()
    ref = forward_cpu(cpu_lib, shape, ref_in, params.numpy())
    err = np.abs(out.numpy() - ref).max()
    assert err <= case.tolerance, f"max abs error {err:.3g} vs the CPU reference ({path})"
    model = PixelwiseMLP(case.spec)(one_hot[:, : case.in_channels], params).numpy()
    err_model = np.abs(out.numpy() - model).max()
    assert err_model <= case.tolerance + 2e-6, f"max abs error {err_model:.3g} vs the PyTorch model ({path})"
    return path


def write_case_file(cases: Iterable[KernelCase], path: Path) -> Path:
    path.write_text("".join(c.line() + "\n" for c in cases))
    return path
