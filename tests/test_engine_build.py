"""ONNX -> engine with whichever TensorRT module is installed (TensorRT for RTX builds
ahead-of-time without a GPU, so CI covers this); sidecar checks; the Python plugin's fields;
an engine containing the plugin, built on the CPU with TensorRT for RTX in a child process.

Without a GPU an engine cannot be deserialised, so CPU-built engines are checked against the
export's manifest through what can be read without one: the network TensorRT built them from
(I/O names, types, shapes), the sidecar, and the plugin record serialised in the plan.
"""

import hashlib
import importlib
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from asap_deploy.build import main as build_main
from asap_deploy.engine import trt_module
from asap_deploy.engine.builder import sidecar_path
from asap_deploy.engine.loader import EngineMismatchError, check_compatible, read_sidecar
from asap_deploy.errors import MissingDependencyError
from asap_deploy.export import main as export_main
from asap_deploy.onnx_export.plugin_node import PLUGIN_NAMESPACE, PLUGIN_OP, read_node_attributes


def _trt():
    try:
        return trt_module.import_tensorrt("auto")
    except MissingDependencyError as exc:
        pytest.skip(f"no TensorRT Python module: {exc}")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "small"
    from collections import OrderedDict

    import torch
    from conftest import small_config

    from asap_deploy.demo import demo_generator

    ckpt = out.parent / "latest_net_G.pth"
    torch.save(OrderedDict(demo_generator(small_config(hr_width=64)).state_dict()), ckpt)
    assert (
        export_main(
            [str(ckpt), "--width", "64", "--out", str(out), "--precision", "fp32", "fp16", "--no-parity"]
        )
        == 0
    )
    return out


def test_missing_module_message(monkeypatch):
    def fail(name):
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(importlib, "import_module", fail)
    with pytest.raises(MissingDependencyError, match="pip install tensorrt-rtx-cu13-bindings"):
        trt_module.import_tensorrt("auto")


def _manifest_io(export_dir: Path, filename: str):
    """The documented interface of one exported file: {name: (dtype, shape)} in and out."""
    entry = next(
        f for f in json.loads((export_dir / "manifest.json").read_text())["files"] if f["file"] == filename
    )
    return (
        {t["name"]: (t["dtype"], t["shape"]) for t in entry["inputs"]},
        {t["name"]: (t["dtype"], t["shape"]) for t in entry["outputs"]},
    )


def _network_io(trt, onnx_path: Path):
    """{name: (numpy dtype name, shape with -1 for batch)} of the network TensorRT parses."""
    logger = trt.Logger(trt.Logger.ERROR)
    network = trt.Builder(logger).create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_path.read_bytes()), [
        parser.get_error(i).desc() for i in range(parser.num_errors)
    ]
    io = (
        [network.get_input(i) for i in range(network.num_inputs)],
        [network.get_output(i) for i in range(network.num_outputs)],
    )
    return tuple({t.name: [np.dtype(trt.nptype(t.dtype)).name, list(t.shape)] for t in ts} for ts in io)


def _check_engine_against_manifest(export_dir, onnx_name, engine, side, batch, net_io=None, trt=None):
    """What a CPU can check of a CPU-built engine: the sidecar's profile and outputs, the
    network's I/O names/types/shapes, the hashes, and the I/O names in the plan."""
    want_in, want_out = _manifest_io(export_dir, onnx_name)
    lo, mid, hi = batch
    assert side["inputs"] == {
        n: {"min": [lo, *s[1:]], "opt": [mid, *s[1:]], "max": [hi, *s[1:]]} for n, (_, s) in want_in.items()
    }
    assert side["outputs"] == list(want_out)
    net_in, net_out = net_io if net_io is not None else _network_io(trt, export_dir / onnx_name)
    as_net = lambda d: {n: [t, [-1, *s[1:]]] for n, (t, s) in d.items()}  # noqa: E731
    assert (net_in, net_out) == (as_net(want_in), as_net(want_out))
    plan = engine.read_bytes()
    assert side["engine_sha256"] == hashlib.sha256(plan).hexdigest()
    assert side["onnx_sha256"] == hashlib.sha256((export_dir / onnx_name).read_bytes()).hexdigest()
    for name in [*want_in, *want_out]:
        assert name.encode() in plan, f"{name} is not in the plan"


