"""Checkpoint loading (asap_deploy/checkpoint.py) piece by piece: message shortening, the MLP
search, the padding and label-split rules, the width suggestion from opt.txt. The end-to-end
cases (real files through load_checkpoint and the export CLI) are in test_checkpoint.py and
test_errors_checkpoint.py."""

import dataclasses
import re
from collections import OrderedDict

import pytest
import torch
from conftest import small_config
from error_cases import CFG, opt_txt, save, state_dict

from asap_deploy.checkpoint import (
    _first_sentence,
    _mlp_candidates,
    _pick_mlp,
    _suggested_width,
    infer_config,
    load_checkpoint,
)
from asap_deploy.demo import demo_generator
from asap_deploy.errors import CheckpointError
from asap_deploy.mlp_spec import MLPSpec
from asap_deploy.training_options import TrainingOptions


# -- _first_sentence: a library's message cut to one line, never mid-word ----------------------
def test_first_sentence_rules():
    assert _first_sentence("") == ""
    assert _first_sentence("\n  \n") == ""
    assert _first_sentence("\x1b[31mred.\x1b[0m\nsecond line") == "red"
    assert _first_sentence("  padded line.  \nmore") == "padded line"
    short = "a" * 200
    assert _first_sentence(short) == short  # exactly the limit: kept whole
    assert _first_sentence("One sentence. " + "b" * 300) == "One sentence"
    assert _first_sentence("x" * 150 + ". " + "y" * 100) == "x" * 150
    words = " ".join(["word"] * 60)  # 299 characters, no sentence end
    got = _first_sentence(words)
    assert got.endswith("word ...") and len(got) <= 204 and "wor ..." not in got
    assert _first_sentence(words, limit=12) == "word word ..."


# -- the MLP search ----------------------------------------------------------------------------
def test_mlp_candidates_find_the_paper_mlp_first():
    spec = MLPSpec(36 - 1 + 0, 16)  # cityscapes-256x512: 35 labels + dontcare, no HR edge
    found = _mlp_candidates(spec.num_params, in_channels=36, s2=1, fixed={})
    assert {"hr_width": 64, "hr_depth": 5, "output_nc": 3, "lr_instance": True, "downsampling": 16} in found
    pinned = _mlp_candidates(
        spec.num_params, 36, 1, {"hr_width": 64, "hr_depth": 5, "output_nc": 3, "lr_instance": True}
    )
    assert pinned == [
        {"hr_width": 64, "hr_depth": 5, "output_nc": 3, "lr_instance": True, "downsampling": 16}
    ]


def test_mlp_candidates_respect_the_learned_downsampling_and_the_largest_s():
    spec = MLPSpec(6, 32)
    fixed = {"hr_width": 64, "hr_depth": 5, "output_nc": 3, "lr_instance": False}
    assert [c["downsampling"] for c in _mlp_candidates(spec.num_params, 6, 32, fixed)] == [32]
    assert _mlp_candidates(spec.num_params, 6, 64, fixed) == []  # S below the learned factor
    big = MLPSpec(6, 256)
    assert [c["downsampling"] for c in _mlp_candidates(big.num_params, 6, 2, fixed)] == [256]
    too_big = MLPSpec(6, 512)
    assert _mlp_candidates(too_big.num_params, 6, 2, fixed) == []


def test_pick_mlp_prefers_the_paper_defaults_and_reports_ambiguity():
    spec = MLPSpec(6, 32)
    arch = {"num_params": spec.num_params, "in_channels": 6, "learned_ds_factor": 2}
    mlp, count, by_default = _pick_mlp(arch, {})
    assert mlp["hr_width"] == 64 and mlp["hr_depth"] == 5 and mlp["output_nc"] == 3
    assert count >= 1 and by_default is True
    odd = MLPSpec(6, 32, hidden_width=24, depth=4)
    arch = {"num_params": odd.num_params, "in_channels": 6, "learned_ds_factor": 2}
    assert _pick_mlp(arch, {}) == (None, 3, False)  # three MLPs fit, none the paper's
    mlp, count, by_default = _pick_mlp(arch, {"hr_width": 24})
    assert (mlp["hr_width"], mlp["hr_depth"], count, by_default) == (24, 4, 1, False)
    # with the flags given, the defaults fill in only output_nc: unique "by default"
    mlp, count, by_default = _pick_mlp(arch, {"hr_width": 24, "hr_depth": 4})
    assert (mlp["hr_width"], mlp["hr_depth"], count, by_default) == (24, 4, 1, True)


# -- width from opt.txt ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "values,width,warned",
    [
        ({}, None, False),
        ({"crop_size": 0}, None, False),
        ({"crop_size": 1024}, 1024, False),  # no aspect ratio: any multiple of S
        ({"crop_size": 1000}, None, False),  # not a multiple of S = 32
        ({"crop_size": 1024, "aspect_ratio": 2.0}, 1024, False),  # H = 512 = 16 * 32
        ({"crop_size": 1023, "aspect_ratio": 1.998}, 1023, False),  # H within half a pixel
        ({"crop_size": 2048, "aspect_ratio": 2.0}, 1024, True),  # H = 1024: the tensors say 512
        ({"crop_size": 2048, "aspect_ratio": 3.0}, None, True),  # 512 * 3 = 1536: a multiple of 32
    ],
)
def test_suggested_width(values, width, warned):
    cfg = small_config(hr_width=64)  # S = 32, H = 512
    notes = []
    got = _suggested_width(TrainingOptions(values=dict(values)), cfg, notes)
    if values.get("aspect_ratio") == 3.0:
        assert got == 1536
    else:
        assert got == width
    assert bool(notes) == warned
    if warned:
        assert notes[0].startswith("warning: options file says crop_size: ")
        assert "the checkpoint's positional encoding fixes S=32, so H=512" in notes[0]


