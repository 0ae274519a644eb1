"""The runner layer: lifecycle, input checks against each runner's metadata, the backend registry,
engine naming shared with ``build``, checked TensorRT statuses, one backend alive at a time."""

import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch
from conftest import export_for_test, small_config

from asap_deploy.artifacts import ExportFolder
from asap_deploy.demo import demo_generator
from asap_deploy.engine.naming import engine_filename, engine_path, parse_engine_filename
from asap_deploy.errors import ConfigError, InputError
from asap_deploy.runners import registry
from asap_deploy.runners.base import InferenceError, Runner, RunnerStateError, RunnerUnavailable
from asap_deploy.runners.input_checks import TensorMeta, ValueRule, check_feeds
from asap_deploy.runners.loaders import SessionFromOnnx
from asap_deploy.runners.ort_runner import OrtRunner
from asap_deploy.sample_inputs import scene_feeds


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """A label-map export (int32 label_map + instance_map inputs), FP32 only, no engine."""
    root = tmp_path_factory.mktemp("runners")
    cfg = small_config(hr_width=64)
    ckpt = root / "m" / "latest_net_G.pth"
    ckpt.parent.mkdir()
    torch.save(OrderedDict(demo_generator(cfg).state_dict()), ckpt)
    out = root / "export"
    export_for_test(ckpt, out, "--input", "labels", width="64")
    return ExportFolder(out)


def _ort(export):
    return OrtRunner(
        SessionFromOnnx(export.graph_path("asapnet", "fp32")), value_rules=registry.RunContext(export).rules()
    )


def _feeds(export, batch=1):
    f = scene_feeds(export.config, batch, export.height, export.width, seed=2)
    return {"label_map": f["label_map"], "instance_map": f["instance_map"]}


def test_lifecycle(export):
    r = _ort(export)
    with pytest.raises(RunnerStateError, match="not active"):
        r.infer(_feeds(export))
    with r:
        assert r.is_active
        with pytest.raises(RunnerStateError, match="already active"):
            r.activate()
        meta = r.input_metadata()
        assert meta["label_map"].dtype == np.int32 and meta["label_map"].shape == (None, 1, 512, 64)
        assert meta["label_map"].rule.ids_below == 5
        y = r.infer(_feeds(export, 2))
        assert y.shape == (2, 3, 512, 64) and y.dtype == np.float32
    assert not r.is_active and r.sess is None  # the session is released
    r.deactivate()  # twice is fine
    with pytest.raises(RunnerStateError):
        r.input_metadata()


def test_a_runner_never_deactivated_warns(export):
    r = _ort(export).activate()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r.__del__()
    assert any(issubclass(x.category, ResourceWarning) for x in w)
    r.deactivate()


@pytest.mark.parametrize(
    "change,words",
    [
        (
            lambda f: f.pop("instance_map"),
            "missing input instance_map (instance ids; edges are "
            "computed from it): int32 [batch x 1 x 512 x 64]",
        ),
        (lambda f: f.update(label_map=f["label_map"].astype(np.float32)), "is float32, expected"),
        (lambda f: f.update(label_map=f["label_map"][:, 0]), "has shape [1, 512, 64], expected"),
        (lambda f: f.update(label_map=f["label_map"][:, :, :256]), "has shape [1, 1, 256, 64]"),
        (
            lambda f: f["label_map"].__setitem__((0, 0, 7, 9), 17),
            "holds class id 17 (1 pixel, first at image 0, row 7, column 9)",
        ),
        (lambda f: f["label_map"].__setitem__((0, 0, 0, 0), -3), "holds class id -3"),
        (lambda f: f.update(instance_map=np.concatenate([f["instance_map"]] * 2)), "has batch 2"),
        (lambda f: f.update(label_map=[[1]]), "numpy array or a torch tensor"),
    ],
)
def test_feeds_are_checked_against_the_metadata(export, change, words):
    feeds = _feeds(export)
    change(feeds)
    with _ort(export) as r, pytest.raises(InputError) as e:
        r.infer(feeds)
    assert words in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_value_checks_on_torch_tensors_and_255():
    meta = {
        "label_map": TensorMeta("label_map", np.dtype(np.int32), (None, 1, 4, 4), ValueRule(ids_below=3)),
        "label": TensorMeta("label", np.dtype(np.float32), (None, 2, 4, 4), ValueRule(finite=True)),
    }
    ids = torch.zeros(2, 1, 4, 4, dtype=torch.int32)
    ids[1, 0, 3, 3] = 255  # don't care: valid
    label = torch.zeros(2, 2, 4, 4)
    assert check_feeds(meta, {"label_map": ids, "label": label}) == 2
    label[1, 1, 2, 0] = float("nan")
    with pytest.raises(InputError, match="1 NaN/inf value"):
        check_feeds(meta, {"label_map": ids, "label": label})
    check_feeds(meta, {"label_map": ids, "label": label}, values=False)
    ids[0, 0, 1, 1] = 3
    with pytest.raises(InputError, match="class id 3 .*image 0, row 1, column 1"):
        check_feeds(meta, {"label_map": ids, "label": torch.zeros(2, 2, 4, 4)})
    with pytest.raises(InputError, match=r"outside this engine's profile \(1..1\)"):
        check_feeds(
            meta,
            {"label_map": ids[:, :, :, :], "label": torch.zeros(2, 2, 4, 4)},
            values=False,
            batch_range=(1, 1),
        )


