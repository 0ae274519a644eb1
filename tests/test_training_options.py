"""The authors' options files read on their own (asap_deploy/training_options.py): the opt.txt
grammar, value types, opt.pkl, which file wins, the mapping onto GeneratorConfig fields and the
words of every message (a message names the file, the line, the option and the way out)."""

import argparse
import pickle
import re

import pytest
from error_cases import opt_txt

from asap_deploy.errors import CheckpointError, ConfigError
from asap_deploy.training_options import (
    SKIP_HINT,
    TrainingOptions,
    describe_field,
    load_training_options,
    options_to_overrides,
    read_training_options,
)

HINT = re.escape(SKIP_HINT)


def _txt(tmp_path, text):
    (tmp_path / "opt.txt").write_text(text)
    return load_training_options(tmp_path / "latest_net_G.pth")


def test_authors_format_is_parsed_typed_and_located(tmp_path):
    opts = _txt(
        tmp_path,
        opt_txt(
            label_nc=35,
            contain_dontcare_label=False,
            aspect_ratio=2.0,
            hr_coor="cosine",
            norm_G="spectralinstance",
            lr_width="+64",
            nThreads=0,
        ),
    )
    assert opts.values == {
        "label_nc": 35,
        "contain_dontcare_label": False,
        "aspect_ratio": 2.0,
        "hr_coor": "cosine",
        "norm_G": "spectralinstance",
        "lr_width": 64,
        "nThreads": "0",
    }  # unknown options stay text
    assert opts.lines == {
        "label_nc": 2,
        "contain_dontcare_label": 3,
        "aspect_ratio": 4,
        "hr_coor": 5,
        "norm_G": 6,
        "lr_width": 7,
        "nThreads": 8,
    }
    assert opts.path == tmp_path / "opt.txt"
    assert opts.where("aspect_ratio") == "opt.txt line 4"
    assert opts.where("crop_size") == "opt.txt"
    assert opts.says("label_nc") == "opt.txt line 2 says label_nc: 35"


def test_value_without_default_and_blank_lines(tmp_path):
    opts = _txt(tmp_path, "\n  crop_size: 512\n\n   load_size:-3   [default: 1]\nhr_coor: None\n")
    assert opts.values == {"crop_size": 512, "load_size": -3, "hr_coor": None}
    assert opts.lines == {"crop_size": 2, "load_size": 4, "hr_coor": 5}


@pytest.mark.parametrize(
    "option,value,what",
    [
        ("label_nc", "3.0", "an integer"),
        ("label_nc", "", "an integer"),
        ("lr_depth", "2x", "an integer"),
        ("no_instance_edge", "true", "True or False"),
        ("lr_instance", "1", "True or False"),
        ("aspect_ratio", "wide", "a number"),
    ],
)
def test_wrongly_typed_values_name_line_option_value_and_type(tmp_path, option, value, what):
    with pytest.raises(CheckpointError) as e:
        _txt(tmp_path, f"---- Options ----\n  {option}: {value}\t[default: 1]\n")
    assert str(e.value) == (f"{tmp_path / 'opt.txt'} line 2: {option}: {value!r} is not {what}; {SKIP_HINT}")


@pytest.mark.parametrize(
    "text,message",
    [
        ("label_nc: 3\nlabel_nc: 4\n", "line 2 sets label_nc again (first on line 1)"),
        (
            "label_nc: 3\nthis is prose\n",
            "line 2 is not 'name: value' ('this is prose'), so this is not the authors' options file",
        ),
        (
            "x" * 70 + "\n",
            "line 1 is not 'name: value' ('" + "x" * 57 + "...'), so this is not the authors' options file",
        ),
        (
            "----------\n\n---- End ----\n",
            "holds no 'name: value' options, so it is not the authors' options file",
        ),
    ],
)
def test_malformed_opt_txt(tmp_path, text, message):
    with pytest.raises(
        CheckpointError,
        match=rf"^{re.escape(str(tmp_path / 'opt.txt'))} "
        rf"{re.escape(message)}; {HINT}$",
    ):
        _txt(tmp_path, text)


def test_binary_and_non_utf8_opt_txt(tmp_path):
    (tmp_path / "opt.txt").write_bytes(b"label_nc: 3\n\x00\x01")
    with pytest.raises(
        CheckpointError,
        match=r"is not a text file \(binary data at byte 12\), "
        rf"so not the authors' options file; {HINT}$",
    ):
        load_training_options(tmp_path / "x.pth")
    (tmp_path / "opt.txt").write_bytes(b"label_nc: 3\n\xff")
    with pytest.raises(
        CheckpointError,
        match=r"is not UTF-8 text \(bad byte at 12\), so not the "
        rf"authors' options file; {HINT}$",
    ):
        load_training_options(tmp_path / "x.pth")


def _pkl(tmp_path, obj):
    with open(tmp_path / "opt.pkl", "wb") as f:
        pickle.dump(obj, f)
    return load_training_options(tmp_path / "latest_net_G.pth")


def test_opt_pkl_wins_over_opt_txt_and_keeps_every_option(tmp_path):
    (tmp_path / "opt.txt").write_text(opt_txt(label_nc=99))
    opts = _pkl(
        tmp_path,
        argparse.Namespace(label_nc=35, no_instance_edge=False, name="city", aspect_ratio=2, hr_coor=None),
    )
    assert opts.path == tmp_path / "opt.pkl" and opts.lines == {}
    assert opts.values == {
        "label_nc": 35,
        "no_instance_edge": False,
        "name": "city",
        "aspect_ratio": 2,
        "hr_coor": None,
    }
    assert opts.where("label_nc") == "opt.pkl"
    assert read_training_options(tmp_path / "latest_net_G.pth")["label_nc"] == 35