def test_suggested_width_is_none_when_the_aspect_gives_no_multiple_of_s():
    cfg = small_config(hr_width=64)
    notes = []
    assert (
        _suggested_width(TrainingOptions(values={"crop_size": 300, "aspect_ratio": 1.3}), cfg, notes) is None
    )
    assert len(notes) == 1


# -- the rules of infer_config ---------------------------------------------------------------
def _infer(state=None, overrides=None, **options):
    opts = TrainingOptions(values=options) if options else None
    return infer_config(state if state is not None else state_dict(), overrides, options=opts)


def test_tensors_alone_pin_the_small_config():
    cfg, notes = _infer()
    assert cfg == CFG
    assert notes == []


def test_options_file_values_the_tensors_settle_are_warned_and_ignored():
    cfg, notes = _infer(lr_width=999, lr_depth=7)
    assert cfg == CFG
    assert len(notes) == 2 and all(n.startswith("warning: options file says ") for n in notes)
    assert "lr_width: 999, but the checkpoint has lr_width=8" in notes[0]
    assert "using the checkpoint's value" in notes[0]


def test_flags_the_tensors_settle_must_agree():
    assert _infer(overrides={"lr_width": 8})[0] == CFG
    with pytest.raises(
        CheckpointError,
        match=r"^lr_width=9 was requested but the checkpoint's "
        r"tensors have lr_width=8 \(lowres_stream\.model\.0",
    ):
        _infer(overrides={"lr_width": 9})


def test_first_sentence_cut_points():
    limit = 200
    assert _first_sentence("y" * 201) == "y" * 200 + " ..."  # over the limit by one: cut
    assert _first_sentence("Status MAX. " + "m" * 300) == "Status MAX"  # only '.' is stripped
    assert _first_sentence("Ends with X.") == "Ends with X"
    two = "First part. Second part. " + "s" * 300
    assert _first_sentence(two) == "First part"  # the first sentence, not the last
    assert _first_sentence("A. " + "a" * 300) == "A"  # a one-letter sentence still counts
    no_sentence = ". " + "b " * 150  # a leading ". " is no sentence end
    assert _first_sentence(no_sentence).endswith("b ...")
    at_limit = "c" * limit + ". " + "d" * 10
    assert _first_sentence(at_limit) == "c" * limit  # a sentence end exactly at the limit
    tab = "w" * 150 + "\t" + "v" * 60 + " tail"  # only spaces are word breaks
    assert _first_sentence(tab) == "w" * 150 + "\t" + "v" * 49 + " ..."


def test_first_line_of_an_exception():
    from asap_deploy.checkpoint import _first_line
    from asap_deploy.training_options import _first_line as options_first_line

    assert _first_line(ValueError("\nboom.\nmore")) == "boom"
    assert _first_line(EOFError()) == "EOFError"
    assert options_first_line(ValueError("  first\nsecond")) == "first"
    assert options_first_line(EOFError()) == "EOFError"


# the configurations of test_checkpoint.py::test_architecture_inferred_from_tensors, inferred from
# tensor shapes alone (that test also builds each model and runs it, seconds each)
_INFERABLE = [
    (small_config(hr_width=64), {}),
    (
        small_config(hr_width=64, padding="reflect", instance_edge=False, lr_instance=False, downsampling=64),
        {},
    ),
    (small_config(hr_width=64, downsampling=16, label_nc=35), {}),
    (small_config(hr_width=64, lr_depth=0, lr_max_width=8, learned_ds_factor=8, downsampling=32), {}),
    (small_config(hr_width=24, hr_depth=4, downsampling=16), {"hr_width": 24, "hr_depth": 4}),
]


@pytest.mark.parametrize("cfg,flags", _INFERABLE)
def test_architecture_from_shapes_alone(cfg, flags):
    from asap_deploy.checkpoint import expected_shapes

    state = OrderedDict((k, torch.zeros(s)) for k, s in expected_shapes(cfg).items())
    got, notes = infer_config(state, flags)
    assert got == cfg
    if cfg.padding != "zero":
        assert notes == [
            "pad layers found: assuming --reflection_pad (pass --padding replicate if "
            "it was trained with --replicate_pad)"
        ]
    else:  # given hr_width/hr_depth, the rest is the default: nothing to note
        assert notes == []


