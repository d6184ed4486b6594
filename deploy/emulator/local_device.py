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
returns a device only when ``PSQS_EMULATED_BOARD`` names a board or board file (``PSQS_EMULATED_OVERLAYS``:
the package directories it can be programmed with, ``os.pathsep``-separated;
``PSQS_EMULATED_FAULTS``: fault specs, comma-separated). A plain user script needs no change:
``python -m psqs.deploy.emulator.local_device SCRIPT [ARGS]`` (or ``-m MODULE [ARGS]``) imports
this module and runs the script as ``__main__``. No ``.pth`` file or ``sitecustomize`` is
installed: the emulated board is never active in an environment that did not ask for it.
"""
from __future__ import annotations

import atexit
import ctypes
import inspect
import os
import platform
import runpy
import sys
import weakref
from pathlib import Path

from psqs.board_configs import load_board, write_json

ENV_BOARD = "PSQS_EMULATED_BOARD"


def _pose_as_the_board(environ=os.environ) -> None:
    """pynq before 4.0 picks its Zynq-7000 or ZynqMP code (PL clocks, GPIO, interrupts, the HWH
    parser) from the CPU (``os.uname().machine`` or ``platform.machine()``) when ``pynq.ps`` is
    imported, not from the device: a script on the emulated board sees the board's CPU
    (``armv7l``/``aarch64``) from the start."""
    board = environ.get(ENV_BOARD, "").strip()
    if board:
        arch, real = load_board(board).arch, os.uname()
        os.uname = lambda: os.uname_result((real.sysname, real.nodename, real.release, real.version, arch))
        platform.machine = lambda: arch


if __name__ == "__main__":   # before pynq is imported
    _pose_as_the_board()

from pynq.pl_server.device import Device  # noqa: E402
from pynq.pl_server.embedded_device import DEFAULT_XCLBIN, EmbeddedDevice, _get_bitstream_handler  # noqa: E402
from pynq.pl_server.xrt_device import _xrt_allocate  # noqa: E402

try:
    from pynq.pl_server import global_state      # pynq 3.0+; 2.7 keeps the PL state in its PL server
except ImportError:
    global_state = None

from . import sandbox  # noqa: E402
from .board import EmulatedBoard, EmulatorConfig  # noqa: E402
from .client_env import private_pynq  # noqa: E402
from .faults import Fault  # noqa: E402

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
                base: dict | None = None, pynq_site: Path | None = None) -> dict:
    """Environment for a pynq process on the emulated local board, with pynq state of its own
    under ``directory`` and no PYNQ.remote board. The board goes as a JSON board file (validated
    here, readable without PyYAML in a PYNQ image's environment); ``pynq_site`` is the private
    view of the pynq the process runs (:func:`.client_env.private_pynq`; default: this Python's)."""
    env = dict(os.environ if base is None else base)
    env.pop("PYNQ_REMOTE_DEVICES", None)
    env.update({ENV_BOARD: "", ENV_OVERLAYS: os.pathsep.join(str(p) for p in overlays),
                ENV_FAULTS: ",".join(faults)})
    directory.mkdir(parents=True, exist_ok=True)
    if board:
        env[ENV_BOARD] = str(write_json(board, directory))
        env["BOARD"] = load_board(board).pynq_board     # as a PYNQ image's environment names its board
    site = private_pynq(directory) if pynq_site is None else pynq_site
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
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
        # EmbeddedDevice's opens XRT; the rest is here. pynq 2.7 keeps the PL state in a PL server:
        # one of this process's own ("local"), as a device without the global server gets
        local = {"server_type": "local"} if "server_type" in inspect.signature(Device.__init__).parameters else {}
        Device.__init__(self, f"emulated_embedded{index}", **local)
        self.emulated = board
        self.capabilities = {"REGISTER_RW": True, "MEMORY_MAPPED": False, "CALLABLE": False}
        self.arch = board.board.arch       # what platform.machine() says on the board
        self.contexts, self.active_bos, self._bo_cache, self._streams = {}, [], [], {}
        self.handle = None                 # no XRT device for XrtDevice.close to release

    @property
    def name(self) -> str:
        """XRT's device name, as ``EmbeddedDevice.name`` reports it on a Zynq/ZynqMP image: XRT's
        edge shim (zocl) names every such device ``edge`` (``/etc/xocl.txt`` aside, absent on
        PYNQ images). It names no board, so code that identifies the board reads
        ``/proc/device-tree/chosen/pynq_board`` or ``BOARD`` (set by :func:`environment` as a PYNQ
        image sets it), as :func:`psqs.host.accelerator.board_name` does."""
        return "edge"

    # -- the fpga_manager and /lib/firmware
    def write_fpga_manager(self, attribute, value):
        self.emulated.write_file(str(attribute), str(value).encode())

    def download(self, bitstream, parser=None):
        """``EmbeddedDevice.download``, step for step, onto the board's fpga_manager: pynq before
        4.0 writes its files with ``open()`` (4.0 through ``write_fpga_manager``), so the steps are
        spelled out here once for every pynq version."""
        if parser is None:
            from pynq.pl_server.xclbin_parser import XclBin

            parser = XclBin(xclbin_data=DEFAULT_XCLBIN)
        if not bitstream.binfile_name:                          # pynq's _preload_binfile, to the board
            bitstream.binfile_name = Path(bitstream.bitfile_name).stem + ".bin"
            data = getattr(parser, "bin_data", None) or _get_bitstream_handler(bitstream.bitfile_name).get_bin_data()
            self.emulated.write_file(f"{sandbox.FIRMWARE_DIR}/{bitstream.binfile_name}", data)
        if not bitstream.partial:
            self.shutdown()
            if hasattr(self, "gen_cache"):                      # pynq 3.0+: the metadata cache
                self.gen_cache(bitstream, parser)
        self.write_fpga_manager(self.BS_FPGA_MAN_FLAGS, str(int(bool(bitstream.partial))))
        self.write_fpga_manager(self.BS_FPGA_MAN, bitstream.binfile_name)
        self.set_axi_port_width(parser)
        self._xrt_download(parser.xclbin_data)
        name = (self.name,) if "name" in inspect.signature(Device.post_download).parameters else ()   # 3.0+
        Device.post_download(self, bitstream, parser, *name)

    def _xrt_download(self, data):
        """XRT registers the design's memory banks for zocl; buffers here come from the board."""

    def get_bitfile_metadata(self, bitfile_name, partial=False):
        """pynq's own parser of the ``.bit``/``.hwh`` pair. On the board, XRT's ``xclbinutil``
        makes the memory topology of a ``.bit`` without an ``.xclbin``; pynq's default topology
        stands in (as pynq 4.0's PYNQ.remote handler does), which is all allocation needs here."""
        handler = _get_bitstream_handler(bitfile_name)
        own_xclbin = handler.get_xclbin_data
        handler.get_xclbin_data = lambda: own_xclbin() or DEFAULT_XCLBIN
        parser = handler.get_parser(**({"partial": True} if partial else {}))   # 2.7: no partial
        if parser is None:
            raise RuntimeError("Unable to find metadata for bitstream")
        return parser

    def shutdown(self):
        """``Device.shutdown`` after pynq's boot check (3.0+), which reads the board's fpga_manager."""
        if global_state is None:
            return Device.shutdown(self)
        state = self.emulated.read_file(sandbox.FPGA_STATE).decode().strip()
        flags = self.emulated.read_file(sandbox.FPGA_FLAGS).decode().strip()
        if state.startswith("unknown") or flags.startswith("100"):
            global_state.clear_global_state()
        check = global_state.initial_global_state_file_boot_check
        global_state.initial_global_state_file_boot_check = lambda *a, **k: None
        try:
            Device.shutdown(self)
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
