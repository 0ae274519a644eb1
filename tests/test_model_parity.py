"""The re-implementation against the independent oracles written from the architecture note:
the generator (``reference_asapnet.py``) and the label preprocessing (``reference_labels.py``).

The generator is fed labels made by the label oracle, and the package's ``LabelEncoder`` is
compared with that oracle on its own, so neither comparison can inherit the other's mistakes.
"""

import numpy as np
import pytest
import torch
from conftest import small_config
from reference_asapnet import reference_generator
from reference_labels import reference_edges, reference_label, reference_label_for, reference_one_hot

from asap_deploy.config import GeneratorConfig
from asap_deploy.demo import demo_generator
from asap_deploy.mlp_spec import LayerSlice, MLPSpec
from asap_deploy.model import ASAPNetGenerator, LabelEncoder
from asap_deploy.sample_inputs import generator_feeds, label_maps

CASES = [
    # padding, S (S1 = S/16), lr_instance, instance_edge, widths
    ("zero", 16, True, True, {}),
    ("zero", 32, True, True, dict(lr_max_width=24)),
    ("reflect", 32, False, False, {}),
    ("replicate", 64, True, True, dict(hr_width=12, hr_depth=3)),
    ("reflect", 64, False, True, dict(lr_depth=0, lr_width=4, output_nc=1)),
    ("zero", 32, False, False, dict(contain_dontcare_label=True, hr_depth=7)),
]


def _run(cfg, seed=0, batch=2, width_cells=3):
    gen = ASAPNetGenerator(cfg).eval()  # default init: the oracle must match any weights
    torch.manual_seed(seed)
    w = cfg.downsampling * width_cells
    label = reference_label_for(cfg, label_maps(cfg, batch, cfg.height, w, seed))
    ours = gen(label)
    ref, ref_params = reference_generator(
        gen.state_dict(),
        label,
        padding=cfg.padding,
        lr_instance=cfg.lr_instance,
        strided=cfg.num_strided_convs,
        hr_width=cfg.hr_width,
        hr_depth=cfg.hr_depth,
        output_nc=cfg.output_nc,
    )
    return gen, label, ours, ref, ref_params


@pytest.mark.parametrize("padding,s,lr_instance,edge,kw", CASES)
def test_matches_oracle_bit_for_bit(padding, s, lr_instance, edge, kw):
    cfg = small_config(padding=padding, downsampling=s, lr_instance=lr_instance, instance_edge=edge, **kw)
    gen, label, ours, ref, ref_params = _run(cfg)
    assert torch.equal(gen.predict_params(label), ref_params)
    assert torch.equal(ours, ref), (ours - ref).abs().max().item()  # measured: exactly 0
    assert ours.shape == (2, cfg.output_nc, cfg.height, cfg.downsampling * 3)


def test_wider_learned_downsampling():
    cfg = small_config(downsampling=64, learned_ds_factor=32)
    gen, label, ours, ref, _ = _run(cfg)
    assert torch.equal(ours, ref), (ours - ref).abs().max().item()  # measured: exactly 0


def _broken_layers(self):
    """Weight block before bias: the classic layout mistake."""
    out, off = [], 0
    ch = self.channels
    for c_in, c_out in zip(ch[:-1], ch[1:]):
        out.append(LayerSlice(c_in, c_out, off + c_in * c_out, off))
        off += c_out + c_in * c_out
    return tuple(out)


def test_wrong_layout_would_be_caught(monkeypatch):
    cfg = small_config()
    monkeypatch.setattr(
        MLPSpec,
        "num_params",
        property(lambda self: sum((a + 1) * b for a, b in zip(self.channels[:-1], self.channels[1:]))),
    )
    monkeypatch.setattr(MLPSpec, "layers", property(_broken_layers))
    _, _, ours, ref, _ = _run(cfg)
    assert (ours - ref).abs().max().item() > 1e-2


def test_wrong_encoding_would_be_caught(monkeypatch):
    cfg = small_config()
    real = MLPSpec.positional_encoding_tile
    monkeypatch.setattr(
        MLPSpec, "positional_encoding_tile", lambda self: real(self).flip(-1)
    )  # sin/cos or x/y order swapped
    _, _, ours, ref, _ = _run(cfg)
    assert (ours - ref).abs().max().item() > 1e-2


def test_wrong_padding_would_be_caught():
    cfg = small_config(padding="reflect")
    gen = ASAPNetGenerator(cfg).eval()
    label = torch.from_numpy(generator_feeds(cfg, "one-hot", 1, cfg.height, 64, 0)["label"])
    ref, _ = reference_generator(
        gen.state_dict(), label, padding="replicate", lr_instance=cfg.lr_instance, hr_width=cfg.hr_width
    )
    assert (gen(label) - ref).abs().max().item() > 1e-3


def test_any_batch_and_width_without_state():
    gen = demo_generator(small_config())
    for batch, cells in ((1, 2), (3, 5), (2, 1)):
        label = torch.from_numpy(
            generator_feeds(gen.config, "one-hot", batch, gen.config.height, 32 * cells, 0)["label"]
        )
        assert gen(label).shape == (batch, 3, gen.config.height, 32 * cells)