def test_build_generator_loads_the_weights_strictly(tmp_path):
    from asap_deploy.checkpoint import LoadedCheckpoint

    cfg = small_config(hr_width=64, downsampling=16)  # H = 256: a fast forward pass
    gen = demo_generator(cfg, seed=4)
    path = tmp_path / "latest_net_G.pth"
    torch.save(OrderedDict(gen.state_dict()), path)
    ck = load_checkpoint(path)
    built = ck.build_generator()
    assert not built.training
    x = torch.rand(1, cfg.in_channels, cfg.height, 32)
    assert torch.equal(built(x), gen(x))
    # weights changed after loading are checked again, and the message names the file
    del ck.state_dict["lowres_stream.model.0.1.bias"]
    with pytest.raises(
        CheckpointError,
        match=rf"^{re.escape(str(path))}: missing tensor "
        r"lowres_stream\.model\.0\.1\.bias \[8\]",
    ):
        ck.build_generator()
    # without a file, no prefix
    bare = LoadedCheckpoint(ck.config, ck.state_dict)
    with pytest.raises(CheckpointError, match=r"^missing tensor lowres_stream\.model\.0\.1\.bias"):
        bare.build_generator()


# -- why torch.load refused a file -------------------------------------------------------------
@pytest.mark.parametrize(
    "exc",
    [
        EOFError(),
        RuntimeError("pickle data was truncated: Ran out of input"),
        RuntimeError("PytorchStreamReader failed locating file: failed finding central directory"),
    ],
)
def test_truncation_is_recognised_by_type_or_by_words(tmp_path, exc):
    from asap_deploy.checkpoint import _explain_load_failure

    path = tmp_path / "x.pth"
    path.write_bytes(b"12345")
    assert _explain_load_failure(path, exc) == (
        f"{path} is truncated or damaged (5 bytes; the archive ends early): re-download or re-save it"
    )


def test_weights_only_refusal_names_the_global_without_terminal_codes(tmp_path):
    from asap_deploy.checkpoint import _explain_load_failure

    path = tmp_path / "x.pth"
    path.write_bytes(b"1")
    exc = RuntimeError(
        "\x1b[1mWeights only load failed\x1b[0m. Trying to load unsupported "
        "GLOBAL \x1b[1mposix.system\x1b[0m whose module posix is blocked."
    )
    assert _explain_load_failure(path, exc).startswith(
        f"{path} holds a Python object (posix.system) besides tensors"
    )
    junk = RuntimeError("Weights only load failed. Unsupported operand 149")
    assert "its pickle stream is malformed, 1 bytes" in _explain_load_failure(path, junk)


def test_unrecognised_load_failures_quote_the_library(tmp_path):
    from asap_deploy.checkpoint import _explain_load_failure

    path = tmp_path / "x.pth"
    path.write_bytes(b"1")
    assert _explain_load_failure(path, RuntimeError("invalid load key, 'x'.")) == (
        f"{path} is not a readable PyTorch checkpoint (invalid load key, 'x'); the file may be "
        f"truncated or not a .pth at all: re-download or re-save it"
    )
    # a class name with capitals is a name too
    exc = RuntimeError("Weights only load failed. Unsupported GLOBAL __main__.Evil was found")
    assert "holds a Python object (__main__.Evil) besides tensors" in _explain_load_failure(path, exc)


# -- check_state_dict's messages ---------------------------------------------------------------
def _expect(state, message):
    from asap_deploy.checkpoint import check_state_dict

    with pytest.raises(CheckpointError) as e:
        check_state_dict(state, CFG)
    assert str(e.value) == message


SUMMARY = "in_channels=6, lr_width=8, lr_max_width=16, lr_depth=2, padding=zero, 14339 MLP parameters"
RESAVE = "the file mixes checkpoints or was edited: use the *_net_G.pth that training saved"


def test_check_state_dict_names_one_unexpected_tensor_and_counts_the_rest():
    state = state_dict()
    first = "lowres_stream.model.0.0.weight_orig"
    _expect(
        {**state, first: torch.zeros(2)},
        f"unexpected tensor {first} [2]: the generator for the inferred architecture "
        f"({SUMMARY}) has no such key (a spectral-norm tensor: ASAP-Net's generator uses "
        f"norm_G=instanceaffine, without spectral norm); {RESAVE}",
    )
    extra = {
        "lowres_stream.model.0.extra": torch.zeros(1),
        "lowres_stream.x": torch.zeros(1),
        "lowres_stream.y": torch.zeros(1),
    }
    _expect(
        {**state, **extra},
        f"unexpected tensor lowres_stream.model.0.extra [1] (and 2 more): the generator for "
        f"the inferred architecture ({SUMMARY}) has no such key; {RESAVE}",
    )


def test_check_state_dict_missing_and_misshapen_tensors():
    state = state_dict()
    keys = list(state)
    one = dict(state)
    del one[keys[1]]
    _expect(one, f"missing tensor {keys[1]} [8]: the inferred architecture ({SUMMARY}) needs it; {RESAVE}")
    three = {k: v for k, v in state.items() if k not in keys[1:4]}
    _expect(
        three,
        f"missing tensor {keys[1]} [8] and 2 more: the inferred architecture ({SUMMARY}) needs it; {RESAVE}",
    )
    wrong = dict(state)
    wrong[keys[1]] = torch.zeros(9)
    _expect(
        wrong,
        f"tensor {keys[1]} has shape [9], expected [8] for the architecture the other "
        f"tensors give ({SUMMARY}); {RESAVE}",
    )
    wrong[keys[2]] = torch.zeros(9)
    _expect(
        wrong,
        f"tensor {keys[1]} has shape [9], expected [8] (and 1 more) for the "
        f"architecture the other tensors give ({SUMMARY}); {RESAVE}",
    )


