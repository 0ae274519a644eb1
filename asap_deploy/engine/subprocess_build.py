"""Build an export's engine in a child process and index it in the export's manifest.

``builder.build_engine`` already runs TensorRT in a child process: a parser or plugin that aborts
(TensorRT for RTX does on a plugin node when it cannot find its library) takes down that build,
not the export or harness that asked for it, and the builder's memory is returned when it ends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from .builder import BuildOptions, build_engine


def build_engine_isolated(
    onnx_path: Path,
    engine: Path,
    module: str,
    plugin: str = "auto",
    batch: Sequence[int] = (1, 1, 1),
    kernel_library: Optional[Path] = None,
    progress: bool = False,
) -> None:
    from ..artifacts import find_export

    opts = BuildOptions(
        module=module,
        plugin=plugin,
        batch=tuple(batch),  # type: ignore[arg-type]
        kernel_library=kernel_library,
        progress=progress,
    )
    side = build_engine(Path(onnx_path), Path(engine), opts)
    export = find_export(Path(onnx_path))
    if export is not None:
        export.register_engine(Path(engine), side)
