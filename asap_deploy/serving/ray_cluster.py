"""A private, local Ray instance that leaves nothing behind.

Ray 2.60 writes its session (sockets, logs, spilled objects) under ``/tmp/ray`` and, because it
turns token authentication on by default, an auth token into ``~/.ray/auth_token``; it reports
usage statistics unless told not to. :func:`private_ray` starts Ray with

- its session folder in a fresh folder of ours (``ray_dir``), removed on the way out unless the
  caller named it;
- token authentication on (Ray's default; Ray's gRPC servers listen on every interface, and Ray
  has no switch to bind them to loopback; the token is what keeps other machines out), with a random
  token that lives only in the environment of the processes it starts (``RAY_AUTH_TOKEN``):
  no file in ``~/.ray``. A token the caller exported (``RAY_AUTH_TOKEN``/``RAY_AUTH_TOKEN_PATH``)
  is used instead;
- usage statistics off (and ONNX Runtime's telemetry, which writes into ``~/.cache``), no
  dashboard, and ``RAY_ADDRESS`` ignored (always a new instance);
- on the way out, ``ray.shutdown()``, then SIGKILL for any process of that instance still alive.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

from ..errors import ConfigError

#: what Ray appends to its temp folder for its longest socket path, and Linux's limit for one
_SOCKET_SUFFIX = len("/session_2026-01-01_00-00-00_000000_4194304/sockets/plasma_store")
_UNIX_PATH_MAX = 107

ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_USAGE_STATS_PROMPT_ENABLED": "0",
}
#: set unless the caller set them: ONNX Runtime 1.2x's telemetry writes a device id and an event
#: database into ~/.cache/Microsoft/DeveloperTools/.onnxruntime from every replica
DEFAULT_ENV = {
    "ORT_DISABLE_TELEMETRY": "1",
}


_TOKEN: List[str] = []


def _process_token() -> str:
    """One random token per process: Ray caches the token it first read in native code."""
    if not _TOKEN:
        _TOKEN.append(secrets.token_hex(32))
    return _TOKEN[0]


class RaySession:
    """The running instance: its folder and the processes it started."""

    def __init__(self, ray_dir: Path, owns_dir: bool) -> None:
        self.ray_dir, self.owns_dir = ray_dir, owns_dir
        self.root_pids: List[int] = []
        self.roots: Set[Proc] = set()

    def processes(self) -> Set[Proc]:
        """Every live process of this instance: Ray's daemons and all their descendants."""
        return descendants(self.root_pids, include_roots=True)

    def daemons_alive(self) -> bool:
        """True while every process ray.init started (GCS, raylet, agents) runs."""
        return bool(self.roots) and all(alive(p) for p in self.roots)

    def resources(self) -> Dict[str, float]:
        import ray

        return dict(ray.cluster_resources())


def check_ray_dir_length(path: Path) -> None:
    if len(str(path)) + _SOCKET_SUFFIX > _UNIX_PATH_MAX:
        raise ConfigError(
            f"Ray's sockets under {path} would exceed the {_UNIX_PATH_MAX}-byte "
            f"limit of a Unix socket path: use a folder of at most "
            f"{_UNIX_PATH_MAX - _SOCKET_SUFFIX} characters (--ray-dir, or TMPDIR)"
        )


@contextlib.contextmanager
def private_ray(
    ray_dir: Optional[Path] = None, num_cpus: Optional[float] = None, quiet: bool = True
) -> Iterator[RaySession]:
    """``ray.init()`` of a new local instance as the module docstring says; undone on exit."""
    import logging

    import ray

    own_dir = ray_dir is None
    if own_dir:
        ray_dir = Path(tempfile.mkdtemp(prefix="asap-serve-"))
    else:
        ray_dir = Path(ray_dir).resolve()
        ray_dir.mkdir(parents=True, exist_ok=True)
    saved_env = {
        k: os.environ.get(k) for k in (*ENV, *DEFAULT_ENV, "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_ADDRESS")
    }
    saved_term = signal.getsignal(signal.SIGTERM)
    session = RaySession(ray_dir, own_dir)
    try:
        check_ray_dir_length(ray_dir)
        os.environ.update(ENV)
        for key, value in DEFAULT_ENV.items():
            os.environ.setdefault(key, value)
        os.environ.pop("RAY_ADDRESS", None)
        # RAY_AUTH_MODE stays unset: ray.init then turns token mode on for this process and
        # its children (setting it here, after `import ray`, would not reach this process)
        if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
            os.environ["RAY_AUTH_TOKEN"] = _process_token()
        # its warning that token auth is on by default says what is intended here
        logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
        ray.init(
            address="local",
            _temp_dir=str(ray_dir),
            include_dashboard=False,
            num_cpus=num_cpus,
            namespace="asap_deploy",
            log_to_driver=True,
            logging_level=logging.WARNING if quiet else logging.INFO,
        )
        node = ray._private.worker._global_node
        session.root_pids = [
            p.process.pid for procs in node.all_processes.values() for p in procs if p.process is not None
        ]
        session.roots = {p for p in map(_proc, session.root_pids) if p is not None}
        yield session
    finally:
        procs = session.processes() if session.root_pids else set()
        try:
            if ray.is_initialized():
                ray.shutdown()
        finally:
            kill(procs, grace_s=2.0)
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            with contextlib.suppress(ValueError, TypeError):  # not the main thread
                signal.signal(signal.SIGTERM, saved_term)
            if own_dir:
                shutil.rmtree(ray_dir, ignore_errors=True)


# -- processes (Linux /proc; Ray itself runs on Linux and macOS, this server on Linux) ----------
# A process is (pid, start time): a pid that was reused by an unrelated process after ours exited
# is never signalled.
Proc = Tuple[int, int]


def _stat(pid: int) -> Optional[List[str]]:
    """Fields 3.. of /proc/PID/stat (state, ppid, ...), or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    return stat[stat.rfind(")") + 2 :].split()


def _proc(pid: int) -> Optional[Proc]:
    fields = _stat(pid)
    return None if fields is None else (pid, int(fields[19]))


def alive(proc: Proc) -> bool:
    """True while the process runs (a zombie waiting for its parent counts as gone)."""
    fields = _stat(proc[0])
    return fields is not None and fields[0] not in ("Z", "X") and int(fields[19]) == proc[1]


def descendants(roots: List[int], include_roots: bool = False) -> Set[Proc]:
    """The live processes below ``roots`` (and the roots themselves if asked)."""
    kids: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                kids.setdefault(int(fields[1]), []).append(int(entry))
    found: Set[int] = set(roots) if include_roots else set()
    todo = list(roots)
    while todo:
        for child in kids.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    procs = {_proc(pid) for pid in found}
    return {p for p in procs if p is not None and alive(p)}


def kill(procs: Set[Proc], grace_s: float = 0.0) -> None:
    """SIGKILL every process of ``procs`` still alive (after waiting up to ``grace_s``)."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(alive(p) for p in procs):
        time.sleep(0.1)
    for proc in procs:
        if alive(proc):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc[0], signal.SIGKILL)
