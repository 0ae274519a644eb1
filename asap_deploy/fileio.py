"""Atomic writes that honour the umask.

``tempfile`` creates files 0600 and folders 0700 whatever the umask, so an output renamed into
place would keep those modes; here the final modes are what ``open()``/``mkdir()`` would give.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

_lock = threading.Lock()


def umask() -> int:
    with _lock:  # os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """A fresh folder in ``parent`` with the mode ``mkdir`` would give it."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(tmp, 0o777 & ~umask())
    return tmp


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: readers see the old file
    or the new one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def replace_between_markers(path: Path, begin: str, end: str, text: str) -> None:
    """Replace what lies between the ``begin`` and ``end`` marker lines of a generated section
    (tables in the READMEs that a command keeps current), atomically."""
    path = Path(path)
    body = path.read_text()
    if begin not in body or end not in body:
        raise ValueError(f"{path} has no {begin} ... {end} markers")
    head, rest = body.split(begin, 1)
    _, tail = rest.split(end, 1)
    atomic_write(path, f"{head}{begin}\n{text}{end}{tail}".encode())
