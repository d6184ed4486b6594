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

``--force`` replaces only what psqs wrote: an artifact (its manifest names a kind in the
``psqs.`` namespace, :func:`is_psqs_kind`, and it holds no file its manifest does not list) or
an empty directory. Anything else (a user's thesis, another program's ``manifest.json``, a file,
a symbolic link) is refused, naming one file psqs did not write, and left untouched. The kinds
are one namespace rather than a list so that the check needs no update when a stage is added
and an artifact of a newer psqs is still recognised as one.
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

from . import interrupts
from .errors import PsqsError

MANIFEST = "manifest.json"
KIND_PREFIX = "psqs."


class ArtifactError(PsqsError):
    """An artifact directory is missing, incomplete, tampered with or of an unknown format."""


def is_psqs_kind(kind) -> bool:
    """Whether a manifest's ``kind`` is one psqs writes (``psqs.model``, ``psqs.hls`` ...)."""
    return isinstance(kind, str) and kind.startswith(KIND_PREFIX) and len(kind) > len(KIND_PREFIX)


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
    atomic). On any exception, and if a signal ends the process (:mod:`psqs.common.interrupts`),
    it is deleted and ``out`` is left exactly as it was. An existing ``out`` is only replaced
    with ``force``, and only if psqs wrote it (:func:`check_replaceable`).
    """
    out = Path(out)
    check_output(out, force)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as exc:      # a parent that is a file, a read-only or virtual file system
        raise ArtifactError(f"{out}: cannot be created ({exc.strerror}: {exc.filename})") from None
    old = tmp.with_suffix(".old")
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)   # mkdtemp makes it private (0700); an artifact is an ordinary directory

    def settle() -> None:
        """Whatever point the swap reached: ``out`` is whole (old or new), no scratch is left."""
        with interrupts.critical():
            if old.exists() and not os.path.lexists(out):
                os.replace(old, out)          # interrupted between the two renames: put it back
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)

    with interrupts.cleanup(settle):
        try:
            yield tmp
            with interrupts.critical():
                if os.path.lexists(out):
                    check_replaceable(out)     # the block ran for minutes: check again
                    os.replace(out, old)
                os.replace(tmp, out)
        finally:
            settle()


def check_output(out: Path, force: bool = False) -> None:
    """Refuse (ArtifactError) an output directory a stage may not write: one that exists, unless
    ``force`` and psqs wrote it. Stages call it before their work starts, as well as on staging."""
    out = Path(out)
    if os.path.lexists(out):
        if not force:
            raise ArtifactError(f"{out}: already exists (pass --force to replace it)")
        check_replaceable(out)


def check_replaceable(out: Path) -> None:
    """Refuse (ArtifactError) to replace ``out`` unless it is an empty directory or a psqs artifact
    holding only the files its manifest lists; the message names ``out`` and one foreign file."""
    out = Path(out)
    rule = "--force replaces only a psqs artifact or an empty directory; choose another output or remove it yourself"
    if out.is_symlink():
        raise ArtifactError(f"{out}: is a symbolic link, not a psqs artifact; {rule}")
    if not out.is_dir():
        raise ArtifactError(f"{out}: is a file, not a psqs artifact; {rule}")
    entries = sorted(os.listdir(out))
    if not entries:
        return
    manifest = _manifest_or_none(out)
    if manifest is None or not is_psqs_kind(manifest.get("kind")) or not isinstance(manifest.get("files"), dict):
        files = [e for e in entries if e != MANIFEST and not (out / e).is_dir()]
        foreign = (files or [e for e in entries if e != MANIFEST] or entries)[0]
        raise ArtifactError(f"{out}: holds {foreign}, and {out} is not a psqs artifact (no manifest.json "
                            f"naming a psqs kind); {rule}")
    listed = set(manifest["files"]) | {MANIFEST}
    for path in sorted(out.rglob("*")):
        name = path.relative_to(out).as_posix()
        if (path.is_symlink() or not path.is_dir()) and name not in listed:
            raise ArtifactError(f"{out}: holds {name}, which is not part of the psqs artifact "
                                f"(its manifest does not list it); {rule}")


def _manifest_or_none(directory: Path) -> dict | None:
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def write_manifest(directory: Path, kind: str, format_version: int, fields: dict) -> dict:
    """Write ``manifest.json`` into ``directory`` with the sha256 of every other file in it."""
    if not is_psqs_kind(kind):
        raise ValueError(f"artifact kind {kind!r} is not in the {KIND_PREFIX!r} namespace")
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
