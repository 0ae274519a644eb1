"""The one entry wrapper every ``python -m asap_deploy.<command>`` shares.

``main = cli.entry(build_parser, run)`` gives a ``main(argv=None) -> int`` that turns every
user-facing failure into one ``error: ...`` line on stderr and the exit code of
``asap_deploy.errors`` (0 ok, 1 verification failed, 2 usage/input, 3 environment, 4 tool failure
or internal error, 130 interrupted). ``--debug`` (added to every parser) or
``ASAP_DEPLOY_DEBUG=1`` prints the traceback as well.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional, Protocol, Sequence

from .errors import EXIT_ENVIRONMENT, EXIT_INTERRUPTED, EXIT_TOOL, EXIT_USAGE, AsapDeployError, UsageError

DEBUG_ENV = "ASAP_DEPLOY_DEBUG"
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors become one ``error:`` line (exit 2) instead of usage + error;
    descriptions are printed as written (the commands' module docstrings carry lists)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def add_export_argument(p: argparse.ArgumentParser) -> None:
    """The positional EXPORT of the commands that run a model, as ``asap_deploy.load`` takes it."""
    p.add_argument(
        "export",
        type=Path,
        metavar="EXPORT",
        help="export folder (python -m asap_deploy.export), or an engine or ONNX file in one",
    )


def debug_requested(argv: Optional[Sequence[str]] = None) -> bool:
    if os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no"):
        return True
    return "--debug" in (sys.argv[1:] if argv is None else list(argv))


def one_line(text: object) -> str:
    """The first non-empty line of ``text`` (libraries' messages can span pages)."""
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return ""


def describe(exc: BaseException) -> tuple[int, str]:
    """(exit code, message without the ``error:`` prefix) for any exception."""
    if isinstance(exc, AsapDeployError):
        return exc.exit_code, str(exc)
    if isinstance(exc, OSError):
        what = f"{exc.strerror or one_line(str(exc))}"
        where = f": {exc.filename}" if exc.filename else ""
        code = EXIT_ENVIRONMENT if exc.errno in _NO_SPACE else EXIT_USAGE
        return code, f"{what}{where}"
    if isinstance(exc, MemoryError):
        return (
            EXIT_ENVIRONMENT,
            "out of memory (try a smaller batch or resolution, or a machine with more memory)",
        )
    name = type(exc).__name__
    return EXIT_TOOL, (
        f"internal error ({name}: {one_line(str(exc)) or 'no message'}); rerun with "
        f"--debug or {DEBUG_ENV}=1 for the traceback and please report it"
    )


def report(exc: BaseException, debug: bool = False) -> int:
    """Print ``exc`` as the command's last words and return its exit code."""
    code, message = describe(exc)
    if debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    lines = [l for l in message.splitlines() if l.strip()] or [type(exc).__name__]
    # the first line is the error; only a tool's own output (compiler errors) may follow,
    # indented so scripts can still take the first line
    print(f"error: {lines[0].strip()}", file=sys.stderr)
    for extra in lines[1:]:
        print(f"  {extra}", file=sys.stderr)
    sys.stderr.flush()
    return code


def run_guarded(body: Callable[[], int], debug: bool = False) -> int:
    """Run ``body`` and map whatever it raises to one line and an exit code."""
    try:
        return int(body() or 0)
    except SystemExit as exc:  # argparse --help / --version, or an explicit exit
        if isinstance(exc.code, str):
            print(exc.code if exc.code.startswith("error:") else f"error: {exc.code}", file=sys.stderr)
            return EXIT_USAGE
        return int(exc.code or 0)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print("error: interrupted; nothing half-written was left behind", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BaseException as exc:  # noqa: BLE001 - this is the one place that reports everything
        return report(exc, debug)


class Main(Protocol):
    """A command's ``main``: ``argv`` defaults to ``sys.argv[1:]``; returns the exit code."""

    def __call__(self, argv: Optional[Sequence[str]] = None) -> int: ...


def entry(
    build_parser: Callable[[], argparse.ArgumentParser], run: Callable[[argparse.Namespace], int]
) -> Main:
    """``main(argv=None)`` for a command: parse (usage errors exit 2), run, report."""

    def main(argv: Optional[Sequence[str]] = None) -> int:
        debug = debug_requested(argv)

        def body() -> int:
            parser = build_parser()
            if not any("--debug" in a.option_strings for a in parser._actions):
                parser.add_argument(
                    "--debug",
                    action="store_true",
                    help=f"print the traceback of an error (or set {DEBUG_ENV}=1)",
                )
            args = parser.parse_args(argv)
            return run(args)

        return run_guarded(body, debug)

    main.__doc__ = f"Entry point: parse ``argv`` and run {getattr(run, '__name__', 'the command')}."
    return main
