"""ONNX -> engine with whichever TensorRT module is installed (TensorRT for RTX builds
ahead-of-time without a GPU, so CI covers this); sidecar checks; the Python plugin's fields."""
import importlib
import json

import numpy as np
import pytest

from asap_deploy.build import main as build_main
from asap_deploy.engine import trt_module
from asap_deploy.engine.builder import sidecar_path
from asap_deploy.engine.loader import EngineMismatchError, check_compatible, read_sidecar
from asap_deploy.errors import MissingDependencyError
from asap_deploy.export import main as export_main


def _trt():
    try:
        return trt_module.import_tensorrt("auto")
    except MissingDependencyError as exc:
        pytest.skip(f"no TensorRT Python module: {exc}")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "small"
    import torch
    from collections import OrderedDict
    from asap_deploy.demo import demo_generator
    from conftest import small_config
    ckpt = out.parent / "latest_net_G.pth"
    torch.save(OrderedDict(demo_generator(small_config(hr_width=64)).state_dict()), ckpt)
    assert export_main([str(ckpt), "--width", "64", "--out", str(out), "--precision", "fp32",
                        "fp16", "--no-parity"]) == 0
    return out


def test_missing_module_message(monkeypatch):
    def fail(name):
        raise ImportError(f"No module named {name!r}")
    monkeypatch.setattr(importlib, "import_module", fail)
    with pytest.raises(MissingDependencyError, match="pip install tensorrt-rtx-cu13-bindings"):
        trt_module.import_tensorrt("auto")


def test_build_fp16_engine_with_sidecar_and_timing_cache(exported, tmp_path, capsys):
    _, flavour = _trt()
    engine = tmp_path / "a.plan"
    cache = tmp_path / "timing.cache"
    rc = build_main([str(exported / "asapnet_fp16.onnx"), "--out", str(engine), "--batch", "1",
                     "2", "4", "--timing-cache", str(cache)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    side = json.loads(sidecar_path(engine).read_text())
    assert side["precision"] == "fp16" and side["tensorrt_module"] == flavour
    assert side["inputs"]["label"]["max"][0] == 4 and side["plugin"] is None
    assert engine.stat().st_size > 0
    if flavour == "tensorrt_rtx":  # no timing cache there: said, not silently ignored
        assert not cache.exists() and "timing cache" in side["notes"][0]
    else:
        assert cache.is_file()
    assert "Building" in out.err or "building" in out.err.lower()
    assert read_sidecar(engine)["onnx_sha256"] == side["onnx_sha256"]


def test_plugin_graph(exported, tmp_path, capsys):
    trt, flavour = _trt()
    engine = tmp_path / "p.plan"
    rc = build_main([str(exported / "asapnet_plugin_fp16.onnx"), "--out", str(engine),
                     "--no-progress", "--plugin", "none"])
    assert rc == 0, capsys.readouterr().err
    assert json.loads(sidecar_path(engine).read_text())["plugin"]["kind"] == "none"
    if flavour == "tensorrt_rtx":  # the Python plugin is refused with the reason, not a crash
        rc = build_main([str(exported / "asapnet_plugin_fp16.onnx"), "--out", str(engine),
                         "--plugin", "python"])
        assert rc == 2 and "TensorRT for RTX cannot use the Python plugin" in capsys.readouterr().err


@pytest.mark.parametrize("argv,match", [
    (["missing.onnx"], "ONNX file not found"),
    (["BAD", "--batch", "4", "2", "1"], "min <= opt <= max"),
    (["BAD", "--batch", "1", "2"], "one value"),
])
def test_bad_input_exits_2(tmp_path, capsys, argv, match):
    _trt()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    argv = [str(bad) if a == "BAD" else str(tmp_path / a) if a.endswith(".onnx") else a
            for a in argv]
    if match == "ONNX file not found":
        pass
    assert build_main(argv) == 2
    assert match in capsys.readouterr().err
    assert not list(tmp_path.glob("*.plan"))


def test_corrupt_onnx(tmp_path, capsys):
    _trt()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    assert build_main([str(bad)]) == 2
    assert "bad.onnx" in capsys.readouterr().err


def test_sidecar_checks(tmp_path):
    side = {"onnx": "m.onnx", "tensorrt_module": "tensorrt", "tensorrt_version": "11.1.0",
            "gpu": {"name": "NVIDIA H100", "compute_capability": "9.0"}}
    check_compatible(side, "tensorrt", "11.1.0", {"name": "NVIDIA H100", "compute_capability": "9.0"})
    with pytest.raises(EngineMismatchError, match="only load in the TensorRT version"):
        check_compatible(side, "tensorrt", "11.2.0", None)
    with pytest.raises(EngineMismatchError, match="rebuild it: python -m asap_deploy.build m.onnx"):
        check_compatible(side, "tensorrt", "11.1.0", {"name": "RTX 2080 Ti",
                                                      "compute_capability": "7.5"})
    with pytest.raises(EngineMismatchError, match="is missing"):
        read_sidecar(tmp_path / "x.plan")


def test_python_plugin_fields_round_trip():
    trt, _ = _trt()
    from asap_deploy.engine.python_plugin import make_classes, parse_fields
    from asap_deploy.config import GeneratorConfig
    from asap_deploy.onnx_export.plugin_node import node_attributes
    plugin_cls, creator_cls = make_classes(trt)
    attrs = node_attributes(GeneratorConfig(downsampling=64), "label_ids")
    plugin = plugin_cls(attrs)
    back = parse_fields(plugin.get_fields_to_serialize())
    assert back == attrs
    names = {f.name for f in creator_cls().field_names}
    assert names == set(attrs)
    with pytest.raises(ValueError, match="missing"):
        parse_fields([trt.PluginField("depth", np.array([5], np.int32), trt.PluginFieldType.INT32)])


@pytest.mark.gpu
def test_plugin_engine_matches_pytorch_on_gpu(exported):
    """The plugin inside an engine, end to end, where a GPU and TensorRT are both present."""
    import shutil

    import torch
    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU (CUDA)")
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc (CUDA toolkit) not installed")
    trt, flavour = _trt()
    from asap_deploy import build_plugin
    from asap_deploy.fused_mlp import DEFAULT_DIR
    from asap_deploy.harness.source import open_export
    from asap_deploy.metrics import psnr
    from asap_deploy.runners.base import RunnerUnavailable
    from asap_deploy.runners.trt_runner import TrtRunner

    major, minor = torch.cuda.get_device_capability()
    build_plugin.build_kernel_library(DEFAULT_DIR, archs=(f"{major}{minor}",))
    plugin = "python"
    if flavour == "tensorrt_rtx":
        try:
            root = build_plugin.find_tensorrt(None)
        except MissingDependencyError as exc:
            pytest.skip(f"TensorRT for RTX needs the C++ plugin, which needs headers: {exc}")
        plugin = str(build_plugin.build_trt_plugin(DEFAULT_DIR, root,
                                                   archs=(f"{major}{minor}",)))
    src = open_export(exported)
    feeds = src.feeds(1, seed=3)
    ref = src.gen(torch.from_numpy(feeds["label"])).numpy()
    runner = TrtRunner(exported / "asapnet_plugin_fp16.onnx", "fp16", flavour, plugin)
    try:
        runner.activate()
    except RunnerUnavailable as exc:
        pytest.fail(f"plugin engine did not run on this GPU: {exc}")
    assert psnr(runner.infer(feeds), ref) >= 40.0