def test_build_fp16_engine_with_sidecar_and_timing_cache(exported, tmp_path, capsys):
    trt, flavour = _trt()
    engine = tmp_path / "a.plan"
    cache = tmp_path / "timing.cache"
    rc = build_main(
        [
            str(exported / "asapnet_fp16.onnx"),
            "--out",
            str(engine),
            "--batch",
            "1",
            "2",
            "4",
            "--timing-cache",
            str(cache),
        ]
    )
    out = capsys.readouterr()
    assert rc == 0, out.err
    side = json.loads(sidecar_path(engine).read_text())
    assert side["precision"] == "fp16" and side["tensorrt_module"] == flavour
    assert side["plugin"] is None
    _check_engine_against_manifest(exported, "asapnet_fp16.onnx", engine, side, (1, 2, 4), trt=trt)
    if flavour == "tensorrt_rtx":  # no timing cache there: said, not silently ignored
        assert not cache.exists() and "timing cache" in side["notes"][0]
    else:
        assert cache.is_file()
    assert "Building" in out.err or "building" in out.err.lower()
    assert read_sidecar(engine)["onnx_sha256"] == side["onnx_sha256"]


def test_plugin_graph(exported, tmp_path, capsys):
    trt, flavour = _trt()
    engine = tmp_path / "p.plan"
    rc = build_main(
        [
            str(exported / "asapnet_plugin_fp16.onnx"),
            "--out",
            str(engine),
            "--no-progress",
            "--plugin",
            "none",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    side = json.loads(sidecar_path(engine).read_text())
    assert side["plugin"]["kind"] == "none"
    _check_engine_against_manifest(exported, "asapnet_plugin_fp16.onnx", engine, side, (1, 1, 1), trt=trt)
    if flavour == "tensorrt_rtx":
        plan = engine.read_bytes()  # the node's ONNX function was built, no plugin record
        assert not _plugin_records(plan, PLUGIN_OP) and b"/pixelwise_mlp/" in plan
        # the Python plugin is refused with the reason, not a crash
        rc = build_main(
            [str(exported / "asapnet_plugin_fp16.onnx"), "--out", str(engine), "--plugin", "python"]
        )
        assert rc == 2 and "TensorRT for RTX cannot use the" in capsys.readouterr().err


# -- the ASAP_SpatialMLP plugin inside a TensorRT for RTX engine, on the CPU -------------------
#
# TensorRT for RTX 1.7.1's ONNX parser, on importing a node bound to a registered V3 plugin
# creator, dlopen()s the unversioned "libtensorrt_rtx.so" (for getPrivateApi_INTERNAL). The pip
# wheel (tensorrt_rtx_libs) ships only libtensorrt_rtx.so.1, so the dlopen throws inside a
# noexcept path of the parser and std::terminate() aborts the process (exit 134), whatever the
# plugin. With that name resolvable (a symlink beside the parser, whose RPATH is $ORIGIN, or on
# LD_LIBRARY_PATH when the process starts) the same graph parses and builds on a CPU.

_CHILD = r"""
import json, sys
from pathlib import Path
from asap_deploy.engine.builder import BuildOptions, build_engine
from asap_deploy.engine.python_plugin import register_python_plugin
from asap_deploy.engine.trt_module import import_tensorrt
trt, _ = import_tensorrt("tensorrt_rtx")
onnx_path, engine, kernels = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
# so that the builder finds it "preregistered"; its shape checks use the CPU reference build there
register_python_plugin(trt, kernels / "libasap_spatial_mlp.so")
logger = trt.Logger(trt.Logger.ERROR)
network = trt.Builder(logger).create_network(0)
parser = trt.OnnxParser(network, logger)
print("parsing", flush=True)
assert parser.parse(onnx_path.read_bytes())
nt = lambda t: __import__("numpy").dtype(trt.nptype(t.dtype)).name
io = [{t.name: [nt(t), list(t.shape)] for t in ts} for ts in (
    [network.get_input(i) for i in range(network.num_inputs)],
    [network.get_output(i) for i in range(network.num_outputs)])]
layers = [str(network.get_layer(i).type) for i in range(network.num_layers)]
# this child is the isolating process: build here, where the plugin is registered
side = build_engine(onnx_path, engine, BuildOptions(module="tensorrt_rtx", progress=False,
                                                     batch=(1, 2, 3)), isolate=False)
print("RESULT " + json.dumps({"io": io, "layers": layers, "sidecar": side}))
"""


def _rtx_libs():
    try:
        trt, _ = trt_module.import_tensorrt("tensorrt_rtx")
    except MissingDependencyError as exc:
        pytest.skip(f"TensorRT for RTX is not installed: {exc}")
    try:
        import tensorrt_rtx_libs
    except ImportError:
        pytest.skip("TensorRT for RTX is not the pip wheel (no tensorrt_rtx_libs)")
    return trt, Path(tensorrt_rtx_libs.__file__).parent


def _run_child(script, args, lib_dir, tmp_path):
    env = dict(os.environ)
    paths = [
        p
        for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep)
        if p and not (Path(p) / "libtensorrt_rtx.so").exists()
    ]
    if lib_dir is not None:
        paths.insert(0, str(lib_dir))
    env["LD_LIBRARY_PATH"] = os.pathsep.join(paths)
    import resource

    return subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0)),
    )


