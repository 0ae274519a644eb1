"""Export folders (``manifest.json`` + ONNX files), verified before anything uses them.

``verify_export(folder)`` is the one call every consumer (build, bench, parity, translate,
serving) makes: it reads the manifest, checks that it is an asap_deploy manifest this version
understands, and checks the size and SHA-256 of each listed file, so that a truncated, edited or
swapped ONNX file is refused with its name and the command that re-exports it, instead of being
benchmarked as if it were the model. Light on imports (no torch, no onnx).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Union

from .config import GeneratorConfig
from .errors import AsapDeployError, ExportIntegrityError, InputPathError

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
_REQUIRED = ("manifest_version", "config", "height", "width", "input_mode", "files", "source")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 22


def sha256_file(path: Union[str, Path]) -> str:
    """SHA-256 of a file, read in 4 MiB chunks (exports reach gigabytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class ExportFolder:
    path: Path
    manifest: Dict[str, Any]
    config: GeneratorConfig

    @property
    def height(self) -> int:
        return int(self.manifest["height"])

    @property
    def width(self) -> int:
        return int(self.manifest["width"])

    @property
    def files(self) -> Dict[str, Dict[str, Any]]:
        return {f["file"]: f for f in self.manifest["files"]}

    def file(self, name: str) -> Path:
        if name not in self.files:
            raise InputPathError(f"{self.path} has no {name} (it lists "
                                 f"{', '.join(sorted(self.files))}); re-export with the "
                                 f"precision you need: {reexport_command(self.path, self.manifest)}")
        return self.path / name


def reexport_command(folder: Path, manifest: Optional[Dict[str, Any]] = None) -> str:
    """The export command that recreates ``folder``, as far as its manifest tells."""
    base = "python -m asap_deploy.export"
    if not isinstance(manifest, dict):
        return f"{base} CHECKPOINT --out {folder}"
    src = manifest.get("source") if isinstance(manifest.get("source"), dict) else {}
    what = (f"--demo {src['demo']}" if "demo" in src else
            str(src.get("checkpoint", "CHECKPOINT")))
    parts = [base, what, "--out", str(folder)]
    if isinstance(manifest.get("height"), int) and isinstance(manifest.get("width"), int):
        parts += ["--height", str(manifest["height"]), "--width", str(manifest["width"])]
    if manifest.get("input_mode") in ("one-hot", "labels"):
        parts += ["--input", manifest["input_mode"]]
    files = manifest.get("files") if isinstance(manifest.get("files"), list) else []
    precs = sorted({f.get("precision") for f in files if isinstance(f, dict)
                    and f.get("precision") in ("fp32", "fp16")})
    if precs:
        parts += ["--precision", *precs]
    return " ".join(parts)


def read_manifest(folder: Union[str, Path]) -> Dict[str, Any]:
    """The parsed, schema-checked manifest of ``folder`` (file hashes not checked)."""
    folder = Path(folder)
    if not folder.exists():
        raise InputPathError(f"export folder not found: {folder} (create one with python -m "
                             f"asap_deploy.export)")
    if not folder.is_dir():
        raise InputPathError(f"{folder} is a file, not an export folder (pass the folder that "
                             f"holds manifest.json)")
    path = folder / MANIFEST
    again = f"re-export it: {reexport_command(folder)}"
    if not path.is_file():
        raise InputPathError(f"{folder} has no {MANIFEST}, so it is not an asap_deploy export "
                             f"folder: {again}")
    try:
        text = path.read_bytes().decode("utf-8")
        man = json.loads(text)
    except UnicodeDecodeError:
        raise ExportIntegrityError(f"{path} is not text (damaged or not a manifest): {again}") \
            from None
    except json.JSONDecodeError as exc:
        raise ExportIntegrityError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, "
                                   f"column {exc.colno}): the folder is damaged; {again}") from None
    except OSError as exc:
        raise InputPathError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not isinstance(man, dict):
        raise ExportIntegrityError(f"{path} holds a JSON {type(man).__name__}, not an asap_deploy "
                                   f"manifest: {again}")
    missing = [k for k in _REQUIRED if k not in man]
    if missing:
        raise ExportIntegrityError(f"{path} is not an asap_deploy manifest (no "
                                   f"{', '.join(repr(k) for k in missing)}): {again}")
    again = f"re-export it: {reexport_command(folder, man)}"
    if type(man["manifest_version"]) is not int or man["manifest_version"] != MANIFEST_VERSION:
        raise ExportIntegrityError(
            f"{path} has manifest_version {man['manifest_version']!r}; this asap_deploy reads "
            f"version {MANIFEST_VERSION}: {again}")
    _check_files_list(path, man["files"], again)
    for key in ("height", "width"):
        if type(man[key]) is not int or man[key] < 1:
            raise ExportIntegrityError(f"{path}: {key} is {man[key]!r}, not a positive integer: "
                                       f"{again}")
    if not isinstance(man["source"], dict):
        raise ExportIntegrityError(f"{path}: 'source' is not an object: {again}")
    return man


