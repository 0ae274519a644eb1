"""One naming rule for engine files, shared by ``python -m asap_deploy.build``, the export's engine
and every runner that looks for an engine: an engine built by hand is the one the harness and the
applications use.

``<graph>.<module>.plan`` for the default batch profile (static batch 1),
``<graph>.<module>.b<N>.plan`` for a static batch N and ``<graph>.<module>.b<min>-<opt>-<max>.plan``
for a dynamic one, beside the ONNX file ``<graph>.onnx``; ``<module>`` is ``tensorrt`` or
``tensorrt_rtx`` (an engine loads only in the TensorRT that built it). The sidecar is
``<engine>.json``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple, Optional, Sequence, Tuple

ENGINE_SUFFIX = ".plan"
MODULES = ("tensorrt", "tensorrt_rtx")
_NAME = re.compile(
    r"^(?P<graph>.+)\.(?P<module>tensorrt|tensorrt_rtx)"
    r"(?:\.b(?P<b>\d+)(?:-(?P<opt>\d+)-(?P<max>\d+))?)?\.plan$"
)


class EngineName(NamedTuple):
    graph: str  # ONNX file stem, e.g. "asapnet_plugin_fp16"
    module: str  # "tensorrt" | "tensorrt_rtx"
    batch: Tuple[int, int, int]  # min, opt, max


def _batch_tag(batch: Sequence[int]) -> str:
    lo, mid, hi = batch
    if (lo, mid, hi) == (1, 1, 1):
        return ""
    if lo == mid == hi:
        return f".b{lo}"
    return f".b{lo}-{mid}-{hi}"


def engine_filename(graph: str, module: str, batch: Sequence[int] = (1, 1, 1)) -> str:
    if module not in MODULES:
        raise ValueError(f"module must be one of {MODULES}, got {module!r}")
    return f"{graph}.{module}{_batch_tag(tuple(batch))}{ENGINE_SUFFIX}"


def engine_path(onnx_path: Path, module: str, batch: Sequence[int] = (1, 1, 1)) -> Path:
    """Where the engine of ``onnx_path`` for ``module`` and ``batch`` lives."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(engine_filename(onnx_path.stem, module, batch))


def parse_engine_filename(name: str) -> Optional[EngineName]:
    """The parts of a file name that follows the rule, or None."""
    m = _NAME.match(Path(name).name)
    if not m:
        return None
    if m.group("b") is None:
        batch = (1, 1, 1)
    elif m.group("opt") is None:
        batch = (int(m.group("b")),) * 3
    else:
        batch = (int(m.group("b")), int(m.group("opt")), int(m.group("max")))
    return EngineName(m.group("graph"), m.group("module"), batch)  # type: ignore[arg-type]