def test_rtx_parser_aborts_on_plugin_nodes_without_unversioned_library(exported, tmp_path, cpu_lib):
    """Pins the TensorRT for RTX bug the builder's refusal of the Python plugin rests on. If
    this fails because the child no longer aborts, RTX was fixed: drop the refusal in
    asap_deploy/engine/plugins.py and the README's sentence about it."""
    _, libs = _rtx_libs()
    if (libs / "libtensorrt_rtx.so").exists():
        pytest.skip(f"{libs} has libtensorrt_rtx.so: the abort cannot happen in this install")
    r = _run_child(
        _CHILD,
        [exported / "asapnet_plugin_fp16.onnx", tmp_path / "x.plan", Path(cpu_lib._name).parent],
        None,
        tmp_path,
    )
    assert r.returncode == -6 and "terminate called" in r.stderr, (r.returncode, r.stderr[-2000:])
    # registering was fine, parsing aborted
    assert "parsing" in r.stdout and "RESULT" not in r.stdout


_PLAN_STR = b"\x13\x80\x01\x00"  # string: tag, u64 length, 2nd tag, u64 length, bytes
_PLAN_STR2 = b"\x01\x80\x0c\x80\x01\x00"
_PLAN_U32 = b"\x07\x80\x01\x00"  # u32 (counts)
_PLAN_BLOB = b"\x01\x80\x03\x80\x01\x00"  # u64 length, bytes


def _plugin_records(plan: bytes, name: str):
    """Offsets of plan strings that are exactly ``name`` (layer metadata only contains it)."""
    hits = [m.start() for m in re.finditer(re.escape(name.encode()), plan)]
    return [
        h - 26
        for h in hits
        if plan[h - 26 : h - 22] == _PLAN_STR and struct.unpack_from("<Q", plan, h - 22)[0] == len(name)
    ]


def _plan_plugin_fields(plan: bytes, name: str):
    """(version, namespace, {field: (type, data)}) of a plugin's record in a TensorRT for RTX
    1.7 plan, decoded from the layout observed there (undocumented: a change of layout fails
    here with the offset, and this reader must then follow it)."""

    def string(i):
        assert plan[i : i + 4] == _PLAN_STR and plan[i + 12 : i + 18] == _PLAN_STR2, i
        n = struct.unpack_from("<Q", plan, i + 4)[0]
        assert struct.unpack_from("<Q", plan, i + 18)[0] == n, i
        return plan[i + 26 : i + 26 + n], i + 26 + n

    def u32(i):
        assert plan[i : i + 4] == _PLAN_U32, i
        return struct.unpack_from("<I", plan, i + 4)[0], i + 8

    starts = _plugin_records(plan, name)
    assert len(starts) == 1, f"{len(starts)} records named {name} in the plan"
    _, i = string(starts[0])
    version, i = string(i)
    namespace, i = string(i)
    count, i = u32(i)
    fields = {}
    for _ in range(count):
        field, i = string(i)
        length, i = u32(i)
        kind, i = string(i)
        if plan[i : i + 6] == _PLAN_BLOB:
            n = struct.unpack_from("<Q", plan, i + 6)[0]
            data, i = plan[i + 14 : i + 14 + n], i + 14 + n
        else:
            data, i = string(i)
        fields[field.decode()] = (kind.decode(), length, data)
    return version.decode(), namespace.decode(), fields


