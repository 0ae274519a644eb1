"""The re-implementation against the independent oracle written from the architecture note."""

import pytest
import torch

from asap_deploy.demo import demo_generator
from asap_deploy.mlp_spec import LayerSlice, MLPSpec
from asap_deploy.model import ASAPNetGenerator
from asap_deploy.sample_inputs import generator_feeds
from conftest import small_config
from reference_asapnet import reference_generator

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
    label = torch.from_numpy(generator_feeds(cfg, "one-hot", batch, cfg.height, w, seed)["label"])
    ours = gen(label)
    ref, ref_params = reference_generator(
        gen.state_dict(), label, padding=cfg.padding, lr_instance=cfg.lr_instance,
        strided=cfg.num_strided_convs, hr_width=cfg.hr_width, hr_depth=cfg.hr_depth,
        output_nc=cfg.output_nc)
    return gen, label, ours, ref, ref_params


@pytest.mark.parametrize("padding,s,lr_instance,edge,kw", CASES)
def test_matches_oracle_bit_for_bit(padding, s, lr_instance, edge, kw):
    cfg = small_config(padding=padding, downsampling=s, lr_instance=lr_instance,
                       instance_edge=edge, **kw)
    gen, label, ours, ref, ref_params = _run(cfg)
    assert torch.equal(gen.predict_params(label), ref_params)
    assert (ours - ref).abs().max().item() <= 1e-6
    assert ours.shape == (2, cfg.output_nc, cfg.height, cfg.downsampling * 3)


def test_wider_learned_downsampling():
    cfg = small_config(downsampling=64, learned_ds_factor=32)
    gen, label, ours, ref, _ = _run(cfg)
    assert (ours - ref).abs().max().item() <= 1e-6


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
    monkeypatch.setattr(MLPSpec, "num_params", property(lambda self: sum(
        (a + 1) * b for a, b in zip(self.channels[:-1], self.channels[1:]))))
    monkeypatch.setattr(MLPSpec, "layers", property(_broken_layers))
    _, _, ours, ref, _ = _run(cfg)
    assert (ours - ref).abs().max().item() > 1e-2


def test_wrong_encoding_would_be_caught(monkeypatch):
    cfg = small_config()
    real = MLPSpec.positional_encoding_tile
    monkeypatch.setattr(MLPSpec, "positional_encoding_tile",
                        lambda self: real(self).flip(-1))  # sin/cos or x/y order swapped
    _, _, ours, ref, _ = _run(cfg)
    assert (ours - ref).abs().max().item() > 1e-2


def test_wrong_padding_would_be_caught():
    cfg = small_config(padding="reflect")
    gen = ASAPNetGenerator(cfg).eval()
    label = torch.from_numpy(generator_feeds(cfg, "one-hot", 1, cfg.height, 64, 0)["label"])
    ref, _ = reference_generator(gen.state_dict(), label, padding="replicate",
                                 lr_instance=cfg.lr_instance, hr_width=cfg.hr_width)
    assert (gen(label) - ref).abs().max().item() > 1e-3


def test_any_batch_and_width_without_state():
    gen = demo_generator(small_config())
    for batch, cells in ((1, 2), (3, 5), (2, 1)):
        label = torch.from_numpy(
            generator_feeds(gen.config, "one-hot", batch, gen.config.height, 32 * cells, 0)["label"])
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
    assert 0.05 < y.std().item() and y.abs().max().item() < 0.999