def test_ort_failure_is_one_line(export, monkeypatch):
    with _ort(export) as r:

        def boom(*a, **k):
            raise RuntimeError(
                "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status\n"
                "  at some/file.cc:42 more internals"
            )

        monkeypatch.setattr(r.sess, "run", boom, raising=False)
        with pytest.raises(InferenceError) as e:
            r.infer(_feeds(export))
    assert "\n" not in str(e.value) and "ONNX Runtime failed" in str(e.value)


def test_registry(export):
    assert set(registry.names()) >= {"torch-eager-fp32", "ort-cpu-fp32", "trt-plugin-fp16"}
    with pytest.raises(ConfigError, match="unknown backend 'nope'; choose from"):
        registry.get("nope")
    with pytest.raises(ValueError, match="registered already"):
        registry.register(registry.get("ort-cpu-fp32"))
    ctx = registry.RunContext(export)
    assert registry.get("ort-cpu-fp32").is_available(ctx)
    assert "no fp16 asapnet graph" in registry.get("ort-cpu-fp16").reason(ctx)
    if not torch.cuda.is_available():
        assert "needs a CUDA GPU" in registry.get("trt-fp16").reason(ctx)
        assert "needs a CUDA GPU" in registry.get("torch-fused-fp16").reason(ctx)
    runner = registry.get("ort-cpu-fp32").create(ctx)
    assert not runner.is_active  # creating loads nothing


class _Recorder(Runner):
    """A backend that records when it holds its model."""

    def __init__(self, name, log):
        super().__init__()
        self.name, self.log = name, log

    def activate_impl(self):
        assert not any(e == "active" for e in self.log[-1:]), "two backends alive at once"
        self.log.append("active")

    def deactivate_impl(self):
        self.log.append("released")

    def input_metadata_impl(self):
        return {}

    def upload_impl(self, feeds):
        pass

    def compute_impl(self):
        if self.name == "rec-fails":
            raise InferenceError("rec-fails: broke")

    def output_impl(self):
        return np.zeros((1, 3, 512, 64), np.float32)


def test_bench_and_parity_hold_one_backend_at_a_time(export, monkeypatch, tmp_path, capsys):
    from asap_deploy.bench import main as bench_main
    from asap_deploy.parity import main as parity_main

    log = []
    for name in ("rec-a", "rec-fails", "rec-b"):
        monkeypatch.setitem(
            registry._REGISTRY,
            name,
            registry.Backend(
                name, "test", "fp32", "recorder", lambda ctx, n=name: _Recorder(n, log), lambda ctx: None
            ),
        )
    rc = bench_main(
        [
            "--export",
            str(export.path),
            "--backends",
            "rec-a",
            "rec-fails",
            "rec-b",
            "--iterations",
            "2",
            "--duration",
            "0",
            "--warmup",
            "0",
        ]
    )
    assert rc == 4  # a tool failure: the failing backend is reported, the others still run
    assert log == ["active", "released"] * 3
    assert "FAILED: rec-fails: broke" in capsys.readouterr().out
    log.clear()
    assert parity_main(["--export", str(export.path), "--backends", "rec-a", "rec-fails"]) == 1
    assert log == ["active", "released"] * 2
    assert "FAILED: rec-fails: broke" in capsys.readouterr().out


def test_engine_naming_rule():
    assert engine_filename("asapnet_plugin_fp16", "tensorrt") == "asapnet_plugin_fp16.tensorrt.plan"
    assert engine_filename("asapnet_fp16", "tensorrt_rtx", (4, 4, 4)) == "asapnet_fp16.tensorrt_rtx.b4.plan"
    name = engine_filename("asapnet_fp16", "tensorrt", (1, 2, 8))
    assert name == "asapnet_fp16.tensorrt.b1-2-8.plan"
    assert parse_engine_filename(name) == ("asapnet_fp16", "tensorrt", (1, 2, 8))
    assert parse_engine_filename("x/asapnet.tensorrt_rtx.plan").batch == (1, 1, 1)
    assert parse_engine_filename("asapnet_fp16.plan") is None
    assert (
        engine_path(__import__("pathlib").Path("/e/asapnet_fp16.onnx"), "tensorrt").name
        == "asapnet_fp16.tensorrt.plan"
    )


