"""The kernel's index arithmetic without a GPU: engines/kernels/spatial_mlp_layout.h compiled for
the CPU, checked against MLPSpec and against the PyTorch pixelwise MLP; the shared-memory plan's
bank discipline; plus an nvcc compile. A missing C++ compiler fails these tests (it does not
skip them): CI must build the reference."""

import shutil

import numpy as np
import pytest
from conftest import one_hot_of, random_ids, random_params

from asap_deploy import build_plugin
from asap_deploy.fused_mlp import forward_cpu, make_shape
from asap_deploy.mlp_spec import MLPSpec
from asap_deploy.model.pixelwise_mlp import PixelwiseMLP

SPECS = [
    MLPSpec(35, 16),
    MLPSpec(13, 32),
    MLPSpec(5, 64, 24, 3, 1),
    MLPSpec(3, 16, 64, 7, 3),
    MLPSpec(36, 32, 48, 2, 4),
]


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
    got = np.array(
        [
            [cpu_lib.asap_mlp_pe_value(shape, ch, p // s, p % s) for ch in range(spec.pe_channels)]
            for p in range(s * s)
        ]
    )
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
    ref = PixelwiseMLP(spec)(one_hot[:, : spec.in_channels], params).numpy()
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

    with pytest.raises(
        KernelError, match=r"\[resolution\] the label width 24 is not a positive multiple of S = 16"
    ):
        forward_cpu(
            cpu_lib,
            make_shape(spec),
            np.zeros((1, 35, 16, 24), np.float32),
            np.zeros((1, spec.num_params, 1, 1), np.float32),
        )


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA toolkit) not installed")
def test_cuda_sources_compile():
    # two architectures keep CI fast; the build helper defaults to sm_75..sm_90 + PTX
    build_plugin.build_kernel_library("/tmp", archs=("75", "90"), compile_only=True)


def test_channels_last_params_give_the_same_image(cpu_lib):
    spec = SPECS[0]
    s = spec.downsampling
    ids = random_ids(spec, 2, 2 * s, 3 * s, seed=7)
    params = random_params(spec, 2, 2, 3, seed=7)
    one_hot = one_hot_of(ids, spec.in_channels - 1, spec.in_channels).numpy()
    shape = make_shape(spec)
    nchw = forward_cpu(cpu_lib, shape, one_hot, params.numpy())
    padded = np.full((2, 2, 3, spec.num_params + 5), np.nan, np.float32)  # kHWC8-like padding
    padded[..., : spec.num_params] = params.permute(0, 2, 3, 1).numpy()
    view = padded[..., : spec.num_params].transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(forward_cpu(cpu_lib, shape, one_hot, view), nchw)


def test_shared_memory_pitches_are_bank_conflict_free():
    """Every 16-byte row of an 8x8 ldmatrix phase must fall on its own group of 4 banks: a tile
    pitch of 16 * odd bytes (the skew), as spatial_mlp_layout.h promises."""
    import re

    header = (build_plugin.KERNELS / "spatial_mlp_layout.h").read_text()
    consts = dict(re.findall(r"constexpr int (k\w+) = (\d+);", header))
    hw, skew = int(consts["kHW"]), int(consts["kSkew"])
    for pitch_halves in (hw + skew, 64 + skew, 80 + skew, 128 + skew):  # kLd, act_ld for k0 64..128
        groups = {(r * pitch_halves * 2 // 16) % 8 for r in range(8)}
        assert len(groups) == 8, pitch_halves
