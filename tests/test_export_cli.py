"""``python -m asap_deploy.export`` as a user runs it: outputs, manifest, errors, exit codes."""

import hashlib
import json
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch
from conftest import small_config

from asap_deploy.demo import demo_generator
from asap_deploy.export import main


@pytest.fixture
def checkpoint(tmp_path):
    cfg = small_config(hr_width=64)
    path = tmp_path / "ckpts" / "city" / "latest_net_G.pth"
    path.parent.mkdir(parents=True)
    torch.save(OrderedDict(demo_generator(cfg).state_dict()), path)
    return path


def _trt_flavour():
    from asap_deploy.engine.trt_module import import_tensorrt
    from asap_deploy.errors import MissingDependencyError

    try:
        return import_tensorrt("auto")[1]
    except MissingDependencyError:
        return None


def test_export_writes_every_artifact(checkpoint, tmp_path, capsys):
    """No options: FP32 + FP16 graphs, parity, and the FP16 engine where TensorRT is installed;
    files and folder get the modes the umask gives."""
    import os

    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        rc = main([str(checkpoint), "--width", "96", "--out", str(out)])
    finally:
        os.umask(old)
    text = capsys.readouterr().out
    assert rc == 0, text
    names = {"g", "mlp", "asapnet", "asapnet_plugin"}
    files = {p.name for p in out.iterdir()}
    flavour = _trt_flavour()
    engine = {f"asapnet_fp16.{flavour}.plan", f"asapnet_fp16.{flavour}.plan.json"} if flavour else set()
    assert (
        files == {f"{n}.onnx" for n in names} | {f"{n}_fp16.onnx" for n in names} | {"manifest.json"} | engine
    )
    assert (out.stat().st_mode & 0o777) == 0o755
    assert {p.stat().st_mode & 0o777 for p in out.iterdir()} == {0o644}
    man = json.loads((out / "manifest.json").read_text())
    for f in man["files"]:
        assert hashlib.sha256((out / f["file"]).read_bytes()).hexdigest() == f["sha256"]
    assert man["height"] == 512 and man["width"] == 96 and man["opset"] >= 17
    assert man["mlp"]["num_params"] == small_config(hr_width=64).num_params
    assert man["plugin"]["op_type"] == "ASAP_SpatialMLP"
    assert man["parity"]["fp32"]["asapnet"]["max_abs"] <= 1e-4
    assert man["parity"]["fp16"]["asapnet"]["psnr_db"] >= 40
    assert "[1/" in text and "all pass" in text
    assert not list(tmp_path.glob(".out.tmp-*"))
    if flavour:  # the engine is indexed by the manifest, built from the FP16 graph
        (e,) = man["engines"]
        assert e["file"] == f"asapnet_fp16.{flavour}.plan" and e["onnx"] == "asapnet_fp16.onnx"
        assert e["sha256"] == hashlib.sha256((out / e["file"]).read_bytes()).hexdigest()


def _fails(argv, capsys, match):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], err


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--height", "1024"], "H=16*S=512"),
        (["--width", "100"], "multiple of S=32"),
        (["--hr-width", "32"], "--hr-width"),
    ],
)
def test_bad_resolution_or_flags_exit_2_without_output(checkpoint, tmp_path, capsys, extra, match):
    out = tmp_path / "out"
    argv = [str(checkpoint), "--out", str(out), "--no-parity", "--engine", "none"] + extra
    if "--width" not in extra:
        argv += ["--width", "64"]
    _fails(argv, capsys, match)
    assert not out.exists()
    assert not list(tmp_path.glob(".out.*"))


def test_bad_checkpoints_exit_2(tmp_path, capsys):
    _fails([str(tmp_path / "missing.pth")], capsys, "not found")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x80\x02garbage")
    _fails([str(bad)], capsys, "not a readable PyTorch checkpoint")
    _fails([], capsys, "no checkpoint given")
    _fails(["--demo", "nope"], capsys, "unknown preset")


