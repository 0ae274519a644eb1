"""Engine builds run in a child process (a TensorRT crash is one line and a failed result, not
the end of the caller), and loading tells a damaged file, another TensorRT, another GPU, no GPU
and a missing plugin apart. TensorRT for RTX builds here without a GPU, so this runs in CI."""

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import export_for_test
from error_cases import WIDTH, assert_one_error_line, save

from asap_deploy.engine import loader
from asap_deploy.engine.builder import BuildError, BuildOptions, build_engine, sidecar_path
from asap_deploy.engine.loader import EngineMismatchError, check_compatible, load_engine
from asap_deploy.errors import MissingDependencyError

TESTS = Path(__file__).parent


def _rtx():
    from asap_deploy.engine.trt_module import import_tensorrt

    try:
        return import_tensorrt("tensorrt_rtx")[0]
    except MissingDependencyError as exc:
        pytest.skip(f"needs TensorRT for RTX (the rtx extra): {exc}")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("eng")
    out = root / "small"
    export_for_test(save(root / "ck"), out, width=WIDTH, precision=("fp16",), engine="auto")
    return out


@pytest.fixture(scope="module")
def engine(exported, tmp_path_factory):
    _rtx()
    plan = tmp_path_factory.mktemp("plan") / "a.plan"
    build_engine(exported / "asapnet_fp16.onnx", plan, BuildOptions(module="tensorrt_rtx", progress=False))
    return plan


@pytest.fixture
def engine_copy(engine, tmp_path):
    dst = tmp_path / "a.plan"
    shutil.copy(engine, dst)
    shutil.copy(sidecar_path(engine), sidecar_path(dst))
    return dst


# -- building in a child process -------------------------------------------------------------
def _no_gpu_here():
    from asap_deploy.engine import cuda_device

    if cuda_device.probe().first is not None:
        pytest.skip("this machine has a GPU")
    return cuda_device


def test_tensorrt_abort_is_one_line_and_the_caller_survives(exported, tmp_path, capsys, monkeypatch):
    """TensorRT for RTX aborts (SIGABRT) parsing our node with a Python creator registered."""
    _rtx()
    from asap_deploy.cli import report
    from asap_deploy.engine.builder import BuildFailed

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    # the builder refuses plugins where RTX's parser cannot find libtensorrt_rtx.so; a file of
    # that name that is not a library gets past the check, and the parser aborts on it
    fake = tmp_path / "fake-libs"
    fake.mkdir()
    (fake / "libtensorrt_rtx.so").write_bytes(b"not a library")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(fake))
    plan = tmp_path / "p.plan"
    opts = BuildOptions(module="tensorrt_rtx", progress=False, preload=("preload_rtx_python_plugin",))
    with pytest.raises(BuildFailed) as e:
        build_engine(exported / "asapnet_plugin_fp16.onnx", plan, opts)
    capsys.readouterr()
    assert report(e.value) == 4
    line = assert_one_error_line(
        capsys.readouterr().err,
        "TensorRT crashed while building",
        "SIGABRT, exit code 134",
        "nothing was written",
        "--plugin none",
    )
    assert "terminate called" in line  # the C++ runtime's last words, quoted
    assert not list(tmp_path.glob("*.plan*"))


def test_errors_in_the_child_keep_their_class(exported, tmp_path):
    _rtx()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(BuildError, match="not a readable ONNX model") as e:
        build_engine(bad, tmp_path / "x.plan", BuildOptions(module="tensorrt_rtx"))
    assert type(e.value) is BuildError and e.value.exit_code == 2
    no_graph = tmp_path / "empty_graph.onnx"
    no_graph.write_bytes(b"\x08\x07")  # a valid ModelProto with no graph at all
    with pytest.raises(BuildError, match="holds no ONNX graph"):
        build_engine(no_graph, tmp_path / "x.plan", BuildOptions(module="tensorrt_rtx"))
    with pytest.raises(BuildError, match="cannot import build preload module 'no_such_mod'"):
        build_engine(
            exported / "asapnet_fp16.onnx",
            tmp_path / "x.plan",
            BuildOptions(module="tensorrt_rtx", preload=("no_such_mod",)),
        )
    assert not list(tmp_path.glob("*.plan*"))


def test_in_process_and_child_builds_agree(exported, tmp_path):
    _rtx()
    opts = BuildOptions(module="tensorrt_rtx", progress=False)
    a = build_engine(exported / "asapnet_fp16.onnx", tmp_path / "a.plan", opts)
    b = build_engine(exported / "asapnet_fp16.onnx", tmp_path / "b.plan", opts, isolate=False)
    for k in ("onnx_sha256", "tensorrt_version", "precision", "inputs", "outputs"):
        assert a[k] == b[k]
    assert a["engine_bytes"] == (tmp_path / "a.plan").stat().st_size


