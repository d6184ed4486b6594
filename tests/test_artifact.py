"""Artifact directories: atomic writes and checksum verification."""
from __future__ import annotations

import json

import pytest

from psqs.host.artifact import ArtifactError, read_manifest, staged_directory, write_manifest


def _make(path, **fields):
    with staged_directory(path) as tmp:
        (tmp / "weights.bin").write_bytes(b"\x01\x02")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "notes.txt").write_text("hello")
        write_manifest(tmp, "psqs.test", 1, fields)


def test_round_trip_lists_every_file(tmp_path):
    _make(tmp_path / "a", answer=42)
    manifest = read_manifest(tmp_path / "a", "psqs.test", 1)
    assert manifest["answer"] == 42
    assert sorted(manifest["files"]) == ["sub/notes.txt", "weights.bin"]


def test_tampered_missing_and_extra_files_are_refused(tmp_path):
    _make(tmp_path / "a")
    (tmp_path / "a" / "sub" / "notes.txt").write_text("hellO")
    with pytest.raises(ArtifactError, match=r"notes.txt: sha256 .* does not match"):
        read_manifest(tmp_path / "a", "psqs.test", 1)
    _make(tmp_path / "b")
    (tmp_path / "b" / "weights.bin").unlink()
    with pytest.raises(ArtifactError, match="weights.bin: listed in the manifest but missing"):
        read_manifest(tmp_path / "b", "psqs.test", 1)
    _make(tmp_path / "c")
    (tmp_path / "c" / "stray.txt").write_text("?")
    with pytest.raises(ArtifactError, match="files not in the manifest: stray.txt"):
        read_manifest(tmp_path / "c", "psqs.test", 1)


def test_kind_and_version_checks(tmp_path):
    _make(tmp_path / "a")
    with pytest.raises(ArtifactError, match="kind is 'psqs.test', expected 'psqs.model'"):
        read_manifest(tmp_path / "a", "psqs.model", 1)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    manifest["format_version"] = 7
    (tmp_path / "a" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="format_version 7 is newer than this psqs understands"):
        read_manifest(tmp_path / "a", "psqs.test", 1)
    with pytest.raises(ArtifactError, match="manifest.json: missing"):
        read_manifest(tmp_path, "psqs.test", 1)


def test_failure_leaves_nothing_and_existing_output_untouched(tmp_path):
    _make(tmp_path / "a", generation=1)
    with pytest.raises(ArtifactError, match="already exists"):
        _make(tmp_path / "a", generation=2)
    with pytest.raises(RuntimeError):
        with staged_directory(tmp_path / "a", force=True) as tmp:
            (tmp / "partial").write_text("half")
            raise RuntimeError("stage failed")
    assert read_manifest(tmp_path / "a", "psqs.test", 1)["generation"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]   # no temp directories left
    with pytest.raises(RuntimeError):
        with staged_directory(tmp_path / "new"):
            raise RuntimeError("stage failed")
    assert not (tmp_path / "new").exists()


def test_force_replaces(tmp_path):
    _make(tmp_path / "a", generation=1)
    with staged_directory(tmp_path / "a", force=True) as tmp:
        (tmp / "x").write_text("x")
        write_manifest(tmp, "psqs.test", 1, {"generation": 2})
    assert read_manifest(tmp_path / "a", "psqs.test", 1)["generation"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_artifacts_are_ordinary_directories(tmp_path):
    import os

    _make(tmp_path / "a")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o777 & ~umask