def test_an_engine_built_by_hand_is_the_one_the_harness_uses(export, tmp_path, monkeypatch):
    """`build` names and indexes the engine; the harness's loader finds it and does not rebuild."""
    from asap_deploy.build import main as build_main
    from asap_deploy.engine import trt_module
    from asap_deploy.errors import MissingDependencyError
    from asap_deploy.runners import loaders

    try:
        _, flavour = trt_module.import_tensorrt("auto")
    except MissingDependencyError as exc:
        pytest.skip(f"no TensorRT Python module: {exc}")
    onnx_path = export.graph_path("asapnet", "fp32")
    assert build_main([str(onnx_path), "--no-progress"]) == 0
    plan = engine_path(onnx_path, flavour)
    assert plan.is_file() and (plan.parent / (plan.name + ".json")).is_file()
    indexed = ExportFolder(export.path).verify().engines  # the index stays valid, engine too
    assert [e["file"] for e in indexed] == [plan.name]
    assert indexed[0]["graph"] == "asapnet" and indexed[0]["batch"] == [1, 1, 1]

    def no_build(*a, **k):
        raise AssertionError("rebuilt an engine that was already there")

    monkeypatch.setattr("asap_deploy.engine.subprocess_build.build_engine_isolated", no_build)
    loaded = []
    monkeypatch.setattr(loaders.EngineFromPath, "__call__", lambda self: loaded.append(self.plan))
    loaders.EngineFromOnnx(onnx_path, flavour, "none")()
    assert loaded == [plan]


class _FakeContext:
    """An execution context whose calls fail on demand (TensorRT reports failures as False)."""

    def __init__(self, refuse_shape=(), refuse_address=(), execute=True):
        self.refuse_shape, self.refuse_address, self.ok = refuse_shape, refuse_address, execute
        self.shapes = {}

    def set_input_shape(self, name, shape):
        self.shapes[name] = tuple(shape)
        return name not in self.refuse_shape

    def get_tensor_shape(self, name):
        b = next(iter(self.shapes.values()))[0]
        return (b, 3, 4, 4) if name == "image" else self.shapes[name]

    def set_tensor_address(self, name, ptr):
        return name not in self.refuse_address

    def execute_async_v3(self, stream):
        return self.ok


def _trt_runner(ctx):
    """A TrtRunner wired to a fake context on the CPU: exercises the status checks only."""
    from asap_deploy.runners.trt_runner import TrtRunner

    r = TrtRunner(lambda: None, "fp16")
    r.torch, r.dev, r.context = torch, torch.device("cpu"), ctx
    r.inputs, r.outputs = ["label_map"], ["image"]
    r.meta = {
        "label_map": TensorMeta("label_map", np.dtype(np.int32), (None, 1, 4, 4)),
        "image": TensorMeta("image", np.dtype(np.float32), (None, 3, 4, 4)),
    }
    r.profile = {"label_map": ((1, 1, 4, 4), (1, 1, 4, 4), (2, 1, 4, 4))}
    r.buffers, r.bound, r.batch = {}, {}, 0
    return r


def test_every_tensorrt_status_is_checked():
    with pytest.raises(InferenceError, match="rejected shape \\[1, 1, 4, 4\\] for input 'label_map'"):
        _trt_runner(_FakeContext(refuse_shape=("label_map",)))._set_batch(1)
    with pytest.raises(InferenceError, match="refused the address of tensor 'image'"):
        _trt_runner(_FakeContext(refuse_address=("image",)))._set_batch(1)
    r = _trt_runner(_FakeContext(execute=False))
    r._set_batch(2)
    assert r.buffers["image"].shape == (2, 3, 4, 4) and r.batch_range() == (1, 2)

    class S:
        cuda_stream = 0

    r.stream = S()
    with pytest.raises(InferenceError, match="execute_async_v3 failed"):
        r.compute_impl()


def test_trt_runner_without_gpu_says_why(export):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from asap_deploy.runners.trt_runner import TrtRunner

    with pytest.raises(RunnerUnavailable, match="needs a CUDA GPU"):
        TrtRunner(export.graph_path("asapnet", "fp32")).activate()


def test_an_unavailable_backend_is_an_environment_problem():
    """The input is fine, this machine cannot run it: exit code 3, as the README's table says."""
    from asap_deploy.errors import EXIT_ENVIRONMENT, EnvironmentProblem
    from asap_deploy.runners.base import RunnerUnavailable

    exc = RunnerUnavailable("needs a CUDA GPU")
    assert isinstance(exc, EnvironmentProblem) and exc.exit_code == EXIT_ENVIRONMENT == 3
