"""Reading the authors' checkpoints: inference of the architecture, overrides, and bad files."""

import argparse
import pickle
from collections import OrderedDict

import pytest
import torch
from conftest import small_config

from asap_deploy.checkpoint import load_checkpoint
from asap_deploy.demo import demo_generator
from asap_deploy.errors import CheckpointError


def cfg64(**kw):
    """Default 64x5 MLP: what the tensors alone must pin down."""
    return small_config(hr_width=64, **kw)


INFERABLE = [
    cfg64(),
    cfg64(padding="reflect", instance_edge=False, lr_instance=False, downsampling=64),
    cfg64(downsampling=16, label_nc=35),
    cfg64(lr_depth=0, lr_max_width=8, learned_ds_factor=8, downsampling=32),
]


def _save(tmp_path, cfg, obj=None, name="latest_net_G.pth"):
    gen = demo_generator(cfg)
    path = tmp_path / name
    torch.save(obj if obj is not None else OrderedDict(gen.state_dict()), path)
    return path, gen


@pytest.mark.parametrize(
    "cfg,flags",
    [(c, {}) for c in INFERABLE]
    + [(small_config(hr_width=24, hr_depth=4, downsampling=16), dict(hr_width=24, hr_depth=4))],
)
def test_architecture_inferred_from_tensors(tmp_path, cfg, flags):
    path, gen = _save(tmp_path, cfg)
    ck = load_checkpoint(path, flags)
    assert ck.config == cfg
    loaded = ck.build_generator()
    x = torch.rand(1, cfg.in_channels, cfg.height, cfg.downsampling * 2)
    assert torch.equal(loaded(x), gen(x))


def test_replicate_padding_and_label_split_from_opt_txt(tmp_path):
    cfg = cfg64(padding="replicate", contain_dontcare_label=True, label_nc=4)
    path, _ = _save(tmp_path, cfg)
    (tmp_path / "opt.txt").write_text(
        "----------------- Options ---------------\n"
        "               label_nc: 4                             \t[default: 182]\n"
        " contain_dontcare_label: True                          \t[default: False]\n"
        "          replicate_pad: True                          \t[default: False]\n"
        "              crop_size: 1024                          \t[default: 512]\n"
        "----------------- End -------------------\n"
    )
    ck = load_checkpoint(path)
    assert ck.config == cfg and ck.suggested_width == 1024
    assert not ck.notes


def test_opt_pkl_is_read_but_only_a_namespace(tmp_path):
    cfg = cfg64(padding="replicate")
    path, _ = _save(tmp_path, cfg)
    with open(tmp_path / "opt.pkl", "wb") as f:
        pickle.dump(argparse.Namespace(replicate_pad=True, label_nc=5), f)
    assert load_checkpoint(path).config == cfg
    with open(tmp_path / "opt.pkl", "wb") as f:
        pickle.dump(OrderedDict(a=1), f)  # any other class is refused: pickle can run code
    with pytest.raises(CheckpointError, match="opt.pkl"):
        load_checkpoint(path)


def test_wrapped_and_prefixed_state_dicts(tmp_path):
    cfg = cfg64()
    gen = demo_generator(cfg)
    wrapped = {
        "epoch": 3,
        "netG": {f"module.{k}": v for k, v in gen.state_dict().items()},
        "opt": argparse.Namespace(label_nc=5),
    }
    path, _ = _save(tmp_path, cfg, wrapped)
    assert load_checkpoint(path).config == cfg


def test_overrides_win_and_conflicts_are_reported(tmp_path):
    path, _ = _save(tmp_path, cfg64(padding="reflect"))
    assert load_checkpoint(path, {"padding": "replicate"}).config.padding == "replicate"
    with pytest.raises(CheckpointError, match="zero"):
        load_checkpoint(path, {"padding": "zero"})
    with pytest.raises(CheckpointError, match="lr_depth"):
        load_checkpoint(path, {"lr_depth": 7})
    with pytest.raises(CheckpointError, match="input channels"):
        load_checkpoint(path, {"label_nc": 9})


@pytest.mark.parametrize(
    "content,match",
    [
        (b"", r"is empty \(0 bytes\)"),
        (b"hello, this is not a checkpoint", "not a readable PyTorch checkpoint"),
    ],
)
def test_garbage_files(tmp_path, content, match):
    p = tmp_path / "x.pth"
    p.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(p)


def test_truncated_file(tmp_path):
    path, _ = _save(tmp_path, cfg64())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="directory"):
        load_checkpoint(tmp_path)


def test_not_a_generator(tmp_path):
    p = tmp_path / "latest_net_D.pth"
    torch.save({"model0.0.weight": torch.zeros(3)}, p)
    with pytest.raises(CheckpointError, match="not an ASAP-Net generator"):
        load_checkpoint(p)


def test_missing_and_unexpected_keys_fail_strictly(tmp_path):
    gen = demo_generator(cfg64())
    st = OrderedDict(gen.state_dict())
    del st["lowres_stream.model.2.1.bias"]
    path, _ = _save(tmp_path, cfg64(), st)
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(path).build_generator()
    st = OrderedDict(gen.state_dict())
    st["lowres_stream.model.2.0.weight_orig"] = torch.zeros(1)
    path, _ = _save(tmp_path, cfg64(), st)
    with pytest.raises(CheckpointError, match="unexpected"):
        load_checkpoint(path).build_generator()


def test_unfit_head_asks_for_flags(tmp_path):
    gen = demo_generator(cfg64())
    st = OrderedDict(gen.state_dict())
    head = [k for k in st if k.endswith(".weight") and st[k].dim() == 4][-1]
    st[head] = st[head][:-7]
    st[head.replace("weight", "bias")] = st[head.replace("weight", "bias")][:-7]
    path, _ = _save(tmp_path, cfg64(), st)
    with pytest.raises(CheckpointError, match="--hr-width"):
        load_checkpoint(path)
