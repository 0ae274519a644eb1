"""``python -m asap_deploy.serve EXPORT``: an HTTP server for a generator, on Ray Serve.

    python -m asap_deploy.serve build/cityscapes-256x512 --replicas 2 --port 8000
    curl -s http://127.0.0.1:8000/healthz
    curl -s -F label=@street_labelIds.png -F instance=@street_instanceIds.png \\
         http://127.0.0.1:8000/v1/translate -o street.png

Each replica runs ``asap_deploy.load(EXPORT, backend=...)``; requests (HTTP, and handle calls of
``asap_deploy.serving.ray_app``) are batched with ``@serve.batch`` (``--max-batch``,
``--batch-wait-ms``). ``POST /v1/translate`` takes the label map PNG as the body
(``Content-Type: image/png``) or, for models with instance edges, ``multipart/form-data`` with the
parts ``label`` and ``instance``; it answers ``image/png``, the bytes the Python API gives, or a
4xx with a one-line reason. ``GET /healthz`` answers 200 once the replicas are up.

The server starts a private Ray instance (its files in a temporary folder, removed on exit; usage
statistics off; token authentication with a random token kept in memory, so no ~/.ray/auth_token)
and stops it, and every process it started, on SIGTERM or Ctrl-C within 30 s. Needs the ``serve``
extra: ``pip install -e ".[serve]"``.
"""

from __future__ import annotations

import argparse
import errno
import logging
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Optional

from . import cli, errors
from .errors import ConfigError, EnvironmentProblem, MissingDependencyError, UsageError

GPU_BACKENDS = ("tensorrt", "tensorrt_rtx")
#: a stop that takes longer than this is finished with SIGKILL (SIGTERM promises 30 s)
STOP_DEADLINE_S = 25.0
#: of which Serve's own shutdown (replicas finishing the requests they hold) may take
SERVE_STOP_S = 15.0
INSTALL_HINT = 'pip install -e ".[serve]" (Ray Serve and python-multipart)'


def build_parser() -> argparse.ArgumentParser:
    from .application import BACKENDS

    p = cli.ArgumentParser(prog="python -m asap_deploy.serve", description=__doc__)
    cli.add_export_argument(p)
    p.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="what each replica runs (as asap_deploy.load): auto = the export's "
        "TensorRT engine on a GPU, else ONNX Runtime",
    )
    p.add_argument("--replicas", type=int, default=1, metavar="N", help="model replicas")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        metavar="H",
        help="address the HTTP server binds (default 127.0.0.1; 0.0.0.0 for all)",
    )
    p.add_argument("--port", type=int, default=8000, metavar="P", help="HTTP port")
    p.add_argument(
        "--max-batch",
        type=int,
        default=4,
        metavar="N",
        help="requests run together in one inference call (per replica)",
    )
    p.add_argument(
        "--batch-wait-ms",
        type=float,
        default=10.0,
        metavar="T",
        help="how long a replica waits for a batch to fill before it runs it",
    )
    p.add_argument(
        "--num-gpus",
        type=float,
        metavar="G",
        help="GPUs per replica; a fraction shares one (0.5: two replicas per GPU). "
        "Default: 1 where this machine has GPUs, else 0",
    )
    p.add_argument(
        "--num-cpus", type=float, default=1.0, metavar="C", help="CPUs Ray reserves per replica (default 1)"
    )
    p.add_argument(
        "--ray-dir",
        type=Path,
        metavar="DIR",
        help="keep Ray's session (logs) in DIR; default: a temporary folder that is removed on exit",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="Ray's and Serve's INFO logs and an access log line per request",
    )
    return p


# -- checks before Ray starts (milliseconds, where Ray takes 20 s) --------------------------------
def _check_args(args: argparse.Namespace) -> None:
    if args.replicas < 1:
        raise UsageError(f"--replicas must be at least 1, got {args.replicas}")
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be 1..65535, got {args.port}")
    if args.max_batch < 1:
        raise UsageError(f"--max-batch must be at least 1, got {args.max_batch}")
    if not 0 <= args.batch_wait_ms <= 10_000:
        raise UsageError(f"--batch-wait-ms must be 0..10000, got {args.batch_wait_ms:g}")
    if args.num_gpus is not None and args.num_gpus < 0:
        raise UsageError(f"--num-gpus must be 0 or more, got {args.num_gpus:g}")
    if args.num_gpus is not None and args.num_gpus > 1 and args.num_gpus != int(args.num_gpus):
        raise UsageError(f"--num-gpus above 1 must be whole GPUs, got {args.num_gpus:g}")
    if args.num_cpus < 0:
        raise UsageError(f"--num-cpus must be 0 or more, got {args.num_cpus:g}")
    if args.backend in GPU_BACKENDS and args.num_gpus == 0:
        raise UsageError(
            f"--backend {args.backend} runs on a GPU: give each replica one with "
            f"--num-gpus 1 (or 0.5 to put two replicas on one GPU)"
        )


