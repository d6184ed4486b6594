"""An emulated board as pynq's *local* device: the code path of a script running on the board.

On a PYNQ image, pynq finds the board through its device registry: every subclass of
``pynq.Device`` with a ``_probe_`` classmethod is registered by priority when its class is
created, and ``Device.active_device`` is the first device the probes return. The Zynq/ZynqMP one
is ``EmbeddedDevice``: ``download`` writes the ``.bin`` to ``/lib/firmware`` and its name to the
fpga_manager's sysfs files, ``MMIO`` maps ``/dev/mem``, ``allocate`` gets contiguous buffers from
XRT (zocl) with a cache flush/invalidate per transfer, and ``Clocks`` rewrites the PS's clock
registers through ``MMIO``.

:class:`EmulatedLocalDevice` *is* an ``EmbeddedDevice``: ``Overlay``, ``download``, the metadata
cache, the AXI port widths, ``Device.allocate``, pynq's ``PynqBuffer``, the DMA driver and
``Clocks`` all run as pynq ships them. Only the operating system underneath is replaced, at the
calls where pynq leaves Python, by the same :class:`.board.EmulatedBoard` the PYNQ.remote
emulator serves (memory, DMA registers, model IP, stream probe, faults), in-process:

- the fpga_manager's files and ``/lib/firmware`` are the board's (``write_fpga_manager``, and the
  ``.bin`` pynq's ``_preload_binfile`` would write): the board recognizes the firmware by content;
- register accesses: a plain memory map cannot have side effects (a LENGTH write that starts a
  transfer, a status register that changes by itself), so the device declares pynq's
  ``REGISTER_RW`` capability instead of ``MEMORY_MAPPED`` and ``MMIO`` sends every 32-bit access
  through :meth:`read_registers` / :meth:`write_registers` (pynq's own access hook);
- buffer objects (XRT's ``bo``): pynq's ``_xrt_allocate`` builds the ``PynqBuffer`` over a host
  array (the CPU's cached view) at a physical address in the board's DDR; ``flush`` copies the
  host bytes into DDR and ``invalidate`` copies DDR back, byte for byte what the PYNQ.remote
  buffer does, so a transfer without its flush reads stale DDR as it would on hardware;
- the global state's boot check reads the board's fpga_manager state, not the host's.

Enabling: the class registers itself with pynq when this module is imported, and its probe
returns a device only when ``PSQS_EMULATED_BOARD`` names a board (``PSQS_EMULATED_OVERLAYS``:
the package directories it can be programmed with, ``os.pathsep``-separated;
``PSQS_EMULATED_FAULTS``: fault specs, comma-separated). A plain user script needs no change:
``python -m psqs.deploy.emulator.local_device SCRIPT [ARGS]`` (or ``-m MODULE [ARGS]``) imports
this module and runs the script as ``__main__``. No ``.pth`` file or ``sitecustomize`` is
installed: the emulated board is never active in an environment that did not ask for it.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import runpy
import sys
import weakref
from pathlib import Path

from pynq.pl_server.device import Device
from pynq.pl_server.embedded_device import EmbeddedDevice
from pynq.pl_server.global_state import clear_global_state
from pynq.pl_server.xrt_device import _xrt_allocate

from psqs.board_configs import load_board

from . import sandbox
from .board import EmulatedBoard, EmulatorConfig
from .client_env import private_pynq
from .faults import Fault

ENV_BOARD = "PSQS_EMULATED_BOARD"
ENV_OVERLAYS = "PSQS_EMULATED_OVERLAYS"
ENV_FAULTS = "PSQS_EMULATED_FAULTS"


def config_from_env(environ=os.environ) -> EmulatorConfig | None:
    """The board the environment asks for, or None."""
    board = environ.get(ENV_BOARD, "").strip()
    if not board:
        return None
    overlays = [Path(p) for p in environ.get(ENV_OVERLAYS, "").split(os.pathsep) if p.strip()]
    faults = [Fault.parse(f) for f in environ.get(ENV_FAULTS, "").split(",") if f.strip()]
    return EmulatorConfig(board=board, overlays=overlays, faults=faults)


def environment(board: str, overlays: list[Path], directory: Path, faults: list[str] = (),
                base: dict | None = None) -> dict:
    """Environment for a pynq process on the emulated local board, with pynq state of its own
    under ``directory`` (:func:`.client_env.private_pynq`) and no PYNQ.remote board."""
    env = dict(os.environ if base is None else base)
    env.pop("PYNQ_REMOTE_DEVICES", None)
    env.update({ENV_BOARD: board, ENV_OVERLAYS: os.pathsep.join(str(p) for p in overlays),
                ENV_FAULTS: ",".join(faults)})
    if board:
        env["BOARD"] = load_board(board).pynq_board     # as a PYNQ image's environment names its board
    env["PYTHONPATH"] = os.pathsep.join([str(private_pynq(directory)), *filter(None, [env.get("PYTHONPATH")])])
    return env


class _Bo:
    """XRT's buffer object: a DDR buffer of the board and the host array the CPU sees it through.
    The DDR buffer is freed when the last ``PynqBuffer`` view of it goes (pynq's ``freebuffer``
    unmaps through libc, which pynq only loads on a board)."""

    def __init__(self, memory, size: int):
        self.ddr = memory.allocate(size)
        self.host = bytearray(size)
        weakref.finalize(self, memory.free, self.ddr.id)


class _Memory:
    """The PS DDR as pynq's ``default_memory``: buffers through pynq's own ``_xrt_allocate``."""

    def __init__(self, device: EmulatedLocalDevice):
        self.device = device

    def allocate(self, shape, dtype, **kwargs):
        return _xrt_allocate(shape, dtype, self.device, 0, **kwargs)


class EmulatedLocalDevice(EmbeddedDevice):
    """pynq's ``EmbeddedDevice`` on an :class:`EmulatedBoard` (see the module docstring)."""

    _probe_priority_ = 40   # before EmbeddedDevice (50): on a board without this variable it never probes

    @classmethod
    def _probe_(cls):
        config = config_from_env()
        if config is None:
            return []
        board = EmulatedBoard(config)
        atexit.register(board.close)       # its scratch directory (model library copies)
        return [cls(board)]

    def __init__(self, board: EmulatedBoard, index: int = 0):
        Device.__init__(self, f"emulated_embedded{index}")   # EmbeddedDevice's opens XRT; the rest is here
        self.emulated = board
        self.capabilities = {"REGISTER_RW": True, "MEMORY_MAPPED": False, "CALLABLE": False}
        self.arch = board.board.arch       # what platform.machine() says on the board
        self.contexts, self.active_bos, self._bo_cache, self._streams = {}, [], [], {}

    @property
    def name(self) -> str:
        """The board's ``/proc/device-tree/chosen/pynq_board``. On a board, ``EmbeddedDevice.name``
        is XRT's device name instead, which names no board: code that identifies the board must
        read that file or ``BOARD`` (set by :func:`environment` as a PYNQ image sets it)."""
        return self.emulated.read_file(sandbox.BOARD_NAME).decode().strip("\0\n")

    # -- the fpga_manager and /lib/firmware
    def write_fpga_manager(self, attribute, value):
        self.emulated.write_file(str(attribute), str(value).encode())

    def download(self, bitstream, parser=None):
        if parser is not None and not bitstream.binfile_name:   # pynq's _preload_binfile, to the board
            bitstream.binfile_name = Path(bitstream.bitfile_name).stem + ".bin"
            self.emulated.write_file(f"{sandbox.FIRMWARE_DIR}/{bitstream.binfile_name}", parser.bin_data)
        super().download(bitstream, parser)

    def _xrt_download(self, data):
        """XRT registers the design's memory banks for zocl; buffers here come from the board."""

    def get_bitfile_metadata(self, bitfile_name, partial=False):
        # on the board, XRT's xclbinutil makes the memory topology of a .bit without one; pynq's
        # PYNQ.remote handler uses its default topology instead, which is all allocation needs here
        from pynq.pl_server.remote_device import _get_bitstream_handler

        parser = _get_bitstream_handler(bitfile_name).get_parser(partial=partial)
        if parser is None:
            raise RuntimeError("Unable to find metadata for bitstream")
        return parser

    def shutdown(self):
        """``Device.shutdown`` after pynq's boot check, which reads the board's fpga_manager."""
        state = self.emulated.read_file(sandbox.FPGA_STATE).decode().strip()
        flags = self.emulated.read_file(sandbox.FPGA_FLAGS).decode().strip()
        if state.startswith("unknown") or flags.startswith("100"):
            clear_global_state()
        from pynq.pl_server import device as device_module
        from pynq.pl_server import global_state

        check = global_state.initial_global_state_file_boot_check
        global_state.initial_global_state_file_boot_check = lambda *a, **k: None
        try:
            device_module.Device.shutdown(self)
        finally:
            global_state.initial_global_state_file_boot_check = check

    # -- registers (MMIO through pynq's REGISTER_RW hook)
    def read_registers(self, address, length):
        if address % 4 or length % 4:
            raise MemoryError(f"unaligned register read of {length} bytes at 0x{address:x}")
        return b"".join(self.emulated.read32(address + i).to_bytes(4, "little") for i in range(0, length, 4))

    def write_registers(self, address, data):
        data = bytes(data)
        if address % 4 or len(data) % 4:
            raise MemoryError(f"unaligned register write of {len(data)} bytes at 0x{address:x}")
        for i in range(0, len(data), 4):
            self.emulated.write32(address + i, int.from_bytes(data[i:i + 4], "little"))

    # -- buffers (XRT's bo calls that pynq's _xrt_allocate and PynqBuffer make)
    @property
    def default_memory(self):
        return _Memory(self)

    def allocate_bo(self, size, idx, cacheable):
        return _Bo(self.emulated.memory, size)

    def map_bo(self, bo):
        return memoryview(bo.host)

    def get_device_address(self, bo):
        return bo.ddr.phys

    def flush(self, bo, offset, ptr, size):
        """The CPU's cache written back to DDR: the host bytes of [offset, offset + size)."""
        self.emulated.memory.write(bo.ddr.id, offset, ctypes.string_at(ptr, size))

    def invalidate(self, bo, offset, ptr, size):
        """The CPU's cached copy dropped: the next reads see what DDR holds."""
        ctypes.memmove(ptr, self.emulated.memory.read(bo.ddr.id, offset, offset + size), size)



def main(argv: list[str] | None = None) -> None:
    """``python -m psqs.deploy.emulator.local_device (SCRIPT | -m MODULE) [ARGS]``"""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or (argv[0] == "-m" and len(argv) < 2):
        print(main.__doc__.strip(), "\n\nRuns a pynq script on the emulated local board named by "
              f"{ENV_BOARD} (overlays: {ENV_OVERLAYS}, faults: {ENV_FAULTS}).", file=sys.stderr)
        raise SystemExit(2)
    if argv[0] == "-m":
        sys.argv = argv[1:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        sys.path.insert(0, str(Path(argv[0]).resolve().parent))
        runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":   # run the importable module's main, so that one class is registered
    from psqs.deploy.emulator.local_device import main as _main

    _main()
