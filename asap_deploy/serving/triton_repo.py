"""Write a Triton model repository from an export (and an engine), atomically and validated.

Everything is written into a temporary folder beside ``--out``, checked with ``triton_check``, and
only then renamed into place: an error never leaves a half-written or invalid repository, and an
existing folder is replaced only when it is an earlier repository (or with ``force``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from ..hash_cache import sha256_file
from .triton_check import RECORD, CheckReport, check_repository
from .triton_config import ModelSpec, render_config
from .triton_readme import launch_command, render_readme
from .triton_schema import TritonRepoError, load_schema
from .triton_sources import EngineInfo, Export, RepoOptions, open_export, plan_models

REPOSITORY_VERSION = 1


@dataclass
class WrittenRepository:
    path: Path
    models: List[ModelSpec]
    report: CheckReport
    launch: str


def _check_target(out: Path, force: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise TritonRepoError(f"--out {out} exists and is not a folder")
    if any(out.iterdir()) and not (out / RECORD).is_file() and not force:
        raise TritonRepoError(
            f"--out {out} holds files that are not a repository written by "
            f"asap_deploy: choose another folder or pass --force"
        )


def _replace_dir(tmp: Path, out: Path) -> None:
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


def _tritonclient_version() -> str:
    try:
        from importlib.metadata import version

        return version("tritonclient")
    except Exception:
        return "?"


def _record(export: Export, models: List[ModelSpec], info: Optional[EngineInfo]) -> Dict[str, Any]:
    from .. import __version__

    man = export.manifest
    return {
        "asap_repository_version": REPOSITORY_VERSION,
        "asap_deploy": __version__,
        "tritonclient": _tritonclient_version(),
        "export": str(export.path.resolve()),
        "manifest_sha256": sha256_file(export.path / "manifest.json"),
        "height": man.get("height"),
        "width": man.get("width"),
        "input_mode": man.get("input_mode"),
        "config": man.get("config"),
        "engine": None
        if info is None
        else {
            k: info.sidecar.get(k)
            for k in (
                "tensorrt_module",
                "tensorrt_version",
                "gpu",
                "precision",
                "plugin",
                "onnx",
                "onnx_sha256",
            )
        },
        "models": {
            m.name: {
                "platform": m.platform,
                "precision": m.precision,
                "source": m.source,
                "max_batch_size": m.max_batch_size,
                "kind": m.kind,
                "plugin": m.plugin,
                "inputs": [t.to_dict() for t in m.inputs],
                "outputs": [t.to_dict() for t in m.outputs],
            }
            for m in models
        },
    }


def _write_model(root: Path, m: ModelSpec, info: Optional[EngineInfo], repo: Path) -> None:
    version = root / m.name / "1"
    version.mkdir(parents=True)
    shutil.copyfile(m.source, version / m.model_file)
    if m.platform == "tensorrt_plan":
        assert info is not None
        shutil.copyfile(str(info.path) + ".json", version / (m.model_file + ".json"))
        if info.plugin is not None:
            shutil.copyfile(info.plugin, root / m.name / info.plugin.name)
    header = [
        f"written by python -m asap_deploy.triton from {m.source}",
        f"check after editing: python -m asap_deploy.triton --check {repo}",
    ]
    (root / m.name / "config.pbtxt").write_text(render_config(m, header))


def write_repository(
    export_dir: Path,
    out: Path,
    opts: RepoOptions,
    force: bool = False,
    command: str = "python -m asap_deploy.triton",
    log: Callable[[str], None] = lambda s: None,
) -> WrittenRepository:
    load_schema()  # fail before any work if the validator cannot run
    export = open_export(export_dir)
    models, info = plan_models(export, opts)
    out = Path(out).resolve()
    _check_target(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for m in models:
            log(
                f"{m.name}: {m.platform}, {m.precision}, max batch {m.max_batch_size}, "
                f"{m.instances} x {m.kind} <- {m.source}"
            )
            _write_model(tmp, m, info, out)
        record = _record(export, models, info)
        (tmp / RECORD).write_text(json.dumps(record, indent=2) + "\n")
        engine = None
        if info is not None:
            plan = next(m for m in models if m.platform == "tensorrt_plan")
            engine = {
                **{k: info.sidecar.get(k) for k in ("tensorrt_version", "gpu", "precision")},
                "model": plan.name,
                "plugin_library": plan.plugin,
                "notes": plan.notes,
            }
        (tmp / "README.md").write_text(render_readme(out, models, record, command, engine))
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide the repository from a container user
        report = check_repository(tmp)
        if not report.ok:
            raise TritonRepoError(
                "the repository written does not validate (please report this "
                "with the command line): " + "; ".join(report.problems)
            )
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report.repository = out
    return WrittenRepository(out, models, report, launch_command(str(out), models))
