"""Shared helpers of the tests/test_errors_*.py files: small checkpoints and the one-line rule."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional

import torch
from conftest import small_config

from asap_deploy.demo import demo_generator

#: small_config(hr_width=64): 5 labels + instance edge = 6 input channels, S=32, 2 blocks;
#: the default 64x5 MLP, so the tensors pin the architecture down on their own
CFG = small_config(hr_width=64)
WIDTH = "64"


def state_dict() -> OrderedDict[str, torch.Tensor]:
    return OrderedDict(demo_generator(CFG).state_dict())


def save(
    folder: Path, state: Optional[Dict] = None, opt_txt: Optional[str] = None, name: str = "latest_net_G.pth"
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    torch.save(state if state is not None else state_dict(), path)
    if opt_txt is not None:
        (folder / "opt.txt").write_text(opt_txt)
    return path


def opt_txt(**options) -> str:
    """An opt.txt in the authors' format (print_options of base_options.py)."""
    lines = ["----------------- Options ---------------"]
    for k, v in options.items():
        lines.append(f"{k:>25}: {str(v):<30}\t[default: x]")
    lines.append("----------------- End -------------------")
    return "\n".join(lines) + "\n"


def error_lines(err: str) -> List[str]:
    return [l for l in err.splitlines() if l.strip()]


def assert_one_error_line(err: str, *needles: str) -> str:
    """stderr is exactly one ``error: ...`` line containing every needle; returns it."""
    lines = error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("error: "), f"not one error line:\n{err}"
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"
    return lines[0]


def tree(folder: Path) -> List[str]:
    """Everything under ``folder`` (hidden files too), for 'nothing was written' checks."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
