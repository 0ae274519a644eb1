"""The graph-side input encoders (asap_deploy/model/label_encoding.py) beyond the one-hot and
edge parity of test_model_parity.py: the edge rule on its own, the edge switch, RGB
normalisation, the input modes and their errors. The references are the label oracle
(tests/reference_labels.py) and torchvision's arithmetic written out in numpy."""

import numpy as np
import pytest
import torch
from reference_labels import reference_edges, reference_one_hot

from asap_deploy.config import GeneratorConfig
from asap_deploy.model.label_encoding import InputEncoder, LabelEncoder, RGBEncoder, instance_edges


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (1, 1, 1, 6), (1, 1, 5, 1), (2, 1, 9, 13)])
def test_instance_edges_match_the_oracle_on_every_shape(shape):
    rng = np.random.default_rng(sum(shape))
    inst = rng.integers(0, 3, shape).astype(np.int32)
    got = instance_edges(torch.from_numpy(inst))
    assert got.dtype == torch.float32 and got.shape == shape
    assert torch.equal(got, reference_edges(inst))


def test_instance_edges_of_a_constant_map_are_zero_and_of_a_checkerboard_one():
    assert instance_edges(torch.full((1, 1, 4, 5), 7)).sum() == 0
    board = (torch.arange(4).view(4, 1) + torch.arange(5).view(1, 5)) % 2
    assert torch.equal(instance_edges(board.view(1, 1, 4, 5)), torch.ones(1, 1, 4, 5))


@pytest.mark.parametrize(
    "edge_cfg,with_edges,channels", [(True, None, 4), (False, None, 3), (True, False, 3), (False, True, 4)]
)
def test_with_edges_overrides_the_config(edge_cfg, with_edges, channels):
    cfg = GeneratorConfig(label_nc=3, instance_edge=edge_cfg)
    ids = torch.tensor([[[[0, 1], [2, 255]]]], dtype=torch.int32)
    inst = torch.tensor([[[[1, 1], [1, 2]]]], dtype=torch.int32)
    enc = LabelEncoder(cfg, with_edges)
    out = enc(ids, inst)
    assert out.shape == (1, channels, 2, 2)
    assert out[0, :3].argmax(0).tolist() == [[0, 1], [2, 0]]
    assert out[0, :3].sum(0).tolist() == [[1, 1], [1, 0]]  # 255 has no channel here
    if channels == 4:
        assert out[0, 3].tolist() == [[0, 1], [1, 1]]


def test_dont_care_channel_is_the_last_class_channel():
    cfg = GeneratorConfig(label_nc=3, contain_dontcare_label=True, instance_edge=False)
    ids = torch.tensor([[[[255, 3, 0]]]], dtype=torch.int64)  # any integer dtype
    out = LabelEncoder(cfg)(ids)
    assert torch.equal(out, reference_one_hot(ids.numpy(), 3, True))
    assert out[0, :, 0].T.tolist() == [[0, 0, 0, 1], [0, 0, 0, 1], [1, 0, 0, 0]]


def test_label_encoder_needs_the_instance_map_when_it_uses_edges():
    enc = LabelEncoder(GeneratorConfig(label_nc=3, instance_edge=True))
    with pytest.raises(ValueError, match=r"^this model uses instance edges: pass instance_map$"):
        enc(torch.zeros(1, 1, 2, 2, dtype=torch.int32))


def _torchvision_normalize(rgb: np.ndarray) -> np.ndarray:
    """ToTensor (x / 255 in float32) then Normalize(0.5, 0.5) ((x - 0.5) / 0.5), channels first."""
    x = rgb.astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255)
    return (x - np.float32(0.5)) / np.float32(0.5)


def test_rgb_is_normalised_exactly_as_the_authors_loader():
    rgb = np.arange(256, dtype=np.uint8).reshape(1, 4, 64, 1).repeat(3, axis=3)
    rgb[..., 1] = 255 - rgb[..., 1]
    enc = RGBEncoder(GeneratorConfig(label_nc=3, no_one_hot=True, instance_edge=False))
    out = enc(torch.from_numpy(rgb))
    assert out.dtype == torch.float32 and out.shape == (1, 3, 4, 64)
    assert np.array_equal(out.numpy(), _torchvision_normalize(rgb))
    assert out.min() == -1 and out.max() == 1


def test_rgb_with_edges_appends_the_edge_channel():
    cfg = GeneratorConfig(label_nc=3, no_one_hot=True, instance_edge=True)
    rgb = torch.zeros(1, 2, 3, 3, dtype=torch.uint8)
    inst = torch.tensor([[[[1, 1, 2], [1, 1, 2]]]], dtype=torch.int32)
    out = RGBEncoder(cfg)(rgb, inst)
    assert out.shape == (1, 4, 2, 3)
    assert torch.equal(out[:, 3:], reference_edges(inst.numpy()))
    assert RGBEncoder(cfg, with_edges=False)(rgb).shape == (1, 3, 2, 3)
    with pytest.raises(ValueError, match=r"^this model uses instance edges: pass instance_map$"):
        RGBEncoder(cfg)(rgb)


@pytest.mark.parametrize("mode", ["one-hot", "labels", "rgb"])
def test_input_encoder_modes(mode):
    cfg = GeneratorConfig(label_nc=3, instance_edge=False, no_one_hot=mode == "rgb")
    enc = InputEncoder(cfg, mode)
    if mode == "one-hot":
        label = torch.rand(1, 3, 2, 2)
        assert enc.encoder is None and enc(label) is label
    elif mode == "labels":
        assert isinstance(enc.encoder, LabelEncoder)
        out = enc(torch.tensor([[[[0, 1], [2, 255]]]], dtype=torch.int32))
        assert out.shape == (1, 3, 2, 2)
    else:
        assert isinstance(enc.encoder, RGBEncoder)
        assert enc(torch.zeros(1, 2, 2, 3, dtype=torch.uint8)).shape == (1, 3, 2, 2)


def test_input_encoder_passes_with_edges_on():
    cfg = GeneratorConfig(label_nc=3, instance_edge=True)
    enc = InputEncoder(cfg, "labels", with_edges=False)
    assert enc(torch.zeros(1, 1, 2, 2, dtype=torch.int32)).shape == (1, 3, 2, 2)


def test_unknown_input_mode_is_named():
    with pytest.raises(
        ValueError,
        match=r"^input_mode must be one-hot, labels or rgb, "
        r"got 'onehot'$",
    ):
        InputEncoder(GeneratorConfig(label_nc=3), "onehot")


def test_encoders_hold_no_weights():
    """The class table is a constant of the graph, not a tensor a checkpoint could carry: the
    generator's strict state-dict check must never see it."""
    cfg = GeneratorConfig(label_nc=3, instance_edge=True)
    assert LabelEncoder(cfg).state_dict() == {}
    assert InputEncoder(cfg, "labels").state_dict() == {}
