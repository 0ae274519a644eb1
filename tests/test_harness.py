"""bench and parity on tiny models with the backends a CPU machine has; GPU ones listed as skipped."""

import json
from collections import OrderedDict

import numpy as np
import pytest
import torch
from conftest import export_for_test, small_config

from asap_deploy.bench import main as bench_main
from asap_deploy.demo import demo_generator
from asap_deploy.harness.timing import summarize
from asap_deploy.parity import main as parity_main
from asap_deploy.parity import polygraphy_verdict

STATS = {"min", "mean", "median", "p90", "p95", "p99", "max"}


@pytest.fixture(scope="module")
def export_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("harness")
    dirs = []
    for i, cfg in enumerate([small_config(hr_width=64), small_config(hr_width=64, downsampling=16)]):
        ckpt = root / f"m{i}" / "latest_net_G.pth"
        ckpt.parent.mkdir()
        torch.save(OrderedDict(demo_generator(cfg).state_dict()), ckpt)
        out = root / f"export{i}"
        export_for_test(ckpt, out, width=cfg.downsampling * 2, precision=("fp32", "fp16"))
        dirs.append(str(out))
    return dirs


def test_summarize():
    s = summarize(list(range(1, 101)))
    assert set(s) == STATS
    assert s["min"] == 1 and s["max"] == 100 and s["median"] == 50.5
    assert s["p90"] == pytest.approx(90.1) and s["p99"] == pytest.approx(99.01)


def test_bench_reports_every_backend(export_dirs, tmp_path, capsys):
    out = tmp_path / "bench"
    rc = bench_main(
        [
            "--export",
            *export_dirs,
            "--backends",
            "torch-eager-fp32",
            "ort-cpu-fp32",
            "ort-cpu-fp16",
            "trt-plugin-fp16",
            "ort-cuda-fp16",
            "--iterations",
            "3",
            "--duration",
            "0",
            "--warmup",
            "0",
            "--out",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0, text
    data = json.loads((out / "bench.json").read_text())
    ran = [r for r in data["results"] if not r.get("skipped")]
    skipped = [r for r in data["results"] if r.get("skipped")]
    assert len(ran) + len(skipped) == 2 * 5
    for r in ran:
        assert r["iterations"] >= 3
        for phase in ("h2d", "compute", "d2h", "latency", "enqueue"):
            assert set(r[phase]) == STATS and r[phase]["min"] <= r[phase]["median"] <= r[phase]["max"]
        assert r["throughput_qps"] > 0
    if not torch.cuda.is_available():  # each backend that cannot run says why, per model
        assert {r["backend"] for r in ran} == {"torch-eager-fp32", "ort-cpu-fp32", "ort-cpu-fp16"}
        for r in skipped:
            want = {"trt-plugin-fp16": "needs a CUDA GPU", "ort-cuda-fp16": "CUDAExecutionProvider"}[
                r["backend"]
            ]
            assert want in r["skipped"], r
    assert "skipped:" in text and "ort-cpu-fp32" in text
    assert (out / "bench.md").read_text().count("|") > 20
    assert (out / "latency.png").stat().st_size > 1000
    assert data["environment"]["onnxruntime"]


def test_parity_passes_and_writes_images(export_dirs, tmp_path, capsys):
    out = tmp_path / "parity"
    rc = parity_main(
        [
            "--export",
            export_dirs[0],
            "--backends",
            "torch-eager-fp32",
            "ort-cpu-fp32",
            "ort-cpu-fp16",
            "trt-fp16",
            "--out",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr().out
    data = json.loads((out / "parity.json").read_text())
    ran = {r["backend"]: r for r in data["results"] if not r.get("skipped")}
    assert ran["ort-cpu-fp32"]["max_abs"] <= 1e-4 and ran["ort-cpu-fp32"]["polygraphy_pass"]
    assert ran["ort-cpu-fp16"]["psnr_db"] >= 40
    assert len(list(out.glob("*.png"))) == len(ran)


def test_polygraphy_verdict_can_fail():
    ref = np.zeros((1, 3, 8, 8), np.float32)
    assert polygraphy_verdict(ref, ref + 1e-7, "x", "fp32") is True
    assert polygraphy_verdict(ref, ref + 0.1, "x", "fp16") is False


def test_unknown_backend(export_dirs, capsys):
    assert bench_main(["--export", export_dirs[0], "--backends", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown backend nope; choose from") and err.count("\n") == 1


def test_cached_engine_is_rebuilt_when_the_onnx_changes(tmp_path):
    import hashlib

    from asap_deploy.runners.loaders import stale

    onnx_path, plan = tmp_path / "m.onnx", tmp_path / "m.plan"
    onnx_path.write_bytes(b"model v1")
    assert stale(plan, onnx_path) == "not built yet"
    plan.write_bytes(b"engine")
    assert "unknown origin" in stale(plan, onnx_path)  # no sidecar
    (tmp_path / "m.plan.json").write_text(
        json.dumps({"onnx_sha256": hashlib.sha256(b"model v1").hexdigest(), "plugin": {"kind": "cpp"}})
    )
    assert stale(plan, onnx_path) is None
    assert "wanted without" in stale(plan, onnx_path, plugin="none")
    (tmp_path / "m.plan.json").write_text(
        json.dumps({"onnx_sha256": hashlib.sha256(b"model v1").hexdigest(), "plugin": {"kind": "none"}})
    )
    assert "wanted with" in stale(plan, onnx_path, plugin="lib.so")
    onnx_path.write_bytes(b"model v2")
    assert "another version" in stale(plan, onnx_path)
