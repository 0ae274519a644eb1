"""The shared CLI wrapper and the path checks, through the commands a user runs (export, build):
one ``error:`` line, the documented exit code, nothing written, and no work done first."""

import errno
import json
import subprocess
import sys

import pytest
from error_cases import WIDTH, assert_one_error_line, save, tree

from asap_deploy import export
from asap_deploy.build import main as build_main
from asap_deploy.export import main as export_main

# the documented exit codes (asap_deploy.errors), spelled out so these tests also run, and fail
# for the right reason, against code that predates them
EXIT_USAGE, EXIT_ENVIRONMENT, EXIT_TOOL, EXIT_INTERRUPTED = 2, 3, 4, 130


@pytest.fixture
def ckpt(tmp_path):
    return save(tmp_path / "ckpts" / "city")


@pytest.fixture
def no_model_loading(monkeypatch):
    """Path errors must come before the (minutes-long, at full size) model loading."""

    def refuse(*a, **k):
        raise AssertionError("the model was loaded before the paths were checked")

    monkeypatch.setattr(export, "_load_model", refuse)


def test_exit_codes_are_documented():
    from asap_deploy import cli
    from asap_deploy.errors import EXIT_CODES

    assert {0, 1, 2, 3, 4, 130} <= set(EXIT_CODES)
    assert cli.describe(OSError(errno.ENOSPC, "No space left on device", "/x"))[0] == EXIT_ENVIRONMENT


HELP = "(see python -m asap_deploy.export --help)"


@pytest.mark.parametrize(
    "argv,needles",
    [
        (["--width", "abc"], ["--width: invalid int value: 'abc'", HELP]),
        (["--bogus"], ["unrecognized arguments: --bogus", HELP]),
        (["--precision", "int8"], ["invalid choice: 'int8'", HELP]),
        (["--parity-batch", "0"], ["--parity-batch must be >= 1"]),
        (["--height", "-512"], ["--height must be a positive integer"]),
    ],
)
def test_usage_errors_are_one_line_exit_2(ckpt, tmp_path, capsys, argv, needles, no_model_loading):
    rc = export_main([str(ckpt), "--out", str(tmp_path / "out")] + argv)
    assert rc == EXIT_USAGE
    assert_one_error_line(capsys.readouterr().err, *needles)
    assert not (tmp_path / "out").exists()


def test_both_checkpoint_and_demo_is_a_usage_error(ckpt, capsys, no_model_loading):
    assert export_main([str(ckpt), "--demo", "facades-512"]) == EXIT_USAGE
    assert_one_error_line(capsys.readouterr().err, "not both")


@pytest.mark.parametrize("where", ["parent_is_file", "out_is_file", "unwritable"])
def test_export_output_checked_before_any_work(ckpt, tmp_path, capsys, where, no_model_loading):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = {
        "parent_is_file": blocker / "sub" / "out",
        "out_is_file": blocker,
        "unwritable": "/sys/asap_deploy_test_out",
    }[where]
    before = tree(tmp_path)
    rc = export_main([str(ckpt), "--width", WIDTH, "--out", str(out), "--no-parity"])
    line = assert_one_error_line(capsys.readouterr().err, "cannot write export folder")
    assert rc == EXIT_USAGE
    assert {
        "parent_is_file": "is a file, not a folder",
        "out_is_file": "a file of that name",
        "unwritable": "no permission",
    }[where] in line
    assert tree(tmp_path) == before


def test_checkpoint_that_is_a_directory(tmp_path, capsys, no_model_loading):
    rc = export_main([str(tmp_path)])
    assert rc == EXIT_USAGE
    assert_one_error_line(capsys.readouterr().err, "is a directory", "checkpoint")


def test_interrupt_exits_130_and_leaves_nothing(ckpt, tmp_path, capsys, monkeypatch):
    from asap_deploy.onnx_export import exporter

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(exporter, "trace_graphs", interrupt)
    before = tree(tmp_path)
    rc = export_main([str(ckpt), "--width", WIDTH, "--out", str(tmp_path / "new" / "out"), "--no-parity"])
    assert rc == EXIT_INTERRUPTED
    assert_one_error_line(capsys.readouterr().err, "interrupted")
    assert tree(tmp_path) == before  # no staging folder, not even the created parent


