"""The board's file system as a PYNQ.remote client sees it, confined to one sandbox directory.

pynq's client reads ``/proc/version`` (the CPU architecture decides its ZynqMP or Zynq-7000 code
paths) and ``/proc/device-tree/chosen/pynq_board``, and programs the PL through the Linux
fpga_manager: it uploads ``/lib/firmware/<name>.bin`` unless a file of that name already exists,
then writes ``flags`` and ``firmware`` under ``/sys/class/fpga_manager/fpga0``. These files live
under a sandbox directory; every client path is resolved inside it and a request that would leave
it (``..``, a relative path, a symlink pointing out) is refused.

A client may write where a PYNQ.remote board (its server runs as root) lets it: the firmware
directory, the two fpga_manager attributes a client sets, and files in the board's scratch and
home directories (``/tmp``, ``/home/xilinx`` of the PYNQ images, ``/root``) and in directories
already there below them (PYNQ.remote has no call that creates a directory). Everything else is
read-only, and a write is judged by where the path really leads inside the sandbox, so a symlink
from a writable directory to a read-only file does not make that file writable.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath

from psqs.board_configs import Board

from .errors import InvalidArgument, NotFound, PermissionDenied, ResourceExhausted

PROC_VERSION = "/proc/version"
BOARD_NAME = "/proc/device-tree/chosen/pynq_board"
FPGA0 = "/sys/class/fpga_manager/fpga0"
FPGA_STATE = f"{FPGA0}/state"
FPGA_FLAGS = f"{FPGA0}/flags"
FPGA_FIRMWARE = f"{FPGA0}/firmware"
FIRMWARE_DIR = "/lib/firmware"
WRITABLE_DIRS = ("/tmp", "/home/xilinx", "/root")   # and what lies below them
MAX_FILE_BYTES = 256 << 20   # the largest UltraScale+ bitstreams are tens of MiB


def linux_version(arch: str) -> str:
    """A ``/proc/version`` line of a PYNQ image kernel built for ``arch``."""
    return (f"Linux version 6.1.30-xilinx-v2023.2 (oe-user@oe-host) ({arch}-xilinx-linux-gcc (GCC) 12.2.0, "
            f"GNU ld (GNU Binutils) 2.40.0.20230620) #1 SMP PREEMPT psqs-emulator\n")


class BoardFiles:
    """The sandboxed file tree of one emulated board."""

    def __init__(self, root: Path, board: Board):
        self.root = Path(root)
        for directory in (FIRMWARE_DIR, FPGA0, str(PurePosixPath(BOARD_NAME).parent),
                          str(PurePosixPath(PROC_VERSION).parent), *WRITABLE_DIRS):
            self._host_path(directory).mkdir(parents=True, exist_ok=True)
        self._root_real = os.path.realpath(self.root)
        self._put(PROC_VERSION, linux_version(board.arch).encode())
        self._put(BOARD_NAME, board.pynq_board.encode() + b"\0")
        self._put(FPGA_FLAGS, b"0\n")
        self._put(FPGA_FIRMWARE, b"\n")
        self.set_state("unknown")

    def _host_path(self, path: str) -> Path:
        return self.root.joinpath(*PurePosixPath(path).parts[1:])

    def _put(self, path: str, data: bytes) -> None:
        target = self._host_path(path)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)

    def set_state(self, state: str) -> None:
        """The fpga_manager's ``state`` attribute (``operating``, ``write error``, ...)."""
        self._put(FPGA_STATE, f"{state}\n".encode())

    def resolve(self, path: str) -> Path:
        """The host path of board path ``path``, refusing anything that would leave the sandbox."""
        if not isinstance(path, str) or not path or "\0" in path:
            raise InvalidArgument(f"file path {path!r}: empty or contains NUL")
        if not path.startswith("/"):
            raise InvalidArgument(f"file path {path!r}: must be absolute")
        parts = PurePosixPath(path).parts[1:]
        if ".." in parts:
            raise InvalidArgument(f"file path {path!r}: '..' is not allowed")
        host = self.root.joinpath(*parts)
        real = os.path.realpath(host)
        if real != self._root_real and not real.startswith(self._root_real + os.sep):
            raise InvalidArgument(f"file path {path!r}: resolves outside the board's file system")
        return host

    def exists(self, path: str) -> bool:
        return self.resolve(path).exists()

    def read(self, path: str) -> bytes:
        host = self.resolve(path)
        if host.is_dir():
            raise InvalidArgument(f"{path}: is a directory")
        if not host.is_file():
            raise NotFound(f"{path}: no such file")
        return host.read_bytes()

    @staticmethod
    def writable(path: str) -> bool:
        """Whether board path ``path`` (canonical, no symlinks) may be written by a client."""
        parent = PurePosixPath(path).parent
        return (path in (FPGA_FLAGS, FPGA_FIRMWARE) or str(parent) == FIRMWARE_DIR
                or any(parent == PurePosixPath(d) or PurePosixPath(d) in parent.parents for d in WRITABLE_DIRS))

    def _board_path(self, host: Path) -> str:
        """The board path that host path ``host`` really is (symlinks followed; inside the sandbox)."""
        real = os.path.realpath(host)
        return "/" + os.path.relpath(real, self._root_real).replace(os.sep, "/") if real != self._root_real else "/"

    def write(self, path: str, data: bytes) -> str:
        """Write ``data`` to the client's ``path``; returns the board path written (symlinks followed)."""
        host = self.resolve(path)
        if not self.writable(self._board_path(host)):
            raise PermissionDenied(f"{path}: read-only on this board (writable: {FIRMWARE_DIR}/<file>, "
                                   f"{FPGA_FLAGS}, {FPGA_FIRMWARE}, and files under {', '.join(WRITABLE_DIRS)})")
        if len(data) > MAX_FILE_BYTES:
            raise ResourceExhausted(f"{path}: {len(data)} bytes exceeds the {MAX_FILE_BYTES}-byte limit")
        if host.is_dir():
            raise InvalidArgument(f"{path}: is a directory")
        if not host.parent.is_dir():
            raise NotFound(f"{path}: no such directory {PurePosixPath(path).parent}")
        target = self._board_path(host)
        self._put(target, data)
        return target
