"""Artifact directories: atomic writes and checksum verification."""
from __future__ import annotations

import json
import os
import re

import pytest

from psqs.common.artifact import ArtifactError, is_psqs_kind, read_manifest, staged_directory, write_manifest


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


# --------------------------------------------------------------------------- --force replaces only psqs' own

def _snapshot(root):
    """Every path under ``root`` with whether it is a link and, for a regular file, its bytes."""
    return {p.relative_to(root).as_posix(): (p.is_symlink(), p.read_bytes() if p.is_file() and not p.is_symlink()
                                             else None)
            for p in sorted(root.rglob("*"))}


def _foreign_outputs(root):
    """What a user may have at --out: each is refused by --force, naming (a pattern for) one file."""
    thesis = root / "thesis"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("\\documentclass{book}")
    (thesis / "figures").mkdir()
    (thesis / "figures" / "roc.pdf").write_bytes(b"%PDF")
    other = root / "other_program"
    other.mkdir()
    (other / "manifest.json").write_text(json.dumps({"name": "webapp", "version": "1.2", "files": {}}))
    (other / "index.html").write_text("<html/>")
    plain_file = root / "notes.txt"
    plain_file.write_text("not a directory")
    _make(root / "artifact")
    link = root / "link"
    link.symlink_to(root / "artifact", target_is_directory=True)
    annotated = root / "annotated"
    _make(annotated)
    (annotated / "my_notes.md").write_text("results I wrote into the model directory")
    return [(thesis, "holds thesis.tex, and .* is not a psqs artifact"),
            (other, "holds index.html, and .* is not a psqs artifact"),
            (plain_file, "is a file, not a psqs artifact"),
            (link, "is a symbolic link"),
            (annotated, "holds my_notes.md, which is not part of the psqs artifact")]


def test_force_refuses_what_psqs_did_not_write_and_leaves_it_untouched(tmp_path):
    cases = _foreign_outputs(tmp_path)
    before = _snapshot(tmp_path)
    for out, message in cases:
        with pytest.raises(ArtifactError, match=rf"^{re.escape(str(out))}: {message}.*--force replaces only a psqs "
                                                r"artifact or an empty directory"):
            with staged_directory(out, force=True) as tmp:
                write_manifest(tmp, "psqs.test", 1, {"generation": 2})
    assert _snapshot(tmp_path) == before      # nothing changed, no temporary directory left


def test_force_replaces_an_empty_directory_and_rechecks_before_the_swap(tmp_path):
    (tmp_path / "empty").mkdir()
    with staged_directory(tmp_path / "empty", force=True) as tmp:
        (tmp / "data.bin").write_bytes(b"1")
        write_manifest(tmp, "psqs.test", 1, {"x": 1})
    assert read_manifest(tmp_path / "empty", "psqs.test", 1)["x"] == 1
    (tmp_path / "late").mkdir()
    with pytest.raises(ArtifactError, match="holds draft.txt"):
        with staged_directory(tmp_path / "late", force=True) as tmp:
            (tmp_path / "late" / "draft.txt").write_text("written while the stage ran")
            (tmp / "data.bin").write_bytes(b"1")
            write_manifest(tmp, "psqs.test", 1, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "late"]
    assert (tmp_path / "late" / "draft.txt").read_text() == "written while the stage ran"


def test_write_manifest_refuses_a_kind_outside_the_psqs_namespace(tmp_path):
    with pytest.raises(ValueError, match="not in the 'psqs.' namespace"):
        write_manifest(tmp_path, "webapp", 1, {})
    assert is_psqs_kind("psqs.overlay") and not is_psqs_kind("psqs.") and not is_psqs_kind(None)


def test_a_swap_cut_between_its_two_renames_puts_the_old_artifact_back(tmp_path, monkeypatch):
    """KeyboardInterrupt (or SystemExit from SIGTERM) can land between the rename of the old artifact
    aside and the rename of the new one into place: the old one must come back, nothing else left."""
    from psqs.common import artifact

    _make(tmp_path / "a", generation=1)
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(artifact.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        with staged_directory(tmp_path / "a", force=True) as tmp:
            write_manifest(tmp, "psqs.test", 1, {"generation": 2})
    monkeypatch.undo()
    assert len(calls) == 3                       # aside, (interrupted) into place, back
    assert read_manifest(tmp_path / "a", "psqs.test", 1)["generation"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
