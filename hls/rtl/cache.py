"""A content-addressed cache for the slow RTL steps (Verilator C++ builds, yosys synthesis).

Both take minutes on the full network and are pure functions of their inputs (HDL text, tool
version, flags), so the result is stored under ``$PSQS_CACHE/rtl/<tool>/<sha256 of the inputs>``
and reused by every later run with the same inputs: repeated test runs and stage-depth sweeps only
pay once. An entry is built in a temporary sibling and renamed into place when complete, so an
interrupted build never leaves a half-written entry, and concurrent builders simply race to the
same content.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def cache_root() -> Path:
    """``$PSQS_CACHE/rtl`` (default ``~/.cache/psqs/rtl``)."""
    return Path(os.environ.get("PSQS_CACHE", Path.home() / ".cache" / "psqs")) / "rtl"


def content_key(parts: dict) -> str:
    """sha256 of a JSON-serializable description of everything a result depends on."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def text_digest(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def lookup(tool: str, key: str) -> Path | None:
    """The complete entry for ``key``, or None."""
    entry = cache_root() / tool / key
    return entry if (entry / ".complete").is_file() else None


@contextlib.contextmanager
def building(tool: str, key: str) -> Iterator[Path]:
    """Yield an empty directory that becomes the entry ``tool/key`` when the block succeeds.

    The caller writes the entry's files into it; :func:`lookup` finds it afterwards.
    """
    parent = cache_root() / tool
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=parent))
    try:
        yield tmp
        (tmp / ".complete").write_text("")
        entry = parent / key
        if entry.exists():           # another process finished the same build first
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            try:
                os.replace(tmp, entry)
            except OSError:          # lost a race for a non-empty target
                shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