def _check_files_list(path: Path, files: Any, again: str) -> None:
    if not isinstance(files, list) or not files:
        raise ExportIntegrityError(f"{path}: 'files' is not a non-empty list: {again}")
    seen = set()
    for i, f in enumerate(files):
        name = f.get("file") if isinstance(f, dict) else None
        if not isinstance(name, str) or not name or Path(name).name != name \
                or name.startswith(".") or name == MANIFEST:
            raise ExportIntegrityError(f"{path}: files[{i}] has no plain file name "
                                       f"({name!r}): {again}")
        if name in seen:
            raise ExportIntegrityError(f"{path} lists {name} twice: {again}")
        seen.add(name)
        if not isinstance(f.get("sha256"), str) or not _HEX64.match(f["sha256"]):
            raise ExportIntegrityError(f"{path}: {name} has no valid sha256: {again}")
        if type(f.get("bytes")) is not int or f["bytes"] < 0:
            raise ExportIntegrityError(f"{path}: {name} has no valid byte count: {again}")


def _config(path: Path, man: Dict[str, Any], again: str) -> GeneratorConfig:
    if not isinstance(man["config"], dict):
        raise ExportIntegrityError(f"{path}: 'config' is not an object: {again}")
    try:
        cfg = GeneratorConfig.from_dict(man["config"])
        cfg.check_resolution(man["height"], man["width"])
    except AsapDeployError as exc:
        raise ExportIntegrityError(f"{path}: the recorded model does not make sense ({exc}): "
                                   f"{again}") from None
    return cfg


def verify_file(folder: Path, entry: Dict[str, Any], again: str) -> None:
    """Size and SHA-256 of one listed file; the error names it and how to recreate it."""
    p = Path(folder) / entry["file"]
    name = entry["file"]
    if not p.is_file():
        what = "is a folder" if p.is_dir() else "is missing"
        raise ExportIntegrityError(f"{folder}: {name} {what} but manifest.json lists it: "
                                   f"{again}")
    size = p.stat().st_size
    if size != entry["bytes"]:
        cut = " (truncated?)" if size < entry["bytes"] else ""
        raise ExportIntegrityError(
            f"{folder}: {name} has {size} bytes, manifest.json says {entry['bytes']}{cut}: the "
            f"file changed or was damaged after export; {again}")
    if sha256_file(p) != entry["sha256"]:
        raise ExportIntegrityError(
            f"{folder}: {name} does not match manifest.json (SHA-256 differs): the file changed "
            f"or was damaged after export, or comes from another model; {again}")


def verify_export(folder: Union[str, Path], files: Optional[Iterable[str]] = None,
                  check_source: bool = False) -> ExportFolder:
    """Read and verify ``folder``; the one call to make before using an export.

    ``files``: only these listed files are hashed (default: all). ``check_source``: also check
    that the checkpoint the manifest names still has the recorded SHA-256 (for consumers that
    reload it as the reference model).
    """
    folder = Path(folder)
    man = read_manifest(folder)
    path = folder / MANIFEST
    again = f"re-export it: {reexport_command(folder, man)}"
    cfg = _config(path, man, again)
    listed = {f["file"]: f for f in man["files"]}
    wanted: List[str] = list(listed) if files is None else list(files)
    for name in wanted:
        if name not in listed:
            raise InputPathError(f"{folder}: manifest.json does not list {name} (it lists "
                                 f"{', '.join(sorted(listed))}): {again}")
        verify_file(folder, listed[name], again)
    if check_source:
        verify_source(folder, man, again)
    return ExportFolder(folder, man, cfg)


def verify_source(folder: Path, man: Dict[str, Any], again: str) -> None:
    src = man["source"]
    if "checkpoint" not in src:
        return
    ck = Path(str(src["checkpoint"]))
    if not ck.is_file():
        raise InputPathError(f"{folder} was exported from {ck}, which is no longer there (the "
                             f"reference model is reloaded from it): restore it, or {again}")
    if src.get("sha256") and sha256_file(ck) != src["sha256"]:
        raise ExportIntegrityError(f"{ck} changed since {folder} was exported from it (SHA-256 "
                                   f"differs): {again}")


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
