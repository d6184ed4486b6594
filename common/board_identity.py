"""Which board a PYNQ image is: the one rule, for the board runtime and for ``psqs deploy``'s probe.

A PYNQ image names its board in the device tree, ``/proc/device-tree/chosen/pynq_board`` (what
pynq's own board detection reads), and in the ``BOARD`` environment variable its profile sets;
the device tree wins. XRT's device name (``edge``) names no board.

Standard library only and self-contained (no psqs import): :mod:`psqs.deploy.board_probe` sends
this file's source to a board as the head of its probe script, before psqs is installed there,
and :func:`psqs.host.accelerator.board_name` imports it, so the two cannot name a board differently.

Test hook: ``PSQS_BOARD_ROOT`` prefixes the device-tree path, so a test can give a board a device
tree of its own without a real ``/proc``; it is unset on a PYNQ image.
"""
from __future__ import annotations

import os

BOARD_NAME_FILE = "/proc/device-tree/chosen/pynq_board"
ENV_BOARD_ROOT = "PSQS_BOARD_ROOT"


def image_board_name(environ=os.environ) -> str | None:
    """The board this PYNQ image runs on, as it names itself; None when it names none."""
    try:
        with open(environ.get(ENV_BOARD_ROOT, "") + BOARD_NAME_FILE, "rb") as f:
            return f.read().decode(errors="replace").strip("\0\n ") or None
    except OSError:
        return environ.get("BOARD") or None
