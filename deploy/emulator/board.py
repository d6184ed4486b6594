"""One emulated board: its address map, DDR, file system and the overlay currently programmed.

The address map is what the PS's CPU sees: the PS configuration registers (always there) and,
once an overlay is programmed, its DMA, stream probe and the model IP's AXI-Lite registers (where
its ``.hwh`` describes some, :mod:`.hls_regs`) at the addresses in the package's manifest. An access no slave decodes is refused (the AXI DECERR a real interconnect returns).
Register accesses from all clients go through one lock, as they go through the PS's single
general-purpose port on the board, so none is ever torn or interleaved (the board's fabric worker,
:class:`.dma.Worker`, takes the same lock to update the DMA and the probe, and leaves it while the
model computes); DMA buffers belong to whoever allocated them (unguessable ids, disjoint physical
ranges). The board has one DMA, so hosts sharing it must take turns with their transfers, as on
hardware: a LENGTH write to a busy channel is ignored (see :mod:`.dma`), and an S2MM channel takes
whatever the stream carries.

Programming follows the fpga_manager: writing a firmware file name to
``/sys/class/fpga_manager/fpga0/firmware`` programs ``/lib/firmware/<name>``. The PL is cleared
first, so firmware that matches no served package leaves it empty (``state`` reads
``write error``) and the client is told so; a match resets every IP, as a real download does.
"""
from __future__ import annotations

import bisect
import hashlib
import itertools
import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from psqs.board_configs import DEFAULT_BOARD, load_board
from psqs.hls.csim import AxisLibrary

from . import sandbox
from .clock import CycleClock
from .dma import AxiDma, Worker
from .errors import (
    DecodeError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unimplemented,
)
from .faults import Fault, FaultSpecError
from .memory import DdrMemory
from .packages import PackageCatalog, ServedPackage
from .probe import StreamProbe
from .ps_regs import PsRegisters
from .stream import ModelStream

log = logging.getLogger(__name__)

ADDRESS_LIMIT = 1 << 40   # physical address space of the supported PS families (ZynqMP: 40 bits)


@dataclass
class EmulatorConfig:
    """What to emulate and how; ``psqs emulate``'s options."""

    board: str = DEFAULT_BOARD
    overlays: list[Path] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 7967            # pynq's client always connects to 7967
    faults: list[Fault] = field(default_factory=list)
    sandbox: Path | None = None  # the board's file system (persistent); default: a temporary one
    stream_capacity: int = 16    # samples the stream path holds before back-pressuring the MM2S channel
    workers: int = 8             # concurrent RPCs


