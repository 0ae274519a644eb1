"""Replacing an earlier export is crash-safe at every point: a process killed between any two
steps of the swap leaves something the next run recovers (the previous or the new export at
--out, never a missing --out with the old one hidden), and leftovers of dead processes go away."""

import json
import subprocess
import sys
import textwrap

import pytest
from error_cases import save

from asap_deploy.export import main as export_main

#: in a child: write a new export into a staging folder and replace OUT with it, dying (os._exit:
#: no cleanup, like SIGKILL) right after the N-th filesystem step (rename / exchange / rmtree)
_CRASH = textwrap.dedent("""
    import json, os, shutil, sys
    from pathlib import Path
    from asap_deploy import folder_swap
    out, die_after, use_exchange = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    staging = folder_swap.staging_dir(out)
    (staging / "manifest.json").write_text(json.dumps({"tag": "new"}))
    (staging / "g.onnx").write_bytes(b"new" * 100)
    steps = []
    def step(fn):
        def wrapped(*a, **k):
            r = fn(*a, **k)
            steps.append(fn.__name__)
            if len(steps) == die_after:
                os._exit(70)
            return r
        return wrapped
    os.rename = step(os.rename)
    shutil.rmtree = step(shutil.rmtree)
    folder_swap.exchange = step(folder_swap.exchange)
    folder_swap.replace(staging, out, use_exchange=use_exchange == "yes")
    print(" ".join(steps))
""")


def _export_like(folder, tag):
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"tag": tag}))
    (folder / "g.onnx").write_bytes(tag.encode() * 100)


def _tag(out):
    return json.loads((out / "manifest.json").read_text())["tag"]


def _leftovers(parent, name="out"):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


def _crash(tmp_path, die_after, use_exchange):
    out = tmp_path / "out"
    _export_like(out, "old")
    r = subprocess.run(
        [sys.executable, "-c", _CRASH, str(out), str(die_after), "yes" if use_exchange else "no"],
        capture_output=True,
        text=True,
    )
    return out, r


@pytest.mark.parametrize(
    "use_exchange,die_after,expect_out_after_crash",
    [
        (False, 1, None),  # out renamed to .out.old-PID, staging not yet in place: out missing
        (False, 2, "new"),  # staging in place, .out.old-PID not yet deleted
        (False, 3, "new"),  # everything done (control)
        (True, 1, "new"),  # atomic exchange done, staging (now holding the old export) not deleted
        (True, 2, "new"),
    ],
)
def test_crash_at_every_step_is_recovered(tmp_path, use_exchange, die_after, expect_out_after_crash):
    if use_exchange and not _exchange_works(tmp_path):
        pytest.skip("this filesystem cannot swap two paths atomically")
    out, r = _crash(tmp_path, die_after, use_exchange)
    crashed = r.returncode == 70
    assert crashed or r.returncode == 0, r.stderr
    from asap_deploy import folder_swap

    if expect_out_after_crash is None:
        assert crashed and not out.exists() and _leftovers(tmp_path)  # the window issue 10 saw
    else:
        assert _tag(out) == expect_out_after_crash
    folder_swap.recover(out)
    assert _tag(out) in ("old", "new")  # a complete export is back at --out
    if expect_out_after_crash is None:
        assert _tag(out) == "old"  # the previous one, restored
    assert _leftovers(tmp_path) == []


def _exchange_works(tmp_path):
    from asap_deploy import folder_swap

    a, b = tmp_path / "xa", tmp_path / "xb"
    a.mkdir()
    b.mkdir()
    try:
        return folder_swap.exchange(a, b)
    finally:
        a.rmdir()
        b.rmdir()


def test_recover_spares_live_exports_and_removes_dead_ones(tmp_path):
    from asap_deploy import folder_swap

    out = tmp_path / "out"
    _export_like(out, "current")
    live = folder_swap.staging_dir(out)  # ours: this process is alive
    dead_pid = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    dead = tmp_path / f".out.tmp-{dead_pid}-abcd"
    dead.mkdir()
    old = tmp_path / f".out.old-{dead_pid}"
    _export_like(old, "older")
    notes = folder_swap.recover(out)
    assert live.is_dir() and not dead.exists() and not old.exists()
    assert _tag(out) == "current" and any("did not finish" in n for n in notes)


def test_export_after_a_crash_restores_then_replaces(tmp_path, capsys):
    """The state issue 10 found (out missing, previous export in .out.old-PID of a dead
    process): the next export, even one that then fails, brings the previous export back."""
    ckpt = save(tmp_path / "ck")
    out = tmp_path / "out"
    dead_pid = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    _export_like(tmp_path / f".out.old-{dead_pid}", "previous")
    # a failing run (bad width) still recovers first
    assert export_main([str(ckpt), "--width", "100", "--out", str(out), "--no-parity"]) == 2
    assert _tag(out) == "previous" and _leftovers(tmp_path) == []
    assert export_main([str(ckpt), "--width", "96", "--out", str(out), "--no-parity"]) == 0
    assert json.loads((out / "manifest.json").read_text())["width"] == 96
    assert _leftovers(tmp_path) == []


def test_replace_refuses_foreign_folders_under_the_lock(tmp_path):
    from asap_deploy import folder_swap

    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    staging = folder_swap.staging_dir(out)
    from asap_deploy.errors import OutputPathError

    with pytest.raises(OutputPathError, match="--force"):
        folder_swap.replace(staging, out)
    assert (out / "precious.txt").read_text() == "keep me"
    folder_swap.replace(staging, out, force=True)
    assert not (out / "precious.txt").exists() and _leftovers(tmp_path) == []