@pytest.mark.parametrize(
    "crop,aspect,width",
    [
        (1025, 2.0, 1024),  # H = 512.5: half a pixel off is off
        (1026, 2.0, 1024),  # H = 513
        (2000, 640.5 / 512, None),  # the tensors' H gives W = 640.5: no width
    ],
)
def test_suggested_width_tolerance_and_whole_widths(crop, aspect, width):
    notes = []
    got = _suggested_width(
        TrainingOptions(values={"crop_size": crop, "aspect_ratio": aspect}), small_config(hr_width=64), notes
    )
    assert got == width and len(notes) == 1


# -- the label split and the MLP search, message by message ------------------------------------
def _zeros(cfg):
    from asap_deploy.checkpoint import expected_shapes

    return OrderedDict((k, torch.zeros(s)) for k, s in expected_shapes(cfg).items())


FIRST = "the first convolution lowres_stream.model.0.0.weight"
HEAD = "the output convolution lowres_stream.model.12.weight predicts"
PASS_MLP = "pass --hr-width, --hr-depth, --output-nc and --lr-instance/--no-lr-instance as used in training"


def _error(state, overrides=None, **options):
    with pytest.raises(CheckpointError) as e:
        infer_config(state, overrides, options=TrainingOptions(values=options) if options else None)
    return str(e.value)


def test_label_nc_is_what_the_special_channels_leave():
    base = _zeros(CFG)  # 6 input channels: 5 labels + the instance edge
    cfg, _ = infer_config(base, {"contain_dontcare_label": True})
    assert (cfg.label_nc, cfg.contain_dontcare_label, cfg.instance_edge) == (4, True, True)
    one = _zeros(small_config(hr_width=64, label_nc=1, contain_dontcare_label=True))
    assert infer_config(one, {"contain_dontcare_label": True})[0].label_nc == 1  # one label is enough


def test_label_split_contradictions_say_who_said_what():
    base = _zeros(CFG)
    assert _error(base, {"label_nc": 3, "contain_dontcare_label": True}) == (
        f"{FIRST} [8, 6, 3, 3] takes 6 input channels but label_nc=3 was requested; "
        f"contain_dontcare_label=True was requested, which makes label_nc 3 + dontcare 1 + "
        f"instance edge 1 = 5; fix --label-nc / --instance-edge / --contain-dontcare-label"
    )
    assert _error(base, label_nc=3, contain_dontcare_label=True) == (
        f"{FIRST} [8, 6, 3, 3] takes 6 input channels but options file says label_nc: 3; "
        f"options file says contain_dontcare_label: True, which makes label_nc 3 + dontcare 1 + "
        f"instance edge 1 = 5; the options file may belong to another training run: fix it, or "
        f"pass --no-opt-file with --label-nc / --instance-edge / --contain-dontcare-label as "
        f"trained"
    )


def test_too_few_input_channels_for_the_special_ones():
    two = _zeros(
        small_config(
            hr_width=64, label_nc=1, contain_dontcare_label=True, instance_edge=False, lr_instance=False
        )
    )  # 2 input channels
    assert _error(two, {"instance_edge": True, "contain_dontcare_label": True}) == (
        f"{FIRST} [8, 2, 3, 3] takes 2 input channels, too few for 1 instance-edge and 1 "
        f"don't-care channels plus at least one label (contain_dontcare_label=True was "
        f"requested; instance_edge=True was requested); fix --label-nc / --instance-edge / "
        f"--contain-dontcare-label"
    )
    assert _error(two, no_instance_edge=False, contain_dontcare_label=True).endswith(
        "(options file says contain_dontcare_label: True; options file says no_instance_edge: "
        "False); the options file may belong to another training run: fix it, or pass "
        "--no-opt-file with --label-nc / --instance-edge / --contain-dontcare-label as trained"
    )


def test_mlp_options_the_tensors_contradict_are_named_together():
    cfg, notes = infer_config(
        _zeros(CFG), None, options=TrainingOptions(values={"hr_width": 32, "hr_depth": 4})
    )
    assert cfg == CFG
    assert notes == [
        f"warning: options file says hr_width: 32; options file says hr_depth: 4, "
        f"but {HEAD} 14339 MLP parameters, which fits only hr_width=64, "
        f"hr_depth=5; using the checkpoint's values"
    ]


def test_no_mlp_and_several_mlps_are_told_apart():
    assert _error(_zeros(CFG), {"hr_width": 24}) == (
        f"{HEAD} 14339 MLP parameters and no pixelwise-MLP configurations fit it (hr_width=24 "
        f"was requested); {PASS_MLP}"
    )
    odd = _zeros(small_config(hr_width=24, hr_depth=4, downsampling=16))
    assert _error(odd) == (
        f"{HEAD} 1803 MLP parameters and 2 pixelwise-MLP configurations fit it; {PASS_MLP}"
    )


def test_mlp_fields_from_the_options_file_are_quoted_when_nothing_fits():
    odd = _zeros(small_config(hr_width=24, hr_depth=4, downsampling=16))
    assert _error(odd, hr_width=32) == (
        f"{HEAD} 1803 MLP parameters and no pixelwise-MLP configurations fit it (options file "
        f"says hr_width: 32); {PASS_MLP}"
    )


