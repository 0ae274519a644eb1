"""SHA-256 of export files, remembered while the files stay unchanged.

Exports reach gigabytes and every command verifies the files it uses against the manifest, so a
hash is computed once and reused while the file's identity and time stamps are the same: the key
is (device, inode, size, mtime, ctime) in nanoseconds. Any write to the file changes its mtime
and ctime, a file renamed or copied over it has another inode, and ctime cannot be set back by
``touch`` or ``os.utime`` (setting mtime updates ctime), so an edited, truncated or replaced file
is always hashed again. What the key cannot see is a change made below the file system (a bad
disk sector, a write to the raw block device): run with ``ASAP_DEPLOY_HASH_CACHE=0`` to hash
every file on every run.

Hashes are kept in memory for the process and in ``sha256.json`` under ``$ASAP_DEPLOY_CACHE_DIR``
(default ``$XDG_CACHE_HOME/asap_deploy``, else ``~/.cache/asap_deploy``), so the next command
does not read the gigabytes again. A file changed less than ``RACY_SECONDS`` ago is hashed but
not remembered: on file systems with coarse time stamps a second write within the same tick
would keep the key (git's "racily clean" problem). The store is a cache: unreadable, damaged or
unwritable, it is ignored and everything still works, only slower.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

RACY_SECONDS = 2.0
MAX_ENTRIES = 1024
_CHUNK = 1 << 22
_VERSION = 1
_FILE = "sha256.json"

_Key = Tuple[int, int, int, int, int]
_memory: Dict[str, Tuple[_Key, str]] = {}
_lock = threading.Lock()


def sha256_file(path: Union[str, os.PathLike[str]]) -> str:
    """SHA-256 of a file, read in 4 MiB chunks (no cache)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def persistent() -> bool:
    return os.environ.get("ASAP_DEPLOY_HASH_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")


def cache_dir() -> Path:
    env = os.environ.get("ASAP_DEPLOY_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "asap_deploy"


def _key(st: os.stat_result) -> _Key:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _racy(st: os.stat_result) -> bool:
    return time.time() - max(st.st_mtime_ns, st.st_ctime_ns) / 1e9 < RACY_SECONDS


def _load_store() -> Dict[str, list]:
    try:
        data = json.loads((cache_dir() / _FILE).read_text())
    except (OSError, ValueError):
        return {}
    if (
        not isinstance(data, dict)
        or data.get("version") != _VERSION
        or not isinstance(data.get("entries"), dict)
    ):
        return {}
    return data["entries"]


def _from_store(name: str, key: _Key) -> Optional[str]:
    entry = _load_store().get(name)
    if (
        isinstance(entry, list)
        and len(entry) == 6
        and tuple(entry[:5]) == key
        and isinstance(entry[5], str)
        and len(entry[5]) == 64
    ):
        return entry[5]
    return None


def _save(name: str, key: _Key, digest: str) -> None:
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        entries = _load_store()  # read-merge-write: a concurrent writer loses at most its entry
        entries.pop(name, None)
        entries[name] = [*key, digest]
        if len(entries) > MAX_ENTRIES:  # files that are gone first, then the oldest
            entries = {k: v for k, v in entries.items() if os.path.exists(k)}
            while len(entries) > MAX_ENTRIES:  # dicts keep insertion order
                entries.pop(next(iter(entries)))
        fd, tmp = tempfile.mkstemp(prefix=f".{_FILE}.", dir=folder)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"version": _VERSION, "entries": entries}, f)
            os.replace(tmp, folder / _FILE)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass  # a read-only home or a full disk: the cache is only an optimisation


def cached_sha256(path: Union[str, os.PathLike[str]]) -> str:
    """SHA-256 of ``path``, from the cache when the file is unchanged since it was hashed."""
    real = os.path.realpath(path)
    st = os.stat(real)
    key = _key(st)
    with _lock:
        hit = _memory.get(real)
    if hit is not None and hit[0] == key:
        return hit[1]
    use_store = persistent()
    digest = _from_store(real, key) if use_store else None
    if digest is None:
        digest = sha256_file(real)
        after = os.stat(real)
        if _key(after) != key or _racy(after):  # written while (or just before) we read it
            return digest
        if use_store:
            _save(real, key, digest)
    with _lock:
        _memory[real] = (key, digest)
    return digest


def forget() -> None:
    """Drop the in-memory hashes (tests; the on-disk store is keyed by file identity)."""
    with _lock:
        _memory.clear()
