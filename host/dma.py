"""AXI DMA (simple mode) driver whose every wait has a deadline and whose errors say what they mean.

pynq's own ``pynq.lib.dma.DMA`` polls the status register until the channel is idle, forever: a
model IP that never finishes its output (no TLAST, a hung core, a transfer that is not a whole
number of samples) hangs the host with it, and over PYNQ.remote each poll is a network round
trip. This driver keeps pynq's semantics (same registers, buffers from ``pynq.allocate``) and
adds deadlines, decoded error bits and a reset that makes the next transfer work again.

Registers (PG021, simple mode): MM2S at 0x00, S2MM at 0x30, each with DMACR, DMASR, the buffer
address (two words) and LENGTH, which is written last and starts the transfer; S2MM LENGTH reads
back the number of bytes actually received.

It is not registered for the AXI DMA's VLNV: that would silently replace pynq's DMA driver for
every other overlay in the process. :class:`psqs.host.accelerator.Accelerator` binds it
explicitly to the DMA its package names, after checking the VLNV.
"""
from __future__ import annotations

import time

from psqs.common.errors import RunFailed

VLNV = "xilinx.com:ip:axi_dma:7.1"

MM2S = 0x00
S2MM = 0x30
DMACR = 0x00
DMASR = 0x04
ADDR_LO = 0x18          # MM2S_SA / S2MM_DA (relative to the channel base)
ADDR_HI = 0x1C
LENGTH = 0x28

CR_RUN = 1 << 0
CR_RESET = 1 << 2
SR_HALTED = 1 << 0
SR_IDLE = 1 << 1
SR_INTERNAL_ERROR = 1 << 4
SR_SLAVE_ERROR = 1 << 5
SR_DECODE_ERROR = 1 << 6
SR_IOC = 1 << 12
SR_ERRORS = SR_INTERNAL_ERROR | SR_SLAVE_ERROR | SR_DECODE_ERROR

ERROR_MEANING = {
    SR_INTERNAL_ERROR: "internal error (DMAIntErr): a zero LENGTH, or a stream packet that does not "
                       "fit the programmed LENGTH",
    SR_SLAVE_ERROR: "slave error (DMASlvErr): the memory answered SLVERR, the buffer is not accessible",
    SR_DECODE_ERROR: "decode error (DMADecErr): no memory at the buffer's physical address "
                     "(an invalid or unmapped address)",
}

#: Polls sleep from this interval, doubling up to the cap: quick transfers return within
#: microseconds; long ones (or a remote board, where each poll is a round trip) poll gently.
POLL_START_S = 20e-6
POLL_CAP_S = 2e-3


class DMAError(RunFailed, RuntimeError):
    """The DMA reported an error; ``status`` holds the DMASR value."""

    def __init__(self, channel: str, status: int):
        meanings = [text for bit, text in ERROR_MEANING.items() if status & bit]
        super().__init__(f"DMA {channel} channel: {'; '.join(meanings)} (DMASR=0x{status:08x})")
        self.status = status


class DMATimeout(RunFailed, TimeoutError):
    """A DMA channel did not finish before its deadline."""


