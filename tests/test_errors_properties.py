"""Property-based: corrupted checkpoints, opt.txt files and manifests always end in one error
line, a non-zero exit code and nothing written. Every generated input is broken by construction
(never a valid variant that would start a real export), and the example counts are small and
derandomized so CI stays fast and reproducible."""

import json
import shutil
import tempfile
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import pytest
import torch
from error_cases import WIDTH, assert_one_error_line, opt_txt, save, state_dict, tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asap_deploy.build import main as build_main
from asap_deploy.export import main as export_main

FAST = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
STATE = state_dict()
KEYS = list(STATE)
#: tensors whose shape nothing else can explain: any change must be refused (the first and the
#: output convolutions are left out, since changing them can describe another valid model)
RIGID = [k for k in KEYS if not k.startswith(("lowres_stream.model.0.", "lowres_stream.model.12."))]


@contextmanager
def _workdir():
    d = Path(tempfile.mkdtemp(prefix="asap-prop-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _run(main, argv):
    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(argv)
    return rc, err.getvalue()


def _export_refuses(ckpt: Path):
    folder = ckpt.parent
    before = tree(folder)
    rc, err = _run(export_main, [str(ckpt), "--width", WIDTH, "--out", str(folder / "out"), "--no-parity"])
    assert rc != 0
    assert_one_error_line(err)
    assert tree(folder) == before


# -- checkpoints -----------------------------------------------------------------------------
@st.composite
def broken_state_dicts(draw):
    state = dict(STATE)
    how = draw(st.sampled_from(["drop", "add", "reshape", "rename", "not_tensor"]))
    key = draw(st.sampled_from(RIGID if how == "reshape" else KEYS))
    if how == "drop":
        del state[key]
    elif how == "add":
        name = draw(st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=30))
        key = draw(st.sampled_from(["", "lowres_stream.model.", "module."])) + name
        state[key if key not in state else key + ".extra"] = torch.zeros(draw(st.integers(1, 4)))
    elif how == "reshape":
        shape = list(state[key].shape)
        dims = draw(st.lists(st.integers(1, 20), min_size=1, max_size=4).filter(lambda d: d != shape))
        state[key] = torch.zeros(dims)
    elif how == "rename":
        state[key + draw(st.sampled_from(["_orig", ".x", "0"]))] = state.pop(key)
    else:
        state[key] = draw(st.sampled_from([1, "w", None, [1.0, 2.0]]))
    return state


@FAST
@given(broken_state_dicts())
def test_corrupted_state_dicts(state):
    with _workdir() as d:
        _export_refuses(save(d / "ck", state))


@FAST
@given(st.data())
def test_truncated_or_garbage_checkpoint_files(data):
    with _workdir() as d:
        ckpt = save(d / "ck")
        raw = ckpt.read_bytes()
        how = data.draw(st.sampled_from(["truncate", "garbage", "prefix"]))
        if how == "truncate":
            ckpt.write_bytes(raw[: data.draw(st.integers(0, len(raw) - 1))])
        elif how == "garbage":
            ckpt.write_bytes(data.draw(st.binary(max_size=2000)))
        else:  # a valid archive's head glued to noise
            cut = data.draw(st.integers(1, len(raw) - 1))
            ckpt.write_bytes(raw[:cut] + data.draw(st.binary(min_size=1, max_size=200)))
        _export_refuses(ckpt)


# -- opt.txt ---------------------------------------------------------------------------------
_TYPED = {
    "label_nc": "int",
    "lr_depth": "int",
    "crop_size": "int",
    "hr_width": "int",
    "no_instance_edge": "bool",
    "lr_instance": "bool",
    "reflection_pad": "bool",
    "aspect_ratio": "float",
}


def _not_a(kind):
    text = st.text(
        st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="["), min_size=1, max_size=12
    )
    if kind == "int":
        return text.filter(lambda s: not s.lstrip("+-").isdigit())
    if kind == "bool":
        return text.filter(lambda s: s not in ("True", "False"))
    return text.filter(lambda s: not _is_float(s))


