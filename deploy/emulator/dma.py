"""AXI DMA (PG021) in Direct Register (simple) mode: the register model pynq's DMA driver relies on.

Per channel (MM2S at 0x00, S2MM at 0x30): DMACR (RS bit 0, Reset bit 2, the interrupt enables
and thresholds; bit 1 reads 1), DMASR (Halted, Idle, DMAIntErr, DMASlvErr, DMADecErr, and the
write-1-to-clear IOC_Irq / Err_Irq), the address (and its MSB half when the DMA has more than 32
address bits), and LENGTH, whose write starts a transfer. What the driver sees:

- after RS=1 the channel runs (Halted=0) but reads Idle=0 until its first transfer completes;
- a transfer completes when the fabric would have finished it (see :mod:`.timing`): MM2S when its
  last beat entered the model IP, S2MM when it wrote the beat carrying TLAST or filled LENGTH;
  then Idle=1 and IOC_Irq=1, and S2MM LENGTH reads back the bytes actually written;
- errors halt the channel (Halted=1, RS reads 0, Err_Irq=1) and only a reset clears them:
  DMAIntErr for a zero length, a length beyond the LENGTH register's width (real hardware would
  silently drop the high bits), a source or destination not aligned to the memory-map width
  without the realignment engine (undefined on hardware), and an S2MM buffer that fills before
  TLAST (PG021: the packet is larger than LENGTH); DMADecErr / DMASlvErr for AXI errors on the
  memory side (an address outside the DDR window or outside every allocated buffer decodes
  nowhere);
- LENGTH written while the channel is halted has no effect (PG021), and while a transfer is in
  progress is ignored with a warning (undefined on hardware);
- Reset (bit 2 of either DMACR) resets the whole engine and the stream path behind it: the model
  IP (its FIFOs, a partial sample, a hang) and the stream probe, which take their reset from the
  DMA's ``mm2s_prmry_reset_out_n`` as PG021 intends for stream-side IPs. Without that, a host could
  not recover from a wrong transfer size or a stuck IP short of downloading the overlay again.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# The register map of the host's driver: the driver and this model cannot disagree on it.
from psqs.host.dma import ADDR_HI as ADDR_MSB
from psqs.host.dma import ADDR_LO as ADDR
from psqs.host.dma import CR_RESET as RESET
from psqs.host.dma import CR_RUN as RS
from psqs.host.dma import DMACR, DMASR, LENGTH, MM2S, S2MM  # noqa: F401  (MM2S: channel base, public here)
from psqs.host.dma import SR_DECODE_ERROR as DEC_ERR
from psqs.host.dma import SR_HALTED as HALTED
from psqs.host.dma import SR_IDLE as IDLE
from psqs.host.dma import SR_INTERNAL_ERROR as INT_ERR
from psqs.host.dma import SR_IOC as IOC_IRQ
from psqs.host.dma import SR_SLAVE_ERROR as SLV_ERR

from .clock import CycleClock
from .errors import BusError
from .faults import Fault
from .memory import DdrMemory
from .stream import ModelStream

log = logging.getLogger(__name__)

DMACR_RESERVED_ONE = 1 << 1
DMACR_WRITABLE = RS | (1 << 3) | (1 << 4) | (0x7 << 12) | (0xFF << 16) | (0xFF << 24)
DMACR_RESET_VALUE = (1 << 16) | DMACR_RESERVED_ONE     # IRQThreshold = 1
DLY_IRQ, ERR_IRQ = 1 << 13, 1 << 14
BUS_ERROR_BITS = {"decode": DEC_ERR, "slave": SLV_ERR}


@dataclass(frozen=True)
class DmaConfig:
    """The DMA's build parameters, from the package's ``.hwh``."""

    addr_width: int
    length_width: int
    mm2s_mm_bytes: int
    s2mm_mm_bytes: int
    mm2s_stream_bytes: int
    s2mm_stream_bytes: int
    mm2s_dre: bool
    s2mm_dre: bool


@dataclass
class _Transfer:
    addr: int
    nbytes: int
    start: int                   # cycle of the LENGTH write
    fault: Fault | None
    moved: int = 0               # bytes read (MM2S) or written (S2MM)
    done_at: int | None = None   # cycle of completion
    ready_from: int = 0          # S2MM: earliest cycle of the next beat


class _Channel:
    def __init__(self, name: str, mm_bytes: int, dre: bool, length_width: int, addr_width: int):
        self.name, self.mm_bytes, self.dre = name, mm_bytes, dre
        self.length_mask = (1 << length_width) - 1
        self.addr_width = addr_width
        self.reset()

    def reset(self) -> None:
        self.dmacr = DMACR_RESET_VALUE
        self.addr = 0
        self.length = 0
        self.xfer: _Transfer | None = None
        self.error_bits, self.error_at = 0, None
        self.ioc_at: int | None = None
        self.err_irq_cleared = False

    def errored(self, now: int) -> bool:
        return self.error_at is not None and self.error_at <= now

    def busy(self, now: int) -> bool:
        """A transfer is under way at ``now`` (started, neither complete nor ended by an error)."""
        if self.xfer is None or self.errored(now):
            return False
        return self.xfer.done_at is None or self.xfer.done_at > now

    def active(self) -> bool:
        """The transfer still has data to move (whatever the cycle)."""
        return self.xfer is not None and self.xfer.done_at is None and self.error_at is None

    def fail(self, bits: int, at: int, why: str) -> None:
        if self.error_at is None:
            log.warning("DMA %s error (DMASR 0x%x) at cycle %d: %s", self.name, bits, at, why)
            self.error_bits, self.error_at = bits, at

    def complete(self, at: int) -> None:
        self.xfer.done_at = at
        self.ioc_at = at

    def status(self, now: int) -> int:
        errored = self.errored(now)
        running = bool(self.dmacr & RS) and not errored
        halted = errored or (not running and not self.busy(now))
        word = (self.dmacr >> 16 & 0xFF) << 16           # IRQThresholdSts
        if halted:
            word |= HALTED
        elif self.xfer is not None and not self.busy(now):
            word |= IDLE
        if errored:
            word |= self.error_bits | (0 if self.err_irq_cleared else ERR_IRQ)
        if self.ioc_at is not None and self.ioc_at <= now:
            word |= IOC_IRQ
        return word

    def control(self, now: int) -> int:
        return self.dmacr & ~RS if self.errored(now) else self.dmacr


class AxiDma:
    """One AXI DMA: two channels moving data between DDR and the model IP's streams."""

    def __init__(self, config: DmaConfig, memory: DdrMemory, stream: ModelStream, cycles: CycleClock,
                 next_fault: Callable[[], Fault | None]):
        if (config.mm2s_stream_bytes, config.s2mm_stream_bytes) != (stream.in_bytes, stream.out_bytes):
            raise ValueError(f"DMA stream widths {config.mm2s_stream_bytes}/{config.s2mm_stream_bytes} bytes differ "
                             f"from the model IP's {stream.in_bytes}/{stream.out_bytes}")
        self.config, self.memory, self.stream, self.cycles = config, memory, stream, cycles
        self._next_fault = next_fault
        self.mm2s = _Channel("MM2S", config.mm2s_mm_bytes, config.mm2s_dre, config.length_width, config.addr_width)
        self.s2mm = _Channel("S2MM", config.s2mm_mm_bytes, config.s2mm_dre, config.length_width, config.addr_width)

    def _channel(self, offset: int) -> tuple[_Channel | None, int]:
        if offset < S2MM:
            return self.mm2s, offset
        if offset < 2 * S2MM:
            return self.s2mm, offset - S2MM
        return None, offset

    # ---------------------------------------------------------------- register interface
    def read32(self, offset: int) -> int:
        channel, reg = self._channel(offset)
        now = self.cycles.now()
        if channel is None:
            return 0
        if reg == DMACR:
            return channel.control(now)
        if reg == DMASR:
            return channel.status(now)
        if reg == ADDR:
            return channel.addr & 0xFFFFFFFF
        if reg == ADDR_MSB:
            return channel.addr >> 32 if channel.addr_width > 32 else 0
        if reg == LENGTH:
            xfer = channel.xfer
            if channel is self.s2mm and xfer is not None and xfer.done_at is not None and xfer.done_at <= now:
                return xfer.moved
            return channel.length
        return 0

    def write32(self, offset: int, value: int) -> None:
        channel, reg = self._channel(offset)
        now = self.cycles.now()
        if channel is None:
            return
        if reg == DMACR:
            if value & RESET:
                self.reset(now)
                return
            if not channel.errored(now):           # after an error only a reset restarts the channel
                channel.dmacr = (value & DMACR_WRITABLE) | DMACR_RESERVED_ONE
        elif reg == DMASR:
            if value & IOC_IRQ and channel.ioc_at is not None and channel.ioc_at <= now:
                channel.ioc_at = None
            if value & ERR_IRQ and channel.errored(now):
                channel.err_irq_cleared = True
        elif reg == ADDR:
            channel.addr = (channel.addr & ~0xFFFFFFFF) | (value & 0xFFFFFFFF)
        elif reg == ADDR_MSB and channel.addr_width > 32:
            channel.addr = (channel.addr & 0xFFFFFFFF) | ((value & 0xFFFFFFFF) << 32)
        elif reg == LENGTH:
            self._start(channel, value & 0xFFFFFFFF, now)

    def reset(self, now: int) -> None:
        """DMACR.Reset: both channels to their reset state, in-flight data dropped, stream path reset."""
        log.info("DMA soft reset at cycle %d", now)
        self.mm2s.reset()
        self.s2mm.reset()
        self.stream.reset()

    # ---------------------------------------------------------------- transfers
    def _start(self, ch: _Channel, value: int, now: int) -> None:
        if not ch.dmacr & RS or ch.errored(now):
            log.warning("DMA %s: LENGTH written while halted: no effect", ch.name)
            return
        if ch.busy(now):
            log.warning("DMA %s: LENGTH written during a transfer: ignored", ch.name)
            return
        ch.length = value & ch.length_mask
        fault = self._next_fault() if ch is self.mm2s else None
        ch.xfer = _Transfer(ch.addr, ch.length, now, fault)
        if value > ch.length_mask:
            ch.fail(INT_ERR, now, f"length {value} exceeds the {ch.length_mask.bit_length()}-bit LENGTH register")
        elif value == 0:
            ch.fail(INT_ERR, now, "zero length")
        elif ch.addr % ch.mm_bytes and not ch.dre:
            ch.fail(INT_ERR, now, f"address 0x{ch.addr:x} not aligned to the {ch.mm_bytes}-byte memory map "
                                  "width and no realignment engine")
        elif fault is not None and fault.kind in ("decode-error", "slave-error"):
            kind = fault.kind.split("-")[0]
            ch.fail(BUS_ERROR_BITS[kind], now, f"fault: injected AXI {kind} error reading 0x{ch.addr:x}")
        else:
            self._pump(now)

    def _s2mm_capacity(self) -> int:
        """Beats the S2MM channel will still take (stopping at a queued TLAST)."""
        if not self.s2mm.active():
            return 0
        xfer, width = self.s2mm.xfer, self.stream.out_bytes
        beats = -(-(xfer.nbytes - xfer.moved) // width)
        to_tlast = self.stream.beats_to_tlast()
        return beats if to_tlast is None else min(beats, to_tlast)

    def _pump(self, now: int) -> None:
        """Move data until neither channel can progress (a transfer waits for the other side)."""
        progress = True
        while progress:
            progress = self._drain(now)
            progress = self._feed(now) or progress

    def _feed(self, now: int) -> bool:
        ch = self.mm2s
        if not ch.active():
            return False
        xfer, width = ch.xfer, self.stream.in_bytes
        remaining = xfer.nbytes - xfer.moved
        beats = min(-(-remaining // width), self.stream.beats_for(self.stream.room(self._s2mm_capacity())))
        if beats == 0:
            return False
        nbytes = min(beats * width, remaining)
        try:
            data = self.memory.dma_read(xfer.addr + xfer.moved, nbytes)
        except BusError as exc:
            ch.fail(BUS_ERROR_BITS[exc.kind], now, str(exc))
            return False
        if nbytes % width:
            log.warning("DMA MM2S: transfer of %d bytes ends mid-beat; the last beat is zero-padded", xfer.nbytes)
            data = np.concatenate([data, np.zeros(beats * width - nbytes, dtype=np.uint8)])
        xfer.moved += nbytes
        last_beat = self.stream.feed(data, xfer.moved == xfer.nbytes, max(now, xfer.start), xfer.fault)
        if xfer.fault is not None and xfer.fault.kind in ("hang", "stall"):
            xfer.fault = None     # these act once, on the transfer's first beats; no-tlast on all of them
        if xfer.moved == xfer.nbytes:
            ch.complete(last_beat + 1)
        return True

    def _drain(self, now: int) -> bool:
        ch = self.s2mm
        if not ch.active():
            return False
        xfer, width = ch.xfer, self.stream.out_bytes
        data, last, delivered = self.stream.take(-(-(xfer.nbytes - xfer.moved) // width),
                                                 max(xfer.ready_from, xfer.start))
        if last.size == 0:
            return False
        nbytes = min(data.size, xfer.nbytes - xfer.moved)
        try:
            self.memory.dma_write(xfer.addr + xfer.moved, data[:nbytes])
        except BusError as exc:
            ch.fail(BUS_ERROR_BITS[exc.kind], int(delivered[0]), str(exc))
            return True
        xfer.moved += nbytes
        xfer.ready_from = int(delivered[-1]) + 1
        if last[-1]:
            ch.complete(int(delivered[-1]) + 1)
        elif xfer.moved == xfer.nbytes:
            ch.fail(INT_ERR, int(delivered[-1]) + 1, f"S2MM buffer of {xfer.nbytes} bytes full before TLAST")
        return True
