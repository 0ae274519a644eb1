"""Checkpoint and opt.txt errors name the key, the shapes, the option and its value; unknown keys
are errors whatever their prefix; opt.txt is read strictly; contradictions between opt.txt and
the tensors are errors, or warnings where the tensors decide alone."""

import argparse
import os
import pickle
from collections import OrderedDict

import pytest
import torch
from error_cases import CFG, WIDTH, assert_one_error_line, opt_txt, save, state_dict, tree

from asap_deploy.checkpoint import load_checkpoint
from asap_deploy.errors import CheckpointError
from asap_deploy.export import main as export_main


def _export_fails(ckpt, capsys, *needles, extra=()):
    """Through the CLI: one line, exit 2, nothing written beside the checkpoint."""
    out = ckpt.parent / "out"
    before = tree(ckpt.parent)
    rc = export_main([str(ckpt), "--width", WIDTH, "--out", str(out), "--no-parity", *extra])
    line = assert_one_error_line(capsys.readouterr().err, *needles)
    assert rc == 2
    assert tree(ckpt.parent) == before
    return line


# -- keys and shapes -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key", ["extra.weight", "module.extra.weight", "lowres_stream.extra", "netG.lowres_stream.model.99"]
)
def test_unknown_keys_are_errors_whatever_their_prefix(tmp_path, capsys, key):
    st = state_dict()
    st[key] = torch.zeros(3)
    ckpt = save(tmp_path / "ck", st)
    line = _export_fails(ckpt, capsys)
    assert "lowres_stream.extra" in line or repr(key) in line or key in line


def test_extra_tensor_under_the_prefix_is_named(tmp_path):
    st = state_dict()
    st["lowres_stream.model.2.0.weight_orig"] = torch.zeros(8, 8, 3, 3)
    with pytest.raises(
        CheckpointError,
        match=r"unexpected tensor lowres_stream\.model\.2\.0\."
        r"weight_orig \[8, 8, 3, 3\].*spectral",
    ):
        load_checkpoint(save(tmp_path, st))


def test_mixed_prefixes(tmp_path):
    st = OrderedDict((("module." + k if i % 2 else k), v) for i, (k, v) in enumerate(state_dict().items()))
    with pytest.raises(CheckpointError, match="different prefixes"):
        load_checkpoint(save(tmp_path, st))


def test_prefixed_checkpoints_still_load(tmp_path):
    st = OrderedDict(("module." + k, v) for k, v in state_dict().items())
    assert load_checkpoint(save(tmp_path, st)).config == CFG


@pytest.mark.parametrize(
    "key,shape",
    [
        ("lowres_stream.model.2.1.bias", (4,)),
        ("lowres_stream.model.4.1.weight", (8, 1)),
        ("lowres_stream.model.12.bias", (7,)),
    ],
)
def test_wrong_shape_names_tensor_and_both_shapes(tmp_path, capsys, key, shape):
    st = state_dict()
    want = list(st[key].shape)
    st[key] = torch.zeros(shape)
    line = _export_fails(
        save(tmp_path / "ck", st), capsys, key, f"has shape {list(shape)}", f"expected {want}"
    )
    assert "missing []" not in line


def test_missing_tensor_is_named(tmp_path):
    st = state_dict()
    del st["lowres_stream.model.11.conv_block.0.1.weight"]
    with pytest.raises(
        CheckpointError,
        match=r"missing tensor lowres_stream\.model\.11\."
        r"conv_block\.0\.1\.weight \[16\]",
    ):
        load_checkpoint(save(tmp_path, st))


@pytest.mark.parametrize(
    "shape,needles",
    [
        (
            (4, 6, 3, 3),
            [
                "lowres_stream.model.0.0.weight [4, 6, 3, 3] outputs 4 channels",
                "lowres_stream.model.2.0.weight [8, 8, 3, 3] takes 8",
            ],
        ),
        (
            (8, 6, 5, 5),
            [
                "the first convolution lowres_stream.model.0.0.weight has shape [8, 6, 5, 5]",
                "[out_channels, in_channels, 3, 3]",
            ],
        ),
        ((8, 6, 3), ["the first convolution lowres_stream.model.0.0.weight has shape [8, 6, 3]"]),
    ],
)
def test_wrong_first_conv(tmp_path, capsys, shape, needles):
    st = state_dict()
    st["lowres_stream.model.0.0.weight"] = torch.zeros(shape)
    st["lowres_stream.model.0.1.weight"] = torch.zeros(shape[0])
    st["lowres_stream.model.0.1.bias"] = torch.zeros(shape[0])
    _export_fails(save(tmp_path / "ck", st), capsys, *needles)


def test_first_conv_input_channels_against_label_flags(tmp_path, capsys):
    ckpt = save(tmp_path / "ck")
    _export_fails(
        ckpt,
        capsys,
        "lowres_stream.model.0.0.weight [8, 6, 3, 3] takes 6 input channels",
        "label_nc=9 was requested",
        "--label-nc",
        extra=["--label-nc", "9"],
    )


# -- unreadable files ------------------------------------------------------------------------
def test_truncated_checkpoint_message_is_complete(tmp_path, capsys):
    ckpt = save(tmp_path / "ck")
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    line = _export_fails(ckpt, capsys, "is truncated or damaged", f"{len(data) // 2} bytes")
    assert line.endswith("re-download or re-save it") and "..." not in line
    assert "miniz" not in line and len(line) < 300


