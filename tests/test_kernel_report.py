"""The access report (python -m asap_deploy.kernel_report) on the traced emulation build: the
tensor-core kernel meets its targets at a paper setting, the report sees the NCHW grid's strided
staging, and a variant without the shared-memory skew is seen to conflict."""

import shutil

import pytest

from asap_deploy import emulation, kernel_report
from asap_deploy.native_build import KERNELS

SETTING = "cityscapes-256x512"


def _runs(path="tensor_cores"):
    return {(r.mode, r.layout): r for r in kernel_report.default_runs([SETTING]) if r.path == path}


@pytest.fixture(scope="module")
def trace_lib(tmp_path_factory):
    return emulation.build_emulation(tmp_path_factory.mktemp("trace"), "trace")


def test_tensor_core_targets(trace_lib):
    runs = _runs()
    report = kernel_report.build_report(
        trace_lib, [runs["one_hot", "nhwc"], runs["label_ids", "nhwc"], runs["one_hot", "nchw"]], ptxas=False
    )
    one_hot, ids, nchw = (r["figures"] for r in report["runs"])
    for f in (one_hot, ids):
        assert f["params_load_efficiency"] >= 0.5  # target: >= 50% (the NCHW grid: 6%)
        assert f["label_load_efficiency"] >= 0.99
        assert f["output_store_efficiency"] >= 0.99
        assert f["shared_mean_ways"] <= 2.0  # target: <= 2-way on average
    assert one_hot["shared_max_ways"] <= 2.0
    assert nchw["params_load_efficiency"] < 0.1  # one useful element per 32-byte sector
    assert all("source" in s for r in report["runs"] for s in r["sites"])


def test_conflicts_are_seen(tmp_path):
    """Without the skew every 64-wide FP16 row is 128 bytes: the eight rows of each ldmatrix
    phase share banks. The report must say so."""
    shutil.copytree(KERNELS, tmp_path / "kernels")
    header = tmp_path / "kernels" / "spatial_mlp_layout.h"
    text = header.read_text()
    assert text.count("constexpr int kSkew = 8;") == 1
    header.write_text(text.replace("constexpr int kSkew = 8;", "constexpr int kSkew = 0;"))
    lib = emulation.build_emulation(tmp_path, "trace", kernel=tmp_path / "kernels" / "spatial_mlp_kernel.cu")
    report = kernel_report.build_report(lib, [_runs()["one_hot", "nhwc"]], ptxas=False)
    figures = report["runs"][0]["figures"]
    assert figures["shared_max_ways"] >= 8
    assert figures["shared_mean_ways"] > 2.0
    assert report["worst_shared_sites"], "the worst sites name the kernel lines"
