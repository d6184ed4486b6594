"""Put a directory tree on a board so that it is either fully there, verified, or not there at all.

Files are uploaded over SFTP into the deploy's own staging directory, ``~/psqs/.staging/<claim>/``,
then the board's own Python checks every sha256 against the list computed here and renames the
staged tree to its final, versioned name in one ``rename`` (same file system, atomic). A final
directory that exists was complete when it was renamed, so it is reused as is; two deploys that
stage the same tree at once both succeed (the second rename finds the first's result).

The staging directory is *claimed* (:class:`StagingArea`): a small process of the board's Python
holds an exclusive ``flock`` on ``<claim>.lock`` for as long as the deploy's SSH session keeps its
stdin open. When the deploy ends, or its connection drops (sshd closes the pipe), the process
removes its staging directory and exits; whatever a killed one left behind is removed by the next
deploy, which removes only the staging directories whose lock nobody holds, so concurrent deploys
to one board never delete each other's uploads.

What the board gets of psqs is a source copy of the board-side packages (``psqs.host`` and every
``psqs`` package it imports), not a wheel: it needs nothing on the board but its Python — no pip,
no build backend, no index — and is put first on ``PYTHONPATH`` for the run.
"""
from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import re
import secrets
from pathlib import Path

from .ssh import ConnectionLost, DeployFailed, Target, quote, run, sftp_call

ROOT = "psqs"                      # under the board user's home
STAGING = f"{ROOT}/.staging"
BOARD_PACKAGES = ("psqs.host",)    # what `python -m psqs.host bench` needs, plus what they import
_IMPORT = re.compile(r"^\s*(?:from|import)\s+psqs\.(\w+)", re.M)

VERIFY_SCRIPT = r"""
import hashlib, json, os, shutil, sys
staging, final, sums = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
for rel, digest in sums.items():
    h = hashlib.sha256()
    with open(os.path.join(staging, rel), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != digest:
        print("sha256 mismatch: " + rel); sys.exit(3)
os.makedirs(os.path.dirname(final) or ".", exist_ok=True)
try:
    os.rename(staging, final)
    print("installed")
except OSError:
    if not os.path.isdir(final):
        raise
    shutil.rmtree(staging)            # another deploy installed the same tree first
    print("already installed")
"""

#: Holds ``<claim>.lock`` while stdin is open, removes the staging directories of deploys that
#: hold no lock (ended or killed), and on EOF removes its own. A lock file is only trusted if it
#: is still the file at its path after locking (a remover may unlink it in between).
CLAIM_SCRIPT = r"""
import fcntl, os, shutil, sys
staging, mine = sys.argv[1], sys.argv[2]
os.makedirs(os.path.join(staging, mine), exist_ok=True)
def lock(path, wait):
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)
def remove(stem):
    shutil.rmtree(os.path.join(staging, stem), ignore_errors=True)
    os.unlink(os.path.join(staging, stem + ".lock"))
lock(os.path.join(staging, mine + ".lock"), True)
stale = 0
for stem in sorted({n[:-len(".lock")] if n.endswith(".lock") else n for n in os.listdir(staging)} - {mine}):
    fd = lock(os.path.join(staging, stem + ".lock"), False)
    if fd is not None:            # nobody holds it: that deploy is over
        remove(stem)
        os.close(fd)
        stale += 1
print("PSQS-CLAIMED %d" % stale, flush=True)
sys.stdin.read()
remove(mine)
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


class StagingArea:
    """This deploy's claimed staging directory on the board (see the module docstring)."""

    def __init__(self, conn, target: Target, python: str, timeout: float):
        self.conn, self.target, self.python, self.timeout = conn, target, python, timeout
        self.claim = secrets.token_hex(6)
        self.directory, self.stale, self._holder = f"{STAGING}/{self.claim}", 0, None

    async def __aenter__(self) -> StagingArea:
        import asyncssh

        step = "claim staging"
        command = f"cd && {quote(self.python)} -c {quote(CLAIM_SCRIPT)} {quote(STAGING, self.claim)}"
        try:
            self._holder = await asyncio.wait_for(self.conn.create_process(command, stderr=asyncssh.STDOUT),
                                                  self.timeout)
            line = await asyncio.wait_for(self._holder.stdout.readline(), self.timeout)
        except asyncio.TimeoutError:
            raise DeployFailed(f"{step} on {self.target}: no answer within {self.timeout:g} s") from None
        except (OSError, asyncssh.Error) as exc:
            raise ConnectionLost(f"{step} on {self.target}: connection lost: {exc}") from None
        if not line.startswith("PSQS-CLAIMED "):
            output = (line + await _rest(self._holder, self.timeout)).strip()
            raise DeployFailed(f"{step} on {self.target}: {output.splitlines()[-1] if output else 'no output'}")
        self.stale = int(line.split()[1])
        return self

    async def __aexit__(self, *exc_info) -> None:
        """Close the holder's stdin: it removes the (by now empty) staging directory and exits.
        On a dropped connection there is nothing to do here: the board's side sees EOF itself."""
        import asyncssh

        try:
            self._holder.stdin.write_eof()
            await asyncio.wait_for(self._holder.wait(), self.timeout)
        except (OSError, asyncssh.Error, asyncio.TimeoutError):
            pass                     # a lost link has ended the holder on the board already
        finally:
            self._holder.close()


async def _rest(process, timeout: float) -> str:
    """The rest of a failed holder's output, for its error message."""
    import asyncssh

    try:
        return await asyncio.wait_for(process.stdout.read(), timeout)
    except (OSError, asyncssh.Error, asyncio.TimeoutError):
        return ""


async def install(conn, target: Target, python: str, files: dict[str, Path], final: str, what: str,
                  staging: StagingArea, timeout: float) -> str:
    """Install ``files`` as the directory ``final`` (relative to the board's home), unless a
    verified copy is already there; returns "installed" or "already installed". What a failed
    upload staged goes with the staging area (:class:`StagingArea`)."""
    sums, _ = digest_of(files)
    staged = f"{staging.directory}/{what}"
    step = f"install {what}"
    status, _out = await run(conn, target, step, f"test -d {quote(final)}", timeout)
    if status == 0:
        return "already installed"
    async with conn.start_sftp_client() as sftp:
        for rel, path in files.items():
            remote = f"{staged}/{rel}"
            await sftp_call(target, step, timeout, sftp.makedirs(remote.rsplit("/", 1)[0], exist_ok=True))
            await sftp_call(target, step, timeout, sftp.put(str(path), remote))
    status, output = await run(conn, target, step,
                               f"{quote(python)} -c {quote(VERIFY_SCRIPT)} {quote(staged, final, json.dumps(sums))}",
                               timeout)
    if status != 0:
        raise DeployFailed(f"{step} on {target}: {output.strip().splitlines()[-1] if output.strip() else status}")
    return output.strip().splitlines()[-1]
