"""Child side of ``builder.build_engine``: ``python -m asap_deploy.engine.build_worker REQUEST``.

Builds one engine and writes ``{"sidecar": ...}`` or ``{"error": ...}`` to the request's result
path. The native stderr (file descriptor 2: what TensorRT's C++ code prints itself, such as the
C++ runtime's last words before an abort) goes to a log file the parent quotes from if this
process dies; Python's ``sys.stderr`` (our progress bars, ``--verbose`` log lines) stays on the
terminal.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional


def _split_stderr(native_log: str) -> None:
    terminal = os.dup(2)
    fd = os.open(native_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stderr = os.fdopen(terminal, "w", buffering=1, errors="replace")


def _write_result(path: str, result: Dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, path)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    req = json.loads(Path(argv[0]).read_text())
    _split_stderr(req["native_log"])
    from ..errors import AsapDeployError
    from .builder import BuildError, BuildFailed, BuildOptions, _build

    try:
        opts = BuildOptions.from_json(req["options"])
        for name in opts.preload:
            try:
                importlib.import_module(name)
            except Exception as exc:
                raise BuildError(
                    f"cannot import build preload module {name!r} ({type(exc).__name__}: {exc})"
                ) from None
        side = _build(Path(req["onnx"]), Path(req["engine"]), opts)  # the parent checked
        result: Dict[str, Any] = {"sidecar": side}
    except AsapDeployError as exc:
        result = {
            "error": {"module": type(exc).__module__, "class": type(exc).__qualname__, "message": str(exc)}
        }
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a library's exception becomes one line upstairs
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        result = {
            "error": {
                "module": BuildFailed.__module__,
                "class": BuildFailed.__qualname__,
                "message": f"the engine build failed ({type(exc).__name__}: {first or 'no message'})",
            }
        }
    _write_result(req["result"], result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
