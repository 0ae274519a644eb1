"""Every backend behind one interface (``Runner``), created by name from a registry."""

from __future__ import annotations

from .base import InferenceError, Runner, RunnerStateError, RunnerUnavailable
from .registry import Backend, RunContext, get, names, register

BACKENDS = tuple(names())

__all__ = [
    "BACKENDS",
    "Backend",
    "InferenceError",
    "RunContext",
    "Runner",
    "RunnerStateError",
    "RunnerUnavailable",
    "get",
    "names",
    "register",
]
