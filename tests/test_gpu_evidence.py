"""The GPU evidence tooling without a GPU: the filing command on a returned folder (synthetic,
shaped as gpu_evidence.py writes it) and the README table it regenerates; the orchestrator's
refusals. The full rehearsal (`bash benchmarks/gpu_evidence.sh --dry-run`) runs in .ci/run."""

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import file_gpu_evidence as filing  # noqa: E402


def _returned(tmp_path: Path, gpu="NVIDIA H100 80GB HBM3", dry=False) -> Path:
    out = tmp_path / "returned"
    (out / "evidence").mkdir(parents=True)
    env = {"gpu": gpu, "dry_run": dry, "command": "benchmarks/gpu_evidence.py"}
    (out / "stages.json").write_text(
        json.dumps(
            {
                "environment": env,
                "stages": [{"stage": "build", "status": "ok", "seconds": 30.0, "detail": "x"}],
            }
        )
    )
    res = []
    for backend, ms in (
        ("torch-eager-fp32", 20.0),
        ("torch-eager-fp16-cl+graph", 8.0),
        ("torch-fused-fp16+graph", 4.0),
    ):
        r = {"model": "cityscapes-1024x2048", "batch": 1, "backend": backend, "compute": {"median": ms}}
        if backend != "torch-eager-fp32":
            r["speedup_vs_fp32_eager"] = 20.0 / ms
        res.append(r)
    (out / "bench.json").write_text(json.dumps({"environment": {"gpu": gpu}, "results": res}))
    for name in ("bench.md", "summary.md"):
        (out / name).write_text("x\n")
    (out / "evidence" / "log.txt").write_text("log\n")
    with tarfile.open(out / "evidence.tar.gz", "w:gz") as tar:
        tar.add(out / "evidence" / "log.txt", arcname="logs/log.txt")
    return out


def test_filing_copies_unpacks_and_writes_the_table(tmp_path, monkeypatch):
    monkeypatch.setattr(filing, "ROOT", tmp_path)
    results = tmp_path / "results"
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{filing.BEGIN}\nold\n{filing.END}\ntail\n")
    assert filing.main([str(_returned(tmp_path)), "--results", str(results), "--readme", str(readme)]) == 0
    dest = results / "nvidia-h100-80gb-hbm3"
    assert (dest / "stages.json").is_file() and (dest / "evidence" / "logs" / "log.txt").is_file()
    text = readme.read_text()
    assert "| NVIDIA H100 80GB HBM3 | cityscapes-1024x2048 | 1 | 20.00 | 8.00 | 4.00 | 5.0x |" in text
    assert text.endswith("tail\n") and "old" not in text


def test_dry_runs_are_not_filed(tmp_path, capsys):
    rc = filing.main(
        [
            str(_returned(tmp_path, dry=True)),
            "--results",
            str(tmp_path / "r"),
            "--readme",
            str(tmp_path / "README.md"),
        ]
    )
    assert rc == 2 and "dry run" in capsys.readouterr().err


def test_archive_members_outside_the_folder_are_refused(tmp_path):
    out = _returned(tmp_path)
    evil = tmp_path / "evil.txt"
    evil.write_text("x")
    with tarfile.open(out / "evidence.tar.gz", "w:gz") as tar:
        tar.add(evil, arcname="../../escaped.txt")
    with pytest.raises(filing.FilingError, match="refusing member"):
        filing.file_run(out, tmp_path / "results")


def test_readme_table_is_current():
    """The committed README table is what the filed runs give."""
    readme = (ROOT / "README.md").read_text()
    body = readme.split(filing.BEGIN, 1)[1].split(filing.END, 1)[0]
    assert body.strip() == filing.table(ROOT / "benchmarks" / "results").strip()


def test_real_run_without_a_gpu_says_so(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_evidence.sh"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "--dry-run" in r.stderr
