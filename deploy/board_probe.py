"""What a board is and whether psqs can run there, asked over SSH before anything is copied.

One short script runs under the board's Python (a PYNQ image's ``/usr/local/share/pynq-venv``
by default) and prints one JSON line: the board name, the Python, numpy and pynq versions, the free
space of the home directory and whether the user is root or has passwordless sudo (pynq's on-board
path maps ``/dev/mem``). The board is named by :mod:`psqs.common.board_identity`, whose source is
the head of the script (psqs is not on the board yet), so deploy and the board runtime apply one
rule. The images psqs supports are the PYNQ ones of issue 14: Python >= 3.8, numpy >= 1.20, pynq
2.7, 3.0, 3.1 or 4.0.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from psqs.common import board_identity

from .ssh import DeployFailed, Target, quote, run

PYNQ_PYTHON = "/usr/local/share/pynq-venv/bin/python"
MIN_PYTHON = (3, 8)
MIN_NUMPY = (1, 20)
PYNQ_RELEASES = ("2.7", "3.0", "3.1", "4.0")

PROBE_SCRIPT = Path(board_identity.__file__).read_text() + r"""
import json, shutil, subprocess, sys
def version(name):
    try:
        return __import__(name).__version__
    except Exception:
        return None
if os.geteuid() == 0:
    privilege = "root"
else:
    try:
        sudo = subprocess.run(["sudo", "-n", "true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=10).returncode == 0
    except Exception:
        sudo = False
    privilege = "sudo" if sudo else "none"
print("PSQS-PROBE " + json.dumps({
    "board": image_board_name(), "python": ".".join(map(str, sys.version_info[:3])),
    "numpy": version("numpy"), "pynq": version("pynq"),
    "free_bytes": shutil.disk_usage(os.path.expanduser("~")).free, "privilege": privilege}))
"""


def _numbers(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split("."):
        digits = "".join(c for c in part if c.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class BoardInfo:
    board: str | None
    python: str
    numpy: str | None
    pynq: str | None
    free_bytes: int
    privilege: str

    def describe(self) -> str:
        return (f"board {self.board}, Python {self.python}, numpy {self.numpy}, pynq {self.pynq}, "
                f"{self.free_bytes / 2**20:.0f} MiB free, {self.privilege}")

    def unsupported(self) -> list[str]:
        """What makes this image one psqs does not support (empty: supported)."""
        problems = []
        if _numbers(self.python)[:2] < MIN_PYTHON:
            problems.append(f"Python {self.python} < {'.'.join(map(str, MIN_PYTHON))}")
        if self.numpy is None:
            problems.append("numpy is not installed")
        elif _numbers(self.numpy)[:2] < MIN_NUMPY:
            problems.append(f"numpy {self.numpy} < {'.'.join(map(str, MIN_NUMPY))}")
        if self.pynq is None:
            problems.append("pynq is not installed")
        elif ".".join(map(str, _numbers(self.pynq)[:2])) not in PYNQ_RELEASES:
            problems.append(f"pynq {self.pynq} is none of {', '.join(PYNQ_RELEASES)}")
        return problems


async def probe(conn, target: Target, python: str, timeout: float) -> BoardInfo:
    status, output = await run(conn, target, "probe", f"{quote(python)} -c {quote(PROBE_SCRIPT)}", timeout)
    line = next((l for l in output.splitlines() if l.startswith("PSQS-PROBE ")), None)
    if status != 0 or line is None:
        last = output.strip().splitlines()[-1] if output.strip() else f"exit {status}"
        raise DeployFailed(f"probe on {target}: {python} did not run ({last}); pass --python PATH "
                           "to the board's Python with pynq")
    return BoardInfo(**json.loads(line[len("PSQS-PROBE "):]))
