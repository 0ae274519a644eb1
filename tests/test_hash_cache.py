"""The SHA-256 cache of export files: a file is read once while it is unchanged, and any change
(same size, mtime put back, replaced by a copy) is hashed again."""

import hashlib
import json
import os

import pytest
from conftest import export_for_test

from asap_deploy import hash_cache


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh store, the racy window off (files here are seconds old), and a read counter."""
    monkeypatch.setenv("ASAP_DEPLOY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ASAP_DEPLOY_HASH_CACHE", raising=False)
    monkeypatch.setattr(hash_cache, "RACY_SECONDS", -1.0)
    hash_cache.forget()
    reads = []
    real = hash_cache.sha256_file
    monkeypatch.setattr(hash_cache, "sha256_file", lambda p: reads.append(str(p)) or real(p))
    yield reads
    hash_cache.forget()


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def test_unchanged_file_is_read_once_per_machine(tmp_path, cache):
    f = tmp_path / "model.onnx"
    f.write_bytes(b"weights" * 1000)
    assert hash_cache.cached_sha256(f) == _sha(b"weights" * 1000)
    assert hash_cache.cached_sha256(f) == _sha(b"weights" * 1000)
    assert len(cache) == 1
    hash_cache.forget()  # a new process: the store on disk answers
    assert hash_cache.cached_sha256(f) == _sha(b"weights" * 1000)
    assert len(cache) == 1
    entries = json.loads((tmp_path / "cache" / "sha256.json").read_text())["entries"]
    assert list(entries) == [os.path.realpath(f)]


@pytest.mark.parametrize("change", ["same_size_same_mtime", "replaced_by_copy", "appended"])
def test_any_change_is_hashed_again(tmp_path, cache, change):
    f = tmp_path / "model.onnx"
    f.write_bytes(b"a" * 4096)
    hash_cache.cached_sha256(f)
    st = os.stat(f)
    if change == "same_size_same_mtime":  # an in-place edit that puts the mtime back
        with open(f, "r+b") as h:
            h.write(b"b")
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
        want = b"b" + b"a" * 4095
    elif change == "replaced_by_copy":  # cp -p of another file over it
        other = tmp_path / "other"
        other.write_bytes(b"c" * 4096)
        os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(other, f)
        want = b"c" * 4096
    else:
        with open(f, "ab") as h:
            h.write(b"!")
        want = b"a" * 4096 + b"!"
    hash_cache.forget()
    assert hash_cache.cached_sha256(f) == _sha(want)
    assert len(cache) == 2


def test_racy_files_are_not_remembered(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(hash_cache, "RACY_SECONDS", 3600.0)
    f = tmp_path / "fresh.onnx"
    f.write_bytes(b"x")
    hash_cache.cached_sha256(f)
    hash_cache.cached_sha256(f)
    assert len(cache) == 2 and not (tmp_path / "cache" / "sha256.json").exists()


def test_store_can_be_off_damaged_or_unwritable(tmp_path, cache, monkeypatch):
    f = tmp_path / "m.onnx"
    f.write_bytes(b"m")
    monkeypatch.setenv("ASAP_DEPLOY_HASH_CACHE", "0")
    hash_cache.cached_sha256(f)
    assert not (tmp_path / "cache").exists()
    monkeypatch.delenv("ASAP_DEPLOY_HASH_CACHE")
    hash_cache.forget()
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "sha256.json").write_text("{ not json")
    assert hash_cache.cached_sha256(f) == _sha(b"m")  # a damaged store is ignored, then rewritten
    assert json.loads((tmp_path / "cache" / "sha256.json").read_text())["version"] == 1
    hash_cache.forget()
    monkeypatch.setenv("ASAP_DEPLOY_CACHE_DIR", str(f / "not-a-folder"))
    assert hash_cache.cached_sha256(f) == _sha(b"m")


def test_a_forged_store_entry_does_not_match_a_changed_file(tmp_path, cache):
    f = tmp_path / "m.onnx"
    f.write_bytes(b"good")
    hash_cache.cached_sha256(f)
    with open(f, "wb") as h:
        h.write(b"evil")
    hash_cache.forget()
    assert hash_cache.cached_sha256(f) == _sha(b"evil")


def test_export_verification_reads_each_file_once(tmp_path, cache):
    """What makes verifying a multi-gigabyte export on every command affordable."""
    from error_cases import WIDTH, save

    from asap_deploy.export_folder import verify_export

    out = tmp_path / "exp"
    export_for_test(save(tmp_path / "ck"), out, width=WIDTH)
    n_files = len(json.loads((out / "manifest.json").read_text())["files"])
    cache.clear()
    verify_export(out)
    assert len(cache) == n_files
    hash_cache.forget()
    verify_export(out)  # the next command
    assert len(cache) == n_files


def test_the_store_stays_small(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(hash_cache, "MAX_ENTRIES", 3)
    files = []
    for i in range(5):
        f = tmp_path / f"f{i}"
        f.write_bytes(bytes([i]))
        files.append(f)
        hash_cache.cached_sha256(f)
    files[4].unlink()
    f = tmp_path / "f5"
    f.write_bytes(b"5")
    hash_cache.cached_sha256(f)
    entries = json.loads((tmp_path / "cache" / "sha256.json").read_text())["entries"]
    assert [os.path.basename(k) for k in entries] == ["f2", "f3", "f5"]  # gone, then oldest
