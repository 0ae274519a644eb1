"""``python -m asap_deploy.serve``: the Ray Serve application on a small model.

Two Ray start-ups for the whole file (each takes 15-40 s on a 2-core machine): the command itself,
started on 127.0.0.1 in a child process (HTTP, 400s, where it binds, what it leaves on disk, the
stop by SIGTERM to its PID), and the deployment in this process through a handle. Outputs are
compared byte for byte with ``asap_deploy.load(EXPORT, backend="onnxruntime")``.
"""

import concurrent.futures
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import export_for_test, small_config

import asap_deploy
from asap_deploy.demo import demo_generator
from asap_deploy.errors import InputError
from asap_deploy.image_io import png_bytes
from asap_deploy.serve import main as serve_main

ROOT = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH = 512, 64
LABEL_NC = 5
READY_TIMEOUT_S = 300  # Ray's start-up: 15-40 s here, more while other jobs load the machine

needs_serve = pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("ray", "python_multipart")),
    reason='needs Ray Serve: pip install -e ".[serve]"',
)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    """Small Cityscapes-like model (instance edges: requests carry two images), FP32 graphs."""
    root = tmp_path_factory.mktemp("serve-export")
    ckpt = root / "net_G.pth"
    with torch.no_grad():
        torch.save(OrderedDict(demo_generator(small_config(), seed=3).state_dict()), ckpt)
        export_for_test(ckpt, root / "export", width=WIDTH)
    return root / "export"


@pytest.fixture(scope="module")
def reference(export_dir):
    with asap_deploy.load(export_dir, backend="onnxruntime") as gen:
        yield gen


