"""Export folders (``manifest.json`` + ONNX files + engines), verified before anything uses them.

The manifest's schema and each file's size and SHA-256: a truncated, edited or swapped ONNX file
or engine is refused with its name and the command that recreates it (re-export, or rebuild for
an engine), instead of being benchmarked as if it were the model. ``artifacts.ExportFolder`` is
the view every consumer (build, bench, parity, translate, ``asap_deploy.load``, serving) opens an
export through; ``verify_export(folder)`` is that view, verified. Hashes are cached while a file
is unchanged (``hash_cache``), so a multi-gigabyte export is read once, not on every command.
Light on imports (no torch, no onnx).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Set, TypeGuard, Union

from .config import GeneratorConfig
from .errors import AsapDeployError, ExportIntegrityError, InputPathError
from .hash_cache import cached_sha256, sha256_file

if TYPE_CHECKING:
    from .artifacts import ExportFolder

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
INPUT_MODES = ("one-hot", "labels", "rgb")
_REQUIRED = ("manifest_version", "config", "height", "width", "input_mode", "files", "source")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ENGINE_KEYS = ("onnx", "graph", "precision", "tensorrt_module")

__all__ = [
    "MANIFEST",
    "MANIFEST_VERSION",
    "sha256_file",
    "cached_sha256",
    "read_manifest",
    "reexport_command",
    "rebuild_command",
    "verify_file",
    "verify_engine",
    "verify_source",
    "verify_export",
    "export_of",
]


def reexport_command(folder: Path, manifest: Optional[Dict[str, Any]] = None) -> str:
    """The export command that recreates ``folder``, as far as its manifest tells."""
    base = "python -m asap_deploy.export"
    if not isinstance(manifest, dict):
        return f"{base} CHECKPOINT --out {folder}"
    source = manifest.get("source")
    src: Dict[str, Any] = source if isinstance(source, dict) else {}
    what = f"--demo {src['demo']}" if "demo" in src else str(src.get("checkpoint", "CHECKPOINT"))
    parts = [base, what, "--out", str(folder)]
    if isinstance(manifest.get("height"), int) and isinstance(manifest.get("width"), int):
        parts += ["--height", str(manifest["height"]), "--width", str(manifest["width"])]
    if manifest.get("input_mode") in ("one-hot", "labels"):
        parts += ["--input", manifest["input_mode"]]
    listed = manifest.get("files")
    files: List[Any] = listed if isinstance(listed, list) else []
    precs = sorted(
        {str(f["precision"]) for f in files if isinstance(f, dict) and f.get("precision") in ("fp32", "fp16")}
    )
    if precs:
        parts += ["--precision", *precs]
    return " ".join(parts)


def read_manifest(folder: Union[str, Path]) -> Dict[str, Any]:
    """The parsed, schema-checked manifest of ``folder`` (file hashes not checked)."""
    folder = Path(folder)
    if not folder.exists():
        raise InputPathError(
            f"export folder not found: {folder} (create one with python -m asap_deploy.export)"
        )
    if not folder.is_dir():
        raise InputPathError(
            f"{folder} is a file, not an export folder (pass the folder that holds manifest.json)"
        )
    path = folder / MANIFEST
    again = f"re-export it: {reexport_command(folder)}"
    if not path.is_file():
        raise InputPathError(
            f"{folder} has no {MANIFEST}, so it is not an asap_deploy export folder: {again}"
        )
    try:
        text = path.read_bytes().decode("utf-8")
        man = json.loads(text)
    except UnicodeDecodeError:
        raise ExportIntegrityError(f"{path} is not text (damaged or not a manifest): {again}") from None
    except json.JSONDecodeError as exc:
        raise ExportIntegrityError(
            f"{path} is not valid JSON ({exc.msg}: line {exc.lineno}, "
            f"column {exc.colno}): the folder is damaged; {again}"
        ) from None
    except OSError as exc:
        raise InputPathError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not isinstance(man, dict):
        raise ExportIntegrityError(
            f"{path} holds a JSON {type(man).__name__}, not an asap_deploy manifest: {again}"
        )
    missing = [k for k in _REQUIRED if k not in man]
    if missing:
        raise ExportIntegrityError(
            f"{path} is not an asap_deploy manifest (no {', '.join(repr(k) for k in missing)}): {again}"
        )
    again = f"re-export it: {reexport_command(folder, man)}"
    if type(man["manifest_version"]) is not int or man["manifest_version"] != MANIFEST_VERSION:
        raise ExportIntegrityError(
            f"{path} has manifest_version {man['manifest_version']!r}; this asap_deploy reads "
            f"version {MANIFEST_VERSION}: {again}"
        )
    _check_files_list(path, man["files"], again)
    _check_engines_list(path, man.get("engines", []), {f["file"] for f in man["files"]}, again)
    if man["input_mode"] not in INPUT_MODES:
        raise ExportIntegrityError(
            f"{path}: input_mode is {man['input_mode']!r}, not one of {', '.join(INPUT_MODES)}: {again}"
        )
    for key in ("height", "width"):
        if type(man[key]) is not int or man[key] < 1:
            raise ExportIntegrityError(f"{path}: {key} is {man[key]!r}, not a positive integer: {again}")
    if not isinstance(man["source"], dict):
        raise ExportIntegrityError(f"{path}: 'source' is not an object: {again}")
    return man


def _plain_name(name: Any) -> TypeGuard[str]:
    return (
        isinstance(name, str)
        and bool(name)
        and Path(name).name == name
        and not name.startswith(".")
        and name != MANIFEST
    )


def _check_hash_and_size(path: Path, name: str, f: Dict[str, Any], again: str) -> None:
    if not isinstance(f.get("sha256"), str) or not _HEX64.match(f["sha256"]):
        raise ExportIntegrityError(f"{path}: {name} has no valid sha256: {again}")
    if type(f.get("bytes")) is not int or f["bytes"] < 0:
        raise ExportIntegrityError(f"{path}: {name} has no valid byte count: {again}")


def _check_files_list(path: Path, files: Any, again: str) -> None:
    if not isinstance(files, list) or not files:
        raise ExportIntegrityError(f"{path}: 'files' is not a non-empty list: {again}")
    seen = set()
    for i, f in enumerate(files):
        name = f.get("file") if isinstance(f, dict) else None
        if not _plain_name(name):
            raise ExportIntegrityError(f"{path}: files[{i}] has no plain file name ({name!r}): {again}")
        if name in seen:
            raise ExportIntegrityError(f"{path} lists {name} twice: {again}")
        seen.add(name)
        _check_hash_and_size(path, name, f, again)
        for key in ("graph", "precision"):
            if not isinstance(f.get(key), str):
                raise ExportIntegrityError(f"{path}: {name} has no {key!r}: {again}")


def _check_engines_list(path: Path, engines: Any, graphs: Set[str], again: str) -> None:
    """The ``engines`` index that ``build`` (and the export) add to: optional, but well formed."""
    if not isinstance(engines, list):
        raise ExportIntegrityError(f"{path}: 'engines' is not a list: {again}")
    seen = set()
    for i, e in enumerate(engines):
        name = e.get("file") if isinstance(e, dict) else None
        if not _plain_name(name) or name in graphs:
            raise ExportIntegrityError(
                f"{path}: engines[{i}] has no plain engine file name ({name!r}): {again}"
            )
        if name in seen:
            raise ExportIntegrityError(f"{path} lists engine {name} twice: {again}")
        seen.add(name)
        _check_hash_and_size(path, f"engine {name}", e, again)
        for key in _ENGINE_KEYS:
            if not isinstance(e.get(key), str):
                raise ExportIntegrityError(f"{path}: engine {name} has no {key!r}: {again}")


def _config(path: Path, man: Dict[str, Any], again: str) -> GeneratorConfig:
    if not isinstance(man["config"], dict):
        raise ExportIntegrityError(f"{path}: 'config' is not an object: {again}")
    try:
        cfg = GeneratorConfig.from_dict(man["config"])
        cfg.check_resolution(man["height"], man["width"])
    except AsapDeployError as exc:
        raise ExportIntegrityError(
            f"{path}: the recorded model does not make sense ({exc}): {again}"
        ) from None
    return cfg


def config_of(folder: Path, man: Dict[str, Any]) -> GeneratorConfig:
    """The generator configuration a (schema-checked) manifest records."""
    return _config(Path(folder) / MANIFEST, man, f"re-export it: {reexport_command(folder, man)}")


def verify_file(folder: Path, entry: Dict[str, Any], again: str, what: str = "") -> None:
    """Size and SHA-256 of one listed file; the error names it and how to recreate it."""
    p = Path(folder) / entry["file"]
    name = f"{what}{entry['file']}"
    if not p.is_file():
        state = "is a folder" if p.is_dir() else "is missing"
        raise ExportIntegrityError(f"{folder}: {name} {state} but manifest.json lists it: {again}")
    size = p.stat().st_size
    if size != entry["bytes"]:
        cut = " (truncated?)" if size < entry["bytes"] else ""
        raise ExportIntegrityError(
            f"{folder}: {name} has {size} bytes, manifest.json says {entry['bytes']}{cut}: the "
            f"file changed or was damaged after it was written; {again}"
        )
    digest = _sha256(p)
    if digest != entry["sha256"]:
        raise ExportIntegrityError(
            f"{folder}: {name} does not match manifest.json (SHA-256 differs): the file changed "
            f"or was damaged after it was written, or comes from another model; {again}"
        )


def rebuild_command(folder: Path, engine: Dict[str, Any]) -> str:
    """The build command that recreates an indexed engine (its module and batch profile)."""
    cmd = f"python -m asap_deploy.build {Path(folder) / engine['onnx']} --module {engine['tensorrt_module']}"
    batch = engine.get("batch")
    if (
        isinstance(batch, list)
        and len(batch) == 3
        and all(type(b) is int for b in batch)
        and batch != [1, 1, 1]
    ):
        cmd += " --batch " + " ".join(map(str, batch))
    return f"{cmd} --out {Path(folder) / engine['file']}"


def verify_engine(folder: Path, engine: Dict[str, Any]) -> None:
    """An engine the manifest indexes is the one that was built (size and SHA-256)."""
    verify_file(folder, engine, f"rebuild it: {rebuild_command(folder, engine)}", "engine ")


def verify_export(
    folder: Union[str, Path], files: Optional[Iterable[str]] = None, check_source: bool = False
) -> ExportFolder:
    """``artifacts.ExportFolder(folder).verify(files, source=check_source)``: the export, read
    and verified. ``files``: only these listed files (graphs or engines) are hashed (default: all
    graphs, and the indexed engines that are present). ``check_source``: also check that the
    checkpoint the manifest names still has the recorded SHA-256 (for consumers that reload it as
    the reference model)."""
    from .artifacts import ExportFolder

    return ExportFolder(folder).verify(files, source=check_source)


def _sha256(path: Path) -> str:
    """The file's SHA-256 (cached); an unreadable file is the user's to fix, one line."""
    try:
        return cached_sha256(path)
    except OSError as exc:
        raise InputPathError(f"cannot read {path}: {exc.strerror or exc}") from None


def verify_source(folder: Path, man: Dict[str, Any], again: str) -> None:
    src = man["source"]
    if "checkpoint" not in src:
        return
    ck = Path(str(src["checkpoint"]))
    if not ck.is_file():
        raise InputPathError(
            f"{folder} was exported from {ck}, which is no longer there (the "
            f"reference model is reloaded from it): restore it, or {again}"
        )
    digest = _sha256(ck)
    if src.get("sha256") and digest != src["sha256"]:
        raise ExportIntegrityError(
            f"{ck} changed since {folder} was exported from it (SHA-256 differs): {again}"
        )


def export_of(onnx_path: Union[str, Path]) -> Optional[ExportFolder]:
    """Verify ``onnx_path`` against the manifest beside it, if there is one that lists it.

    A standalone ONNX file (no manifest.json beside it, or one that does not list it) is not an
    export's file and returns None: ``build`` also builds models from elsewhere.
    """
    onnx_path = Path(onnx_path)
    folder = onnx_path.parent
    if not (folder / MANIFEST).exists():
        return None
    man = read_manifest(folder)
    names = [f["file"] for f in man["files"]]
    if onnx_path.name not in names:
        return None
    return verify_export(folder, [onnx_path.name])