@pytest.mark.parametrize("flags", [{"hr_width": 24}, {"hr_depth": 4}])
def test_one_flag_can_settle_an_ambiguous_mlp(flags):
    odd = _zeros(small_config(hr_width=24, hr_depth=4, downsampling=16))
    cfg, notes = infer_config(odd, flags)
    assert (cfg.hr_width, cfg.hr_depth, cfg.output_nc, cfg.downsampling) == (24, 4, 3, 16)
    assert notes == ["pixelwise MLP is not the default 64x5: inferred hr_width=24, hr_depth=4, output_nc=3"]


def test_single_channel_output_is_searched():
    cfg, notes = infer_config(_zeros(small_config(hr_width=64, output_nc=1)))
    assert (cfg.hr_width, cfg.hr_depth, cfg.output_nc) == (64, 5, 1)
    assert notes == ["pixelwise MLP is not the default 64x5: inferred hr_width=64, hr_depth=5, output_nc=1"]


@pytest.mark.parametrize("flag", [{"output_nc": 1}, {"hr_depth": 1}, {"hr_width": 0}, {"output_nc": 0}])
def test_flags_no_mlp_can_have_are_refused_by_name(flag):
    ((k, v),) = flag.items()
    assert _error(_zeros(CFG), flag) == (
        f"{HEAD} 14339 MLP parameters and no pixelwise-MLP configurations fit it ({k}={v} was "
        f"requested); {PASS_MLP}"
    )


def test_width_one_mlp_is_legal():
    cfg, _ = infer_config(_zeros(small_config(hr_width=1)), {"hr_width": 1})
    assert (cfg.hr_width, cfg.hr_depth) == (1, 5)


def test_too_few_input_channels_with_nothing_requested_blames_the_file():
    from asap_deploy.checkpoint import _label_split

    arch = {"in_channels": 1, "first_key": "lowres_stream.model.0.0.weight", "first_shape": "[8, 1, 3, 3]"}
    # one input channel, which the MLP search gave to the instance edge: no label is left
    with pytest.raises(CheckpointError) as e:
        _label_split(arch, {}, {}, TrainingOptions(), True, "ck.pth: ")
    assert str(e.value) == (
        f"ck.pth: {FIRST} [8, 1, 3, 3] takes 1 input channels, too few for 1 instance-edge and 0 "
        f"don't-care channels plus at least one label; {RESAVE}"
    )


# -- the padding rule ---------------------------------------------------------------------------
ZERO_PADDED = {"zero_padded": True, "first_key": "lowres_stream.model.0.0.weight"}
PADDED = {"zero_padded": False, "first_key": "lowres_stream.model.1.weight"}
PAD_OPTIONS = {
    None: {},
    "zero": {"reflection_pad": False, "replicate_pad": False},
    "reflect": {"reflection_pad": True, "replicate_pad": False},
    "replicate": {"reflection_pad": False, "replicate_pad": True},
}
ASSUMED = "assuming --reflection_pad (pass --padding replicate if it was trained with --replicate_pad)"


def _pad(arch, asked=None, said=None):
    """_padding with ``asked`` from a flag and ``said`` from an opt.txt (lines 4 and 5)."""
    from pathlib import Path

    from asap_deploy.checkpoint import _padding

    opts = TrainingOptions(
        Path("run/opt.txt"), dict(PAD_OPTIONS[said]), {"reflection_pad": 4, "replicate_pad": 5}
    )
    notes = []
    got = _padding(
        arch,
        {} if asked is None else {"padding": asked},
        {} if said is None else {"padding": said},
        opts,
        "ck.pth: ",
        notes,
    )
    return got, notes


def test_zero_padding_is_what_a_checkpoint_without_pad_layers_has():
    assert _pad(ZERO_PADDED) == ("zero", [])
    assert _pad(ZERO_PADDED, asked="zero") == ("zero", [])
    assert _pad(ZERO_PADDED, said="zero") == ("zero", [])
    assert _pad(ZERO_PADDED, said="replicate") == (
        "zero",
        [
            "warning: opt.txt line 4 says reflection_pad: False, opt.txt line 5 says replicate_pad: "
            "True, but the checkpoint has no pad layers (lowres_stream.model.0.0.weight is layer 0): "
            "using zero padding"
        ],
    )
    with pytest.raises(CheckpointError) as e:
        _pad(ZERO_PADDED, asked="reflect", said="zero")
    assert str(e.value) == (
        "ck.pth: padding=reflect was requested but the checkpoint was trained "
        "with zero padding (no pad layers)"
    )


def test_pad_layers_take_the_kind_asked_for_or_assume_reflect():
    assert _pad(PADDED) == ("reflect", [f"pad layers found: {ASSUMED}"])
    assert _pad(PADDED, said="reflect") == ("reflect", [])
    assert _pad(PADDED, said="replicate") == ("replicate", [])
    assert _pad(PADDED, asked="replicate", said="reflect") == ("replicate", [])
    assert _pad(PADDED, said="zero") == (
        "reflect",
        [
            "warning: opt.txt line 4 says reflection_pad: False, opt.txt line 5 says replicate_pad: "
            "False, but the checkpoint has pad layers (lowres_stream.model.1.weight is not layer 0): "
            f"{ASSUMED}"
        ],
    )
    with pytest.raises(CheckpointError) as e:
        _pad(PADDED, asked="zero", said="reflect")
    assert str(e.value) == (
        "ck.pth: padding=zero was requested but the checkpoint has "
        "reflect/replicate pad layers (--padding reflect|replicate)"
    )


