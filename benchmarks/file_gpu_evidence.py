"""File a folder returned by ``bash benchmarks/gpu_evidence.sh`` under benchmarks/results/<gpu>/
and regenerate the README's GPU table from every filed run.

    python benchmarks/file_gpu_evidence.py RETURNED_DIR [--results benchmarks/results] [--readme README.md]

The run's six files are copied as they are; ``evidence.tar.gz`` is unpacked into ``evidence/``.
The README table (between ``<!-- gpu-results:begin -->`` and ``<!-- gpu-results:end -->``) lists,
per filed GPU, model and batch, the whole-generator medians of the three PyTorch legs and the
fused kernel's speed-up over the authors' FP32 eager generator, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tarfile
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
FILES = ("stages.json", "bench.json", "bench.md", "latency.png", "summary.md")
BEGIN, END = "<!-- gpu-results:begin -->", "<!-- gpu-results:end -->"


class FilingError(Exception):
    pass


def slug(gpu: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", gpu.lower()).strip("-")


def _safe_extract(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        for m in tar.getmembers():
            target = (dest / m.name).resolve()
            if not str(target).startswith(str(dest.resolve())) or not (m.isfile() or m.isdir()):
                raise FilingError(f"{archive}: refusing member {m.name!r} (outside the folder or not a file)")
        tar.extractall(dest)


def file_run(returned: Path, results: Path, allow_dry_run: bool = False) -> Path:
    stages = returned / "stages.json"
    if not stages.is_file():
        raise FilingError(f"{returned} has no stages.json: is it the folder gpu_evidence.sh wrote?")
    env = json.loads(stages.read_text())["environment"]
    if env.get("dry_run") and not allow_dry_run:
        raise FilingError(f"{returned} is a dry run (no GPU): nothing to file")
    dest = results / slug(env.get("gpu") or "dry-run")
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if (returned / name).is_file():
            shutil.copy2(returned / name, dest / name)
    if (returned / "evidence.tar.gz").is_file():
        shutil.rmtree(dest / "evidence", ignore_errors=True)
        (dest / "evidence").mkdir()
        _safe_extract(returned / "evidence.tar.gz", dest / "evidence")
    return dest


def _median(r: Optional[Dict]) -> str:
    return f"{r['compute']['median']:.2f}" if r and "compute" in r else "-"


def table(results: Path) -> str:
    rows: List[str] = []
    for bench in sorted(results.glob("*/bench.json")):
        data = json.loads(bench.read_text())
        gpu = data["environment"].get("gpu")
        if not gpu or data["environment"].get("note", "").startswith("rehearsal"):
            continue
        res = data["results"]
        keys = sorted({(r["model"], r.get("batch", 1)) for r in res}, key=lambda k: (k[0], k[1]))
        for model, batch in keys:
            pick = {r["backend"]: r for r in res if r["model"] == model and r.get("batch", 1) == batch}
            fused = pick.get("torch-fused-fp16+graph") or pick.get("torch-fused-fp16")
            speed = (
                f"{fused['speedup_vs_fp32_eager']:.1f}x"
                if fused and "speedup_vs_fp32_eager" in fused
                else "-"
            )
            rows.append(
                f"| {gpu} | {model} | {batch} | {_median(pick.get('torch-eager-fp32'))} | "
                f"{_median(pick.get('torch-eager-fp16-cl+graph') or pick.get('torch-eager-fp16-cl'))} | "
                f"{_median(fused)} | {speed} | [{bench.parent.name}]({bench.parent.relative_to(ROOT)}) |"
            )
    if not rows:
        return (
            "No GPU run has been filed yet. On a lent GPU: `bash benchmarks/gpu_evidence.sh`, then "
            "here: `python benchmarks/file_gpu_evidence.py DIR`.\n"
        )
    head = (
        "| GPU | model | batch | FP32 eager ms | FP16 channels-last ms | FP16 G + fused kernel ms "
        "| fused vs FP32 eager | files |\n|---|---|---|---|---|---|---|---|\n"
    )
    return (
        "Whole generator, median GPU compute time (CUDA events), CUDA graphs for the FP16 legs; the "
        "authors' FP32 eager generator timed in the same run:\n\n" + head + "\n".join(rows) + "\n"
    )


def update_readme(readme: Path, text: str) -> None:
    sys.path.insert(0, str(ROOT))
    from asap_deploy.fileio import replace_between_markers

    try:
        replace_between_markers(readme, BEGIN, END, text)
    except ValueError as exc:
        raise FilingError(str(exc)) from None


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("returned", type=Path, nargs="?", help="the folder gpu_evidence.sh wrote ($OUT)")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md")
    p.add_argument("--allow-dry-run", action="store_true", help="file a rehearsal too (tests)")
    args = p.parse_args(argv)
    try:
        if args.returned:
            print(f"filed {file_run(args.returned, args.results, args.allow_dry_run)}")
        update_readme(args.readme, table(args.results))
        print(f"updated the GPU table in {args.readme}")
    except (FilingError, OSError, KeyError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