def test_unexpected_exception_is_one_line_exit_4_and_debug_shows_traceback(
    ckpt, tmp_path, capsys, monkeypatch
):
    from asap_deploy.onnx_export import exporter

    def boom(*a, **k):
        raise ValueError("something deep inside a library\nsecond line of its message")

    monkeypatch.setattr(exporter, "trace_graphs", boom)
    argv = [str(ckpt), "--width", WIDTH, "--out", str(tmp_path / "out"), "--no-parity"]
    assert export_main(argv) == EXIT_TOOL
    assert_one_error_line(capsys.readouterr().err, "internal error (ValueError: something deep", "--debug")
    assert export_main(argv + ["--debug"]) == EXIT_TOOL
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.splitlines()[-1].startswith("error:")
    monkeypatch.setenv("ASAP_DEPLOY_DEBUG", "1")
    assert export_main(argv) == EXIT_TOOL
    assert "Traceback" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_disk_full_is_environment_exit_3(ckpt, tmp_path, capsys, monkeypatch):
    from asap_deploy.onnx_export import exporter

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.onnx"))

    monkeypatch.setattr(exporter, "trace_graphs", full)
    rc = export_main([str(ckpt), "--width", WIDTH, "--out", str(tmp_path / "out"), "--no-parity"])
    assert rc == EXIT_ENVIRONMENT
    assert_one_error_line(capsys.readouterr().err, "No space left on device", "x.onnx")


# -- build: the same wrapper, paths checked before TensorRT is imported -------------------------
_PROBE = (
    "import sys; from asap_deploy.build import main; rc = main(sys.argv[1:]); "
    "print(sorted(m for m in sys.modules if m.split('.')[0].startswith('tensorrt'))); "
    "sys.exit(rc)"
)


def _build_cli(*argv):
    return subprocess.run([sys.executable, "-c", _PROBE, *map(str, argv)], capture_output=True, text=True)


@pytest.mark.parametrize(
    "case", ["directory", "empty", "missing", "out_unwritable", "out_parent_is_file", "out_is_folder"]
)
def test_build_path_errors_are_one_line_before_tensorrt(tmp_path, case):
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"\x08\x07")  # never read: the path checks come first
    blocker = tmp_path / "f"
    blocker.write_text("x")
    argv, needle = {
        "directory": ([tmp_path], "is a directory"),
        "empty": ([tmp_path / "empty.onnx"], "is empty (0 bytes)"),
        "missing": ([tmp_path / "nope.onnx"], "ONNX file not found"),
        "out_unwritable": ([onnx_file, "--out", "/sys/x.plan"], "no permission"),
        "out_parent_is_file": ([onnx_file, "--out", blocker / "x.plan"], "is a file, not a folder"),
        "out_is_folder": ([onnx_file, "--out", tmp_path], "is an existing folder"),
    }[case]
    (tmp_path / "empty.onnx").write_bytes(b"")
    r = _build_cli(*argv)
    assert r.returncode == EXIT_USAGE, r.stderr
    assert_one_error_line(r.stderr, needle)
    assert r.stdout.strip() == "[]"  # TensorRT was never imported
    assert not list(tmp_path.glob("*.plan*"))


def test_build_usage_errors(tmp_path, capsys):
    assert build_main([str(tmp_path / "m.onnx"), "--opt-level", "9"]) == EXIT_USAGE
    assert_one_error_line(capsys.readouterr().err, "--opt-level")
    assert build_main([str(tmp_path / "m.onnx"), "--workspace", "0"]) == EXIT_USAGE
    assert_one_error_line(capsys.readouterr().err, "--workspace must be a positive")


def test_module_entry_points_print_help_and_exit_0():
    for mod in ("asap_deploy.export", "asap_deploy.build"):
        r = subprocess.run([sys.executable, "-m", mod, "--help"], capture_output=True, text=True)
        assert r.returncode == 0 and "--debug" in r.stdout and not r.stderr


def test_exit_codes_of_the_error_classes():
    from asap_deploy.engine.builder import BuildError, BuildFailed
    from asap_deploy.engine.loader import EngineDamagedError, EngineIncompatibleError
    from asap_deploy.errors import (
        EXIT_CODES,
        CheckpointError,
        ExportIntegrityError,
        MissingDependencyError,
        VerificationError,
    )

    assert (
        CheckpointError.exit_code
        == ExportIntegrityError.exit_code
        == BuildError.exit_code
        == EngineDamagedError.exit_code
        == EXIT_USAGE
    )
    assert MissingDependencyError.exit_code == EngineIncompatibleError.exit_code == EXIT_ENVIRONMENT
    assert BuildFailed.exit_code == EXIT_TOOL and VerificationError.exit_code == 1
    assert json.dumps(EXIT_CODES)  # printable table
