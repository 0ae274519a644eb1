"""Every consumer of an export (bench, parity, translate, triton, ``asap_deploy.load``) verifies
it against its manifest before use, checks its paths before any work, and shares the CLI wrapper:
a damaged export is one line and exit 2, never a backend listed as "skipped"; an unwritable
--out is found before anything is timed; no runnable backend is exit 3, not a traceback."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from error_cases import WIDTH, assert_one_error_line, tree
from PIL import Image

import asap_deploy
from asap_deploy.bench import main as bench_main
from asap_deploy.export import main as export_main
from asap_deploy.parity import main as parity_main

EXIT_VERIFICATION, EXIT_USAGE, EXIT_ENVIRONMENT, EXIT_TOOL, EXIT_INTERRUPTED = 1, 2, 3, 4, 130
QUICK = ["--iterations", "1", "--duration", "0", "--warmup", "0"]


@pytest.fixture
def folder(small_fp32_export, tmp_path):
    return Path(shutil.copytree(small_fp32_export, tmp_path / "small"))


@pytest.fixture
def label_png(tmp_path):
    path = tmp_path / "inputs" / "scene.png"
    path.parent.mkdir()
    Image.fromarray(np.zeros((512, int(WIDTH)), np.uint8), "L").save(path)
    return path


@pytest.fixture
def nothing_runs(monkeypatch):
    """Refuse to time, compare or load a model: the command must stop before."""

    def refuse(*a, **k):
        raise AssertionError("work started before the inputs were checked")

    monkeypatch.setattr("asap_deploy.bench.time_runner", refuse)
    monkeypatch.setattr("asap_deploy.parity._compare_one", refuse, raising=False)
    try:  # (absent before the Python API existed: these tests also run against older code)
        import asap_deploy.application as application
    except ImportError:
        return
    monkeypatch.setattr(application, "load", refuse)


def _damage(folder, how):
    f = folder / "asapnet.onnx"
    data = f.read_bytes()
    if how == "truncated":
        f.write_bytes(data[: len(data) // 2])
    elif how == "same_size_edit":
        f.write_bytes(data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:])
    elif how == "foreign_model":  # a valid ONNX graph, but another one
        f.write_bytes((folder / "g.onnx").read_bytes())
    elif how == "garbage_manifest":
        (folder / "manifest.json").write_bytes(b'{"manifest_version": 1, "files": [')
    elif how == "foreign_manifest":
        (folder / "manifest.json").write_text(json.dumps({"name": "someone else's", "files": []}))
    elif how == "list_manifest":
        (folder / "manifest.json").write_text("[1, 2, 3]")


def _command(name, folder, out, label_png):
    if name == "bench":
        return bench_main, [
            "--export",
            str(folder),
            "--backends",
            "ort-cpu-fp32",
            "torch-eager-fp32",
            "--out",
            str(out),
            *QUICK,
        ]
    if name == "parity":
        return parity_main, ["--export", str(folder), "--backends", "ort-cpu-fp32", "--out", str(out)]
    if name == "translate":
        from asap_deploy.translate import main as translate_main

        return translate_main, [str(folder), str(label_png), "--instance", str(label_png), "--out", str(out)]
    pytest.importorskip("tritonclient")
    from asap_deploy.triton import main as triton_main

    return triton_main, [str(folder), "--out", str(out), "--onnx", "fp32", "--no-warmup"]


DAMAGE = [
    ("truncated", ["asapnet.onnx", "truncated", "re-export"]),
    ("same_size_edit", ["asapnet.onnx", "re-export"]),
    ("foreign_model", ["asapnet.onnx", "re-export"]),
    ("garbage_manifest", ["manifest.json", "not valid JSON", "re-export"]),
    ("foreign_manifest", ["manifest.json", "not an asap_deploy manifest", "re-export"]),
    ("list_manifest", ["manifest.json", "holds a JSON list", "re-export"]),
]


@pytest.mark.parametrize("command", ["bench", "parity", "translate", "triton"])
@pytest.mark.parametrize("how,needles", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_a_damaged_export_is_one_line_exit_2_and_nothing_runs(
    folder, tmp_path, capsys, label_png, command, how, needles, nothing_runs
):
    _damage(folder, how)
    main, argv = _command(command, folder, tmp_path / "out", label_png)
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == EXIT_USAGE, err
    assert_one_error_line(err, *needles)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("how,needles", DAMAGE, ids=[d[0] for d in DAMAGE])
@pytest.mark.parametrize("backend", ["auto", "onnxruntime", "torch"])
def test_load_refuses_a_damaged_export_whatever_the_backend(folder, how, needles, backend):
    from asap_deploy.errors import AsapDeployError

    _damage(folder, how)
    with pytest.raises(AsapDeployError) as e:
        asap_deploy.load(folder, backend=backend)
    assert e.value.exit_code == EXIT_USAGE
    msg = str(e.value)
    assert "\n" not in msg and all(n in msg for n in needles), msg


def test_load_of_a_file_checks_it_and_refuses_unindexed_files(folder):
    from asap_deploy.errors import ExportIntegrityError, InputPathError

    with asap_deploy.load(folder / "asapnet.onnx") as g:
        assert g.backend == "ort-cpu-fp32"
    shutil.copy(folder / "asapnet.onnx", folder / "copy.onnx")
    with pytest.raises(InputPathError, match="copy.onnx is not indexed in .*manifest.json"):
        asap_deploy.load(folder / "copy.onnx")
    _damage(folder, "same_size_edit")
    with pytest.raises(ExportIntegrityError, match="asapnet.onnx does not match manifest.json"):
        asap_deploy.load(folder / "asapnet.onnx")


def test_a_changed_source_checkpoint_is_refused_where_it_is_the_reference(folder, tmp_path, capsys):
    from asap_deploy.errors import ExportIntegrityError

    src = json.loads((folder / "manifest.json").read_text())["source"]["checkpoint"]
    backup = Path(src).read_bytes()
    try:
        with open(src, "ab") as f:
            f.write(b"\0")
        rc = parity_main(["--export", str(folder), "--backends", "ort-cpu-fp32"])
        assert rc == EXIT_USAGE
        assert_one_error_line(capsys.readouterr().err, "changed since", "re-export")
        with pytest.raises(ExportIntegrityError, match="changed since"):
            asap_deploy.load(folder, backend="torch")
        # ONNX Runtime does not use the checkpoint: the export itself is intact
        assert bench_main(["--export", str(folder), "--backends", "ort-cpu-fp32", *QUICK]) == 0
    finally:
        Path(src).write_bytes(backup)


@pytest.mark.parametrize("command", ["bench", "parity", "translate", "triton"])
@pytest.mark.parametrize("where", ["parent_is_file", "out_is_file", "unwritable"])
def test_out_is_checked_before_any_work(folder, tmp_path, capsys, label_png, command, where, nothing_runs):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = {
        "parent_is_file": blocker / "sub" / "out",
        "out_is_file": blocker,
        "unwritable": tmp_path / "ro" / "out",
    }[where]
    if where == "unwritable":
        (tmp_path / "ro").mkdir()
        os.chmod(tmp_path / "ro", 0o555)
        if os.access(tmp_path / "ro", os.W_OK) and os.geteuid() == 0:
            out = "/sys/asap_deploy_test_out"  # root writes anywhere but in sysfs
    main, argv = _command(command, folder, out, label_png)
    before = tree(tmp_path)
    rc = main(argv)
    err = capsys.readouterr()
    assert rc == EXIT_USAGE, err
    line = assert_one_error_line(err.err, "cannot write")
    assert {
        "parent_is_file": "is a file, not a folder",
        "out_is_file": "a file of that name",
        "unwritable": "no permission",
    }[where] in line
    assert "timing" not in err.out
    assert tree(tmp_path) == before


def test_bench_unwritable_out_fails_before_the_timing(folder, tmp_path, capsys, monkeypatch):
    """The issue's case as a user meets it: nothing is timed, no model is loaded."""

    def timed(*a, **k):
        raise AssertionError("a backend was timed before --out was checked")

    monkeypatch.setattr("asap_deploy.bench.time_runner", timed)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    rc = bench_main(
        ["--export", str(folder), "--backends", "ort-cpu-fp32", "--out", str(blocker / "results"), *QUICK]
    )
    assert rc == EXIT_USAGE
    assert_one_error_line(
        capsys.readouterr().err, "cannot write bench results folder", "is a file, not a folder"
    )