def sample(i: int):
    """Label map (ids 0..4 and 255) and instance map #i."""
    rng = np.random.default_rng(100 + i)
    label = rng.integers(0, LABEL_NC, (HEIGHT, WIDTH)).astype(np.uint8)
    label[rng.random((HEIGHT, WIDTH)) < 0.05] = 255
    inst = rng.integers(0, 4, (HEIGHT // 8, WIDTH // 8)).repeat(8, 0).repeat(8, 1)
    return label, (inst + 24000 * (i % 2)).astype(np.uint16)  # I;16 PNGs, as Cityscapes ships


def multipart(parts):
    from urllib3 import encode_multipart_formdata

    body, ctype = encode_multipart_formdata(
        {name: (f"{name}.png", data, "image/png") for name, data in parts.items()}
    )
    return body, ctype


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# -- without Ray --------------------------------------------------------------------------------
def test_missing_ray_is_one_line(export_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert serve_main([str(export_dir)]) == 3
    line = one_error_line(capsys.readouterr().err)
    assert "Ray Serve" in line and 'pip install -e ".[serve]"' in line


@pytest.mark.parametrize(
    "argv, code, match",
    [
        (["--replicas", "0"], 2, "--replicas must be at least 1"),
        (["--port", "70000"], 2, "--port must be 1..65535"),
        (["--max-batch", "0"], 2, "--max-batch must be at least 1"),
        (["--batch-wait-ms", "-1"], 2, "--batch-wait-ms must be 0..10000"),
        (["--num-gpus", "1.5"], 2, "whole GPUs"),
        (["--backend", "tensorrt", "--num-gpus", "0"], 2, "runs on a GPU"),
        (["--backend", "tensorrt"], 2, "has no tensorrt engine"),
        (["--host", "203.0.113.7"], 2, "not an address of this machine"),
    ],
)
def test_bad_flags_fail_before_ray_starts(export_dir, capsys, argv, code, match):
    t0 = time.monotonic()
    assert serve_main([str(export_dir), *argv]) == code
    assert match in one_error_line(capsys.readouterr().err)
    assert time.monotonic() - t0 < 10  # no Ray start-up


def test_missing_export_and_busy_port(export_dir, tmp_path, capsys):
    assert serve_main([str(tmp_path / "nope")]) == 2
    assert "not found" in one_error_line(capsys.readouterr().err)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert serve_main([str(export_dir), "--port", str(port)]) == 3
    assert f"port {port} on 127.0.0.1 is in use" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "argv, resources, match",
    [
        (["--replicas", "3"], {"CPU": 2.0}, "3 replica(s) x 1 CPU need 3 CPUs"),
        (["--num-gpus", "1"], {"CPU": 2.0}, "need a GPU and Ray sees none"),
        (["--replicas", "2"], {"CPU": 2.0, "GPU": 1.0}, "--num-gpus 0.5"),
    ],
)
def test_more_than_ray_sees_is_refused(argv, resources, match):
    from asap_deploy.errors import EnvironmentProblem
    from asap_deploy.serve import _gpus_per_replica, build_parser

    args = build_parser().parse_args(["x", *argv])
    with pytest.raises(EnvironmentProblem, match=re.escape(match)):
        _gpus_per_replica(args, resources)


def test_resources_default_to_what_ray_sees():
    from asap_deploy.serve import _gpus_per_replica, build_parser

    assert _gpus_per_replica(build_parser().parse_args(["x"]), {"CPU": 2.0}) == 0
    args = build_parser().parse_args(["x", "--replicas", "2", "--num-gpus", "0.5"])
    assert _gpus_per_replica(args, {"CPU": 2.0, "GPU": 1.0}) == 0.5
    assert _gpus_per_replica(build_parser().parse_args(["x"]), {"CPU": 2.0, "GPU": 1.0}) == 1


@needs_serve
def test_request_decoding():
    """The HTTP codec alone: what is accepted, and the status and line of what is not."""
    from asap_deploy.serving.http_codec import ModelInput, RequestError, decode_inputs, split_request

    model = ModelInput(HEIGHT, WIDTH, rgb=False, needs_instance=True)
    label, inst = sample(0)
    body, ctype = multipart({"label": png_bytes(label), "instance": png_bytes(inst)})
    got_label, got_inst = decode_inputs(split_request(ctype, body, model), model)
    assert (got_label == label).all() and (got_inst == inst).all()

    def refused(ctype, body, model=model):
        with pytest.raises(InputError) as err:  # RequestError, or image_io's InputError: 400
            decode_inputs(split_request(ctype, body, model), model)
        assert "\n" not in str(err.value)
        return getattr(err.value, "status", 400), str(err.value)

    assert refused(ctype, body[:-20])[1].startswith("malformed multipart/form-data body")
    assert refused("multipart/form-data", body)[1].startswith("multipart/form-data without a")
    assert "not an image" in refused("image/png", b"garbage")[1]
    assert refused("text/plain", b"x")[0] == 415
    assert refused(None, png_bytes(label))[0] == 415
    assert "uses instance edges" in refused("image/png", png_bytes(label))[1]

    def refused_form(parts):
        body, ctype = multipart(parts)
        return refused(ctype, body)

    assert (
        "ids must be stored losslessly"
        in refused_form({"label": _jpeg(label), "instance": png_bytes(inst)})[1]
    )
    assert "unknown form part(s) 'labels'" in refused_form({"labels": png_bytes(label)})[1]
    assert refused("a\nb", b"")[1].startswith("unsupported Content-Type a b:")
    assert "is 4096 x 4096" in refused("image/png", png_bytes(np.zeros((4096, 4096), np.uint8)))[1]
    no_inst = ModelInput(HEIGHT, WIDTH, rgb=False, needs_instance=False)
    assert "drop the 'instance' part" in refused(ctype, body, no_inst)[1]
    assert (
        "not a label map of ids" in refused("image/png", png_bytes(np.zeros((HEIGHT, WIDTH, 3), np.uint8)))[1]
    )
    import pickle

    assert pickle.loads(pickle.dumps(RequestError("x", 415))).status == 415


def _jpeg(arr):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG")
    return buf.getvalue()


# -- the command, in a child process ------------------------------------------------------------
class Server:
    def __init__(self, proc, port, home, tmp, log):
        self.proc, self.port, self.home, self.tmp, self.log = proc, port, home, tmp, log
        self.url = f"http://127.0.0.1:{port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def request(self, path, body=None, ctype=None, method=None):
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if ctype:
            req.add_header("Content-Type", ctype)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()


@pytest.fixture(scope="module")
def server(export_dir):
    """``python -m asap_deploy.serve`` on 127.0.0.1 with 2 replicas, HOME and TMPDIR empty folders
    of the test's (short: Ray's socket paths must fit 107 bytes)."""
    pytest.importorskip("ray.serve", reason='needs Ray Serve: pip install -e ".[serve]"')
    base = Path(tempfile.mkdtemp(prefix="asrv-"))
    home, tmp = base / "home", base / "tmp"
    home.mkdir()
    tmp.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "ORT_"))}
    env.update(HOME=str(home), TMPDIR=str(tmp), XDG_CACHE_HOME=str(home / ".cache"), PYTHONPATH=str(ROOT))
    log = base / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "asap_deploy.serve",
                str(export_dir),
                "--replicas",
                "2",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--max-batch",
                "4",
                "--batch-wait-ms",
                "50",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(base),
        )
    srv = Server(proc, port, home, tmp, log)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            assert proc.poll() is None, f"server exited with {proc.returncode}:\n{srv.output()}"
            if "ready in" in srv.output():  # printed once serve.run has every replica up
                break
            assert time.monotonic() < deadline, f"not ready in {READY_TIMEOUT_S} s:\n{srv.output()}"
            time.sleep(0.5)
        yield srv
    finally:
        if proc.poll() is None:  # a test failed before the stop test: leave nothing running
            from asap_deploy.serving.ray_cluster import descendants, kill

            procs = descendants([proc.pid], include_roots=True)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
            kill(procs)
        shutil.rmtree(base, ignore_errors=True)


