"""Terminal table, JSON, Markdown and the latency-vs-megapixels plot (the paper's Fig. 1 shape)."""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

from ..fileio import atomic_write


def environment(prog: str) -> Dict[str, object]:
    """Device, driver, CUDA and library versions of this run; ``prog`` is how it was invoked."""
    import numpy
    import onnx
    import onnxruntime
    import torch

    env: Dict[str, object] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_providers": onnxruntime.get_available_providers(),
        "command": " ".join([prog] + [shlex.quote(a) for a in sys.argv[1:]]),
        # timings on a shared machine mean little without it: say how busy the machine was
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(
            gpu=p.name,
            compute_capability=f"{p.major}.{p.minor}",
            gpu_memory_gib=round(p.total_memory / 2**30, 1),
            cuda_runtime=torch.version.cuda,
            driver=_nvidia_smi("driver_version"),
        )
    else:
        env["gpu"] = None
    for mod in ("tensorrt", "tensorrt_rtx_bindings", "polygraphy"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception:
            pass
    return env


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _nvidia_smi(field: str) -> Optional[str]:
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


HEADER = [
    "model",
    "H x W",
    "backend",
    "timer",
    "compute median ms",
    "compute p99 ms",
    "end-to-end median ms",
    "img/s",
    "status",
]


def rows(results: List[Dict]) -> List[List[str]]:
    out = []
    for r in results:
        if r.get("skipped") or r.get("failed"):
            status = "skipped: " + r["skipped"] if r.get("skipped") else "FAILED: " + r["failed"]
            out.append([r["model"], r["resolution"], r["backend"], "", "", "", "", "", status])
            continue
        out.append(
            [
                r["model"],
                r["resolution"],
                r["runner"]["name"],
                r["timer"],
                f"{r['compute']['median']:.3f}",
                f"{r['compute']['p99']:.3f}",
                f"{r['latency']['median']:.3f}",
                f"{r['throughput_images_per_s']:.1f}",
                "ran",
            ]
        )
    return out


def terminal_table(header: List[str], body: List[List[str]]) -> str:
    # every column but the last (the status, which may carry a long reason) is aligned
    width = [max(len(str(x)) for x in col) for col in zip(header, *body)]

    def fmt(row: List[str]) -> str:
        return "  ".join(str(x).ljust(w) for x, w in zip(row[:-1], width)) + "  " + str(row[-1])

    return "\n".join([fmt(header), fmt(["-" * w for w in width])] + [fmt(r) for r in body])


def markdown_table(header: List[str], body: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(x).replace("|", "\\|") for x in r) + " |" for r in body]
    return "\n".join(lines) + "\n"


def write_json(path: Path, payload: Dict) -> None:
    atomic_write(Path(path), (json.dumps(payload, indent=2, default=str) + "\n").encode())


def write_text(path: Path, text: str) -> None:
    atomic_write(Path(path), text.encode())


def save_figure(fig, path: Path) -> None:
    """A matplotlib figure as PNG, written whole or not at all."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write(Path(path), buf.getvalue())


def plot_latency(results: List[Dict], path: Path, title: str) -> Optional[str]:
    """Median compute latency against megapixels, one line per backend; None or why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib)"
    series: Dict[str, List] = {}
    for r in results:
        if not r.get("skipped") and not r.get("failed"):
            series.setdefault(r["runner"]["name"], []).append((r["megapixels"], r["compute"]["median"]))
    if not series:
        return "no backend ran"
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name, pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    ax.set_xlabel("megapixels (H x W / 1e6)")
    ax.set_ylabel("median compute latency (ms)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    try:
        fig.tight_layout()
        save_figure(fig, path)
    finally:
        plt.close(fig)
    return None