# -- what the file holds ------------------------------------------------------------------------
def test_a_file_that_holds_no_dict_is_named_with_its_type():
    from pathlib import Path

    from asap_deploy.checkpoint import _find_generator_dict

    with pytest.raises(CheckpointError) as e:
        _find_generator_dict([torch.zeros(1)], Path("run/x.pth"))
    assert str(e.value) == (
        "run/x.pth holds a list, not a state dict: save the generator with "
        "torch.save(netG.state_dict(), path)"
    )
    # inside a wrapper, the messages still name the file
    with pytest.raises(CheckpointError) as e:
        _find_generator_dict({"epoch": 3, "netG": {"conv.weight": torch.zeros(1)}}, Path("run/x.pth"))
    assert str(e.value) == (
        "run/x.pth has no 'lowres_stream.model.*' tensors, so it is not an "
        "ASAP-Net generator checkpoint (pass *_net_G.pth, not *_net_D.pth)"
    )


def test_mlp_search_bounds_depth_and_needs_a_positional_encoding():
    deep = MLPSpec(6, 32, hidden_width=64, depth=11)  # depths 2..10 are searched
    assert _mlp_candidates(deep.num_params, 6, 2, {}) == [
        {"hr_width": 96, "hr_depth": 6, "output_nc": 3, "lr_instance": False, "downsampling": 8}
    ]
    assert _mlp_candidates(deep.num_params, 6, 2, {"hr_depth": 11}) == [
        {"hr_width": 64, "hr_depth": 11, "output_nc": 3, "lr_instance": False, "downsampling": 32}
    ]
    # first layer exactly as wide as the label channels: no encoding channel, so no S, no MLP
    c0, hw, depth, out = 6, 64, 5, 3
    params = (c0 + 1) * hw + (depth - 2) * (hw + 1) * hw + (hw + 1) * out
    assert (
        _mlp_candidates(
            params, 6, 1, {"hr_width": hw, "hr_depth": depth, "output_nc": out, "lr_instance": False}
        )
        == []
    )


def test_options_that_settle_an_ambiguous_mlp_leave_no_note():
    odd = _zeros(small_config(hr_width=24, hr_depth=4, downsampling=16))
    cfg, notes = infer_config(odd, None, options=TrainingOptions(values={"hr_width": 24, "hr_depth": 4}))
    assert (cfg.hr_width, cfg.hr_depth, cfg.output_nc, cfg.downsampling) == (24, 4, 3, 16)
    assert notes == []


def test_check_state_dict_counts_exactly_two():
    state = state_dict()
    keys = list(state)
    # a key without a dot (a state dict edited after loading) is still named
    _expect(
        {**state, "weight_u": torch.zeros(1), "lowres_stream.y": torch.zeros(1)},
        f"unexpected tensor weight_u [1] (and 1 more): the generator for the inferred "
        f"architecture ({SUMMARY}) has no such key (a spectral-norm tensor: ASAP-Net's "
        f"generator uses norm_G=instanceaffine, without spectral norm); {RESAVE}",
    )
    two = {k: v for k, v in state.items() if k not in keys[1:3]}
    _expect(
        two,
        f"missing tensor {keys[1]} [8] and 1 more: the inferred architecture ({SUMMARY}) needs it; {RESAVE}",
    )


@pytest.mark.parametrize(
    "foreign,more",
    [(["epoch"], ""), (["epoch", "step"], " (and 1 more)"), (["epoch", "step", "lr"], " (and 2 more)")],
)
def test_foreign_keys_are_counted(foreign, more):
    from pathlib import Path

    from asap_deploy.checkpoint import _find_generator_dict

    obj = {"lowres_stream.model.0.0.weight": torch.zeros(1), **{k: 1 for k in foreign}}
    with pytest.raises(CheckpointError) as e:
        _find_generator_dict(obj, Path("run/x.pth"))
    assert str(e.value) == (
        f"run/x.pth: key 'epoch'{more} is not a tensor of the ASAP-Net "
        f"generator (all of whose keys are lowres_stream.model.*); {RESAVE}"
    )


def test_a_prefix_is_what_precedes_the_first_generator_path():
    from pathlib import Path

    from asap_deploy.checkpoint import _find_generator_dict

    t = torch.zeros(1)
    got = _find_generator_dict(
        {"m.lowres_stream.model.0.w": t, "m.lowres_stream.model.lowres_stream.model.1": t}, Path("x.pth")
    )
    assert list(got) == ["lowres_stream.model.0.w", "lowres_stream.model.lowres_stream.model.1"]
    with pytest.raises(CheckpointError) as e:
        _find_generator_dict(
            {
                "lowres_stream.model.0.w": t,
                "module.lowres_stream.model.1.w": t,
                "netG.lowres_stream.model.2.w": t,
            },
            Path("x.pth"),
        )
    assert str(e.value) == (
        "x.pth: keys have different prefixes ('' as in 'lowres_stream.model.0.w', 'module.' as in "
        "'module.lowres_stream.model.1.w', 'netG.' as in 'netG.lowres_stream.model.2.w'), so the "
        f"file holds more than one model; {RESAVE}"
    )


# -- the low-res stream, tensor by tensor -------------------------------------------------------
def _infer_error(state, overrides=None, options=None):
    with pytest.raises(CheckpointError) as e:
        infer_config(state, overrides, "ck.pth: ", options)
    return str(e.value)


