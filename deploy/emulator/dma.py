"""AXI DMA (PG021) in Direct Register (simple) mode: the register model pynq's DMA driver relies on.

Per channel (MM2S at 0x00, S2MM at 0x30): DMACR (RS bit 0, Reset bit 2, the interrupt enables
and thresholds; bit 1 reads 1), DMASR (Halted, Idle, DMAIntErr, DMASlvErr, DMADecErr, and the
write-1-to-clear IOC_Irq / Err_Irq), the address (and its MSB half when the DMA has more than 32
address bits), and LENGTH, whose write starts a transfer. What the driver sees:

- after RS=1 the channel runs (Halted=0) but reads Idle=0 until its first transfer completes;
- a transfer completes at the fabric cycle :mod:`.timing` gives it: MM2S when its last beat
  entered the model IP, S2MM when it wrote the beat carrying TLAST or filled LENGTH; then Idle=1
  and IOC_Irq=1, and S2MM LENGTH reads back the bytes actually written;
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

The engine runs beside the CPU, as on a board: a LENGTH write only records the transfer (its
fabric cycle and its wall-clock second, see :mod:`.clock`) and hands the data movement to the
board's :class:`Worker` thread, which computes the model's outputs (:mod:`.stream`) without
holding the board's lock, so the write returns at once and a host's wait holds the model's time,
as it would hold the fabric's. A completion, or an error found while moving data, shows in DMASR
only when both hold: the worker has finished that data, and the wall clock has passed the
LENGTH write plus the transfer's fabric duration at the current PL clock (a ``stall=3000`` fault
shows 3 s later; a ``hang`` never completes). Errors found in the LENGTH write itself show at
once. Any access to a channel's registers is the host observing that channel: fabric time
(:class:`.clock.CycleClock`) moves to the cycle of the event it reveals, and only then; what the
host does in between happens at the current fabric cycle.

A reset while the worker computes starts a new generation: the worker's results for the old one
are dropped (they reach neither the output stream nor DDR), and so are its queued jobs.

Faults (``--fault KIND@N``) are counted in MM2S transfers: the N-th is the N-th LENGTH write to the
MM2S channel that starts a transfer (channel running and not busy, whether the transfer then
completes or fails), counted from when the fault was armed (for ``--fault``: the emulator's
start), across DMA resets and overlay downloads. A LENGTH write that has no effect (halted or busy
channel) is not counted, so a host that counts its own ``transfer()`` calls on the MM2S channel
knows which one a fault hits.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent import futures
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


class Worker:
    """The fabric of one board: a single thread that moves the DMA's data and computes the model
    IP's outputs, in the order the transfers were started, beside the threads serving the host."""

    def __init__(self, name: str = "psqs-fabric"):
        self._pool = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._pending: list[futures.Future] = []

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            self._pending = [f for f in self._pending if not f.done()]
            self._pending.append(self._pool.submit(self._run, job))

    @staticmethod
    def _run(job: Callable[[], None]) -> None:
        try:
            job()
        except Exception:   # a bug or a broken model library: the transfer never completes, the board goes on
            log.exception("fabric worker: a DMA transfer failed inside the emulator")

    def settle(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until every job submitted so far has run; True if they have."""
        with self._lock:
            pending = list(self._pending)
        return not futures.wait(pending, timeout=timeout).not_done

    def close(self) -> None:
        with self._lock:          # cancel_futures= (Python 3.9+) by hand: the image of PYNQ v2.7 has 3.8
            for job in self._pending:
                job.cancel()
        self._pool.shutdown(wait=False)


@dataclass
class _Transfer:
    addr: int
    nbytes: int
    start: int                   # fabric cycle of the LENGTH write
    armed: float                 # wall-clock second of the LENGTH write
    fault: Fault | None
    moved: int = 0               # bytes read (MM2S) or written (S2MM)
    done_at: int | None = None   # cycle of completion (set by the worker)
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
        self.error_bits, self.error_at = 0, None   # found (by the worker, or at LENGTH)
        self.errored = self.done = False           # ... and seen by the host
        self.ioc = False
        self.err_irq_cleared = False

    def observe(self, cycles: CycleClock, not_before: Callable[[int], float]) -> None:
        """The host looks at this channel: reveal the event the fabric would have reached by now
        (``not_before(cycle)``: the wall-clock second before which ``cycle`` cannot have come),
        and move fabric time to it."""
        xfer = self.xfer
        if xfer is None or self.errored or self.done:
            return
        at = self.error_at if self.error_at is not None else xfer.done_at
        if at is None or cycles.wall() < not_before(at):
            return
        if self.error_at is not None:
            self.errored = True
        else:
            self.done = self.ioc = True
        cycles.advance_to(at)

    def busy(self) -> bool:
        """The host sees a transfer under way (started, neither complete nor ended by an error)."""
        return self.xfer is not None and not (self.errored or self.done)

    def active(self) -> bool:
        """The transfer still has data to move (the worker's view)."""
        return self.xfer is not None and self.xfer.done_at is None and self.error_at is None

    def fail(self, bits: int, at: int, why: str) -> None:
        if self.error_at is None:
            log.warning("DMA %s error (DMASR 0x%x) at cycle %d: %s", self.name, bits, at, why)
            self.error_bits, self.error_at = bits, at

    def complete(self, at: int) -> None:
        self.xfer.done_at = at

    def status(self) -> int:
        running = bool(self.dmacr & RS) and not self.errored
        halted = self.errored or (not running and not self.busy())
        word = (self.dmacr >> 16 & 0xFF) << 16           # IRQThresholdSts
        if halted:
            word |= HALTED
        elif self.xfer is not None and not self.busy():
            word |= IDLE
        if self.errored:
            word |= self.error_bits | (0 if self.err_irq_cleared else ERR_IRQ)
        if self.ioc:
            word |= IOC_IRQ
        return word

    def control(self) -> int:
        return self.dmacr & ~RS if self.errored else self.dmacr


class AxiDma:
    """One AXI DMA: two channels moving data between DDR and the model IP's streams.

    ``lock`` (re-entrant) guards the register state; the board passes the lock its register
    accesses already hold. ``worker`` is the board's fabric thread.
    """

    def __init__(self, config: DmaConfig, memory: DdrMemory, stream: ModelStream, cycles: CycleClock,
                 next_fault: Callable[[], Fault | None], worker: Worker, lock: threading.RLock | None = None):
        if (config.mm2s_stream_bytes, config.s2mm_stream_bytes) != (stream.in_bytes, stream.out_bytes):
            raise ValueError(f"DMA stream widths {config.mm2s_stream_bytes}/{config.s2mm_stream_bytes} bytes differ "
                             f"from the model IP's {stream.in_bytes}/{stream.out_bytes}")
        self.config, self.memory, self.stream, self.cycles = config, memory, stream, cycles
        self._next_fault, self.worker = next_fault, worker
        self.lock = lock if lock is not None else threading.RLock()
        self.generation = 0
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
        if channel is None:
            return 0
        with self.lock:
            channel.observe(self.cycles, self._not_before)
            if reg == DMACR:
                return channel.control()
            if reg == DMASR:
                return channel.status()
            if reg == ADDR:
                return channel.addr & 0xFFFFFFFF
            if reg == ADDR_MSB:
                return channel.addr >> 32 if channel.addr_width > 32 else 0
            if reg == LENGTH:
                if channel is self.s2mm and channel.done:
                    return channel.xfer.moved
                return channel.length
            return 0

    def write32(self, offset: int, value: int) -> None:
        channel, reg = self._channel(offset)
        if channel is None:
            return
        with self.lock:
            channel.observe(self.cycles, self._not_before)
            if reg == DMACR:
                if value & RESET:
                    self.reset()
                elif not channel.errored:            # after an error only a reset restarts the channel
                    channel.dmacr = (value & DMACR_WRITABLE) | DMACR_RESERVED_ONE
            elif reg == DMASR:
                if value & IOC_IRQ:
                    channel.ioc = False
                if value & ERR_IRQ and channel.errored:
                    channel.err_irq_cleared = True
            elif reg == ADDR:
                channel.addr = (channel.addr & ~0xFFFFFFFF) | (value & 0xFFFFFFFF)
            elif reg == ADDR_MSB and channel.addr_width > 32:
                channel.addr = (channel.addr & 0xFFFFFFFF) | ((value & 0xFFFFFFFF) << 32)
            elif reg == LENGTH:
                self._start(channel, value & 0xFFFFFFFF)

    def _not_before(self, cycle: int) -> float:
        """The wall-clock second before which fabric ``cycle`` cannot have come: each transfer's
        LENGTH write pins its start cycle to its wall-clock second, and the fabric runs no faster
        than its clock from there (so an S2MM transfer armed first still completes no sooner than
        the MM2S transfer that feeds it allows)."""
        anchors = [x for x in (self.mm2s.xfer, self.s2mm.xfer) if x is not None and x.start <= cycle]
        return max((x.armed + self.cycles.seconds(cycle - x.start) for x in anchors), default=0.0)

    def reset(self) -> None:
        """DMACR.Reset: both channels to their reset state, in-flight data dropped (the worker's
        too), stream path reset."""
        with self.lock:
            log.info("DMA soft reset at cycle %d", self.cycles.now())
            self.generation += 1
            self.mm2s.reset()
            self.s2mm.reset()
            self.stream.reset()

    def close(self) -> None:
        """The overlay is gone (PL cleared or reprogrammed): void whatever the worker still has."""
        with self.lock:
            self.generation += 1
            self.stream.reset()

    def settle(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) for the worker to finish what was started so far."""
        return self.worker.settle(timeout)

    # ---------------------------------------------------------------- transfers
    def _start(self, ch: _Channel, value: int) -> None:
        if not ch.dmacr & RS or ch.errored:
            log.warning("DMA %s: LENGTH written while halted: no effect", ch.name)
            return
        if ch.busy():
            log.warning("DMA %s: LENGTH written during a transfer: ignored", ch.name)
            return
        now = self.cycles.now()
        ch.length = value & ch.length_mask
        fault = self._next_fault() if ch is self.mm2s else None
        ch.xfer, ch.done = _Transfer(ch.addr, ch.length, now, self.cycles.wall(), fault), False
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
            generation = self.generation
            self.worker.submit(lambda: self._pump(generation, now))

    def _s2mm_capacity(self) -> int:
        """Beats the S2MM channel will still take (stopping at a queued TLAST)."""
        if not self.s2mm.active():
            return 0
        xfer, width = self.s2mm.xfer, self.stream.out_bytes
        beats = -(-(xfer.nbytes - xfer.moved) // width)
        to_tlast = self.stream.beats_to_tlast()
        return beats if to_tlast is None else min(beats, to_tlast)

    def _pump(self, generation: int, now: int) -> None:
        """The worker's job for a LENGTH write at cycle ``now``: move data until neither channel can
        progress (a transfer waits for the other side), unless a reset voided it."""
        with self.lock:
            progress = True
            while progress and self.generation == generation:
                progress = self._drain()
                progress = self._feed(generation, now) or progress

    def _feed(self, generation: int, now: int) -> bool:
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
            ch.fail(BUS_ERROR_BITS[exc.kind], max(now, xfer.start), str(exc))
            return False
        if nbytes % width:
            log.warning("DMA MM2S: transfer of %d bytes ends mid-beat; the last beat is zero-padded (TKEEP low)",
                        xfer.nbytes)
            data = np.concatenate([data, np.zeros(beats * width - nbytes, dtype=np.uint8)])
        xfer.moved += nbytes
        push = self.stream.accept(data, xfer.moved == xfer.nbytes, max(now, xfer.start), xfer.fault, nbytes)
        if push is not None:
            self.lock.release()              # the fabric computes; the host's register accesses go on
            try:
                self.stream.compute(push)
            finally:
                self.lock.acquire()
            if self.generation != generation or not self.stream.finish(push):
                return False                 # reset meanwhile: the results are void
        if xfer.fault is not None and xfer.fault.kind in ("hang", "stall"):
            xfer.fault = None     # these act once, on the transfer's first beats; no-tlast on all of them
        if xfer.moved == xfer.nbytes:
            ch.complete(self.stream.input_done)
        return True

    def _drain(self) -> bool:
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
