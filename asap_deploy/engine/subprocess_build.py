"""Build an engine in a child process (``python -m asap_deploy.build``).

A parser or plugin that aborts (TensorRT for RTX does once a Python plugin creator is
registered) then takes down the build, not the export or harness that asked for it, and the
builder's memory is returned to the system when it ends.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

from .builder import BuildError


def build_engine_isolated(onnx_path: Path, engine: Path, module: str, plugin: str = "auto",
                          batch: Sequence[int] = (1, 1, 1), kernel_library: Optional[Path] = None,
                          progress: bool = False) -> None:
    cmd = [sys.executable, "-m", "asap_deploy.build", str(onnx_path), "--out", str(engine),
           "--module", module, "--plugin", plugin, "--batch", *map(str, batch)]
    if kernel_library:
        cmd += ["--kernel-library", str(kernel_library)]
    if not progress:
        cmd.append("--no-progress")
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if progress else subprocess.PIPE,
                       text=True)
    if r.returncode != 0:
        text = (r.stderr or "") + r.stdout
        errors = [l[len("error: "):] for l in text.splitlines() if l.startswith("error: ")]
        why = errors[-1] if errors else (f"the builder process ended with status {r.returncode}"
                                         + (" (killed by a signal: a crash in TensorRT or the "
                                            "plugin)" if r.returncode < 0 else ""))
        raise BuildError(f"building {Path(engine).name} failed: {why}")