def test_bad_input_shapes_raise_clear_errors():
    from asap_deploy.errors import ResolutionError

    gen = demo_generator(small_config())
    with pytest.raises(ValueError, match="label must be"):
        gen(torch.zeros(1, 3, 512, 64))
    with pytest.raises(ResolutionError, match="H=16"):
        gen(torch.zeros(1, gen.config.in_channels, 256, 64))
    with pytest.raises(ResolutionError, match="multiple of S"):
        gen(torch.zeros(1, gen.config.in_channels, 512, 48))


def test_demo_model_is_deterministic_and_not_saturated():
    a = demo_generator(small_config(), seed=1)
    b = demo_generator(small_config(), seed=1)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    label = torch.from_numpy(generator_feeds(a.config, "one-hot", 1, 512, 64, 0)["label"])
    y = a(label)
    assert y.std().item() > 0.05 and y.abs().max().item() < 0.999


# -- label preprocessing: the package's LabelEncoder against the label oracle -----------------


def test_label_oracle_known_answers():
    """The oracle itself against hand-worked cases of the authors' definitions (architecture
    note section 4), so that the oracle cannot be wrong in the same way as the encoder."""
    # a vertical boundary marks the columns on both sides of it
    inst = np.array([[[[1, 1, 2, 2, 2]]]])
    assert reference_edges(inst)[0, 0, 0].tolist() == [0, 1, 1, 0, 0]
    # a horizontal boundary marks the rows on both sides of it
    inst = np.array([[[[1], [1], [1], [2]]]])
    assert reference_edges(inst)[0, 0, :, 0].tolist() == [0, 0, 1, 1]
    # a lone pixel marks itself and its 4 neighbours, not the diagonals
    inst = np.zeros((1, 1, 3, 3), dtype=np.int32)
    inst[0, 0, 1, 1] = 7
    assert reference_edges(inst)[0, 0].tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    # instance ids are compared as values (16-bit PNGs hold ids like 26001), not classes
    assert reference_edges(np.array([[[[26001, 26001, 26002]]]]))[0, 0, 0].tolist() == [0, 1, 1]
    # id 255 is the don't-care class label_nc, one extra channel after the real classes
    oh = reference_one_hot(np.array([[[[0, 2, 255]]]]), label_nc=3, contain_dontcare_label=True)
    assert oh.shape == (1, 4, 1, 3)
    assert oh[0, :, 0].T.tolist() == [[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    # like the authors' scatter_, an id with no channel is an error, not a silent zero
    with pytest.raises(RuntimeError):
        reference_one_hot(np.array([[[[255]]]]), label_nc=3, contain_dontcare_label=False)
    lab = reference_label(
        np.zeros((1, 1, 1, 2), np.int32),
        np.array([[[[4, 5]]]]),
        label_nc=2,
        contain_dontcare_label=False,
        instance_edge=True,
    )
    assert lab[0, :, 0].T.tolist() == [[1, 0, 1], [1, 0, 1]]  # edges are the last channel


def _dense_maps(cfg, batch, h, w, seed):
    """Maps with 1-pixel regions: every pixel borders a different id in some directions and the
    same id in others, so a missing side or direction of the edge rule shows."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, cfg.one_hot_channels, (batch, 1, h, w), dtype=np.int32)
    if cfg.contain_dontcare_label:
        ids[ids == cfg.label_nc] = 255
    maps = {"label_map": ids}
    if cfg.instance_edge:
        maps["instance_map"] = rng.integers(26000, 26003, (batch, 1, h, w), dtype=np.int32)
    return maps


@pytest.mark.parametrize("dontcare,edge", [(False, True), (True, True), (True, False), (False, False)])
def test_label_encoder_matches_oracle(dontcare, edge):
    cfg = GeneratorConfig(label_nc=6, contain_dontcare_label=dontcare, instance_edge=edge)
    enc = LabelEncoder(cfg)
    for maps in (_dense_maps(cfg, 2, 17, 23, seed=0), label_maps(cfg, 2, 64, 48, seed=1)):
        ours = enc(*(torch.from_numpy(maps[k]) for k in ("label_map", "instance_map") if k in maps))
        ref = reference_label_for(cfg, maps)
        h, w = maps["label_map"].shape[2:]
        assert ours.dtype == torch.float32 and ours.shape == ref.shape == (2, cfg.in_channels, h, w)
        bad = (ours != ref).nonzero()
        assert not len(bad), (
            f"{len(bad)} values differ from the oracle, first (b, c, y, x): {bad[0].tolist()}"
        )
    if dontcare:
        assert (maps["label_map"] == 255).any(), "the scene must exercise the don't-care id"


def test_label_encoder_id_without_channel_is_zero():
    """The package's documented deviation: where the authors' scatter_ raises, a pixel whose id
    has no channel (255 without the don't-care class) gets an all-zero one-hot vector."""
    cfg = GeneratorConfig(label_nc=3, instance_edge=False)
    out = LabelEncoder(cfg)(torch.tensor([[[[0, 255, 2]]]], dtype=torch.int32))
    assert out[0, :, 0].T.tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 1]]