def test_an_incomplete_low_res_stream_is_counted():
    state = _zeros(CFG)  # 5 stem convolutions (S=16 learned), 2 blocks, the output convolution
    strided = (
        "lowres_stream.model.2.",
        "lowres_stream.model.4.",
        "lowres_stream.model.6.",
        "lowres_stream.model.8.",
    )
    assert _infer_error({k: v for k, v in state.items() if not k.startswith(strided)}) == (
        "ck.pth: the low-res stream is incomplete (found 1 stem convolutions and 1 output "
        "convolution); the file is not a full ASAP-Net generator"
    )
    assert _infer_error({k: v for k, v in state.items() if not k.startswith("lowres_stream.model.12.")}) == (
        "ck.pth: the low-res stream is incomplete (found 5 stem convolutions and 0 output "
        "convolution); the file is not a full ASAP-Net generator"
    )
    # two stem convolutions (one strided) are a whole stream
    cfg, _ = infer_config(_zeros(small_config(hr_width=64, learned_ds_factor=2)))
    assert cfg == small_config(hr_width=64, learned_ds_factor=2)


@pytest.mark.parametrize(
    "key,role,shape,kernel",
    [
        ("lowres_stream.model.2.0.weight", "strided convolution", "[8, 8, 2, 2]", 3),
        ("lowres_stream.model.10.conv_block.0.0.weight", "block convolution", "[16, 16, 2, 2]", 3),
        ("lowres_stream.model.12.weight", "the output convolution", "[14339, 16, 2, 2]", 1),
    ],
)
def test_a_misshapen_convolution_is_named_with_its_role(key, role, shape, kernel):
    state = _zeros(CFG)
    state[key] = torch.zeros(*state[key].shape[:2], 2, 2)
    assert _infer_error(state) == (
        f"ck.pth: {role} {key} has shape {shape}; ASAP-Net's is [out_channels, in_channels, "
        f"{kernel}, {kernel}]; {RESAVE}"
    )


@pytest.mark.parametrize(
    "name,value,got,tensors",
    [
        ("lr_max_width", 32, 16, "input of lowres_stream.model.12.weight"),
        ("lr_depth", 3, 2, "number of conv_block layers"),
        ("learned_ds_factor", 8, 16, "number of strided convolutions"),
    ],
)
def test_what_the_tensors_settle_refuses_flags_and_overrides_the_file(name, value, got, tensors):
    from pathlib import Path

    state = _zeros(CFG)
    assert _infer_error(state, {name: value}) == (
        f"ck.pth: {name}={value} was requested but the checkpoint's tensors have {name}={got} ({tensors})"
    )
    cfg, notes = infer_config(
        state, None, "ck.pth: ", TrainingOptions(Path("run/opt.txt"), {name: value}, {name: 7})
    )
    assert cfg == CFG
    assert notes == [
        f"warning: opt.txt line 7 says {name}: {value}, but the checkpoint has "
        f"{name}={got} ({tensors}); using the checkpoint's value"
    ]


def test_options_the_config_refuses_are_blamed_on_the_options_file():
    from pathlib import Path

    opts = TrainingOptions(Path("run/opt.txt"), {"hr_coor": "x"}, {"hr_coor": 3})
    assert _infer_error(_zeros(CFG), None, opts) == (
        "run/opt.txt: hr_coor: 'x' is not supported: the positional encoding must be 'cosine' "
        "(the authors' CLI cannot switch it off either)"
    )
    assert _infer_error(_zeros(CFG), {"padding": "reflect"}) == (
        "ck.pth: padding=reflect was requested but the checkpoint was trained with zero padding "
        "(no pad layers)"
    )


def test_entries_must_be_tensors_and_floating_ones_become_float32():
    from pathlib import Path

    from asap_deploy.checkpoint import _find_generator_dict

    with pytest.raises(CheckpointError) as e:
        _find_generator_dict({"lowres_stream.model.0.w": [1.0]}, Path("x.pth"))
    assert str(e.value) == "x.pth: entry 'lowres_stream.model.0.w' is a list, not a tensor"
    got = _find_generator_dict(
        {
            "lowres_stream.model.0.w": torch.zeros(2, dtype=torch.float16),
            "lowres_stream.model.0.n": torch.zeros(2, dtype=torch.int64),
        },
        Path("x.pth"),
    )
    assert [t.dtype for t in got.values()] == [torch.float32, torch.int64]


def test_a_missing_checkpoint_or_a_folder_says_what_to_pass(tmp_path):
    from asap_deploy.checkpoint import read_state_dict

    named = "(the authors' files are named like checkpoints/<name>/latest_net_G.pth)"
    with pytest.raises(CheckpointError) as e:
        read_state_dict(tmp_path / "latest_net_G.pth")
    assert str(e.value) == f"checkpoint not found: {tmp_path / 'latest_net_G.pth'} {named}"
    with pytest.raises(CheckpointError) as e:
        read_state_dict(tmp_path)
    assert str(e.value) == f"{tmp_path} is a directory, not a file: pass the checkpoint itself {named}"