def test_healthz_describes_the_model(server):
    status, headers, body = server.request("/healthz")
    assert status == 200 and headers["content-type"] == "application/json"
    info = json.loads(body)
    assert info["status"] == "ok" and info["backend"] == "ort-cpu-fp32"
    assert (info["height"], info["width"], info["input"], info["instance_map"]) == (
        HEIGHT,
        WIDTH,
        "labels",
        True,
    )
    assert info["max_batch"] == 4


def test_http_outputs_are_the_python_api_bytes(server, reference):
    """20 requests, 8 at a time: every answer is png_bytes(load(EXPORT)(label, inst)), and
    concurrent requests were batched."""

    def post(i):
        label, inst = sample(i)
        body, ctype = multipart({"label": png_bytes(label), "instance": png_bytes(inst)})
        return server.request("/v1/translate", body, ctype)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(20)))
    batches = []
    for i, (status, headers, body) in enumerate(answers):
        assert status == 200, body
        assert headers["content-type"] == "image/png"
        label, inst = sample(i)
        assert body == png_bytes(reference(label, instance_map=inst)), f"request {i}"
        batches.append(int(headers["x-batch-size"]))
    assert max(batches) > 1, batches  # @serve.batch formed batches
    assert max(batches) <= 4


def test_bad_requests_get_one_line_4xx(server):
    label, inst = sample(0)
    cases = [  # (status, words of the answer, (body, content type))
        (400, "not an image", multipart({"label": b"\x89PNG garbage", "instance": png_bytes(inst)})),
        (400, "not an image", (b"garbage", "image/png")),
        (400, "malformed multipart", (b"--x\r\nnot a form", "multipart/form-data; boundary=x")),
        (400, "uses instance edges", (png_bytes(label), "image/png")),
        (
            400,
            "but this model runs at 512 x 64",
            multipart({"label": png_bytes(label[:256]), "instance": png_bytes(inst[:256])}),
        ),
        (
            400,
            "class id 9",
            multipart(
                {
                    "label": png_bytes(np.where(label == 3, 9, label).astype(np.uint8)),
                    "instance": png_bytes(inst),
                }
            ),
        ),
        (415, "unsupported Content-Type text/plain", (b"hello", "text/plain")),
    ]
    for status, match, (body, ctype) in cases:
        got, headers, text = server.request("/v1/translate", body, ctype)
        lines = text.decode().splitlines()
        assert got == status and len(lines) == 1 and match in lines[0], (status, match, text)
        assert headers["content-type"].startswith("text/plain")
    assert server.request("/v1/translate")[0] == 405
    assert server.request("/v2/nothing")[0] == 404
    assert server.request("/healthz", b"x", "image/png")[0] == 405
    # the replicas still answer after all that
    body, ctype = multipart({"label": png_bytes(label), "instance": png_bytes(inst)})
    assert server.request("/v1/translate", body, ctype)[0] == 200


def _readme_curl_lines():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Serving with Ray Serve") :]
    return [line.strip() for line in section.split("```")[1].splitlines() if line.strip().startswith("curl ")]


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_readme_curl_lines_work(server, reference, tmp_path):
    """The README's curl lines, with its placeholders filled in, against the server."""
    import shlex

    label, inst = sample(3)
    (tmp_path / "label.png").write_bytes(png_bytes(label))
    (tmp_path / "instance.png").write_bytes(png_bytes(inst))
    lines = _readme_curl_lines()
    assert len(lines) == 3, lines
    answers = []
    for line in lines:
        line = (
            line.replace("HOST", "127.0.0.1")
            .replace("PORT", str(server.port))
            .replace("INSTANCE.png", "instance.png")
            .replace("LABEL.png", "label.png")
            .replace("IMAGE.png", "image.png")
        )
        image = tmp_path / "image.png"
        image.unlink(missing_ok=True)
        out = subprocess.run(shlex.split(line), cwd=tmp_path, capture_output=True, timeout=120)
        assert out.returncode == 0, (line, out.stderr)
        answers.append(image.read_bytes() if image.exists() else out.stdout)
    assert json.loads(answers[0])["status"] == "ok"
    assert answers[1] == png_bytes(reference(label, instance_map=inst))
    # the single-image body is for models without instance maps: this one says what it needs
    assert b"this model uses instance edges" in answers[2]


