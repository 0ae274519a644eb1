"""A regular (non-editable) install carries the presets and finds them from any folder."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_carries_the_presets_and_finds_them_anywhere(tmp_path):
    try:
        import setuptools  # noqa: F401
        import wheel  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"building a wheel needs setuptools and wheel: {exc}")
    src = tmp_path / "src"  # setuptools builds in the source tree: use a copy
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "build", "*.egg-info", "__pycache__", ".pytest_cache", "benchmarks"
        ),
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    (whl,) = (tmp_path / "dist").glob("asap_deploy-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    presets = sorted(n for n in names if n.startswith("asap_deploy/presets/") and n.endswith(".json"))
    assert [Path(n).stem for n in presets] == [
        "cityscapes-1024x2048",
        "cityscapes-256x512",
        "cityscapes-512x1024",
        "facades-1024",
        "facades-512",
    ]
    site = tmp_path / "site"
    zipfile.ZipFile(whl).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import asap_deploy.presets as p, asap_deploy.locations as l; "
        f"assert p.PRESET_DIR.parent.parent == __import__('pathlib').Path({str(site)!r}); "
        "assert p.load_preset('facades-512').height == 512; "
        "assert l.source_tree() is None and 'asap_deploy' in str(l.engines_dir())"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(site), "HOME": str(tmp_path), "PATH": "/usr/bin"},
    )
    assert r.returncode == 0, r.stderr


def test_build_products_are_found_from_any_folder(tmp_path):
    code = (
        "from asap_deploy.fused_mlp import DEFAULT_DIR; import asap_deploy.presets as p; "
        "print(DEFAULT_DIR); print(p.load_preset('cityscapes-256x512').width)"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lib_dir, width = r.stdout.split()
    assert Path(lib_dir) == ROOT / "build" / "engines" and width == "512"
