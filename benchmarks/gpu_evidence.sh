#!/usr/bin/env bash
# One rehearsed command on a GPU machine: build, test, sanitize, benchmark, profile (see
# benchmarks/gpu_evidence.py). Output folder: --out DIR, else $OUT when set, else
# build/gpu-evidence. `--dry-run` rehearses every stage on a CPU (CI runs it).
#   bash benchmarks/gpu_evidence.sh [--out DIR] [--dry-run] [--stages build kernels ...]
set -uo pipefail
cd "$(dirname "$0")/.."
# the project's venv where there is one (development machines, CI); the GPU machine's own
# python3 holds PyTorch, and the package runs from the checkout (nothing is installed)
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" benchmarks/gpu_evidence.py "$@"
