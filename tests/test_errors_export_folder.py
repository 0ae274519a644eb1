"""Export folders are verified against manifest.json (size + SHA-256 of each file) before use:
a damaged, edited, swapped or missing file, or a manifest that is garbage or someone else's, is
one line naming the file and the re-export command, and ``build`` refuses before TensorRT."""

import json
import shutil
from pathlib import Path

import pytest
from error_cases import WIDTH, assert_one_error_line

from asap_deploy.build import main as build_main


def verify_export(*a, **k):
    from asap_deploy.export_folder import verify_export

    return verify_export(*a, **k)


def export_of(*a, **k):
    from asap_deploy.export_folder import export_of

    return export_of(*a, **k)


def reexport_command(*a, **k):
    from asap_deploy.export_folder import reexport_command

    return reexport_command(*a, **k)


def _errors():
    from asap_deploy import errors

    return errors


@pytest.fixture
def folder(small_fp32_export, tmp_path):
    return Path(shutil.copytree(small_fp32_export, tmp_path / "small"))


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def _write_manifest(folder, man):
    (folder / "manifest.json").write_text(json.dumps(man))


def test_a_good_export_verifies(folder):
    ex = verify_export(folder)
    assert ex.config.label_nc == 5 and ex.width == int(WIDTH)
    assert ex.file("asapnet.onnx") == folder / "asapnet.onnx"
    with pytest.raises(_errors().InputPathError, match="has no asapnet_fp16.onnx.*--precision fp32"):
        ex.file("asapnet_fp16.onnx")
    assert export_of(folder / "asapnet.onnx").path == folder


