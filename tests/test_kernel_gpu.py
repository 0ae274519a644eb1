"""The CUDA kernel library on a GPU: the emulated suite's cases (tests/kernel_cases.py) against
the CPU reference and the PyTorch model, every path forced as in emulation by capping the
shared memory the kernels may use, plus the paper settings at full width, CUDA-graph capture and
the whole generator (FusedGenerator) against PyTorch. Needs a GPU and nvcc; not TensorRT."""

import os
import shutil
from pathlib import Path

import pytest
import torch
from conftest import small_config
from kernel_cases import CASES, case_inputs, check_case

from asap_deploy import build_plugin
from asap_deploy.demo import demo_generator
from asap_deploy.fused_generator import FusedGenerator
from asap_deploy.fused_mlp import FusedMLP, KernelError
from asap_deploy.metrics import psnr

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU (CUDA)"),
    pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA toolkit) not installed"),
]


@pytest.fixture(scope="session")
def kernel_lib(tmp_path_factory):
    """ASAP_KERNEL_LIBRARY names a library built already (benchmarks/gpu_evidence.py does)."""
    given = os.environ.get("ASAP_KERNEL_LIBRARY")
    if given:
        return Path(given)
    return build_plugin.build_kernel_library(tmp_path_factory.mktemp("kernels"), archs=("native",))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_case_on_gpu(kernel_lib, cpu_lib, monkeypatch, case):
    monkeypatch.setenv("ASAP_SPATIAL_MLP_SMEM_LIMIT", str(case.optin))
    assert check_case(case, kernel_lib, cpu_lib, "cuda") == case.path


def test_cuda_graph_capture(kernel_lib):
    case = next(c for c in CASES if c.name == "35x64-one_hot-tc")
    x, params, _, _ = case_inputs(case)
    fused = FusedMLP(case.spec, case.label_nc, case.mode, kernel_lib)
    x, params = x.cuda(), params.cuda()
    out = torch.empty((1, 3, x.shape[2], x.shape[3]), device="cuda", dtype=torch.float16)
    fused(x, params, out)
    expect = out.clone()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fused(x, params, out)
    out.zero_()
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, expect)


@pytest.mark.parametrize("label_nc,s,width", [(35, 16, 512), (35, 64, 2048), (13, 64, 1024)])
def test_fused_generator_matches_pytorch(kernel_lib, label_nc, s, width):
    """The whole generator, G in FP16 channels-last + the kernel, vs PyTorch FP32 (paper widths
    in the MLP, a small G)."""
    cfg = small_config(label_nc=label_nc, downsampling=s, hr_width=64)
    gen = demo_generator(cfg, seed=5).cuda().eval()
    label = torch.zeros(1, cfg.in_channels, 16 * s, width, device="cuda")
    label[:, 0] = 1
    with torch.no_grad():
        ref = gen(label).float()
        out = FusedGenerator(gen, "fp16", kernel_lib).cuda()(label).float()
    assert psnr(out.cpu().numpy(), ref.cpu().numpy()) >= 45.0


def test_bad_calls_raise(kernel_lib):
    case = CASES[0]
    x, params, _, _ = case_inputs(case)
    fused = FusedMLP(case.spec, case.label_nc, case.mode, kernel_lib)
    with pytest.raises(KernelError, match="params_channels"):
        fused(x.cuda(), params[:, :-1].cuda())
    with pytest.raises(KernelError, match="batch_match"):
        fused(torch.cat([x, x]).cuda(), params.cuda())
    with pytest.raises(KernelError, match="needs CUDA tensors"):
        fused(x, params)