def _fake_backend(monkeypatch, name, reason):
    from asap_deploy.runners import registry

    monkeypatch.setitem(
        registry._REGISTRY,
        name,
        registry.Backend(name, "test", "fp32", "cannot run here", lambda ctx: None, lambda ctx: reason),
    )


@pytest.mark.parametrize("command", ["bench", "parity"])
def test_no_runnable_backend_is_exit_3_with_the_reasons_and_the_report(
    folder, tmp_path, capsys, monkeypatch, command
):
    _fake_backend(monkeypatch, "gpu-only", "needs a CUDA GPU (none here)")
    out = tmp_path / "report"
    main = bench_main if command == "bench" else parity_main
    rc = main(
        ["--export", str(folder), "--backends", "gpu-only", "--out", str(out)]
        + (QUICK if command == "bench" else [])
    )
    captured = capsys.readouterr()
    assert rc == EXIT_ENVIRONMENT
    assert_one_error_line(captured.err, "no backend could run here", "gpu-only: needs a CUDA GPU (none here)")
    data = json.loads((out / f"{command}.json").read_text())
    assert data["results"][0]["skipped"] == "needs a CUDA GPU (none here)"
    assert "skipped: needs a CUDA GPU" in captured.out


@pytest.mark.skipif(
    "__import__('torch').cuda.is_available()", reason="the TensorRT backend can run on this machine"
)
def test_parity_with_only_a_gpu_backend_on_a_cpu_machine(folder, tmp_path, capsys):
    """The issue's case: no runnable backend crashed on the missing parity.json."""
    out = tmp_path / "parity"
    rc = parity_main(["--export", str(folder), "--backends", "trt-fp16", "--out", str(out)])
    assert rc == EXIT_ENVIRONMENT
    assert_one_error_line(capsys.readouterr().err, "no backend could run here", "trt-fp16")
    assert json.loads((out / "parity.json").read_text())["results"][0]["skipped"]


