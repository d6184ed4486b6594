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


class PsqsError(Exception):
    """An expected failure caused by what the user gave (exit status 2)."""

    exit_status = 2


class RunFailed(PsqsError):
    """An expected failure of a run whose input was valid (exit status 1)."""

    exit_status = 1


class ToolMissing(PsqsError):
    """A program psqs needs is not on PATH; the message says how to get it."""

    def __init__(self, tool: str, purpose: str, how_to_get: str):
        super().__init__(f"{tool}: not found on PATH (needed {purpose}); {how_to_get}")
        self.tool = tool
