"""Replace an output folder with a freshly written one, safely at every point of a crash.

An export is written into a staging folder beside ``--out`` (``.NAME.tmp-PID-XXXX``) and only
then takes the place of ``--out``:

* Where the kernel can swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``, every
  local filesystem we know of), ``--out`` is never missing: a crash leaves either the old or the
  new export at ``--out`` plus a staging folder of a dead process.
* Elsewhere it takes two renames (``--out`` -> ``.NAME.old-PID``, staging -> ``--out``). A crash
  between them leaves ``--out`` missing and the previous export in ``.NAME.old-PID``.

``recover(out)``, run at the start of every export and again under the lock before the swap,
puts a previous export back where a crash left ``--out`` missing and deletes what dead processes
left behind. Replacements of one folder are serialized by an ``flock`` on the parent folder, so
concurrent exports to the same ``--out`` never interleave their renames; a staging folder of a
process that is still alive is never touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
from pathlib import Path
from typing import Iterator, List, Optional

from .errors import OutputPathError

MANIFEST = "manifest.json"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Exclusive advisory lock on ``folder`` itself (no lock file is left behind); released by
    the kernel when the process dies, so a crash cannot leave it held."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, the renames stay as safe as the OS makes them
        yield
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _names(out: Path):
    name = re.escape(out.name)
    return (re.compile(rf"^\.{name}\.tmp-(\d+)-[^/]+$"), re.compile(rf"^\.{name}\.old-(\d+)$"))


def _leftovers(out: Path):
    tmp_re, old_re = _names(out)
    tmps, olds = [], []
    if not out.parent.is_dir():
        return tmps, olds
    for p in out.parent.iterdir():
        if (m := tmp_re.match(p.name)) and p.is_dir():
            tmps.append((int(m.group(1)), p))
        elif (m := old_re.match(p.name)) and p.is_dir():
            olds.append((int(m.group(1)), p))
    return tmps, olds


def _recover_locked(out: Path) -> List[str]:
    notes: List[str] = []
    tmps, olds = _leftovers(out)
    # an .old folder exists only between the two renames of a replacement, which happen under
    # the lock we hold: whoever left it died there
    olds = [(pid, p) for pid, p in olds if pid == os.getpid() or not _pid_alive(pid)]
    olds.sort(key=lambda t: t[1].stat().st_mtime, reverse=True)
    if not out.exists() and olds:
        _, newest = olds.pop(0)
        newest.rename(out)
        notes.append(
            f"restored the previous export {out} (an earlier export was interrupted while replacing it)"
        )
    for _, p in olds:
        shutil.rmtree(p, ignore_errors=True)
    for pid, p in tmps:
        if not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)
            notes.append(f"removed {p.name}, left by an export that did not finish")
    return notes


def recover(out: Path) -> List[str]:
    """Undo what an interrupted replacement of ``out`` left behind; returns notes for the user."""
    out = Path(out)
    if not out.parent.is_dir():
        return []
    with folder_lock(out.parent):
        return _recover_locked(out)


def check_replaceable(out: Path, force: bool) -> None:
    """Refuse, before any work, to replace something that is not an earlier export."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"--out {out} exists and is not a folder")
    if out.is_dir() and not force and not (out / MANIFEST).exists() and any(out.iterdir()):
        raise OutputPathError(
            f"--out {out} holds files that are not an asap_deploy export; "
            f"choose another folder or pass --force"
        )


def staging_dir(out: Path) -> Path:
    """A new empty folder beside ``out`` to write the export into (named after our PID, so
    ``recover`` can tell a live export's folder from a dead one's)."""
    from .fileio import make_temp_dir

    out = Path(out)
    return make_temp_dir(out.parent, f".{out.name}.tmp-{os.getpid()}-")  # the umask's mode


def fsync_tree(folder: Path) -> None:
    """Flush every file in ``folder`` and the folder itself: the rename that publishes it must
    not reach the disk before its contents do."""
    for p in Path(folder).iterdir():
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(Path(folder))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths; False where the OS or filesystem cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(str(a)), _AT_FDCWD, os.fsencode(str(b)), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def replace(staging: Path, out: Path, force: bool = False, use_exchange: Optional[bool] = None) -> List[str]:
    """Make ``staging`` (complete, on the same filesystem) the new ``out``; returns notes.

    ``use_exchange=False`` forces the two-rename path (tests, or filesystems that lie).
    """
    staging, out = Path(staging), Path(out)
    fsync_tree(staging)
    with folder_lock(out.parent):
        notes = _recover_locked(out)
        check_replaceable(out, force)
        if not out.exists():
            staging.rename(out)
        elif use_exchange is not False and exchange(staging, out):
            shutil.rmtree(staging, ignore_errors=True)  # it now holds the previous export
        else:
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            if old.exists():
                shutil.rmtree(old)
            out.rename(old)
            try:
                staging.rename(out)
            except BaseException:  # put the previous export back before reporting
                old.rename(out)
                raise
            shutil.rmtree(old, ignore_errors=True)
        _fsync_dir(out.parent)
    return notes
