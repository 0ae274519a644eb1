"""``python -m asap_deploy.triton``: Triton model repositories written and validated offline.

No Triton server runs here: configs are parsed with Triton's protobuf schema (tritonclient) and
cross-checked with the ONNX graphs, the ONNX models are run with ONNX Runtime at the shapes the
configs declare, and plan models are written from engine sidecars (fake engines; a real
TensorRT-for-RTX build where that module is installed).
"""

import hashlib
import json
import shutil
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("tritonclient.grpc", reason='needs tritonclient: pip install -e ".[triton]"')

from conftest import small_config

from asap_deploy.demo import demo_generator
from asap_deploy.export import main as export_main
from asap_deploy.serving.triton_check import check_repository
from asap_deploy.serving.triton_schema import parse_config
from asap_deploy.triton import main

TRITON_TO_NUMPY = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16, "TYPE_INT32": np.int32}


def _export(root: Path, name: str, *extra: str) -> Path:
    ckpt = root / f"{name}.pth"
    torch.save(OrderedDict(demo_generator(small_config(), seed=3).state_dict()), ckpt)
    out = root / name
    assert (
        export_main(
            [str(ckpt), "--width", "64", "--out", str(out), "--no-parity", "--engine", "none", *extra]
        )
        == 0
    )
    return out


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    """One-hot export with FP32 and FP16 graphs (label 6x512x64 -> image 3x512x64)."""
    with torch.no_grad():
        return _export(tmp_path_factory.mktemp("exports"), "onehot", "--precision", "fp32", "fp16")


@pytest.fixture(scope="module")
def repo(export_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("repos") / "repo"
    assert main([str(export_dir), "--out", str(out), "--onnx-device", "cpu"]) == 0
    return out


def _config(path: Path):
    return parse_config(path.read_text(), str(path))


def _fails(argv, capsys, match, code=2):
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert rc == code, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], err
    return lines[0]


def test_repository_layout_and_configs(repo, export_dir):
    assert sorted(p.name for p in repo.iterdir()) == [
        "README.md",
        "asap_repository.json",
        "asapnet_onnx",
        "asapnet_onnx_fp16",
    ]
    for name, src in (("asapnet_onnx", "asapnet.onnx"), ("asapnet_onnx_fp16", "asapnet_fp16.onnx")):
        assert sorted(p.name for p in (repo / name).iterdir()) == ["1", "config.pbtxt"]
        model = repo / name / "1" / "model.onnx"
        assert model.read_bytes() == (export_dir / src).read_bytes()
        cfg = _config(repo / name / "config.pbtxt")
        assert cfg.name == name and cfg.platform == "onnxruntime_onnx"
        assert cfg.backend == "onnxruntime" and cfg.max_batch_size == 4
        assert [(t.name, t.data_type, list(t.dims)) for t in cfg.input] == [("label", 11, [6, 512, 64])]
        assert [(t.name, t.data_type, list(t.dims)) for t in cfg.output] == [("image", 11, [3, 512, 64])]
        assert cfg.dynamic_batching.max_queue_delay_microseconds == 1000
        assert [(g.count, g.kind) for g in cfg.instance_group] == [(1, 2)]  # KIND_CPU
        assert cfg.model_warmup[0].inputs["label"].zero_data
    assert check_repository(repo).ok
    assert not list(repo.parent.glob(".repo.*"))


