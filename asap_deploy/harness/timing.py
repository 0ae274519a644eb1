"""trtexec-style latency measurement of one runner.

Per iteration: H2D (upload), GPU compute (CUDA events around compute(), or a CUDA-graph replay),
D2H (download), end-to-end host latency, and enqueue time (host time to issue compute()).
On CPU runners the same phases are timed with the host clock. Warm-up runs for a duration first;
then at least ``iterations`` runs and at least ``duration_s`` seconds, like trtexec.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Dict, List

import numpy as np

from ..runners.base import Runner

PERCENTILES = (90, 95, 99)


@dataclass
class TimingOptions:
    warmup_ms: float = 200.0
    iterations: int = 10
    duration_s: float = 3.0
    cuda_graph: bool = False
    spin_wait: bool = True
    batch: int = 1


def summarize(samples_ms: List[float]) -> Dict[str, float]:
    a = np.asarray(samples_ms, dtype=np.float64)
    out = {"min": a.min(), "mean": a.mean(), "median": float(np.median(a)), "max": a.max()}
    out.update({f"p{p}": float(np.percentile(a, p)) for p in PERCENTILES})
    return {k: float(v) for k, v in out.items()}


class _CudaClock:
    def __init__(self, runner: Runner, spin_wait: bool) -> None:
        import torch

        self.torch = torch
        self.stream = runner.cuda_stream() or torch.cuda.current_stream()
        self.blocking = not spin_wait

    def event(self):
        e = self.torch.cuda.Event(enable_timing=True, blocking=self.blocking)
        e.record(self.stream)
        return e


def time_runner(runner: Runner, feeds: Dict[str, np.ndarray], opts: TimingOptions) -> Dict:
    compute = runner.compute
    cuda = runner.device == "cuda"
    graph_used = False
    if cuda and opts.cuda_graph and runner.graph_capturable:
        import torch

        runner.infer(feeds)  # one uncaptured run: lazy setup happens outside the capture
        graph = torch.cuda.CUDAGraph()
        stream = runner.cuda_stream()
        with torch.cuda.graph(graph, stream=stream):
            runner.compute()
        graph_used = True
        if stream is None:
            compute = graph.replay
        else:  # replay on the runner's stream so that its events bracket the replay

            def compute(graph=graph, stream=stream):
                with torch.cuda.stream(stream):
                    graph.replay()

    t_end = time.perf_counter() + opts.warmup_ms / 1e3
    warm = 0
    while time.perf_counter() < t_end or warm < 1:
        runner.upload(feeds)
        compute()
        runner.synchronize()
        runner.download()
        warm += 1

    clock = _CudaClock(runner, opts.spin_wait) if cuda else None
    rec: Dict[str, List[float]] = {k: [] for k in ("h2d", "compute", "d2h", "latency", "enqueue")}
    start = time.perf_counter()
    n = 0
    while n < opts.iterations or time.perf_counter() - start < opts.duration_s:
        t0 = time.perf_counter()
        if cuda:
            e0 = clock.event()
            runner.upload(feeds)
            e1 = clock.event()
            q0 = time.perf_counter()
            compute()
            q1 = time.perf_counter()
            e2 = clock.event()
            e2.synchronize()
            t2 = time.perf_counter()
            runner.download()
            t3 = time.perf_counter()
            rec["h2d"].append(e0.elapsed_time(e1))
            rec["compute"].append(e1.elapsed_time(e2))
        else:
            runner.upload(feeds)
            t1 = q0 = time.perf_counter()
            compute()
            runner.synchronize()
            q1 = t2 = time.perf_counter()
            runner.download()
            t3 = time.perf_counter()
            rec["h2d"].append((t1 - t0) * 1e3)
            rec["compute"].append((t2 - t1) * 1e3)
        rec["enqueue"].append((q1 - q0) * 1e3)
        rec["d2h"].append((t3 - t2) * 1e3)
        rec["latency"].append((t3 - t0) * 1e3)
        n += 1
    wall = time.perf_counter() - start
    return {
        "runner": runner.describe(),
        "iterations": n,
        "warmup_iterations": warm,
        "host_walltime_s": wall,
        "throughput_qps": n / wall,
        "throughput_images_per_s": n * opts.batch / wall,
        "cuda_graph": graph_used,
        "timer": "cuda events" if cuda else "host clock",
        "options": asdict(opts),
        **{k: summarize(v) for k, v in rec.items()},
    }