@pytest.mark.parametrize(
    "option,value,what",
    [
        ("label_nc", True, "an integer"),
        ("label_nc", "35", "an integer"),
        ("lr_instance", 1, "True or False"),
        ("aspect_ratio", False, "a number"),
        ("aspect_ratio", "2", "a number"),
        ("hr_coor", 3, "a string or None"),
    ],
)
def test_opt_pkl_types(tmp_path, option, value, what):
    with pytest.raises(CheckpointError) as e:
        _pkl(tmp_path, argparse.Namespace(**{option: value}))
    assert str(e.value) == (
        f"{tmp_path / 'opt.pkl'}: option {option} is {value!r}, expected {what}; {SKIP_HINT}"
    )


def test_opt_pkl_holding_something_else(tmp_path):
    with pytest.raises(
        CheckpointError,
        match=r"opt\.pkl holds a dict, not the training options; "
        rf"{HINT}$",
    ):
        _pkl(tmp_path, {"label_nc": 3})
    with pytest.raises(
        CheckpointError,
        match=r"opt\.pkl is not a readable options file "
        r"\(refusing to load collections\.OrderedDict from "
        rf"an options file\); {HINT}$",
    ):
        import collections

        _pkl(tmp_path, collections.OrderedDict(label_nc=3))
    (tmp_path / "opt.pkl").write_bytes(b"")
    with pytest.raises(
        CheckpointError,
        match=r"opt\.pkl is not a readable options file "
        rf"\(Ran out of input\); {HINT}$",
    ):
        load_training_options(tmp_path / "x.pth")


def test_no_options_file_and_a_folder_named_like_one(tmp_path):
    opts = load_training_options(tmp_path / "latest_net_G.pth")
    assert opts.values == {} and opts.path is None and opts.where("x") == "options file"
    assert read_training_options(tmp_path / "latest_net_G.pth") == {}
    (tmp_path / "opt.txt").mkdir()
    with pytest.raises(CheckpointError, match=rf"opt\.txt is not a regular file; {HINT}$"):
        load_training_options(tmp_path / "latest_net_G.pth")


@pytest.mark.parametrize(
    "opts,want",
    [
        ({}, {}),
        ({"label_nc": 35, "lr_width": None, "hr_depth": 5, "name": "x"}, {"label_nc": 35, "hr_depth": 5}),
        ({"no_one_hot": True, "label_nc": 10}, {"no_one_hot": True, "label_nc": 3}),
        ({"no_one_hot": False, "label_nc": 10}, {"label_nc": 10}),
        ({"no_instance_edge": True}, {"instance_edge": False}),
        ({"no_instance_edge": False}, {"instance_edge": True}),
        ({"reflection_pad": True, "replicate_pad": True}, {"padding": "reflect"}),
        ({"reflection_pad": False, "replicate_pad": True}, {"padding": "replicate"}),
        ({"reflection_pad": False, "replicate_pad": False}, {"padding": "zero"}),
        ({"reflection_pad": False}, {}),
        ({"replicate_pad": False}, {}),
        ({"hr_coor": "cosine"}, {}),
    ],
)
def test_options_to_overrides(opts, want):
    assert options_to_overrides(opts) == want


def test_positional_encoding_other_than_cosine_is_refused():
    with pytest.raises(
        ConfigError,
        match=r"^hr_coor: 'siren' is not supported: the positional "
        r"encoding must be 'cosine' \(the authors' CLI cannot "
        r"switch it off either\)$",
    ):
        options_to_overrides({"hr_coor": "siren"})
    with pytest.raises(ConfigError, match="hr_coor: None is not supported"):
        options_to_overrides({"hr_coor": None})


def test_describe_field_names_the_options_behind_a_field(tmp_path):
    opts = _txt(
        tmp_path, opt_txt(no_instance_edge=True, reflection_pad=False, replicate_pad=True, hr_width=32)
    )
    assert describe_field(opts, "instance_edge") == "opt.txt line 2 says no_instance_edge: True"
    assert describe_field(opts, "padding") == (
        "opt.txt line 3 says reflection_pad: False, opt.txt line 4 says replicate_pad: True"
    )
    assert describe_field(opts, "hr_width") == "opt.txt line 5 says hr_width: 32"
    assert describe_field(opts, "label_nc") == "opt.txt"
    assert describe_field(TrainingOptions(), "label_nc") == "options file"


def test_describe_field_of_options_outside_the_field_table(tmp_path):
    opts = _txt(tmp_path, opt_txt(crop_size=512, padding="reflect"))
    # an option that is its own field
    assert describe_field(opts, "crop_size") == "opt.txt line 2 says crop_size: 512"
    # a field none of whose options is in the file: where the field itself would be
    assert describe_field(opts, "padding") == "opt.txt line 3"


def test_unreadable_opt_txt_says_why(tmp_path, monkeypatch):
    from pathlib import Path

    from asap_deploy.training_options import _read_txt

    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(CheckpointError) as e:
        _read_txt(tmp_path / "opt.txt")
    assert str(e.value) == f"cannot read {tmp_path / 'opt.txt'}: Permission denied"


@pytest.mark.parametrize("length,shown", [(60, "y" * 60), (61, "y" * 57 + "...")])
def test_prose_lines_are_quoted_up_to_60_characters(tmp_path, length, shown):
    with pytest.raises(CheckpointError, match=rf"line 1 is not 'name: value' \('{re.escape(shown)}'\)"):
        _txt(tmp_path, "y" * length + "\n")


def test_binary_data_is_located_at_its_first_byte(tmp_path):
    (tmp_path / "opt.txt").write_bytes(b"a: 1\n\x00\x00\x00")
    with pytest.raises(CheckpointError, match=r"binary data at byte 5\)"):
        load_training_options(tmp_path / "x.pth")