def test_parity_outside_tolerance_is_exit_1_and_a_failing_backend_exit_4(
    folder, tmp_path, capsys, monkeypatch
):
    from asap_deploy.errors import InputError
    from asap_deploy.runners import registry

    class Off:
        name = "off"

        def activate(self):
            return self

        def deactivate(self):
            pass

        def infer(self, feeds):
            return np.zeros((1, 3, 512, int(WIDTH)), np.float32)

        def describe(self):
            return {"name": self.name}

    class Broken(Off):
        def infer(self, feeds):
            raise InputError("broke")

    for name, cls in (("off", Off), ("broken", Broken)):
        monkeypatch.setitem(
            registry._REGISTRY,
            name,
            registry.Backend(name, "test", "fp32", "", lambda ctx, c=cls: c(), lambda ctx: None),
        )
    assert parity_main(["--export", str(folder), "--backends", "broken", "off"]) == EXIT_VERIFICATION
    assert_one_error_line(capsys.readouterr().err, "outside tolerance: off", "do not deploy")
    assert parity_main(["--export", str(folder), "--backends", "broken"]) == EXIT_TOOL
    assert_one_error_line(capsys.readouterr().err, "broken failed on", "broke")


def test_bad_flags_of_the_harness_are_one_line(folder, capsys, nothing_runs):
    for argv, needle in [
        ([], "give --export DIR or --demo PRESET"),
        (["--export", str(folder), "--batch", "0"], "--batch must be at least 1"),
        (["--demo", "no-such-preset"], "unknown preset 'no-such-preset'"),
        (["--export", str(folder), "--kernel-library", "/nonexistent.so"], "kernel library not found"),
    ]:
        for main in (bench_main, parity_main):
            assert main(argv) == EXIT_USAGE, argv
            assert_one_error_line(capsys.readouterr().err, needle)


# -- every command shares the wrapper -----------------------------------------------------------


def _cli(name, folder, tmp_path, label_png):
    if name == "export":
        ckpt = json.loads((folder / "manifest.json").read_text())["source"]["checkpoint"]
        return export_main, [
            ckpt,
            "--width",
            WIDTH,
            "--out",
            str(tmp_path / "o"),
            "--no-parity",
            "--precision",
            "fp32",
        ]
    if name == "build":
        from asap_deploy.engine.trt_module import import_tensorrt
        from asap_deploy.errors import MissingDependencyError

        try:
            import_tensorrt("auto")
        except MissingDependencyError:
            pytest.skip("build checks its paths after choosing a TensorRT module")
        from asap_deploy.build import main as build_main

        return build_main, [str(folder / "asapnet.onnx"), "--out", str(tmp_path / "a.plan")]
    return _command(name, folder, tmp_path / "o", label_png)