def _listening(port):
    """(address, port) of every listening TCP socket on ``port`` (IPv4 and IPv6)."""
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            addr, hexport = fields[1].split(":")
            if fields[3] == "0A" and int(hexport, 16) == port:  # 0A = LISTEN
                if width == 8:
                    found.append(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
                else:
                    found.append(addr)
    return found


def test_binds_where_told_with_usage_stats_off(server):
    assert _listening(server.port) == ["127.0.0.1"]
    from asap_deploy.serving.ray_cluster import descendants

    procs = descendants([server.proc.pid])
    names = {}
    for pid, _ in procs:
        try:
            names[pid] = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            pass
    gcs = [pid for pid, name in names.items() if name == "gcs_server"]
    assert len(gcs) == 1, names
    env = dict(
        kv.split("=", 1)
        for kv in Path(f"/proc/{gcs[0]}/environ").read_bytes().decode().split("\0")
        if "=" in kv
    )
    assert env["RAY_USAGE_STATS_ENABLED"] == "0"
    assert env["ORT_DISABLE_TELEMETRY"] == "1"
    assert len(env["RAY_AUTH_TOKEN"]) == 64  # token auth on, token in memory only
    ray_dirs = list(server.tmp.iterdir())
    assert len(ray_dirs) == 1 and ray_dirs[0].name.startswith("asap-serve-"), ray_dirs
    assert list(ray_dirs[0].glob("session_*/sockets"))


def test_sigterm_to_the_pid_stops_everything_and_leaves_nothing(server):
    """Last test of the server: every process it started gone within 30 s, exit 0, and nothing
    written to HOME (no ~/.ray/auth_token, no ~/.cache) or left in TMPDIR."""
    from asap_deploy.serving.ray_cluster import alive, descendants

    procs = descendants([server.proc.pid])
    assert len(procs) >= 6, procs  # gcs, raylet, agents, controller, proxy, 2 replicas
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(30)
    while any(alive(p) for p in procs) and time.monotonic() - t0 < 30:
        time.sleep(0.2)
    took = time.monotonic() - t0
    left = [p for p in procs if alive(p)]
    assert not left and took < 30, (left, took)
    assert server.proc.returncode == 0, server.output()
    assert "stopped (SIGTERM)" in server.output()
    assert list(server.home.rglob("*")) == []
    assert list(server.tmp.iterdir()) == []


# -- the deployment through a handle, in this process -------------------------------------------
@pytest.fixture(scope="module")
def handle(export_dir):
    """The deployment, 2 replicas, no HTTP proxy: what a Ray application composes."""
    pytest.importorskip("ray.serve", reason='needs Ray Serve: pip install -e ".[serve]"')
    from ray import serve

    from asap_deploy.serving.ray_app import translator_app
    from asap_deploy.serving.ray_cluster import private_ray

    with private_ray(Path(tempfile.mkdtemp(prefix="asrh-")) / "ray") as session:
        try:
            serve.start(proxy_location="Disabled")
            yield serve.run(
                translator_app(str(export_dir), replicas=2, max_batch=4, batch_wait_ms=50, num_cpus=0.5),
                name="asapnet",
                route_prefix=None,
            )
        finally:
            serve.shutdown()
    shutil.rmtree(session.ray_dir.parent, ignore_errors=True)


def test_handle_outputs_match_the_python_api(handle, reference):
    """10 PNG calls and 10 array calls, all in flight at once."""
    calls = []
    for i in range(20):
        label, inst = sample(i)
        if i % 2:
            calls.append(handle.translate.remote(png_bytes(label), png_bytes(inst)))
        else:
            calls.append(handle.generate.remote(label, inst))
    for i, call in enumerate(calls):
        label, inst = sample(i)
        want = reference(label, instance_map=inst)
        got = call.result(timeout_s=120)
        if i % 2:
            assert got == png_bytes(want), f"call {i}"
        else:
            assert got.dtype == np.uint8 and (got == want).all(), f"call {i}"


def test_handle_input_errors_are_input_errors(handle):
    label, inst = sample(0)
    with pytest.raises(InputError, match="label map is 256 x 64"):
        handle.generate.remote(label[:256], inst[:256]).result(timeout_s=120)
    with pytest.raises(InputError, match="not an image"):
        handle.translate.remote(b"garbage", png_bytes(inst)).result(timeout_s=120)
    assert handle.describe.remote().result(timeout_s=60)["backend"] == "ort-cpu-fp32"