class Channel:
    """One direction of the DMA."""

    def __init__(self, mmio, base: int, name: str, max_bytes: int, align: int):
        self._mmio = mmio
        self._base = base
        self.name = name
        self.max_bytes = max_bytes
        self.align = align
        self._buffer = None

    def status(self) -> int:
        return self._mmio.read(self._base + DMASR)

    def _poll(self, done, timeout: float, what: str) -> int:
        deadline = time.monotonic() + timeout
        delay = POLL_START_S
        while True:
            status = self.status()
            if status & SR_ERRORS:
                raise DMAError(self.name, status)
            if done(status):
                return status
            if time.monotonic() > deadline:
                raise DMATimeout(f"DMA {self.name} channel: {what} not done after {timeout:.3g} s "
                                 f"(DMASR=0x{status:08x})")
            time.sleep(delay)
            delay = min(2 * delay, POLL_CAP_S)

    def start(self, timeout: float = 1.0) -> None:
        self._mmio.write(self._base + DMACR, CR_RUN)
        self._poll(lambda s: not s & SR_HALTED, timeout, "start")

    def wait_reset_done(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._mmio.read(self._base + DMACR) & CR_RESET:
            if time.monotonic() > deadline:
                raise DMATimeout(f"DMA {self.name} channel: reset not done after {timeout:.3g} s")
            time.sleep(POLL_START_S)
        self._buffer = None

    def transfer(self, buffer, nbytes: int) -> None:
        """Start moving the first ``nbytes`` of ``buffer`` (a ``pynq.allocate`` buffer)."""
        if not 0 < nbytes <= self.max_bytes:
            raise ValueError(f"DMA {self.name}: transfer of {nbytes} bytes outside 1..{self.max_bytes}")
        if nbytes > buffer.nbytes:
            raise ValueError(f"DMA {self.name}: {nbytes} bytes requested from a {buffer.nbytes}-byte buffer")
        address = buffer.physical_address
        if address % self.align:
            raise ValueError(f"DMA {self.name}: buffer address 0x{address:x} not aligned to {self.align} bytes")
        status = self.status()
        if status & SR_HALTED:
            raise DMAError(self.name, status) if status & SR_ERRORS else RuntimeError(
                f"DMA {self.name} channel is halted (DMASR=0x{status:08x}); reset it")
        if self._buffer is not None and not status & SR_IDLE:
            raise RuntimeError(f"DMA {self.name} channel is busy with the previous transfer")
        if self.name == "MM2S":
            buffer.flush()
        self._mmio.write(self._base + ADDR_LO, address & 0xFFFFFFFF)
        self._mmio.write(self._base + ADDR_HI, (address >> 32) & 0xFFFFFFFF)
        self._mmio.write(self._base + LENGTH, nbytes)
        self._buffer = buffer

    def wait(self, timeout: float) -> int:
        """Block until the transfer is done; returns the bytes moved (S2MM: bytes received)."""
        self.wait_idle(timeout)
        return self.complete()

    def wait_idle(self, timeout: float) -> None:
        """The waiting half of :meth:`wait`: poll until the channel is idle, then clear IOC."""
        if self._buffer is None:
            raise RuntimeError(f"DMA {self.name}: wait without a transfer")
        self._poll(lambda s: s & SR_IDLE, timeout, "transfer")
        self._mmio.write(self._base + DMASR, SR_IOC)    # write 1 to clear

    def complete(self) -> int:
        """The data half of :meth:`wait`, after :meth:`wait_idle`: invalidate the S2MM buffer (a
        download over PYNQ.remote); returns the bytes moved (S2MM: bytes received)."""
        if self.name == "S2MM":
            self._buffer.invalidate()
        moved = self._mmio.read(self._base + LENGTH)
        self._buffer = None
        return moved


class SimpleDMA:
    """Both channels of an AXI DMA in simple mode, from its pynq ``ip_dict`` entry."""

    def __init__(self, description: dict, mmio=None):
        if description.get("type") != VLNV:
            raise ValueError(f"{description.get('fullpath')}: IP type {description.get('type')!r} is not {VLNV}")
        params = description.get("parameters", {})
        if int(params.get("c_include_sg", 0)):
            raise ValueError(f"{description.get('fullpath')}: scatter-gather DMA; psqs drives simple mode only")
        if mmio is None:
            from pynq import MMIO

            mmio = MMIO(description["phys_addr"], description["addr_range"], device=description.get("device"))
        self.mmio = mmio
        self.max_bytes = (1 << int(params.get("c_sg_length_width", 14))) - 1
        self.mm2s = Channel(mmio, MM2S, "MM2S", self.max_bytes, int(params["c_m_axi_mm2s_data_width"]) // 8)
        self.s2mm = Channel(mmio, S2MM, "S2MM", self.max_bytes, int(params["c_m_axi_s2mm_data_width"]) // 8)

    def start(self, timeout: float = 1.0) -> None:
        self.mm2s.start(timeout)
        self.s2mm.start(timeout)

    def reset(self, timeout: float = 1.0) -> None:
        """Soft reset (clears errors, aborts transfers), then start both channels.

        PG021: the reset bit of either channel resets the whole DMA (and, through its reset
        outputs, the stream IPs behind it), so it is written once, then both channels start.
        """
        self.mmio.write(MM2S + DMACR, CR_RESET)
        self.mm2s.wait_reset_done(timeout)
        self.s2mm.wait_reset_done(timeout)
        self.start(timeout)
