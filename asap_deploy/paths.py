"""Checks on input and output paths, run before any work starts.

A command that loads an 83 M-parameter model for a minute and then cannot write its result is a
command that wasted a minute: every CLI calls these first, so a wrong path fails in milliseconds
with one line naming the path and the fix.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union

from .errors import InputPathError, OutputPathError

PathLike = Union[str, "os.PathLike[str]"]


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        if p.is_symlink():  # a dangling link: its target's folder decides, report the link
            return p
        p = p.parent
    return p


def input_file(path: PathLike, what: str = "input file", hint: str = "", allow_empty: bool = False) -> Path:
    """``path`` as a Path if it is a readable, non-empty regular file; else one clear error.

    ``what`` names the file in messages ("checkpoint", "ONNX file"); ``hint`` says how to get a
    good one ("export one with python -m asap_deploy.export").
    """
    p = Path(path)
    fix = f" ({hint})" if hint else ""
    if not p.exists():
        parent = _nearest_existing(p.parent) if str(p.parent) else Path(".")
        if parent.exists() and not parent.is_dir():
            raise InputPathError(f"{what} not found: {p} ({parent} is a file, not a folder)")
        raise InputPathError(f"{what} not found: {p}{fix}")
    if p.is_dir():
        raise InputPathError(f"{p} is a directory, not a file: pass the {what} itself{fix}")
    if not p.is_file():
        raise InputPathError(f"{p} is not a regular file (a device or pipe?): pass a {what}")
    try:
        with open(p, "rb") as f:
            first = f.read(1)
    except PermissionError:
        raise InputPathError(f"cannot read {what} {p}: permission denied") from None
    except OSError as exc:
        raise InputPathError(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    if not first and not allow_empty:
        raise InputPathError(
            f"{what} {p} is empty (0 bytes): it was not written completely; {hint or 'recreate it'}"
        )
    return p


def _probe_writable(folder: Path, target: Path, what: str) -> None:
    """Create and remove a file in ``folder``: the only test that also holds for root, read-only
    mounts and ACLs (``os.access`` answers yes for root on a read-only bind mount)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".asap_deploy-write-test-", dir=folder)
    except PermissionError:
        raise OutputPathError(
            f"cannot write {what} {target}: no permission to create files in "
            f"{folder}; choose another location"
        ) from None
    except OSError as exc:
        raise OutputPathError(
            f"cannot write {what} {target}: {exc.strerror or exc} in {folder}; choose another location"
        ) from None
    os.close(fd)
    os.unlink(probe)


def _check_parents(p: Path, what: str) -> Path:
    """The nearest existing ancestor of ``p``, which must be a folder we can create files in."""
    anc = _nearest_existing(p.parent)
    if anc.is_symlink() and not anc.exists():
        raise OutputPathError(f"cannot write {what} {p}: {anc} is a broken symbolic link")
    if not anc.is_dir():
        raise OutputPathError(
            f"cannot write {what} {p}: {anc} is a file, not a folder; choose another location"
        )
    _probe_writable(anc, p, what)
    return anc


def output_file(path: PathLike, what: str = "output file") -> Path:
    """``path`` if a file can be written there (created or replaced); nothing is created."""
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(f"cannot write {what} {p}: it is an existing folder; pass a file name")
    _check_parents(p, what)
    return p


def output_dir(path: PathLike, what: str = "output folder") -> Path:
    """``path`` if it is (or can become) a folder; nothing is created.

    Exports are written beside ``path`` and renamed into place, so it is the parent that must
    take new files.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputPathError(
            f"cannot write {what} {p}: a file of that name exists; remove it or choose another --out"
        )
    _check_parents(p, what)
    return p