# -- loading ---------------------------------------------------------------------------------
def _pretend_gpu(monkeypatch, cc="8.6"):
    from asap_deploy.engine import cuda_device

    monkeypatch.setattr(
        loader,
        "probe",
        lambda: cuda_device.CudaDevices([{"name": "Pretend GPU", "compute_capability": cc}], "13.0"),
    )


def test_good_engine_without_gpu_says_no_gpu_not_damaged(engine):
    cuda_device = _no_gpu_here()
    with pytest.raises(EngineMismatchError) as e:
        load_engine(engine)
    assert e.value.reason == "no_gpu" and e.value.exit_code == 3
    msg = str(e.value)
    assert "is intact but needs a CUDA GPU" in msg and "damaged" not in msg
    assert cuda_device.probe().problem in msg


@pytest.mark.parametrize(
    "how,needle",
    [
        ("truncate", "(truncated?)"),
        ("flip", "SHA-256 differs"),
    ],
)
def test_damaged_engine_is_told_by_the_sidecar_hash(engine_copy, how, needle):
    data = engine_copy.read_bytes()
    engine_copy.write_bytes(
        data[:1000] if how == "truncate" else data[:5000] + bytes([data[5000] ^ 1]) + data[5001:]
    )
    with pytest.raises(EngineMismatchError) as e:
        load_engine(engine_copy)
    assert type(e.value).__name__ == "EngineDamagedError"
    assert needle in str(e.value) and "rebuild it: python -m asap_deploy.build" in str(e.value)
    assert e.value.exit_code == 2


def test_damaged_sidecar(engine_copy):
    sidecar_path(engine_copy).write_text("{not json")
    with pytest.raises(EngineMismatchError, match="is not valid JSON"):
        load_engine(engine_copy)
    sidecar_path(engine_copy).write_text('{"hello": 1}')
    with pytest.raises(EngineMismatchError, match="is not an engine sidecar"):
        load_engine(engine_copy)


def test_another_tensorrt_version(engine_copy):
    side = json.loads(sidecar_path(engine_copy).read_text())
    side["tensorrt_version"] = "0.9.0"
    sidecar_path(engine_copy).write_text(json.dumps(side))
    with pytest.raises(EngineMismatchError, match="only load in the TensorRT version") as e:
        load_engine(engine_copy)
    assert e.value.reason == "tensorrt"


def test_another_gpu():
    side = {
        "onnx": "m.onnx",
        "tensorrt_module": "tensorrt",
        "tensorrt_version": "11.1.0",
        "gpu": {"name": "NVIDIA H100", "compute_capability": "9.0"},
    }
    with pytest.raises(EngineMismatchError, match="built for NVIDIA H100 .sm 9.0.") as e:
        check_compatible(side, "tensorrt", "11.1.0", {"name": "RTX 2080 Ti", "compute_capability": "7.5"})
    assert e.value.reason == "gpu"


def test_missing_plugin(engine_copy, tmp_path, monkeypatch):
    _pretend_gpu(monkeypatch)
    side = json.loads(sidecar_path(engine_copy).read_text())
    side["plugin"] = {"name": "ASAP_SpatialMLP", "kind": "cpp", "library": "/gone/lib.so"}
    sidecar_path(engine_copy).write_text(json.dumps(side))
    with pytest.raises(
        EngineMismatchError, match="uses the ASAP_SpatialMLP plugin .cpp at build time.*not found"
    ) as e:
        load_engine(engine_copy, plugin=str(tmp_path / "missing_plugin.so"))
    assert e.value.reason == "plugin"


def test_tensorrt_refusal_is_classified_from_its_log(engine, monkeypatch):
    """With a GPU pretended, TensorRT itself fails here (no driver): said as a GPU problem."""
    _no_gpu_here()
    _pretend_gpu(monkeypatch)
    with pytest.raises(EngineMismatchError) as e:
        load_engine(engine)
    assert e.value.reason == "no_gpu" and "damaged" not in str(e.value)
    side = {"onnx": "m.onnx"}
    cases = {
        "plugin": "getPluginCreator could not find plugin ASAP_SpatialMLP version 1",
        "tensorrt": "Serialization assertion: Version tag does not match",
        "gpu": "engine built for compute capability 9.0 is not supported on this GPU",
    }
    for reason, log in cases.items():
        assert loader._classify(engine, side, [log]).reason == reason


def test_probe_names_the_reason_without_a_driver(monkeypatch):
    from asap_deploy.engine import cuda_device

    monkeypatch.setattr(cuda_device, "_DRIVER", "libcuda-that-does-not-exist.so.1")
    found = cuda_device.probe()
    assert found.first is None and "libcuda-that-does-not-exist.so.1 not found" in found.problem