def _check_export(path: Path, backend: str) -> Path:
    from .artifacts import ExportFolder, find_export

    path = path.resolve()  # replicas do not run in this folder
    if path.is_file() and path.name != "manifest.json":
        export = find_export(path)
        if export is None:
            raise ConfigError(
                f"{path.parent} has no manifest.json: serve an export folder "
                f"(python -m asap_deploy.export) or a file inside one"
            )
    else:
        export = ExportFolder(path)
        if backend in GPU_BACKENDS and not any(e["tensorrt_module"] == backend for e in export.engines):
            raise ConfigError(
                f"{export.path} has no {backend} engine: build one with python -m "
                f"asap_deploy.build {export.path}/asapnet_plugin_fp16.onnx, or "
                f"serve --backend onnxruntime"
            )
    return path


def _require_ray() -> None:
    missing = []
    for module in ("ray", "ray.serve", "starlette", "python_multipart"):
        try:
            __import__(module)
        except ImportError as exc:
            missing.append(f"{module} ({cli.one_line(exc)})")
            break
    if missing:
        raise MissingDependencyError(
            f"serving needs Ray Serve, which is not installed here: {INSTALL_HINT}; missing {missing[0]}"
        )


def _check_bind(host: str, port: int) -> None:
    """Fail now, not after Ray's start-up, where the address cannot be bound."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: {exc.strerror or exc}") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise EnvironmentProblem(
                    f"port {port} on {host} is in use: stop what holds it or choose another --port"
                ) from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise UsageError(f"--host {host} is not an address of this machine") from None
            if exc.errno == errno.EACCES:
                raise EnvironmentProblem(
                    f"no permission to bind port {port} (ports below 1024 need root): choose another --port"
                ) from None
            raise


def _gpus_per_replica(args: argparse.Namespace, resources: dict) -> float:
    have_cpus, have_gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    gpus = args.num_gpus
    if gpus is None:
        gpus = 1.0 if have_gpus or args.backend in GPU_BACKENDS else 0.0
    if args.replicas * gpus > have_gpus + 1e-9:
        raise EnvironmentProblem(
            f"{args.replicas} replica(s) x {gpus:g} GPU need {args.replicas * gpus:g} GPU(s), "
            f"Ray sees {have_gpus:g} here: lower --replicas, or share GPUs with --num-gpus "
            f"{max(have_gpus, 1) / args.replicas:g}"
            if have_gpus
            else f"{args.replicas} replica(s) x {gpus:g} GPU need a GPU and Ray sees none here: "
            f"serve with --backend onnxruntime --num-gpus 0 on this machine"
        )
    if args.replicas * args.num_cpus > have_cpus + 1e-9:
        raise EnvironmentProblem(
            f"{args.replicas} replica(s) x {args.num_cpus:g} CPU need "
            f"{args.replicas * args.num_cpus:g} CPUs, this machine has {have_cpus:g}: lower "
            f"--replicas or --num-cpus (e.g. --num-cpus {have_cpus / args.replicas:g})"
        )
    return gpus


# -- stopping -----------------------------------------------------------------------------------
class _Stop(Exception):
    """Raised in the main thread by SIGTERM/SIGINT/SIGHUP: unwinds to the shutdown."""


class _Signals:
    """SIGTERM, SIGINT and SIGHUP stop the server; a watchdog bounds how long stopping takes."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self) -> None:
        self.received: Optional[str] = None
        self.stopping_since: Optional[float] = None

    def install(self) -> None:
        for sig in self.SIGNALS:
            signal.signal(sig, self._handler)

    def _handler(self, signum, frame) -> None:
        if self.received is None:
            self.received = signal.Signals(signum).name
            if self.stopping_since is None:
                raise _Stop(self.received)

    def stopping(self, session) -> None:
        """From here on signals are noted, not raised; past the deadline the rest is killed."""
        self.stopping_since = time.monotonic()
        threading.Thread(
            target=self._watchdog, args=(session,), daemon=True, name="asap-serve-stop-watchdog"
        ).start()

    def _watchdog(self, session) -> None:
        import os
        import shutil

        from .serving.ray_cluster import kill

        time.sleep(STOP_DEADLINE_S)
        print(
            f"warning: Ray did not stop within {STOP_DEADLINE_S:g} s; killing its processes",
            file=sys.stderr,
            flush=True,
        )
        kill(session.processes())
        if session.owns_dir:
            shutil.rmtree(session.ray_dir, ignore_errors=True)
        os._exit(0)