def test_rtx_engine_with_python_plugin_builds_on_cpu(exported, tmp_path, cpu_lib):
    """With libtensorrt_rtx.so resolvable, an engine containing ASAP_SpatialMLP builds on the
    CPU; its network I/O, sidecar and serialised plugin fields match the exported node."""
    trt, libs = _rtx_libs()
    link_dir = tmp_path / "rtx-libs"
    link_dir.mkdir()
    (link_dir / "libtensorrt_rtx.so").symlink_to(libs / "libtensorrt_rtx.so.1")
    onnx_name = "asapnet_plugin_fp16.onnx"
    engine = tmp_path / "plugin.plan"
    r = _run_child(_CHILD, [exported / onnx_name, engine, Path(cpu_lib._name).parent], link_dir, tmp_path)
    assert r.returncode == 0, (r.returncode, r.stderr[-3000:])
    res = json.loads(r.stdout.split("RESULT ", 1)[1])
    assert "LayerType.PLUGIN_V3" in res["layers"]
    side = res["sidecar"]
    assert side["plugin"]["kind"] == "preregistered" and side["precision"] == "fp16"
    assert json.loads(sidecar_path(engine).read_text()) == side
    _check_engine_against_manifest(exported, onnx_name, engine, side, (1, 2, 3), net_io=tuple(res["io"]))

    # the plugin record in the plan carries exactly the node's attributes
    node = read_node_attributes(onnx.load(exported / onnx_name))
    version, namespace, fields = _plan_plugin_fields(engine.read_bytes(), PLUGIN_OP)
    assert (
        (version, namespace)
        == (node.pop("plugin_version").decode(), node.pop("plugin_namespace").decode())
        == ("1", PLUGIN_NAMESPACE)
    )
    assert set(fields) == set(node)
    for k, v in node.items():
        kind, length, data = fields[k]
        if isinstance(v, bytes):
            assert (kind, length, data) == ("CHAR", len(v) + 1, v + b"\0"), k
        else:
            assert (kind, length, np.frombuffer(data, "<i4").tolist()) == ("INT32", 1, [v]), k
    from asap_deploy.engine.python_plugin import parse_fields

    class Field:  # what the creator receives when TensorRT deserialises the engine
        def __init__(self, name, data):
            self.name, self.data = name, data

    decoded = [
        Field(k, np.frombuffer(d, np.int8 if t == "CHAR" else np.int32)) for k, (t, _, d) in fields.items()
    ]
    assert parse_fields(decoded) == {k: v.decode() if isinstance(v, bytes) else v for k, v in node.items()}


@pytest.mark.parametrize(
    "argv,match",
    [
        (["missing.onnx"], "ONNX file not found"),
        (["BAD", "--batch", "4", "2", "1"], "min <= opt <= max"),
        (["BAD", "--batch", "1", "2"], "one value"),
    ],
)
def test_bad_input_exits_2(tmp_path, capsys, monkeypatch, argv, match):
    """These errors come before TensorRT is imported: they must not need it (nor skip)."""
    monkeypatch.setattr("asap_deploy.engine.trt_module.import_tensorrt", _no_tensorrt)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    argv = [str(bad) if a == "BAD" else str(tmp_path / a) if a.endswith(".onnx") else a for a in argv]
    assert build_main(argv) == 2
    assert match in capsys.readouterr().err
    assert not list(tmp_path.glob("*.plan"))


def _no_tensorrt(*_a, **_k):
    raise AssertionError("TensorRT was imported before the input was checked")


def test_corrupt_onnx(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("asap_deploy.engine.trt_module.import_tensorrt", _no_tensorrt)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    assert build_main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.onnx" in err and "not a readable ONNX model" in err
    assert not list(tmp_path.glob("*.plan*"))


def test_sidecar_checks(tmp_path):
    side = {
        "onnx": "m.onnx",
        "tensorrt_module": "tensorrt",
        "tensorrt_version": "11.1.0",
        "gpu": {"name": "NVIDIA H100", "compute_capability": "9.0"},
    }
    check_compatible(side, "tensorrt", "11.1.0", {"name": "NVIDIA H100", "compute_capability": "9.0"})
    with pytest.raises(EngineMismatchError, match="only load in the TensorRT version"):
        check_compatible(side, "tensorrt", "11.2.0", None)
    with pytest.raises(EngineMismatchError, match="rebuild it: python -m asap_deploy.build m.onnx"):
        check_compatible(side, "tensorrt", "11.1.0", {"name": "RTX 2080 Ti", "compute_capability": "7.5"})
    with pytest.raises(EngineMismatchError, match="is missing"):
        read_sidecar(tmp_path / "x.plan")


def test_python_plugin_fields_round_trip():
    trt, _ = _trt()
    from asap_deploy.config import GeneratorConfig
    from asap_deploy.engine.python_plugin import make_classes, parse_fields
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
        plugin = str(build_plugin.build_trt_plugin(DEFAULT_DIR, root, archs=(f"{major}{minor}",)))
    src = open_export(exported)
    feeds = src.feeds(1, seed=3)
    ref = src.gen(torch.from_numpy(feeds["label"])).numpy()
    runner = TrtRunner(exported / "asapnet_plugin_fp16.onnx", "fp16", flavour, plugin)
    try:
        runner.activate()
    except RunnerUnavailable as exc:
        pytest.fail(f"plugin engine did not run on this GPU: {exc}")
    assert psnr(runner.infer(feeds), ref) >= 40.0
