"""Where the package finds things it did not receive on the command line.

Everything here is anchored at the package, never at the working directory, so a command behaves
the same from any folder. In a source checkout (editable install) the build products live in the
checkout's ``build/``; elsewhere ``ASAP_DEPLOY_ENGINES_DIR`` or the user's cache folder is used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

PACKAGE_DIR = Path(__file__).resolve().parent


def source_tree() -> Optional[Path]:
    """The repository this package is imported from (editable install), or None."""
    root = PACKAGE_DIR.parent
    return root if (root / "setup.cfg").is_file() and (root / "engines").is_dir() else None


def engines_dir() -> Path:
    """Default folder of the compiled kernel and plugin libraries (python -m
    asap_deploy.build_plugin writes there unless told otherwise)."""
    env = os.environ.get("ASAP_DEPLOY_ENGINES_DIR")
    if env:
        return Path(env).expanduser().resolve()
    root = source_tree()
    if root is not None:
        return root / "build" / "engines"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "asap_deploy" / "engines"
