"""benchmarks/soak.py works: a short run (200 inferences per backend instead of 10,000) writes a
complete report whose figures are consistent. The soak itself is a benchmark, not a test."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_soak_script_short_run(tmp_path):
    out = tmp_path / "soak"
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "soak.py"),
            "--out",
            str(out),
            "--inferences",
            "200",
            "--sample-every",
            "50",
            "--warmup-inferences",
            "100",
            "--thread-inferences",
            "10",
            "--scenes",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads((out / "soak.json").read_text())
    assert [s["backend"] for s in report["soak"]] == ["ort-cpu-fp32", "torch-eager-fp32-cpu"]
    for s in report["soak"]:
        assert s["inferences"] == 200 and s["throughput_per_s"] > 0
        assert [x[0] for x in s["samples"]] == [1, 50, 100, 150, 200]
        rss = s["rss"]
        assert rss["min_mib"] <= rss["start_mib"] <= rss["max_mib"] > 0
        assert rss["slope_after_warmup_kib_per_1k"] is not None
        assert s["max_abs_output_drift"] == 0
    for p in report["two_threads"]:
        assert p["threads"] == 2 and p["inferences_per_thread"] == 10
        assert p["errors"] == [] and p["max_abs_vs_single_thread"] == 0
    assert "one InferenceSession shared" in report["two_threads"][0]["sharing"]
    assert report["environment"]["command"].startswith("python benchmarks/soak.py --out ")
    md = (out / "soak.md").read_text()
    assert "| ort-cpu-fp32 | 200 |" in md and "Two runners on one model" in md


def test_soak_script_errors_are_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "soak.py"),
            "--out",
            str(blocker / "soak"),
            "--inferences",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and r.stderr.strip() == "error: --inferences must be at least 1"
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--out", str(blocker / "soak")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and r.stderr.startswith("error: cannot write soak results folder")
    assert len(r.stderr.strip().splitlines()) == 1
