"""Artifact directories: one per pipeline stage, each described by a ``manifest.json``.

Every stage (training, conversion, overlay build) writes one directory and every later stage,
including the board, reads one. The format lives here, in the board-side package, because the
board must verify packages with nothing but the standard library and numpy; build stages import
it from here so that writer and reader cannot drift apart.

Two guarantees:
- a directory is written into a temporary sibling and renamed into place only when complete, so
  an interrupted or failed stage never leaves a half-written artifact behind;
- the manifest lists the sha256 of every file, and readers refuse a directory whose files do
  not match, naming the file.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

MANIFEST = "manifest.json"


class ArtifactError(Exception):
    """An artifact directory is missing, incomplete, tampered with or of an unknown format."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def staged_directory(out: Path, force: bool = False) -> Iterator[Path]:
    """Yield an empty temporary directory that becomes ``out`` when the block succeeds.

    The temporary directory is a sibling of ``out`` (same file system, so the final rename is
    atomic). On any exception it is deleted and ``out`` is left exactly as it was. An existing
    ``out`` is only replaced with ``force``.
    """
    out = Path(out)
    if out.exists() and not force:
        raise ArtifactError(f"{out}: already exists (pass --force to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)   # mkdtemp makes it private (0700); an artifact is an ordinary directory
    try:
        yield tmp
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_manifest(directory: Path, kind: str, format_version: int, fields: dict) -> dict:
    """Write ``manifest.json`` into ``directory`` with the sha256 of every other file in it."""
    directory = Path(directory)
    files = {
        p.relative_to(directory).as_posix(): sha256_file(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.relative_to(directory).as_posix() != MANIFEST
    }
    manifest = {
        "kind": kind,
        "format_version": format_version,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **fields,
        "files": files,
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return manifest


def peek_kind(directory: Path) -> str | None:
    """The ``kind`` an artifact directory's manifest declares, without verifying anything: for
    callers that accept several kinds and must pick one before reading it properly."""
    directory, manifest = Path(directory), Path(directory) / MANIFEST
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: not a directory")
    try:
        return json.loads(manifest.read_text()).get("kind")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise ArtifactError(f"{manifest}: unreadable manifest ({exc})") from None


def read_manifest(directory: Path, kind: str, max_format_version: int, verify: bool = True) -> dict:
    """Load and check an artifact's manifest.

    Refuses: a missing or unparsable manifest, another artifact kind, a format newer than this
    code understands, and (with ``verify``) any listed file that is missing or whose sha256
    differs, or any file present but not listed.
    """
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: not a directory")
    if not path.is_file():
        raise ArtifactError(f"{path}: missing; {directory} is not a psqs artifact")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path}: manifest is not a JSON object")
    if manifest.get("kind") != kind:
        raise ArtifactError(f"{path}: kind is {manifest.get('kind')!r}, expected {kind!r}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ArtifactError(f"{path}: format_version {version!r} is not a positive integer")
    if version > max_format_version:
        raise ArtifactError(
            f"{path}: format_version {version} is newer than this psqs understands "
            f"({max_format_version}); upgrade psqs")
    if verify:
        verify_files(directory, manifest)
    return manifest


def verify_files(directory: Path, manifest: dict) -> None:
    """Check every file against the manifest's sha256 list (see :func:`read_manifest`)."""
    directory = Path(directory)
    listed = manifest.get("files")
    if not isinstance(listed, dict) or not listed:
        raise ArtifactError(f"{directory / MANIFEST}: no 'files' list")
    for name, expected in listed.items():
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{path}: listed in the manifest but missing")
        actual = sha256_file(path)
        if actual != expected:
            raise ArtifactError(
                f"{path}: sha256 {actual[:16]}… does not match the manifest's {str(expected)[:16]}…; "
                "the file was modified after the artifact was written")
    present = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}
    extra = sorted(present - set(listed) - {MANIFEST})
    if extra:
        raise ArtifactError(f"{directory}: files not in the manifest: {', '.join(extra)}")