def test_configs_run_in_onnx_runtime_at_the_declared_shapes(repo):
    """What each config promises Triton (names, dtypes, dims + batch) is what the graph takes."""
    import onnxruntime as ort

    for name in ("asapnet_onnx", "asapnet_onnx_fp16"):
        cfg = _config(repo / name / "config.pbtxt")
        sess = ort.InferenceSession(str(repo / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
        dt = {v: k for k, v in {"TYPE_FP32": 11, "TYPE_FP16": 12, "TYPE_INT32": 8}.items()}
        feeds = {t.name: np.zeros((2, *t.dims), TRITON_TO_NUMPY[dt[t.data_type]]) for t in cfg.input}
        feeds["label"][:, 0] = 1
        (image,) = sess.run([o.name for o in cfg.output], feeds)
        out = cfg.output[0]
        assert image.shape == (2, *out.dims) and image.dtype == TRITON_TO_NUMPY[dt[out.data_type]]
        assert np.isfinite(image).all() and np.abs(image).max() <= 1 + 1e-3  # tanh, FP16


def test_check_cli_and_readme(repo, capsys):
    assert main(["--check", str(repo)]) == 0
    assert capsys.readouterr().out == f"{repo}: 2 model(s) valid: asapnet_onnx, asapnet_onnx_fp16\n"
    readme = (repo / "README.md").read_text()
    assert f"tritonserver --model-repository={repo}\n" in readme
    assert "--backend-config" not in readme  # no plan, no plugin
    assert f"python -m asap_deploy.triton --check {repo}" in readme
    assert "offline only" in readme
    record = json.loads((repo / "asap_repository.json").read_text())
    assert set(record["models"]) == {"asapnet_onnx", "asapnet_onnx_fp16"}


def test_readme_client_snippet_matches_the_config(repo, monkeypatch):
    """The README's Python request, run against a stand-in server that checks what it is sent."""
    import tritonclient.grpc as grpcclient

    readme = (repo / "README.md").read_text()
    snippet = readme.split("```python\n")[1].split("```")[0]
    cfg = _config(repo / "asapnet_onnx" / "config.pbtxt")
    sent = {}

    class Result:
        def as_numpy(self, name):
            assert name == cfg.output[0].name
            return np.zeros((1, *cfg.output[0].dims), np.float32)

    class Client:
        def __init__(self, url):
            sent["url"] = url

        def infer(self, model, inputs):
            sent["model"] = model
            sent["inputs"] = {i.name(): (i.datatype(), i.shape()) for i in inputs}
            return Result()

    monkeypatch.setattr(grpcclient, "InferenceServerClient", Client)
    scope = {}
    exec(compile(snippet, "README.md", "exec"), scope)
    assert sent["model"] == "asapnet_onnx" and sent["url"] == "127.0.0.1:8001"
    assert sent["inputs"] == {"label": ("FP32", [1, 6, 512, 64])}
    assert scope["pixels"].shape == (512, 64, 3) and scope["pixels"].dtype == np.uint8
    assert (scope["pixels"] == 127).all()  # (0 + 1) / 2 * 255 truncated


def test_labels_export_has_int32_inputs(tmp_path):
    with torch.no_grad():
        export = _export(tmp_path, "labels", "--input", "labels", "--precision", "fp32")
    out = tmp_path / "repo"
    assert main([str(export), "--out", str(out), "--max-batch", "2", "--instances", "2"]) == 0
    assert [p.name for p in out.iterdir() if p.is_dir()] == ["asapnet_onnx"]  # FP32 only
    cfg = _config(out / "asapnet_onnx" / "config.pbtxt")
    assert [(t.name, t.data_type, list(t.dims)) for t in cfg.input] == [
        ("label_map", 8, [1, 512, 64]),
        ("instance_map", 8, [1, 512, 64]),
    ]
    assert cfg.max_batch_size == 2
    assert [(g.count, g.kind) for g in cfg.instance_group] == [(2, 1)]  # KIND_GPU is the default
    assert set(cfg.model_warmup[0].inputs) == {"label_map", "instance_map"}
    assert "`label_map`: int32" in (out / "README.md").read_text()


# -- the validator catches what Triton would reject, or would serve wrongly ---------------------

BROKEN = [
    ("max_batch_size: 4", "max_batch_sizee: 4", 'no field named "max_batch_sizee"'),
    ("kind: KIND_CPU", "kind: KIND_CPUU", "KIND_CPUU"),
    (
        "data_type: TYPE_FP32\n    dims: [ 6,",
        "data_type: TYPE_FP16\n    dims: [ 6,",
        "input 'label': data_type TYPE_FP16, but 1/model.onnx has TYPE_FP32",
    ),
    (
        "dims: [ 3, 512, 64 ]\n",
        "dims: [ 3, 64, 512 ]\n",
        "output 'image': dims [3, 64, 512], but 1/model.onnx has [3, 512, 64]",
    ),
    ('name: "label"', 'name: "labels"', "not in 1/model.onnx"),
    ('name: "asapnet_onnx"', 'name: "asapnet"', "differs from the folder name"),
    ("max_batch_size: 4", "max_batch_size: 0", "dynamic_batching is set but max_batch_size is 0"),
    ('backend: "onnxruntime"', 'backend: "tensorrt"', "needs backend 'onnxruntime'"),
    (
        "zero_data: true",
        'zero_data: true\n      }\n    }\n    inputs {\n      key: "extra"\n'
        "      value {\n        data_type: TYPE_FP32\n        dims: [ 1 ]\n        zero_data: true",
        "warmup 'zeros_batch_1' feeds ['extra', 'label']",
    ),
]


@pytest.mark.parametrize(
    "old,new,message",
    BROKEN,
    ids=[
        "misspelt-field",
        "bad-enum",
        "wrong-dtype",
        "wrong-dims",
        "wrong-name",
        "folder-name",
        "batching-without-batch",
        "platform-backend",
        "warmup-input",
    ],
)
def test_broken_config_is_caught(repo, tmp_path, capsys, old, new, message):
    broken = tmp_path / "repo"
    shutil.copytree(repo, broken)
    cfg = broken / "asapnet_onnx" / "config.pbtxt"
    text = cfg.read_text()
    assert old in text
    cfg.write_text(text.replace(old, new, 1))
    assert main(["--check", str(broken)]) == 1
    err = capsys.readouterr().err
    assert message in err, err
    assert err.splitlines()[-1].startswith(f"error: {broken}: ")
    assert not any("asapnet_onnx_fp16" in line for line in err.splitlines()), err


def test_missing_model_file_and_version_folder(repo, tmp_path, capsys):
    broken = tmp_path / "repo"
    shutil.copytree(repo, broken)
    (broken / "asapnet_onnx" / "1" / "model.onnx").unlink()
    shutil.rmtree(broken / "asapnet_onnx_fp16" / "1")
    assert main(["--check", str(broken)]) == 1
    err = capsys.readouterr().err
    assert "asapnet_onnx: 1/model.onnx is missing" in err
    assert "asapnet_onnx_fp16: no version folder" in err


# -- plan models from an engine sidecar -----------------------------------------------------------


def _fake_engine(
    export_dir: Path,
    where: Path,
    graph: str = "asapnet_plugin_fp16.onnx",
    batch=(1, 2, 4),
    plugin_kind: str = "cpp",
    **overrides,
) -> Path:
    """An engine file and a sidecar in the format python -m asap_deploy.build writes."""
    where.mkdir(parents=True, exist_ok=True)
    lib = where / "libasap_trt_plugin.so"
    lib.write_bytes(b"\x7fELF" + bytes(60))
    plan = where / "asapnet.plan"
    plan.write_bytes(b"serialized engine stand-in " * 8)
    man = json.loads((export_dir / "manifest.json").read_text())
    entry = next(f for f in man["files"] if f["file"] == graph)
    lo, mid, hi = batch
    side = {
        "sidecar_version": 1,
        "onnx": str(export_dir / graph),
        "onnx_sha256": entry["sha256"],
        "engine_sha256": hashlib.sha256(plan.read_bytes()).hexdigest(),
        "tensorrt_module": "tensorrt",
        "tensorrt_version": "10.13.3.9",
        "gpu": {"name": "NVIDIA GeForce RTX 2080 Ti", "compute_capability": "7.5"},
        "precision": entry["precision"],
        "inputs": {
            t["name"]: {k: [b, *t["shape"][1:]] for k, b in (("min", lo), ("opt", mid), ("max", hi))}
            for t in entry["inputs"]
        },
        "outputs": [t["name"] for t in entry["outputs"]],
        "plugin": {
            "name": "ASAP_SpatialMLP",
            "version": "1",
            "namespace": "asap_deploy",
            "kind": plugin_kind,
            **({"library": str(lib)} if plugin_kind == "cpp" else {}),
        },
        "build_seconds": 1.0,
        "notes": [],
    }
    side.update(overrides)
    Path(str(plan) + ".json").write_text(json.dumps(side, indent=2))
    return plan


def test_plan_model_with_plugin_beside_it(export_dir, tmp_path, capsys):
    plan = _fake_engine(export_dir, tmp_path / "engine")
    lib = tmp_path / "engine" / "libasap_trt_plugin.so"
    out = tmp_path / "repo"
    rc = main(
        [str(export_dir), "--out", str(out), "--engine", str(plan), "--plugin", str(lib), "--onnx", "fp32"]
    )
    stdout = capsys.readouterr().out
    assert rc == 0, stdout
    trt = out / "asapnet_trt"
    assert sorted(p.name for p in trt.iterdir()) == ["1", "config.pbtxt", "libasap_trt_plugin.so"]
    assert (trt / "1" / "model.plan").read_bytes() == plan.read_bytes()
    assert (trt / "1" / "model.plan.json").read_text() == Path(str(plan) + ".json").read_text()
    assert (trt / "libasap_trt_plugin.so").read_bytes() == lib.read_bytes()
    cfg = _config(trt / "config.pbtxt")
    assert cfg.platform == "tensorrt_plan" and cfg.backend == "tensorrt"
    assert cfg.max_batch_size == 4  # the profile's max
    assert [(g.kind) for g in cfg.instance_group] == [1]  # KIND_GPU
    # the whole-generator FP16 graph keeps float32 label and image
    assert [(t.name, t.data_type, list(t.dims)) for t in cfg.input] == [("label", 11, [6, 512, 64])]
    assert [(t.name, t.data_type, list(t.dims)) for t in cfg.output] == [("image", 11, [3, 512, 64])]
    assert _config(out / "asapnet_onnx" / "config.pbtxt").max_batch_size == 4
    launch = (
        f"tritonserver --model-repository={out} --backend-config=tensorrt,plugins="
        f"{out}/asapnet_trt/libasap_trt_plugin.so"
    )
    assert f"launch: {launch}" in stdout
    readme = (out / "README.md").read_text()
    assert launch + "\n" in readme
    assert f"LD_PRELOAD={out}/asapnet_trt/libasap_trt_plugin.so tritonserver" in readme
    assert "plugins=/models/asapnet_trt/libasap_trt_plugin.so" in readme
    assert "exact TensorRT version that built them" in readme and "10.13.3.9" in readme
    assert "compute capability 7.5" in readme
    assert main(["--check", str(out)]) == 0


def test_plan_plugin_defaults_to_the_sidecar_library(export_dir, tmp_path, capsys):
    plan = _fake_engine(export_dir, tmp_path / "engine")
    out = tmp_path / "repo"
    assert (
        main(
            [str(export_dir), "--out", str(out), "--engine", str(plan), "--onnx", "none", "--max-batch", "2"]
        )
        == 0
    )
    assert "plugin library taken from the engine's sidecar" in capsys.readouterr().out
    assert [p.name for p in out.iterdir() if p.is_dir()] == ["asapnet_trt"]
    assert _config(out / "asapnet_trt" / "config.pbtxt").max_batch_size == 2


def test_plan_without_plugin_needs_no_library(export_dir, tmp_path, capsys):
    plan = _fake_engine(export_dir, tmp_path / "engine", graph="asapnet.onnx", plugin=None)
    out = tmp_path / "repo"
    assert main([str(export_dir), "--out", str(out), "--engine", str(plan)]) == 0
    assert "--backend-config" not in (out / "README.md").read_text()
    assert not list((out / "asapnet_trt").glob("*.so"))
    _fails(
        [
            export_dir,
            "--out",
            tmp_path / "r2",
            "--engine",
            plan,
            "--plugin",
            tmp_path / "engine" / "libasap_trt_plugin.so",
        ],
        capsys,
        "drop --plugin",
    )


def test_plan_check_catches_a_cpu_instance_and_a_missing_plugin(export_dir, tmp_path, capsys):
    plan = _fake_engine(export_dir, tmp_path / "engine")
    out = tmp_path / "repo"
    assert main([str(export_dir), "--out", str(out), "--engine", str(plan), "--onnx", "none"]) == 0
    cfg = out / "asapnet_trt" / "config.pbtxt"
    cfg.write_text(
        cfg.read_text().replace("KIND_GPU", "KIND_CPU").replace("max_batch_size: 4", "max_batch_size: 8")
    )
    (out / "asapnet_trt" / "libasap_trt_plugin.so").unlink()
    capsys.readouterr()
    assert main(["--check", str(out)]) == 1
    err = capsys.readouterr().err
    assert "TensorRT plans run on GPUs only" in err
    assert "max_batch_size 8 exceeds the engine's profile" in err
    assert "its library is not beside the model" in err


@pytest.mark.parametrize(
    "setup,argv,match",
    [
        (dict(), ["--max-batch", "8"], "--max-batch 8 exceeds the engine's profile (batch 1..4)"),
        (dict(batch=(2, 2, 4)), [], "profile starts at batch 2"),
        (
            dict(tensorrt_module="tensorrt_rtx", tensorrt_version="1.7.1.116"),
            [],
            "Triton's TensorRT backend runs engines of full TensorRT only",
        ),
        (dict(onnx_sha256="0" * 64), [], "not one of"),
        (dict(engine_sha256="0" * 64), [], "does not match its sidecar"),
        (dict(graph="g_fp16.onnx"), [], "one stage of the generator"),
        (dict(plugin_kind="python"), [], "pass --plugin"),
        (dict(), ["--plugin", "{engine}/missing.so"], "plugin library not found"),
        (dict(), ["--plugin", "{engine}/asapnet.plan"], "not a shared library"),
    ],
    ids=[
        "max-batch",
        "profile-min",
        "rtx",
        "foreign-onnx",
        "engine-hash",
        "stage-graph",
        "no-plugin",
        "plugin-missing",
        "plugin-not-elf",
    ],
)
def test_engine_errors(export_dir, tmp_path, capsys, setup, argv, match):
    plan = _fake_engine(export_dir, tmp_path / "engine", **setup)
    out = tmp_path / "repo"
    argv = [a.format(engine=tmp_path / "engine") for a in argv]
    _fails([export_dir, "--out", out, "--engine", plan, *argv], capsys, match)
    assert not out.exists() and not list(tmp_path.glob(".repo.*"))


def test_engine_without_sidecar(export_dir, tmp_path, capsys):
    plan = _fake_engine(export_dir, tmp_path / "engine")
    Path(str(plan) + ".json").unlink()
    _fails([export_dir, "--out", tmp_path / "repo", "--engine", plan], capsys, "is missing")


def test_real_engine_sidecar_is_read(export_dir, tmp_path, capsys):
    """A real build (TensorRT for RTX, CPU-only ahead-of-time): its sidecar's format is what the
    generator reads; Triton cannot run an RTX engine, so it is refused with the reason, and the
    same sidecar marked as full TensorRT gives a plan model."""
    from asap_deploy.build import main as build_main
    from asap_deploy.engine.trt_module import import_tensorrt
    from asap_deploy.errors import MissingDependencyError

    try:
        import_tensorrt("tensorrt_rtx")
    except MissingDependencyError:
        pytest.skip("TensorRT for RTX not installed (extra rtx)")

    plan = tmp_path / "engine" / "asapnet.plan"
    assert (
        build_main(
            [
                str(export_dir / "asapnet_fp16.onnx"),
                "--out",
                str(plan),
                "--module",
                "tensorrt_rtx",
                "--batch",
                "1",
                "1",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    _fails([export_dir, "--out", tmp_path / "repo", "--engine", plan], capsys, "built with tensorrt_rtx")
    side_path = Path(str(plan) + ".json")
    side_path.write_text(json.dumps({**json.loads(side_path.read_text()), "tensorrt_module": "tensorrt"}))
    assert main([str(export_dir), "--out", str(tmp_path / "repo"), "--engine", str(plan)]) == 0
    cfg = _config(tmp_path / "repo" / "asapnet_trt" / "config.pbtxt")
    assert cfg.max_batch_size == 2 and [t.name for t in cfg.input] == ["label"]


# -- inputs and targets -------------------------------------------------------------------------


def test_export_errors(export_dir, tmp_path, capsys):
    _fails([tmp_path / "nope", "--out", tmp_path / "r"], capsys, "export folder not found")
    (tmp_path / "empty").mkdir()
    _fails([tmp_path / "empty", "--out", tmp_path / "r"], capsys, "no manifest.json")
    fp32_only = tmp_path / "fp32"
    shutil.copytree(export_dir, fp32_only)
    man = json.loads((fp32_only / "manifest.json").read_text())
    man["files"] = [f for f in man["files"] if f["precision"] == "fp32"]
    (fp32_only / "manifest.json").write_text(json.dumps(man))
    _fails([fp32_only, "--out", tmp_path / "r", "--onnx", "fp16"], capsys, "has no asapnet_fp16.onnx")
    man["files"] = [f for f in man["files"] if f["graph"] not in ("asapnet",)]
    (fp32_only / "manifest.json").write_text(json.dumps(man))
    _fails([fp32_only, "--out", tmp_path / "r"], capsys, "nothing to serve")
    _fails([fp32_only, "--out", tmp_path / "r", "--onnx", "none"], capsys, "needs --engine")
    _fails([export_dir, "--out", tmp_path / "r", "--plugin", "x.so"], capsys, "give --engine too")
    _fails([export_dir, "--out", tmp_path / "r", "--max-batch", "0"], capsys, "at least 1")
    _fails([export_dir], capsys, "--out REPO")
    assert not (tmp_path / "r").exists()


def test_changed_onnx_is_refused(export_dir, tmp_path, capsys):
    changed = tmp_path / "changed"
    shutil.copytree(export_dir, changed)
    with open(changed / "asapnet.onnx", "ab") as f:
        f.write(b"\0")
    line = _fails(
        [changed, "--out", tmp_path / "r", "--onnx", "fp32"], capsys, "asapnet.onnx has"
    )  # the export's own check, before anything is copied
    assert "manifest.json says" in line and "re-export it" in line
    assert not (tmp_path / "r").exists()


def test_overwrite_rules(export_dir, repo, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    _fails([export_dir, "--out", out, "--onnx", "fp32"], capsys, "--force")
    assert (out / "precious.txt").read_text() == "keep me"
    assert main([str(export_dir), "--out", str(out), "--onnx", "fp32", "--force"]) == 0
    assert not (out / "precious.txt").exists()
    # an earlier repository is replaced without --force
    assert main([str(export_dir), "--out", str(out), "--onnx", "fp16"]) == 0
    assert [p.name for p in out.iterdir() if p.is_dir()] == ["asapnet_onnx_fp16"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_check_errors(tmp_path, capsys):
    _fails(["--check", tmp_path / "none"], capsys, "model repository not found")
    (tmp_path / "empty").mkdir()
    line = _fails(
        ["--check", tmp_path / "empty"], capsys, "holds no model folder: not a Triton model repository"
    )
    assert f"{tmp_path}/empty/" not in line


def test_missing_tritonclient_is_one_line(export_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tritonclient.grpc", None)
    line = _fails(
        [export_dir, "--out", tmp_path / "r"], capsys, "tritonclient is not installed", code=3
    )  # a missing dependency: the environment's exit code
    assert 'pip install -e ".[triton]"' in line
    assert not (tmp_path / "r").exists()


def test_module_entry_point(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "asap_deploy.triton", "--check", str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and r.stderr.startswith("error: model repository not found")