def _deploy_error(exc: BaseException) -> errors.AsapDeployError:
    """The one line a replica's failure comes down to: serve.run's exception only says that the
    deployment failed; Serve's status holds the replica's traceback, whose last line is ours."""
    from ray import serve

    from .runners import base

    text = str(exc)
    try:
        for app in serve.status().applications.values():
            text += "\n" + "\n".join(d.message for d in app.deployments.values())
    except Exception:  # noqa: BLE001 - the status is a nicety; the exception's text remains
        pass
    found = re.findall(r"asap_deploy\.[\w.]*?\b(\w+(?:Error|Problem|Unavailable)): ([^\n]+)", text)
    if found:
        name, message = found[-1]
        cls = getattr(errors, name, None) or getattr(base, name, None)
        if not (isinstance(cls, type) and issubclass(cls, errors.AsapDeployError)):
            cls = ConfigError
        return cls(f"the replicas could not load the model: {message.strip()}")
    last = [line for line in text.splitlines() if line.strip()][-1:] or [type(exc).__name__]
    return errors.ToolFailure(
        f"Ray Serve could not deploy the model: {last[0].strip()} (rerun "
        f"with --verbose --ray-dir DIR and read DIR's logs)"
    )


# -- the command --------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    _check_args(args)
    export = _check_export(args.export, args.backend)
    # everything that needs no Ray first: a bad --host or a busy port is said without the extra
    _check_bind(args.host, args.port)
    _require_ray()
    if args.ray_dir is not None:
        from .paths import output_dir
        from .serving.ray_cluster import check_ray_dir_length

        output_dir(args.ray_dir, "Ray session folder")
        check_ray_dir_length(args.ray_dir.resolve())

    from .serving.ray_cluster import private_ray

    signals = _Signals()
    t0 = time.monotonic()
    try:
        with private_ray(args.ray_dir, quiet=not args.verbose) as session:
            signals.install()  # after ray.init, which installs handlers of its own
            try:
                _serve(args, export, session, t0)
                while True:
                    signal.pause()
            except _Stop:
                pass
            finally:
                signals.stopping(session)
                if signals.received:
                    print(f"stopping ({signals.received}) ...", flush=True)
                _shutdown_serve(session)
    except _Stop:  # a signal between ray.init and install()
        pass
    except SystemExit:
        # Ray's own SIGTERM handlers, active while ray.init runs, exit this way
        if signals.received is None:
            signals.received = "SIGTERM"
    if signals.received:
        took = time.monotonic() - (signals.stopping_since or t0)
        print(f"stopped ({signals.received}) in {took:.1f} s", flush=True)
    return 0


def _serve(args: argparse.Namespace, export: Path, session, t0: float) -> None:
    from ray import serve

    from .serving.ray_app import APP_NAME, HEALTH_ROUTE, TRANSLATE_ROUTE, translator_app

    gpus = _gpus_per_replica(args, session.resources())
    logs = {"log_level": "INFO" if args.verbose else "WARNING", "enable_access_log": bool(args.verbose)}
    if not args.verbose:
        logging.getLogger("ray.serve").setLevel(logging.WARNING)
    serve.start(
        http_options={"host": args.host, "port": args.port, "location": "HeadOnly"}, logging_config=logs
    )
    app = translator_app(
        str(export),
        backend=args.backend,
        replicas=args.replicas,
        max_batch=args.max_batch,
        batch_wait_ms=args.batch_wait_ms,
        num_gpus=gpus,
        num_cpus=args.num_cpus,
    )
    try:
        handle = serve.run(app, name=APP_NAME, route_prefix="/", logging_config=logs)
    except RuntimeError as exc:
        raise _deploy_error(exc) from None
    info = handle.describe.remote().result()
    url = f"http://{args.host if ':' not in args.host else f'[{args.host}]'}:{args.port}"
    inst = " + instance map" if info["instance_map"] else ""
    print(
        f"serving {info['model']} ({info['height']}x{info['width']}, {info['input']}{inst}) "
        f"with {info['backend']} on {args.replicas} replica(s), {gpus:g} GPU each, batches of "
        f"up to {args.max_batch}",
        flush=True,
    )
    print(
        f"ready in {time.monotonic() - t0:.1f} s: POST {url}{TRANSLATE_ROUTE}, GET "
        f"{url}{HEALTH_ROUTE}; stop with Ctrl-C or SIGTERM",
        flush=True,
    )


def _shutdown_serve(session) -> None:
    """Let the replicas finish what they hold, within SERVE_STOP_S; Ray is stopped after this
    whatever happens (a SIGTERM sent to the whole process group, as `timeout` or a terminal's
    job control do, has already stopped Ray's own processes: then there is nothing to wait for)."""
    from ray import serve

    if not session.daemons_alive():
        return
    failure = []

    def stop() -> None:
        try:
            serve.shutdown()
        except Exception as exc:  # noqa: BLE001 - reported below; ray.shutdown still runs
            failure.append(cli.one_line(exc))

    worker = threading.Thread(target=stop, daemon=True, name="asap-serve-shutdown")
    worker.start()
    worker.join(SERVE_STOP_S)
    if worker.is_alive() or failure:
        why = failure[0] if failure else f"not within {SERVE_STOP_S:g} s"
        print(f"warning: Serve did not shut down cleanly ({why}); stopping Ray", file=sys.stderr, flush=True)


main = cli.entry(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