def _damage(folder, how):
    f = folder / "asapnet.onnx"
    data = f.read_bytes()
    if how == "truncated":
        f.write_bytes(data[: len(data) // 2])
    elif how == "same_size_edit":  # one weight byte: still valid ONNX, another model
        f.write_bytes(data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:])
    elif how == "foreign_model":  # a valid ONNX graph, but not this one
        f.write_bytes((folder / "g.onnx").read_bytes())
    elif how == "missing":
        f.unlink()
    elif how == "folder":
        f.unlink()
        f.mkdir()


@pytest.mark.parametrize(
    "how,needle",
    [
        ("truncated", "(truncated?)"),
        ("same_size_edit", "SHA-256 differs"),
        ("foreign_model", "bytes, manifest.json says"),
        ("missing", "asapnet.onnx is missing"),
        ("folder", "asapnet.onnx is a folder"),
    ],
)
def test_damaged_file_names_it_and_the_reexport(folder, how, needle):
    _damage(folder, how)
    with pytest.raises(_errors().ExportIntegrityError) as e:
        verify_export(folder)
    msg = str(e.value)
    assert needle in msg and "asapnet.onnx" in msg and "\n" not in msg
    assert "re-export it: python -m asap_deploy.export" in msg and f"--out {folder}" in msg
    verify_export(folder, files=["g.onnx"])  # the other files are still fine


@pytest.mark.parametrize("how", ["truncated", "same_size_edit", "foreign_model"])
def test_build_refuses_a_file_that_does_not_match_its_manifest(folder, capsys, how):
    _damage(folder, how)
    rc = build_main([str(folder / "asapnet.onnx"), "--out", str(folder / "a.plan")])
    assert rc == 2
    assert_one_error_line(capsys.readouterr().err, "asapnet.onnx", "re-export")
    assert not list(folder.glob("*.plan*"))


@pytest.mark.parametrize(
    "content,needle",
    [
        (b'{"manifest_version": 1, "files": [', "is not valid JSON"),
        (b"\xff\xfe garbage", "is not text"),
        (b"[1, 2, 3]", "holds a JSON list"),
        (b'{"name": "someone else\'s manifest"}', "is not an asap_deploy manifest"),
    ],
)
def test_garbage_manifest(folder, capsys, content, needle):
    (folder / "manifest.json").write_bytes(content)
    with pytest.raises(_errors().ExportIntegrityError, match="re-export"):
        verify_export(folder)
    rc = build_main([str(folder / "asapnet.onnx"), "--out", str(folder / "a.plan")])
    assert rc == 2
    assert_one_error_line(capsys.readouterr().err, needle, "manifest.json")
    assert not list(folder.glob("*.plan*"))


@pytest.mark.parametrize(
    "edit,needle",
    [
        (lambda m: m.update(manifest_version=99), "manifest_version 99"),
        (lambda m: m["files"][0].update(file="../../etc/passwd"), "no plain file name"),
        (lambda m: m["files"][0].update(sha256="abc"), "no valid sha256"),
        (lambda m: m["files"].append(dict(m["files"][0])), "twice"),
        (lambda m: m.update(files={}), "'files' is not a non-empty list"),
        (lambda m: m.update(height="512"), "height is '512'"),
        (lambda m: m["config"].update(label_nc="abc"), "label_nc must be an integer, got 'abc'"),
        (lambda m: m["config"].update(downsampling=64), "does not make sense"),
        (lambda m: m.pop("config"), "no 'config'"),
    ],
)
def test_foreign_or_edited_manifest(folder, edit, needle):
    man = _manifest(folder)
    edit(man)
    _write_manifest(folder, man)
    with pytest.raises(_errors().ExportIntegrityError) as e:
        verify_export(folder)
    assert needle in str(e.value) and "re-export" in str(e.value)


def test_missing_folder_or_manifest(tmp_path, folder):
    with pytest.raises(_errors().InputPathError, match="export folder not found"):
        verify_export(tmp_path / "nope")
    with pytest.raises(_errors().InputPathError, match="is a file, not an export folder"):
        verify_export(folder / "g.onnx")
    (folder / "manifest.json").unlink()
    with pytest.raises(_errors().InputPathError, match="has no manifest.json"):
        verify_export(folder)
    assert export_of(folder / "g.onnx") is None  # a standalone ONNX file: build may use it


def test_changed_source_checkpoint(folder):
    src = _manifest(folder)["source"]["checkpoint"]
    verify_export(folder, files=[], check_source=True)
    backup = Path(src).read_bytes()
    try:
        with open(src, "ab") as f:
            f.write(b"\0")
        with pytest.raises(_errors().ExportIntegrityError, match="changed since"):
            verify_export(folder, files=[], check_source=True)
    finally:
        Path(src).write_bytes(backup)


def test_reexport_command_is_a_valid_export_command_line(folder):
    from asap_deploy.export import build_parser

    man = _manifest(folder)
    cmd = reexport_command(folder, man)
    assert cmd.startswith("python -m asap_deploy.export ")
    args = build_parser().parse_args(cmd.split()[3:])
    assert (args.checkpoint, args.out, args.height, args.width, args.input, args.precision) == (
        man["source"]["checkpoint"],
        folder,
        man["height"],
        man["width"],
        man["input_mode"],
        ["fp32"],
    )


# -- engines are indexed in the manifest too, and may be built long after the export ------------


def _built_engine(folder, data=b"serialized engine" * 64, onnx="asapnet.onnx"):
    """An engine file and the sidecar ``build`` writes for it (no TensorRT needed here)."""
    import hashlib

    plan = folder / onnx.replace(".onnx", ".tensorrt_rtx.plan")
    plan.write_bytes(data)
    entry = next(f for f in _manifest(folder)["files"] if f["file"] == onnx)
    shape = [1, 6, 512, int(WIDTH)]
    side = {
        "onnx": str(folder / onnx),
        "onnx_sha256": entry["sha256"],
        "engine_sha256": hashlib.sha256(data).hexdigest(),
        "tensorrt_module": "tensorrt_rtx",
        "tensorrt_version": "1.7.1",
        "plugin": None,
        "gpu": None,
        "inputs": {"label": {"min": shape, "opt": shape, "max": shape}},
    }
    return plan, side


def test_registering_an_engine_keeps_the_manifest_valid_and_the_engine_is_verified(folder, capsys):
    from asap_deploy.artifacts import ExportFolder
    from asap_deploy.bench import main as bench_main

    plan, side = _built_engine(folder)
    assert ExportFolder(folder).register_engine(plan, side)
    ex = verify_export(folder)  # every graph and the engine
    assert [e["file"] for e in ex.engines] == [plan.name]
    plan, side = _built_engine(folder, b"rebuilt" * 99)  # rebuilt: the entry is replaced
    assert ExportFolder(folder).register_engine(plan, side)
    assert len(verify_export(folder).engines) == 1
    plan.write_bytes(b"rebuilt" * 50)  # damaged after the build
    with pytest.raises(_errors().ExportIntegrityError) as e:
        verify_export(folder)
    msg = str(e.value)
    assert f"engine {plan.name} has 350 bytes, manifest.json says 693 (truncated?)" in msg
    assert f"rebuild it: python -m asap_deploy.build {folder / 'asapnet.onnx'}" in msg
    rc = bench_main(
        [
            "--export",
            str(folder),
            "--backends",
            "ort-cpu-fp32",
            "--iterations",
            "1",
            "--duration",
            "0",
            "--warmup",
            "0",
        ]
    )
    assert rc == 2
    assert_one_error_line(capsys.readouterr().err, plan.name, "rebuild it")
    plan.unlink()  # an indexed engine that was deleted is not used, and not an error
    assert verify_export(folder).engines == []


def test_an_engine_from_another_export_is_not_registered(folder, tmp_path):
    from asap_deploy.artifacts import ExportFolder

    plan, side = _built_engine(folder)
    side["onnx_sha256"] = "0" * 64
    before = (folder / "manifest.json").read_bytes()
    assert not ExportFolder(folder).register_engine(plan, side)
    assert (folder / "manifest.json").read_bytes() == before


@pytest.mark.parametrize(
    "engines,needle",
    [
        ({"a.plan": 1}, "'engines' is not a list"),
        ([{"file": "asapnet.onnx"}], "engines[0] has no plain engine file name"),
        ([{"file": "../x.plan"}], "engines[0] has no plain engine file name"),
        ([{"file": "a.plan", "sha256": "x", "bytes": 1}], "engine a.plan has no valid sha256"),
        (
            [{"file": "a.plan", "sha256": "0" * 64, "bytes": 1, "onnx": "asapnet.onnx"}],
            "engine a.plan has no 'graph'",
        ),
    ],
)
def test_a_damaged_engine_index_is_one_line(folder, capsys, engines, needle):
    man = _manifest(folder)
    man["engines"] = engines
    _write_manifest(folder, man)
    with pytest.raises(_errors().ExportIntegrityError, match="re-export") as e:
        verify_export(folder)
    assert needle in str(e.value)
