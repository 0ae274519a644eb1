"""Requests per second and latency of ``python -m asap_deploy.serve`` against replicas and batch.

    .venv/bin/python benchmarks/serve_bench.py --export build/cityscapes-256x512 \\
        --replicas 1 2 --max-batch 1 4 --out benchmarks/results/<machine>

For every (replicas, max batch) pair it starts the server on 127.0.0.1 (a fresh Ray instance),
sends ``--warmup`` requests, then ``--requests`` POST /v1/translate requests from ``--concurrency``
client threads (closed loop: each thread sends its next request when its answer arrived), checks
every answer against the bytes of ``asap_deploy.load(EXPORT, backend="onnxruntime")``, and stops
the server with SIGTERM. Requests per second = answered requests / (last answer - first request).
The clients run on the same machine as the server and share its CPUs. For reference, the same
image through the Python API in this process (no server) is timed first. Writes serve.json and
serve.md into ``--out``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from asap_deploy.fileio import atomic_write  # noqa: E402
from asap_deploy.harness.report import environment  # noqa: E402
from asap_deploy.image_io import png_bytes, read_ids  # noqa: E402

READY_TIMEOUT_S = 300


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--export",
        type=Path,
        default=ROOT / "build" / "cityscapes-256x512",
        help="export folder (default: the set-up's build/cityscapes-256x512)",
    )
    p.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    p.add_argument("--max-batch", type=int, nargs="+", default=[1, 4])
    p.add_argument("--batch-wait-ms", type=float, default=10.0)
    p.add_argument("--requests", type=int, default=48, help="timed requests per configuration")
    p.add_argument("--concurrency", type=int, default=8, help="client threads")
    p.add_argument("--warmup", type=int, default=8, help="untimed requests first")
    p.add_argument("--label", type=Path, default=ROOT / "examples" / "street_labelIds.png")
    p.add_argument("--instance", type=Path, default=ROOT / "examples" / "street_instanceIds.png")
    p.add_argument("--out", type=Path, required=True, help="folder for serve.json and serve.md")
    return p.parse_args(argv)


def inputs_for(gen, label_path: Path, inst_path: Path):
    """(label, instance or None, label PNG, instance PNG or None): the example street where it
    fits the model (its files sent as they are), else a synthetic label map of the model's size."""
    label = read_ids(label_path) if label_path.is_file() else None
    if label is not None and label.shape == (gen.height, gen.width):
        inst = read_ids(inst_path, "instance map")
        label_png, inst_png = label_path.read_bytes(), inst_path.read_bytes()
    else:
        rng = np.random.default_rng(0)
        cells = rng.integers(0, gen.label_nc, (gen.height // 16 + 1, gen.width // 16 + 1))
        label = cells.repeat(16, 0).repeat(16, 1)[: gen.height, : gen.width].astype(np.uint8)
        inst = (np.arange(label.size).reshape(label.shape) // 4096).astype(np.uint16)
        label_png, inst_png = png_bytes(label), png_bytes(inst)
    if not gen.needs_instance_map:
        inst = inst_png = None
    return label, inst, label_png, inst_png


def python_api_ms(gen, label, inst, runs: int = 5) -> float:
    gen(label, instance_map=inst)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        gen(label, instance_map=inst)
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def encode(label_png: bytes, inst_png: Optional[bytes]) -> Tuple[bytes, str]:
    if inst_png is None:
        return label_png, "image/png"
    from urllib3 import encode_multipart_formdata

    return encode_multipart_formdata(
        {"label": ("label.png", label_png, "image/png"), "instance": ("instance.png", inst_png, "image/png")}
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m asap_deploy.serve`` in a child process, ready or failed within the timeout."""

    def __init__(self, export: Path, replicas: int, max_batch: int, wait_ms: float) -> None:
        self.port = free_port()
        self.argv = [
            sys.executable,
            "-m",
            "asap_deploy.serve",
            str(export),
            "--replicas",
            str(replicas),
            "--max-batch",
            str(max_batch),
            "--batch-wait-ms",
            f"{wait_ms:g}",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(ROOT)
        )
        self.lines: List[str] = []
        self.ready_s = self._wait_ready()
        self.url = f"http://127.0.0.1:{self.port}/v1/translate"

    def _wait_ready(self) -> float:
        deadline = time.monotonic() + READY_TIMEOUT_S
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            found = re.search(r"ready in ([\d.]+) s", line)
            if found:
                return float(found.group(1))
            if time.monotonic() > deadline:
                break
        self.stop()
        raise RuntimeError("server did not start:\n" + "\n".join(self.lines[-20:]))

    def stop(self) -> float:
        t = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        return time.monotonic() - t


def post(url: str, body: bytes, ctype: str) -> Tuple[float, float, int, int, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": ctype})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            data, status, batch = r.read(), r.status, int(r.headers.get("X-Batch-Size", 0))
    except urllib.error.HTTPError as e:
        data, status, batch = e.read(), e.code, 0
    return t0, time.perf_counter(), status, batch, data


def measure(server: Server, body: bytes, ctype: str, expected: bytes, args) -> Dict[str, object]:
    with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
        list(pool.map(lambda _: post(server.url, body, ctype), range(args.warmup)))
        results = list(pool.map(lambda _: post(server.url, body, ctype), range(args.requests)))
    ok = [r for r in results if r[2] == 200]
    wrong = sum(r[4] != expected for r in ok)
    lat = np.array([(r[1] - r[0]) * 1000 for r in ok])
    span = max(r[1] for r in ok) - min(r[0] for r in ok)
    batches = [r[3] for r in ok]
    return {
        "requests": len(results),
        "answered": len(ok),
        "errors": len(results) - len(ok),
        "wrong_bytes": int(wrong),
        "requests_per_s": round(len(ok) / span, 3),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
        "mean_ms": round(float(lat.mean()), 1),
        "mean_batch": round(float(np.mean(batches)), 2),
        "max_batch_seen": int(max(batches)),
    }


def markdown(report: Dict[str, object]) -> str:
    env, model = report["environment"], report["model"]
    lines = [
        "# Ray Serve: requests per second and latency",
        "",
        f"Machine: {env['cpu']}, {env['cpu_count']} cores, **no GPU**; Ray {report['ray']}, "
        f"onnxruntime {env['onnxruntime']}, Python {env['python']}. Clients (urllib, "
        f"{report['concurrency']} threads, closed loop) ran on the same machine and shared its "
        f"CPUs.",
        "",
        f"Model: `{model['export']}` ({model['height']}x{model['width']}, "
        f"{model['backend']}), one request = one label map + instance map PNG "
        f"({model['request_bytes']} bytes), answer {model['answer_bytes']} bytes. "
        f"Python API in process, batch 1: {report['python_api_ms']:.1f} ms per image (load "
        f"average {report['python_api_load_avg_1min']:.1f}).",
        "",
        f"Command: `{env['command']}`",
        "",
        "| replicas | max batch | req/s | p50 ms | p99 ms | mean batch | answered | wrong bytes "
        "| ready in s | stop s | load avg before / after |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['replicas']} | {r['max_batch']} | {r['requests_per_s']:.2f} | "
            f"{r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['mean_batch']:.2f} | "
            f"{r['answered']}/{r['requests']} | {r['wrong_bytes']} | {r['ready_s']:.1f} | "
            f"{r['stop_s']:.1f} | {r['load_avg_1min'][0]:.1f} / "
            f"{r['load_avg_1min'][1]:.1f} |"
        )
    lines += [
        "",
        "The load average (1 min, of the whole machine, before and after each row) shows "
        "what else was running: on 2 cores, anything above ~2 means other work slowed the "
        "numbers down.",
        "",
        f"{report['requests']} timed requests per row after {report['warmup']} untimed; "
        f"p99 of {report['requests']} samples is close to the maximum. Every answer was "
        f"compared with the bytes of the Python API (`wrong bytes`).",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    import ray

    import asap_deploy

    load_start = os.getloadavg()[0]
    with asap_deploy.load(args.export, backend="onnxruntime") as gen:
        label, inst, label_png, inst_png = inputs_for(gen, args.label, args.instance)
        expected = png_bytes(gen(label, instance_map=inst))
        api_ms = python_api_ms(gen, label, inst)
        model = {
            "export": os.path.relpath(args.export.resolve(), ROOT),
            "height": gen.height,
            "width": gen.width,
            "backend": gen.backend,
        }
    body, ctype = encode(label_png, inst_png)
    model.update(request_bytes=len(body), answer_bytes=len(expected))
    print(f"{model['export']}: Python API {api_ms:.1f} ms per image", flush=True)
    results = []
    for replicas in args.replicas:
        for max_batch in args.max_batch:
            load_before = os.getloadavg()[0]
            server = Server(args.export, replicas, max_batch, args.batch_wait_ms)
            try:
                row = measure(server, body, ctype, expected, args)
            finally:
                stop_s = server.stop()
            row.update(
                replicas=replicas,
                max_batch=max_batch,
                ready_s=server.ready_s,
                stop_s=round(stop_s, 1),
                load_avg_1min=[round(load_before, 2), round(os.getloadavg()[0], 2)],
            )
            results.append(row)
            print(
                f"replicas {replicas} max batch {max_batch}: {row['requests_per_s']:.2f} req/s, "
                f"p50 {row['p50_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms, mean batch "
                f"{row['mean_batch']:.2f}, {row['answered']}/{row['requests']} answered, "
                f"{row['wrong_bytes']} wrong",
                flush=True,
            )
    report = {
        "environment": environment(".venv/bin/python benchmarks/serve_bench.py"),
        "ray": ray.__version__,
        "model": model,
        "python_api_ms": round(api_ms, 1),
        "python_api_load_avg_1min": round(load_start, 2),
        "concurrency": args.concurrency,
        "requests": args.requests,
        "warmup": args.warmup,
        "batch_wait_ms": args.batch_wait_ms,
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out / "serve.json", (json.dumps(report, indent=1) + "\n").encode())
    atomic_write(args.out / "serve.md", markdown(report).encode())
    print(f"wrote {args.out / 'serve.json'} and serve.md")
    return 0 if all(r["errors"] == 0 and r["wrong_bytes"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