class EmulatedBoard:
    """The state of one emulated board; thread-safe."""

    def __init__(self, config: EmulatorConfig):
        self.config = config
        self.board = load_board(config.board)
        self.lock = threading.RLock()
        self.ps = PsRegisters(self.board, self._clock_changed)
        self.cycles = CycleClock(self.ps.pl_clock_mhz(self.board.fclk))
        self.worker = Worker()
        self.memory = DdrMemory(self.board.ddr_base, self.board.ddr_size)
        self.catalog = PackageCatalog(config.overlays, self.board)
        self._scratch = Path(tempfile.mkdtemp(prefix="psqs-emulator-"))
        self.files = sandbox.BoardFiles(config.sandbox or self._scratch / "rootfs", self.board)
        self._library_dirs = itertools.count()
        self._libraries: dict[tuple[Path, str], AxisLibrary] = {}
        self.loaded: ServedPackage | None = None
        self.dma: AxiDma | None = None
        self.probe: StreamProbe | None = None
        self.register_slaves: list = []      # [(IpInstance, HlsRegisters)] of the programmed overlay
        self._map: list[tuple[int, int, object]] = []
        self._bases: list[int] = []
        self.bitstream_attrs = ("", False)
        self.transfers = 0
        self._faults: dict[int, Fault] = {}
        for fault in config.faults:
            self.inject(fault)
        self._remap()

    def close(self) -> None:
        self.worker.close()
        shutil.rmtree(self._scratch, ignore_errors=True)

    # ---------------------------------------------------------------- address map
    def _remap(self) -> None:
        regions = [(base, block.size, block) for base, block in self.ps.blocks.items()]
        if self.dma is not None:
            regions.append((self.loaded.dma.base, self.loaded.dma.range, self.dma))
        if self.probe is not None:
            regions.append((self.loaded.probe.base, self.loaded.probe.range, self.probe))
        regions += [(ip.base, ip.range, slave) for ip, slave in self.register_slaves]
        self._map = sorted(regions, key=lambda r: r[0])
        self._bases = [r[0] for r in self._map]

    def _decode(self, address: int) -> tuple[object, int]:
        i = bisect.bisect_right(self._bases, address) - 1
        if i >= 0:
            base, size, device = self._map[i]
            if address < base + size:
                return device, address - base
        loaded = f"overlay {self.loaded.name}" if self.loaded else "no overlay"
        raise DecodeError(f"AXI decode error: no slave at 0x{address:x} ({loaded} programmed)")

    def read32(self, address: int) -> int:
        with self.lock:
            device, offset = self._decode(address)
            return device.read32(offset)

    def write32(self, address: int, value: int) -> None:
        with self.lock:
            device, offset = self._decode(address)
            device.write32(offset, value)

    def _clock_changed(self) -> None:
        mhz = self.ps.pl_clock_mhz(self.board.fclk)
        if mhz != self.cycles.mhz:
            log.info("PL clock %d now %.6g MHz", self.board.fclk, mhz)
            self.cycles.retune(mhz)

    def set_pl_clock(self, index: int, div0: int, div1: int, mhz: float) -> float:
        with self.lock:
            try:
                return self.ps.set_pl_clock(index, div0, div1, mhz)
            except ValueError as exc:
                raise InvalidArgument(str(exc)) from None

    # ---------------------------------------------------------------- faults
    def inject(self, fault: Fault) -> None:
        """Arm ``fault`` for the ``fault.at_transfer``-th MM2S transfer from now on (what counts as
        one: :mod:`.dma`; ``--fault`` faults are armed when the emulator starts)."""
        with self.lock:
            at = self.transfers + fault.at_transfer
            if at in self._faults:
                raise FaultSpecError(f"fault {fault}: a fault ({self._faults[at]}) is already armed for transfer {at}")
            self._faults[at] = fault
            log.info("fault %s armed for MM2S transfer %d", fault, at)

    def _next_fault(self) -> Fault | None:
        """Called by the DMA for each MM2S LENGTH write that starts a transfer, and only then."""
        self.transfers += 1
        return self._faults.pop(self.transfers, None)

    # ---------------------------------------------------------------- files and programming
    def read_file(self, path: str) -> bytes:
        return self.files.read(path)

    def exists(self, path: str) -> bool:
        return self.files.exists(path)

    def write_file(self, path: str, data: bytes) -> None:
        with self.lock:
            if self.files.write(path, data) == sandbox.FPGA_FIRMWARE:
                self._program_firmware(data.decode(errors="replace").strip())

    def _program_firmware(self, name: str) -> None:
        if not name or "/" in name or name in (".", ".."):
            raise InvalidArgument(f"{sandbox.FPGA_FIRMWARE}: {name!r} is not a firmware file name")
        partial = self.files.read(sandbox.FPGA_FLAGS).strip() not in (b"", b"0") or self.bitstream_attrs[1]
        if partial:
            raise Unimplemented("partial reconfiguration is not emulated (fpga0/flags is not 0)")
        path = f"{sandbox.FIRMWARE_DIR}/{name}"
        if not self.files.exists(path):
            self._clear_pl("write error")
            raise NotFound(f"{path}: no such firmware file")
        self.program(self.files.read(path), origin=path)

    def program(self, image: bytes, origin: str) -> ServedPackage:
        """Program the PL with fpga_manager image ``image``: the package whose firmware it is."""
        with self.lock:
            self._clear_pl("write init")
            sha = hashlib.sha256(image).hexdigest()
            served = self.catalog.find(sha)
            if served is None:
                self._clear_pl("write error")
                known = ", ".join(f"{p.name} ({p.bin_sha256[:12]})" for p in self.catalog.packages) or "none"
                raise NotFound(f"{origin}: firmware {sha[:12]}... matches no overlay package served by this "
                               f"board (served: {known}); stale firmware of the same name in /lib/firmware "
                               "is reused by pynq without uploading")
            try:
                library = self._library(served)
                probe = None
                if served.probe is not None:
                    contract = served.package.contract
                    probe = StreamProbe(self.cycles, served.probe_fifo_depth, contract.input.bus_bytes,
                                        contract.output.bus_bytes)
                mm2s, s2mm = served.chains()
                stream = ModelStream(library, served.timing, self.cycles, self.config.stream_capacity, probe,
                                     library.cycle_counter, mm2s, s2mm)
                dma = AxiDma(served.dma_config, self.memory, stream, self.cycles, self._next_fault, self.worker,
                             self.lock)
                slaves = served.register_slaves()
            except (OSError, ValueError) as exc:     # a model library that does not load or fit
                self._clear_pl("write error")
                raise FailedPrecondition(f"{served.name} ({served.package.path}) cannot be emulated: {exc}") from None
            self.dma = dma
            self.probe, self.loaded, self.register_slaves = probe, served, slaves
            self._remap()
            self.files.set_state("operating")
            log.info("programmed %s from %s (DMA at 0x%x%s)", served.name, origin, served.dma.base,
                     f", probe at 0x{served.probe.base:x}" if served.probe else "")
            return served

    def _clear_pl(self, state: str) -> None:
        if self.dma is not None:
            self.dma.close()
        self.dma = self.probe = self.loaded = None
        self.register_slaves = []
        self._remap()
        self.files.set_state(state)

    def _library(self, served: ServedPackage) -> AxisLibrary:
        """This board's private instance of the package's model library; an RTL one's cycle counter
        times the transfers."""
        key = (served.package.path.resolve(), served.bin_sha256)
        if key not in self._libraries:
            library = AxisLibrary(served.private_library(self._scratch / "models" / str(next(self._library_dirs))))
            if library.cycle_counter is None and served.model_kind == "rtl":
                raise FailedPrecondition(f"{served.library}: an rtl emulation model must export "
                                         "uint64_t psqs_cycles()")
            self._libraries[key] = library
        return self._libraries[key]
