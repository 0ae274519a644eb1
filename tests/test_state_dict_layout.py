"""Key names, shapes and parameter counts of the paper's checkpoints (architecture note §5)."""

import pytest
import torch

from asap_deploy.model import ASAPNetGenerator
from asap_deploy.presets import load_preset


def _meta_state(preset):
    with torch.device("meta"):
        gen = ASAPNetGenerator(load_preset(preset).config())
    return {k: tuple(v.shape) for k, v in gen.state_dict().items()}


@pytest.mark.parametrize(
    "preset,total",
    [
        ("cityscapes-256x512", 83_201_411),
        ("cityscapes-512x1024", 83_463_811),
        ("cityscapes-1024x2048", 83_726_211),
        ("facades-512", 82_007_363),
        ("facades-1024", 82_269_763),
    ],
)
def test_parameter_totals(preset, total):
    assert sum(torch.Size(s).numel() for s in _meta_state(preset).values()) == total


def test_cityscapes_keys():
    st = _meta_state("cityscapes-256x512")
    p = "lowres_stream.model."
    assert st[p + "0.0.weight"] == (64, 36, 3, 3)
    for i in (2, 4, 6):
        assert st[f"{p}{i}.0.weight"] == (64, 64, 3, 3)
    assert st[p + "8.0.weight"] == (1024, 64, 3, 3)
    for j in range(10, 17):
        assert st[f"{p}{j}.conv_block.0.0.weight"] == (1024, 1024, 3, 3)
        assert st[f"{p}{j}.conv_block.0.1.bias"] == (1024,)
    assert st[p + "17.weight"] == (16003, 1024, 1, 1) and st[p + "17.bias"] == (16003,)
    assert len(st) == 1 + 2 + 4 * 3 + 7 * 3 + 2


def test_facades_keys():
    st = _meta_state("facades-512")
    p = "lowres_stream.model."
    assert st[p + "1.0.weight"] == (64, 13, 3, 3)
    for i in (4, 7, 10):
        assert st[f"{p}{i}.0.weight"] == (64, 64, 3, 3)
    assert st[p + "13.0.weight"] == (1024, 64, 3, 3)
    for j in range(15, 22):
        assert st[f"{p}{j}.conv_block.1.0.weight"] == (1024, 1024, 3, 3)
    assert st[p + "22.weight"] == (14851, 1024, 1, 1)
    assert not any(".bias" in k and ".0.bias" in k for k in st if "conv_block" not in k)
