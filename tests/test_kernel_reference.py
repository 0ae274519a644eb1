"""The kernel's index arithmetic without a GPU: engines/kernels/spatial_mlp_layout.h compiled for
the CPU, checked against MLPSpec and against the PyTorch pixelwise MLP; plus an nvcc compile."""
import shutil

import numpy as np
import pytest

from asap_deploy import build_plugin
from asap_deploy.fused_mlp import forward_cpu, load_library, make_shape
from asap_deploy.mlp_spec import MLPSpec
from asap_deploy.model.pixelwise_mlp import PixelwiseMLP
from conftest import one_hot_of, random_ids, random_params

SPECS = [MLPSpec(35, 16), MLPSpec(13, 32), MLPSpec(5, 64, 24, 3, 1), MLPSpec(3, 16, 64, 7, 3),
         MLPSpec(36, 32, 48, 2, 4)]


@pytest.fixture(scope="session")
def cpu_lib(tmp_path_factory):
    if not shutil.which("c++") and not shutil.which("g++"):
        pytest.skip("no C++ compiler")
    return load_library(build_plugin.build_cpu_reference(tmp_path_factory.mktemp("cpu")))


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_layout_matches_mlp_spec(cpu_lib, spec):
    shape = make_shape(spec)
    assert cpu_lib.asap_mlp_num_params(shape) == spec.num_params
    for l, layer in enumerate(spec.layers):
        assert cpu_lib.asap_mlp_bias_offset(shape, l) == layer.bias_offset
        assert cpu_lib.asap_mlp_weight_offset(shape, l) == layer.weight_offset


@pytest.mark.parametrize("spec", SPECS[:3], ids=str)
def test_encoding_matches_mlp_spec(cpu_lib, spec):
    shape = make_shape(spec)
    s = spec.downsampling
    tile = spec.positional_encoding_tile().numpy()
    got = np.array([[cpu_lib.asap_mlp_pe_value(shape, ch, p // s, p % s)
                     for ch in range(spec.pe_channels)] for p in range(s * s)])
    np.testing.assert_allclose(got, tile, atol=2e-6, rtol=0)


@pytest.mark.parametrize("spec", SPECS, ids=str)
@pytest.mark.parametrize("mode", ["one_hot", "label_ids"])
def test_cpu_reference_matches_pytorch(cpu_lib, spec, mode):
    label_nc = spec.in_channels - 1  # id 255 -> the last channel (a don't-care class)
    s = spec.downsampling
    ids = random_ids(spec, 2, 2 * s, 3 * s, seed=spec.num_params)
    params = random_params(spec, 2, 2, 3, seed=spec.num_params)
    # one extra trailing channel (like the LR-only edge map) that the MLP must skip
    one_hot = one_hot_of(ids, label_nc, spec.in_channels + 1)
    ref = PixelwiseMLP(spec)(one_hot[:, :spec.in_channels], params).numpy()
    x = one_hot.numpy() if mode == "one_hot" else ids.numpy()
    out = forward_cpu(cpu_lib, make_shape(spec, label_nc, mode), x, params.numpy())
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["one_hot", "label_ids"])
@pytest.mark.parametrize("hr_in,s", [(35, 16), (35, 32), (35, 64), (13, 32), (13, 64)])
def test_paper_settings_fit_the_tensor_core_path_on_sm75(cpu_lib, hr_in, s, mode):
    """RTX 2080 Ti (sm_75) allows 64 KiB of shared memory per block: every paper setting must fit,
    or it would silently fall back to the generic kernel."""
    assert cpu_lib.asap_tensor_core_smem_bytes(make_shape(MLPSpec(hr_in, s), hr_in, mode)) <= 65536


def test_cpu_reference_rejects_bad_resolution(cpu_lib):
    spec = SPECS[0]
    from asap_deploy.fused_mlp import KernelError
    with pytest.raises(KernelError, match="multiples of S"):
        forward_cpu(cpu_lib, make_shape(spec), np.zeros((1, 35, 16, 24), np.float32),
                    np.zeros((1, spec.num_params, 1, 1), np.float32))


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA toolkit) not installed")
def test_cuda_sources_compile():
    # two architectures keep CI fast; the build helper defaults to sm_75..sm_90 + PTX
    build_plugin.build_kernel_library("/tmp", archs=("75", "90"), compile_only=True)
