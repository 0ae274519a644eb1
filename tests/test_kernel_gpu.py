"""The CUDA kernel against the PyTorch model on a GPU: FP32 max abs <= 1e-4, FP16 PSNR >= 45 dB,
at the paper's configurations, both input modes, the tensor-core and the generic paths."""
import shutil

import pytest
import torch

from asap_deploy import build_plugin
from asap_deploy.fused_mlp import FusedMLP
from asap_deploy.metrics import psnr
from asap_deploy.mlp_spec import MLPSpec
from asap_deploy.model.pixelwise_mlp import PixelwiseMLP
from conftest import one_hot_of, random_ids, random_params

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU (CUDA)"),
    pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA toolkit) not installed"),
]

# (label channels, S, hidden, depth, out): the paper's five settings, then generic-path shapes
CONFIGS = [(35, 16, 64, 5, 3), (35, 32, 64, 5, 3), (35, 64, 64, 5, 3), (13, 32, 64, 5, 3),
           (13, 64, 64, 5, 3), (20, 32, 64, 2, 3), (7, 16, 32, 4, 3), (5, 32, 96, 3, 1)]


@pytest.fixture(scope="session")
def kernel_lib(tmp_path_factory):
    major, minor = torch.cuda.get_device_capability()
    out = tmp_path_factory.mktemp("kernels")
    return build_plugin.build_kernel_library(out, archs=(f"{major}{minor}",))


def _case(cfg, mode, batch=2, cells=(2, 3)):
    c, s, hw, depth, oc = cfg
    spec = MLPSpec(c, s, hw, depth, oc)
    label_nc = c - 1
    ids = random_ids(spec, batch, cells[0] * s, cells[1] * s, seed=s + c)
    one_hot = one_hot_of(ids, label_nc, c + 1)  # + a trailing channel the MLP skips
    params = random_params(spec, batch, *cells, seed=c)
    ref = PixelwiseMLP(spec)(one_hot[:, :c], params)
    x = one_hot if mode == "one_hot" else ids
    return spec, label_nc, x, params, ref


@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
@pytest.mark.parametrize("mode", ["one_hot", "label_ids"])
def test_fp32_matches_pytorch(kernel_lib, cfg, mode):
    spec, label_nc, x, params, ref = _case(cfg, mode)
    fused = FusedMLP(spec, label_nc, mode, kernel_lib)
    out = fused(x.cuda(), params.cuda()).cpu()
    assert (out - ref).abs().max().item() <= 1e-4


@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
@pytest.mark.parametrize("mode", ["one_hot", "label_ids"])
def test_fp16_psnr(kernel_lib, cfg, mode):
    spec, label_nc, x, params, ref = _case(cfg, mode)
    fused = FusedMLP(spec, label_nc, mode, kernel_lib)
    xin = x.cuda() if mode == "label_ids" else x.cuda().half()
    out = fused(xin, params.cuda().half()).float().cpu()
    assert psnr(out.numpy(), ref.numpy()) >= 45.0
    assert fused.uses_tensor_cores(torch.float16) == (spec.hidden_width == 64)


def test_cuda_graph_capture(kernel_lib):
    spec, label_nc, x, params, _ = _case(CONFIGS[2], "one_hot", batch=1)
    fused = FusedMLP(spec, label_nc, "one_hot", kernel_lib)
    x, params = x.cuda().half(), params.cuda().half()
    out = torch.empty((1, 3, x.shape[2], x.shape[3]), device="cuda", dtype=torch.float16)
    fused(x, params, out)  # first call outside capture (sets the shared-memory attribute)
    expect = out.clone()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fused(x, params, out)
    out.zero_()
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, expect)


def test_bad_shapes_raise(kernel_lib):
    from asap_deploy.fused_mlp import KernelError
    spec, label_nc, x, params, _ = _case(CONFIGS[0], "one_hot")
    fused = FusedMLP(spec, label_nc, "one_hot", kernel_lib)
    with pytest.raises(KernelError, match="params must be"):
        fused(x.cuda(), params[:, :-1].cuda())
    with pytest.raises(KernelError, match="input must be"):
        fused(x.cuda().half(), params.cuda())