CLIS = ["export", "build", "bench", "parity", "translate", "triton"]


@pytest.mark.parametrize("name", CLIS)
@pytest.mark.parametrize(
    "exc,code,needle",
    [
        (RuntimeError("boom"), EXIT_TOOL, "internal error (RuntimeError: boom)"),
        (KeyboardInterrupt(), EXIT_INTERRUPTED, "interrupted"),
        (OSError(28, "No space left on device", "/x"), EXIT_ENVIRONMENT, "No space left on device"),
    ],
    ids=["internal", "interrupt", "disk-full"],
)
def test_every_command_maps_failures_to_one_line_and_the_documented_code(
    folder, tmp_path, capsys, label_png, monkeypatch, name, exc, code, needle
):
    def fail(*a, **k):
        raise exc

    monkeypatch.setattr("asap_deploy.paths.output_dir", fail)
    monkeypatch.setattr("asap_deploy.paths.output_file", fail)
    main, argv = _cli(name, folder, tmp_path, label_png)
    assert main(argv) == code
    assert_one_error_line(capsys.readouterr().err, needle)
    if code == EXIT_TOOL:  # --debug adds the traceback
        assert main(argv + ["--debug"]) == code
        assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("name", CLIS)
def test_every_command_reports_usage_errors_as_one_line_exit_2(folder, tmp_path, capsys, label_png, name):
    main, argv = _cli(name, folder, tmp_path, label_png)
    assert main(argv + ["--bogus"]) == EXIT_USAGE
    assert_one_error_line(capsys.readouterr().err, "unrecognized arguments: --bogus", "--help")


# -- runner inputs: a bad feed is one line, never a NaN image or a library's error -------------


@pytest.mark.parametrize("backend", ["ort-cpu-fp32", "torch-eager-fp32"])
@pytest.mark.parametrize(
    "value,needle", [(np.nan, "1 NaN/inf value (first nan"), (np.inf, "1 NaN/inf value (first inf")]
)
def test_a_nan_pixel_is_refused_by_name(small_fp32_export, backend, value, needle):
    from asap_deploy.artifacts import ExportFolder
    from asap_deploy.errors import InputError
    from asap_deploy.runners import registry
    from asap_deploy.sample_inputs import scene_feeds

    export = ExportFolder(small_fp32_export)
    feeds = {"label": scene_feeds(export.config, 1, export.height, export.width, 3)["label"]}
    feeds["label"][0, 2, 100, 7] = value
    with registry.get(backend).create(registry.RunContext(export)) as runner:
        with pytest.raises(InputError) as e:
            runner.infer(feeds)
        msg = str(e.value)
        assert "input 'label'" in msg and needle in msg and "\n" not in msg, msg
        # the check is what stands between the pixel and the image: without it, NaN spreads
        out = runner.infer(feeds, check_values=False)
    assert np.isnan(out).sum() > 1000  # a whole patch of the image, from one pixel


@pytest.mark.parametrize(
    "change,needle",
    [
        (lambda f: f.pop("label"), "missing input label (the generator's float input): float32"),
        (lambda f: f.update(label=f["label"].astype(np.float64)), "'label' is float64, expected"),
        (lambda f: f.update(label=f["label"][:, :3]), "has shape [1, 3, 512, 64], expected"),
    ],
)
def test_wrong_feeds_are_one_line_not_an_onnx_runtime_error(small_fp32_export, change, needle):
    from asap_deploy.artifacts import ExportFolder
    from asap_deploy.errors import InputError
    from asap_deploy.runners import registry
    from asap_deploy.sample_inputs import scene_feeds

    export = ExportFolder(small_fp32_export)
    feeds = {"label": scene_feeds(export.config, 1, export.height, export.width, 3)["label"]}
    change(feeds)
    with (
        registry.get("ort-cpu-fp32").create(registry.RunContext(export)) as runner,
        pytest.raises(InputError) as e,
    ):
        runner.infer(feeds)
    assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)
