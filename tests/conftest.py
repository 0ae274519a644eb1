import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from asap_deploy.config import GeneratorConfig
from asap_deploy.demo import demo_generator


def small_config(**kw) -> GeneratorConfig:
    """Paper structure at toy widths: fast on a CPU, same code paths."""
    base = dict(label_nc=5, downsampling=32, lr_width=8, lr_max_width=16, lr_depth=2, hr_width=16)
    base.update(kw)
    return GeneratorConfig(**base)


@pytest.fixture
def small_generator():
    return demo_generator(small_config(), seed=3)


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


def random_params(spec, batch: int, gh: int, gw: int, seed: int = 0) -> torch.Tensor:
    """A parameter grid like a trained model's: fan-in scaled weights, small biases, so errors
    are not amplified 10x per layer (what the tolerances assume)."""
    g = torch.Generator().manual_seed(seed)
    p = torch.empty(batch, spec.num_params, gh, gw)
    for layer in spec.layers:
        p[:, layer.bias_offset : layer.bias_offset + layer.c_out] = 0.1 * torch.randn(
            batch, layer.c_out, gh, gw, generator=g
        )
        p[:, layer.weight_offset : layer.end] = (
            torch.randn(batch, layer.c_in * layer.c_out, gh, gw, generator=g) / layer.c_in**0.5
        )
    return p


def random_ids(spec, batch: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Class ids in [0, in_channels], with the last id written as 255 (the don't-care id)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, spec.in_channels + 2, (batch, 1, h, w), generator=g, dtype=torch.int32)
    ids[ids == spec.in_channels + 1] = 255
    return ids


def one_hot_of(ids: torch.Tensor, label_nc: int, channels: int) -> torch.Tensor:
    mapped = torch.where(ids == 255, torch.full_like(ids, label_nc), ids)
    return (mapped == torch.arange(channels, dtype=ids.dtype).view(1, -1, 1, 1)).float()


@pytest.fixture(scope="session")
def emu_lib(tmp_path_factory):
    """The emulation build of the kernel library (the exact CUDA source, on the CPU)."""
    from asap_deploy import emulation

    return emulation.build_emulation(tmp_path_factory.mktemp("emu"))


@pytest.fixture(scope="session")
def cpu_lib(tmp_path_factory):
    from asap_deploy import build_plugin
    from asap_deploy.fused_mlp import load_library

    return load_library(build_plugin.build_cpu_reference(tmp_path_factory.mktemp("cpu")))


@pytest.fixture(scope="session", autouse=True)
def _hash_cache_in_tmp(tmp_path_factory):
    """The SHA-256 cache of export files (asap_deploy.hash_cache) goes to a folder of this run,
    not the user's ~/.cache; child processes inherit it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASAP_DEPLOY_CACHE_DIR", str(tmp_path_factory.mktemp("hash-cache")))
        yield


def export_for_test(
    ckpt: Path, out: Path, *flags: str, width: object, precision=("fp32",), engine: str = "none"
) -> Path:
    """``python -m asap_deploy.export`` as the tests call it: no parity check (test_onnx_export
    measures it), no engine unless asked, the test failing unless the export succeeds."""
    from asap_deploy.export import main as export_main

    argv = [str(ckpt), "--width", str(width), "--out", str(out), "--precision", *precision]
    argv += ["--no-parity", "--engine", engine, *flags]
    assert export_main(argv) == 0, argv
    return Path(out)


@pytest.fixture(scope="session")
def small_fp32_export(tmp_path_factory):
    """A one-hot FP32 export with instance edges, from a checkpoint file (parity reloads it); made
    once for the test_errors_* files and never changed: a test that damages one copies it."""
    from error_cases import WIDTH, save

    root = tmp_path_factory.mktemp("small-export")
    out = root / "small"
    export_for_test(save(root / "ck"), out, width=WIDTH)
    return out
