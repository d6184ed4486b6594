"""Put a directory tree on a board so that it is either fully there, verified, or not there at all.

Files are uploaded over SFTP into ``~/psqs/.staging/<random>/``, then the board's own Python
checks every sha256 against the list computed here and renames the staging directory to its
final, versioned name in one ``rename`` (same file system, atomic). A connection that drops during
the upload leaves only a staging directory, which no reader ever looks at and the next deploy
removes; a final directory that exists was complete when it was renamed, so it is reused as is.

What the board gets of psqs is a source copy of the board-side packages (``psqs.host`` and every
``psqs`` package it imports), not a wheel: it needs nothing on the board but its Python — no pip,
no build backend, no index — and is put first on ``PYTHONPATH`` for the run.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import secrets
from pathlib import Path

from .ssh import DeployFailed, Target, quote, run, sftp_call

ROOT = "psqs"                      # under the board user's home
STAGING = f"{ROOT}/.staging"
BOARD_PACKAGES = ("psqs.host",)    # what `python -m psqs.host bench` needs, plus what they import
_IMPORT = re.compile(r"^\s*(?:from|import)\s+psqs\.(\w+)", re.M)

VERIFY_SCRIPT = r"""
import hashlib, json, os, sys
staging, final, sums = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
for rel, digest in sums.items():
    h = hashlib.sha256()
    with open(os.path.join(staging, rel), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != digest:
        print("sha256 mismatch: " + rel); sys.exit(3)
os.makedirs(os.path.dirname(final) or ".", exist_ok=True)
if os.path.isdir(final):
    print("already installed")
else:
    os.rename(staging, final)
    print("installed")
"""


def _files(directory: Path) -> dict[str, Path]:
    return {p.relative_to(directory).as_posix(): p for p in sorted(directory.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def board_source() -> dict[str, Path]:
    """The files of the board-side psqs packages, keyed by their path under a PYTHONPATH entry
    (``psqs/host/bench.py`` ...), following ``import psqs.X`` statements transitively."""
    files: dict[str, Path] = {}
    todo, seen = list(BOARD_PACKAGES), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise DeployFailed(f"board-side package {name} is not installed here")
        directory = Path(next(iter(spec.submodule_search_locations)))
        for rel, path in _files(directory).items():
            files[f"{name.replace('.', '/')}/{rel}"] = path
            if path.suffix == ".py":
                todo += [f"psqs.{m}" for m in _IMPORT.findall(path.read_text())]
    return files


def package_files(package: Path) -> dict[str, Path]:
    return _files(package)


def digest_of(files: dict[str, Path]) -> tuple[dict[str, str], str]:
    """(sha256 per file, 12 hex digits naming the whole tree: its paths and contents)."""
    sums = {rel: hashlib.sha256(path.read_bytes()).hexdigest() for rel, path in files.items()}
    return sums, hashlib.sha256(json.dumps(sums, sort_keys=True).encode()).hexdigest()[:12]


async def clean_staging(conn, target: Target, timeout: float) -> None:
    """Remove what earlier, interrupted deploys left in the staging area (nothing else reads it)."""
    status, output = await run(conn, target, "clean staging", f"rm -rf {quote(STAGING)}", timeout)
    if status != 0:
        raise DeployFailed(f"clean staging on {target}: {output.strip()[-300:] or f'exit {status}'}")


async def install(conn, target: Target, python: str, files: dict[str, Path], final: str, what: str,
                  timeout: float) -> str:
    """Install ``files`` as the directory ``final`` (relative to the board's home), unless a
    verified copy is already there; returns "installed" or "already installed"."""
    sums, _ = digest_of(files)
    staging = f"{STAGING}/{secrets.token_hex(6)}"
    step = f"install {what}"
    status, _out = await run(conn, target, step, f"test -d {quote(final)}", timeout)
    if status == 0:
        return "already installed"
    async with conn.start_sftp_client() as sftp:
        for rel, path in files.items():
            remote = f"{staging}/{rel}"
            await sftp_call(target, step, timeout, sftp.makedirs(remote.rsplit("/", 1)[0], exist_ok=True))
            await sftp_call(target, step, timeout, sftp.put(str(path), remote))
    status, output = await run(conn, target, step,
                               f"{quote(python)} -c {quote(VERIFY_SCRIPT)} {quote(staging, final, json.dumps(sums))}",
                               timeout)
    if status != 0:
        raise DeployFailed(f"{step} on {target}: {output.strip().splitlines()[-1] if output.strip() else status}")
    return output.strip().splitlines()[-1]