@pytest.mark.parametrize(
    "flags,options,no_one_hot",
    [
        (None, None, False),
        ({"no_one_hot": True}, None, True),
        (None, {"no_one_hot": True}, True),
        ({"no_one_hot": False}, {"no_one_hot": True}, False),
    ],
)
def test_rgb_input_comes_from_a_flag_or_the_options_file(flags, options, no_one_hot):
    rgb = small_config(hr_width=64, label_nc=3, no_one_hot=True)  # the tensors cannot tell
    cfg, notes = infer_config(
        _zeros(rgb), flags, options=TrainingOptions(values=options) if options else None
    )
    assert cfg == dataclasses.replace(rgb, no_one_hot=no_one_hot) and notes == []


def test_config_and_state_dict_errors_name_the_file():
    padded = _zeros(small_config(hr_width=64, padding="reflect"))
    assert _infer_error(padded, {"padding": "mirror"}) == (
        "ck.pth: padding must be one of ('zero', 'reflect', 'replicate'), got 'mirror'"
    )
    assert _infer_error({**_zeros(CFG), "lowres_stream.model.0.0.extra": torch.zeros(1)}) == (
        f"ck.pth: unexpected tensor lowres_stream.model.0.0.extra [1]: the generator for the "
        f"inferred architecture ({SUMMARY}) has no such key; {RESAVE}"
    )


def test_load_checkpoint_keeps_options_notes_and_warnings_apart(tmp_path):
    path = save(tmp_path / "run", opt_txt=opt_txt(lr_depth=3))
    ck = load_checkpoint(path)
    assert ck.config == CFG and ck.path == path and ck.options == {"lr_depth": 3}
    assert ck.warnings == [
        "opt.txt line 2 says lr_depth: 3, but the checkpoint has lr_depth=2 "
        "(number of conv_block layers); using the checkpoint's value"
    ]
    assert ck.notes == []
    bare = load_checkpoint(save(tmp_path / "bare"), {"padding": "zero"}, use_options_file=False)
    assert (bare.options, bare.notes, bare.warnings) == ({}, [], [])


def test_load_checkpoint_errors_start_with_the_path(tmp_path):
    path = save(tmp_path / "extra", {**state_dict(), "lowres_stream.model.0.0.extra": torch.zeros(1)})
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    assert str(e.value) == (
        f"{path}: unexpected tensor lowres_stream.model.0.0.extra [1]: the "
        f"generator for the inferred architecture ({SUMMARY}) has no such "
        f"key; {RESAVE}"
    )
    listed = save(tmp_path / "list", [torch.zeros(1)])
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(listed)
    assert str(e.value) == (
        f"{listed} holds a list, not a state dict: save the generator with "
        f"torch.save(netG.state_dict(), path)"
    )


def test_every_mlp_field_given_is_quoted_when_nothing_fits():
    assert _error(_zeros(CFG), {"hr_width": 24, "hr_depth": 4}) == (
        f"{HEAD} 14339 MLP parameters and no pixelwise-MLP configurations fit it (hr_width=24 "
        f"was requested; hr_depth=4 was requested); {PASS_MLP}"
    )


def test_a_depth_one_mlp_is_refused_even_where_the_count_fits():
    # 8 -> 8 -> 3 with depth 1 would be 171 parameters for a 27-channel first layer (S=32)
    fixed = {"hr_width": 8, "output_nc": 3, "lr_instance": False}
    assert _mlp_candidates(171, 6, 2, {**fixed, "hr_depth": 1}) == []


def test_build_generator_loads_strictly_even_without_the_shape_check(tmp_path, monkeypatch):
    import asap_deploy.checkpoint as checkpoint

    ck = load_checkpoint(save(tmp_path))
    del ck.state_dict["lowres_stream.model.0.1.bias"]
    monkeypatch.setattr(checkpoint, "check_state_dict", lambda *a: None)
    with pytest.raises(CheckpointError) as e:
        ck.build_generator()
    assert str(e.value) == (
        f"{ck.path}: weights do not fit the inferred architecture (Error(s) in loading "
        f"state_dict for ASAPNetGenerator:)"
    )


def test_options_without_a_file_are_blamed_once():
    """Options given through the API (no file behind them): the checkpoint is named once."""
    opts = TrainingOptions(values={"hr_coor": "x"})
    assert _infer_error(_zeros(CFG), None, opts) == (
        "ck.pth: hr_coor: 'x' is not supported: the positional encoding must be 'cosine' "
        "(the authors' CLI cannot switch it off either)"
    )


def test_no_one_hot_in_the_options_file_is_quoted_when_it_contradicts_the_tensors():
    """no_one_hot sets label_nc 3; against a 6-channel first convolution the message must name
    the option that did it, not just the file."""
    from pathlib import Path

    opts = TrainingOptions(Path("run/opt.txt"), {"no_one_hot": True}, {"no_one_hot": 9})
    message = _infer_error(_zeros(small_config(label_nc=6, instance_edge=False)), None, opts)
    assert "opt.txt line 9 says no_one_hot: True, which makes label_nc 3 " in message, message


def test_a_false_no_one_hot_is_not_quoted_for_label_nc():
    from pathlib import Path

    from asap_deploy.training_options import describe_field

    opts = TrainingOptions(Path("run/opt.txt"), {"label_nc": 5, "no_one_hot": False}, {"label_nc": 3})
    assert describe_field(opts, "label_nc") == "opt.txt line 3 says label_nc: 5"
    assert describe_field(opts, "no_one_hot") == "opt.txt says no_one_hot: False"