def _is_float(s):
    try:
        float(s)
        return True
    except ValueError:
        return False


@st.composite
def broken_opt_txt(draw):
    good = opt_txt(label_nc=5, no_instance_edge=False, name="city", gpu_ids="0").splitlines()
    how = draw(st.sampled_from(["bad_value", "bad_line", "binary", "empty", "duplicate"]))
    if how == "bad_value":
        option = draw(st.sampled_from(sorted(_TYPED)))
        good.insert(1, f"{option:>25}: {draw(_not_a(_TYPED[option]))}")
    elif how == "bad_line":
        line = draw(
            st.text(
                st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters=":"),
                min_size=1,
                max_size=40,
            ).filter(lambda s: s.strip() and not s.lstrip().startswith("---"))
        )
        good.insert(draw(st.integers(0, len(good))), line)
    elif how == "binary":
        return draw(st.binary(min_size=1, max_size=200).filter(lambda b: b"\0" in b or not _utf8(b)))
    elif how == "empty":
        good = [l for l in good if l.startswith("---")] + [""] * draw(st.integers(0, 3))
    else:
        good.insert(2, good[1])
    return "\n".join(good).encode()


def _utf8(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


@FAST
@given(broken_opt_txt())
def test_corrupted_opt_txt(content):
    with _workdir() as d:
        ckpt = save(d / "ck")
        (d / "ck" / "opt.txt").write_bytes(content)
        _export_refuses(ckpt)


# -- manifests -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("prop")
    out = root / "small"
    rc, _ = _run(
        export_main,
        [str(save(root / "ck")), "--width", WIDTH, "--out", str(out), "--precision", "fp32", "--no-parity"],
    )
    assert rc == 0
    return out


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=6,
)


def _still_valid(key, value):
    """Replacements that describe another valid export (not what these tests are about)."""
    if key == "width":  # any positive multiple of S=32 is a valid width
        return type(value) is int and value > 0 and value % 32 == 0
    if key == "source":
        return isinstance(value, dict)
    return key == "files" and value == []


@st.composite
def broken_manifests(draw, manifest):
    how = draw(st.sampled_from(["bytes", "truncate", "drop_key", "retype", "entry", "version"]))
    text = json.dumps(manifest)
    if how == "bytes":
        return draw(st.binary(max_size=300))
    if how == "truncate":
        return text[: draw(st.integers(0, len(text) - 1))].encode()
    man = json.loads(text)
    entry = next(f for f in man["files"] if f["file"] == "asapnet.onnx")
    if how == "drop_key":
        man.pop(
            draw(
                st.sampled_from(
                    ["manifest_version", "config", "height", "width", "input_mode", "files", "source"]
                )
            )
        )
    elif how == "retype":
        key = draw(st.sampled_from(["config", "height", "width", "files", "source"]))
        man[key] = draw(_JSON.filter(lambda v, k=key: v != man[k] and not _still_valid(k, v)))
        if key == "config" and isinstance(man[key], dict) and not man[key]:
            man[key] = {"label_nc": "x"}
    elif how == "entry":
        field = draw(st.sampled_from(["sha256", "bytes"]))
        entry[field] = draw(_JSON.filter(lambda v, f=field: v != entry[f]))
    else:
        man["manifest_version"] = draw(_JSON.filter(lambda v: v != 1))
    return json.dumps(man).encode()


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_corrupted_manifests(export_dir, data):
    manifest = json.loads((export_dir / "manifest.json").read_text())
    content = data.draw(broken_manifests(manifest))
    with _workdir() as d:
        folder = d / "small"
        shutil.copytree(export_dir, folder)
        (folder / "manifest.json").write_bytes(content)
        before = tree(folder)
        rc, err = _run(build_main, [str(folder / "asapnet.onnx"), "--out", str(folder / "a.plan")])
        assert rc == 2
        assert_one_error_line(err)
        assert tree(folder) == before