def test_existing_unrelated_folder_is_not_clobbered(checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    _fails(
        [str(checkpoint), "--width", "64", "--out", str(out), "--no-parity", "--engine", "none"],
        capsys,
        "--force",
    )
    assert (out / "precious.txt").read_text() == "keep me"


def test_reexport_replaces_an_earlier_export(checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    for width in ("64", "96"):
        assert (
            main(
                [
                    str(checkpoint),
                    "--width",
                    width,
                    "--out",
                    str(out),
                    "--no-parity",
                    "--precision",
                    "fp32",
                    "--engine",
                    "none",
                ]
            )
            == 0
        )
    assert json.loads((out / "manifest.json").read_text())["width"] == 96


def test_module_entry_point(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "asap_deploy.export", str(tmp_path / "x.pth")], capture_output=True, text=True
    )
    assert r.returncode == 2 and r.stderr.startswith("error: checkpoint not found")


def test_engine_option(checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    _fails(
        [
            str(checkpoint),
            "--width",
            "64",
            "--out",
            str(out),
            "--no-parity",
            "--precision",
            "fp32",
            "--engine",
            "tensorrt_rtx",
        ],
        capsys,
        "add fp16 to --precision",
    )
    if _trt_flavour() is None:
        _fails(
            [str(checkpoint), "--width", "64", "--out", str(out), "--no-parity", "--engine", "tensorrt"],
            capsys,
            "TensorRT is not installed",
        )


def test_rgb_input_without_opt_file(tmp_path, capsys):
    """--input rgb where no opt.txt says --no_one_hot: the export takes the image, named rgb."""
    cfg = small_config(hr_width=64, label_nc=3, no_one_hot=True)
    ckpt = tmp_path / "rgb" / "latest_net_G.pth"
    ckpt.parent.mkdir()
    torch.save(OrderedDict(demo_generator(cfg).state_dict()), ckpt)
    out = tmp_path / "out"
    assert main([str(ckpt), "--width", "64", "--out", str(out), "--input", "rgb"]) == 0, capsys.readouterr()
    man = json.loads((out / "manifest.json").read_text())
    assert man["input_mode"] == "rgb" and man["config"]["no_one_hot"]
    if _trt_flavour():  # TensorRT takes the uint8 image (it only casts uint8 tensors)
        assert [e["onnx"] for e in man["engines"]] == ["asapnet_fp16.onnx"]
    assert man["files"][0]["inputs"][0] == {"name": "rgb", "dtype": "uint8", "shape": ["batch", 512, 64, 3]}
    assert man["parity"]["fp32"]["asapnet_plugin"]["max_abs"] <= 1e-4
    capsys.readouterr()
    (ckpt.parent / "opt.txt").write_text("no_one_hot: True\nlabel_nc: 3\n")
    _fails(
        [str(ckpt), "--width", "64", "--out", str(out), "--input", "labels", "--no-parity"],
        capsys,
        "takes RGB images",
    )
    (ckpt.parent / "opt.txt").unlink()  # a 36-channel label model is no RGB model
    label_ckpt = tmp_path / "lab" / "latest_net_G.pth"
    label_ckpt.parent.mkdir()
    torch.save(OrderedDict(demo_generator(small_config(hr_width=64)).state_dict()), label_ckpt)
    _fails(
        [str(label_ckpt), "--width", "64", "--out", str(out), "--input", "rgb", "--no-parity"],
        capsys,
        "input channels",
    )


@pytest.mark.slow
def test_full_width_cityscapes_demo(tmp_path, capsys):
    """The paper's widths (83 M parameters) at 256x512, FP32 (the README's set-up exports
    both precisions; tests/test_readme.py runs it as written)."""
    out = tmp_path / "demo"
    rc = main(["--demo", "cityscapes-256x512", "--out", str(out), "--precision", "fp32", "--engine", "none"])
    assert rc == 0, capsys.readouterr()
    man = json.loads((out / "manifest.json").read_text())
    assert man["mlp"]["num_params"] == 16003
    for graph in ("g", "mlp", "asapnet", "asapnet_plugin"):
        assert man["parity"]["fp32"][graph]["ok"]
    assert man["parity"]["fp32"]["asapnet"]["max_abs"] <= 1e-4


@pytest.mark.parametrize("flags,noted", [([], True), (["--label-nc", "5"], False)])
def test_an_assumed_label_split_is_printed(checkpoint, tmp_path, capsys, flags, noted):
    """Without opt.txt or flags the label split is a guess from the channel count: say so."""
    argv = [str(checkpoint), "--width", "64", "--out", str(tmp_path / "o"), "--no-parity", "--engine", "none"]
    assert main(argv + flags) == 0
    out = capsys.readouterr().out
    assert ("note: no opt.txt or flag gives the label split: assuming label_nc 5, " in out) == noted, out
