"""Running unmodified pynq clients against an emulated board, each with pynq state of its own.

pynq decides between local and remote devices when it is imported (``PYNQ_REMOTE_DEVICES``), so a
client runs in its own process. pynq also keeps the "current overlay" in files inside its install
directory (``pl_server/global_pl_state_*.json`` and ``_current_metadata.pkl``) and trusts them
across runs and devices; two clients at once would share and overwrite them. :func:`client_env`
gives a client process a private view of the pynq package: a directory of symlinks to the real
installation (unmodified code, shared bytecode) whose ``pl_server/`` is a real directory, so the
state files pynq derives from ``__file__`` land in the private copy.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

STATE_PREFIXES = ("global_pl_state_", "_current_metadata")


def pynq_install() -> Path:
    spec = importlib.util.find_spec("pynq")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pynq is not installed in this Python environment")
    return Path(next(iter(spec.submodule_search_locations)))


def private_pynq(directory: Path) -> Path:
    """Build (once) a private view of the pynq package under ``directory``; returns the directory
    to put first on ``PYTHONPATH``."""
    site = Path(directory) / "site"
    shadow = site / "pynq"
    if shadow.is_dir():
        return site
    real = pynq_install()
    shadow.mkdir(parents=True)
    for entry in real.iterdir():
        if entry.name == "pl_server":
            (shadow / "pl_server").mkdir()
            for item in entry.iterdir():
                if not item.name.startswith(STATE_PREFIXES):
                    (shadow / "pl_server" / item.name).symlink_to(item)
        else:
            (shadow / entry.name).symlink_to(entry)
    return site


def client_env(host: str, directory: Path, base: dict | None = None) -> dict:
    """Environment for a pynq client process talking to the board at ``host`` (port 7967)."""
    env = dict(os.environ if base is None else base)
    site = private_pynq(directory)
    env["PYNQ_REMOTE_DEVICES"] = host
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    return env