def test_truncated_legacy_checkpoint_is_not_called_loadable(tmp_path, capsys):
    """A legacy (pre-zip) file cut inside its pickle stream: torch says the file 'can still be
    loaded' and names a nonsense global; the message must say it is damaged instead."""
    ckpt = tmp_path / "ck" / "latest_net_G.pth"
    ckpt.parent.mkdir()
    torch.save(
        OrderedDict([("lowres_stream.model.0.0.weight", torch.zeros(3))]),
        ckpt,
        _use_new_zipfile_serialization=False,
    )
    ckpt.write_bytes(ckpt.read_bytes()[:140])
    line = _export_fails(
        ckpt, capsys, "not a readable PyTorch checkpoint", "malformed", "re-download or re-save it"
    )
    assert "can still be loaded" not in line and "GLOBAL" not in line and "\x1b" not in line


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickled_code_is_refused_by_name(tmp_path, capsys):
    st = state_dict()
    st["lowres_stream.model.0.0.weight"] = _Evil()
    ckpt = save(tmp_path / "ck", st)
    line = _export_fails(ckpt, capsys, "system", "refused")
    assert "pwned" not in capsys.readouterr().out + line


# -- opt.txt / opt.pkl -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "option,value,what",
    [
        ("label_nc", "abc", "an integer"),
        ("label_nc", "5.5", "an integer"),
        ("no_instance_edge", "yes", "True or False"),
        ("aspect_ratio", "wide", "a number"),
        ("crop_size", "", "an integer"),
    ],
)
def test_bad_option_value_names_option_value_and_line(tmp_path, capsys, option, value, what):
    text = opt_txt(name="city", **{option: value})
    ckpt = save(tmp_path / "ck", opt_txt=text)
    _export_fails(ckpt, capsys, "opt.txt line 3", f"{option}: {value!r} is not {what}", "--no-opt-file")


@pytest.mark.parametrize(
    "content,needle",
    [
        ("this is not\nan options file at all\n", "line 1 is not 'name: value'"),
        ("-------- Options --------\n-------- End --------\n", "holds no 'name: value' options"),
        (opt_txt(label_nc=5) + "label_nc: 5\n", "sets label_nc again"),
        (b"\x00\x01\x02binary", "is not a text file"),
        (b"label_nc: \xff\xfe\n", "is not UTF-8 text"),
    ],
)
def test_garbage_opt_txt_is_an_error_and_no_opt_file_skips_it(tmp_path, capsys, content, needle):
    ckpt = save(tmp_path / "ck")
    p = tmp_path / "ck" / "opt.txt"
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    _export_fails(ckpt, capsys, needle, "--no-opt-file")
    assert load_checkpoint(ckpt, use_options_file=False).config == CFG


def test_opt_pkl_with_a_wrongly_typed_option(tmp_path):
    ckpt = save(tmp_path)
    with open(tmp_path / "opt.pkl", "wb") as f:
        pickle.dump(argparse.Namespace(label_nc="abc"), f)
    with pytest.raises(CheckpointError, match="opt.pkl: option label_nc is 'abc', expected an integer"):
        load_checkpoint(ckpt)


def test_hr_coor_other_than_cosine(tmp_path):
    ckpt = save(tmp_path, opt_txt=opt_txt(hr_coor="None"))
    with pytest.raises(CheckpointError, match="hr_coor: None is not supported"):
        load_checkpoint(ckpt)


# -- contradictions --------------------------------------------------------------------------
def test_label_split_contradiction_is_an_error_naming_opt_txt(tmp_path, capsys):
    """6 input channels; opt.txt says 5 labels and no instance edge: which is wrong is unknown."""
    ckpt = save(tmp_path / "ck", opt_txt=opt_txt(label_nc=5, no_instance_edge=True))
    _export_fails(
        ckpt,
        capsys,
        "takes 6 input channels",
        "opt.txt line 2 says label_nc: 5",
        "opt.txt line 3 says no_instance_edge: True",
        "--no-opt-file",
    )


@pytest.mark.parametrize(
    "options,needle",
    [
        (dict(lr_depth=7), "opt.txt line 2 says lr_depth: 7, but the checkpoint has lr_depth=2"),
        (dict(lr_width=64), "opt.txt line 2 says lr_width: 64, but the checkpoint has lr_width=8"),
        (
            dict(reflection_pad=True),
            "opt.txt line 2 says reflection_pad: True, but the checkpoint has no pad layers",
        ),
        (dict(lr_instance=False), "opt.txt line 2 says lr_instance: False, but the output convolution"),
        (dict(hr_width=32), "which fits only hr_width=64"),
        (dict(crop_size=64, aspect_ratio=1.0), "image height of 64"),
    ],
)
def test_contradictions_the_tensors_settle_are_warnings(tmp_path, options, needle):
    ckpt = save(tmp_path, opt_txt=opt_txt(**options))
    ck = load_checkpoint(ckpt)
    assert ck.config == CFG
    assert any(needle in w for w in ck.warnings), ck.warnings


def test_warning_is_printed_and_the_export_succeeds(tmp_path, capsys):
    ckpt = save(tmp_path / "ck", opt_txt=opt_txt(lr_depth=7, label_nc=5, no_instance_edge=False))
    out = tmp_path / "out"
    assert export_main([str(ckpt), "--width", WIDTH, "--out", str(out), "--no-parity"]) == 0
    err = capsys.readouterr().err
    assert "warning: opt.txt line 2 says lr_depth: 7" in err
    assert (out / "manifest.json").is_file()


def test_explicit_flag_contradicting_the_tensors_is_an_error(tmp_path, capsys):
    ckpt = save(tmp_path / "ck")
    _export_fails(
        ckpt, capsys, "padding=reflect was requested", "zero padding", extra=["--padding", "reflect"]
    )
