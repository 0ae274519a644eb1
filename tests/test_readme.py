"""Every command in the README runs as written after the set-up.

The commands are read from README.md's code blocks and run in a fresh working folder, in this
process (each `.venv/bin/python -m asap_deploy.X ARGS` is `asap_deploy.X.main(ARGS)`), with two
substitutions to keep CI fast: the demo presets build a model of the paper's structure at toy
widths, and bench times 2 iterations per backend instead of 3 seconds. What cannot run here is said: the venv/pip set-up and the test command (CI runs those:
.ci/run), commands that need nvcc, a GPU or TensorRT's own tools, and the usage synopses.
"""

import importlib
import re
import shlex
from pathlib import Path

import asap_deploy.presets as presets

ROOT = Path(__file__).resolve().parents[1]
NEEDS_GPU_OR_NATIVE = ("trtexec", "polygraphy", "build_plugin", "asap_trt_run", "cmake")
#: the GPU evidence run, its filing (needs a returned folder) and its rehearsal, which .ci/run runs
GPU_EVIDENCE = ("gpu_evidence.sh", "file_gpu_evidence.py")
SETUP = ("python3 -m venv", ".venv/bin/pip install", ".venv/bin/python -m pytest")


def readme_blocks():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)


def readme_commands():
    """(command, why it is not run or None) for every shell command line of the README."""
    out = []
    for lang, body in readme_blocks():
        if lang == "python" or "->" in body:  # code, or the data-path diagram
            continue
        for line in body.splitlines():
            line = line.split("  #")[0].strip()
            for cmd in filter(None, (c.strip() for c in line.split("&&"))):
                if cmd.startswith(SETUP):
                    why = "set-up / test command (CI runs it)"
                elif any(w in cmd for w in NEEDS_GPU_OR_NATIVE):
                    why = "needs nvcc, a GPU or TensorRT's tools"
                elif any(w in cmd for w in GPU_EVIDENCE):
                    why = "the GPU evidence run (its --dry-run rehearsal runs in .ci/run)"
                elif "[options]" in cmd or re.search(r"\b[A-Z]{4,}\b", cmd):
                    why = "usage synopsis"
                else:
                    why = None
                out.append((cmd, why))
    return out


def _small_preset(real):
    def load(name):
        p = real(name)
        return presets.Preset(
            p.name,
            p.height,
            p.width,
            {**p.generator, "lr_width": 8, "lr_max_width": 16, "lr_depth": 1, "hr_width": 16},
        )

    return load


def test_readme_commands_run_as_written(tmp_path, monkeypatch, capsys):
    import asap_deploy.bench as bench
    from asap_deploy.harness.timing import TimingOptions

    monkeypatch.setattr(presets, "load_preset", _small_preset(presets.load_preset))
    monkeypatch.setattr(
        bench, "TimingOptions", lambda warmup, iterations, duration, *rest: TimingOptions(0.0, 2, 0.0, *rest)
    )
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    ran = []
    for cmd, why in readme_commands():
        if why:
            continue
        argv = shlex.split(cmd)
        assert argv[:2] == [".venv/bin/python", "-m"] and argv[2].startswith("asap_deploy."), (
            f"README command not runnable as written: {cmd}"
        )
        main = importlib.import_module(argv[2]).main
        rc = main(argv[3:])
        out = capsys.readouterr()
        assert rc == 0, f"{cmd}\n{out.out[-2000:]}\n{out.err[-2000:]}"
        ran.append(argv[2])
        if argv[2] == "asap_deploy.export":
            setup_export = (tmp_path / "build" / "cityscapes-256x512" / "asapnet.onnx").stat()
    # the README's Python example, as written
    for lang, body in readme_blocks():
        if lang == "python":
            exec(compile(body, "README.md", "exec"), {})
            ran.append("python")
    assert {
        "asap_deploy.export",
        "asap_deploy.translate",
        "asap_deploy.bench",
        "asap_deploy.parity",
        "python",
    } <= set(ran), ran
    assert (tmp_path / "build" / "translated" / "street_labelIds.png").is_file()
    assert (tmp_path / "build" / "street.png").is_file()
    assert (tmp_path / "benchmarks" / "results" / "my-machine" / "bench.json").is_file()
    # bench and parity --demo used the set-up's export instead of exporting again
    after = (tmp_path / "build" / "cityscapes-256x512" / "asapnet.onnx").stat()
    assert (after.st_ino, after.st_mtime_ns) == (setup_export.st_ino, setup_export.st_mtime_ns)


def test_readme_lists_what_it_does_not_run():
    skipped = {cmd: why for cmd, why in readme_commands() if why}
    assert any("build_plugin" in c for c in skipped)  # the classifier sees the GPU-only lines
    assert sum(why is None for _, why in readme_commands()) >= 5
