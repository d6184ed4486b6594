"""pynq driver for the stream probe IP (cycle counts measured in the fabric).

Why a probe: timing the model from Python on the board measures Python, the DMA driver and (with
PYNQ.remote) the network as much as the model. The probe counts ``aclk`` cycles on the model's
input and output AXI streams; this driver reads them. Its registers are described once, in
:mod:`psqs.common.stream_probe_regs`. On an emulated board the same registers are filled by the
emulator's model of the streams, so the counts are only as true as the package's timing model;
:func:`psqs.host.bench.fabric_source` labels every figure with where it came from.

Usage on a board (the class binds to the IP's VLNV, like ``pynq.lib.dma.DMA``; importing this
module before ``Overlay(...)`` registers it)::

    import psqs.host.stream_probe
    ol = pynq.Overlay("psqs.bit")
    probe = ol.stream_probe_0
    probe.check_id()
    probe.arm()                      # clear + enable
    ...DMA transfers...
    snap = probe.snapshot()          # ProbeSnapshot: all counters, in cycles

pynq is imported here at class-definition time (this module needs it; the register map module
does not). Tests and the emulator drive the same class through :meth:`StreamProbe.from_mmio`
with any object that has ``read(offset)`` and ``write(offset, value)``.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from pynq import DefaultIP

from psqs.common import stream_probe_regs as regs
from psqs.common.errors import RunFailed

log = logging.getLogger(__name__)

_CTRL = regs.register("CTRL")
_CLEAR = 1 << _CTRL.field("CLEAR").lsb
_ENABLE = 1 << _CTRL.field("ENABLE").lsb
_STATUS = regs.register("STATUS")
_CONFIG = regs.register("CONFIG")


class StreamProbeError(RunFailed, RuntimeError):
    """The IP at this address is not a stream probe this driver understands."""


@dataclass(frozen=True)
class ProbeSnapshot:
    """Every probe counter, in ``aclk`` cycles or beats.

    The latency fields are None while no transfer has been measured since the last CLEAR (the
    hardware then reads 0, or the "none" sentinel for MIN_LATENCY). Each 64-bit value is one
    consistent sample; different registers are read one after another, so take the snapshot
    while the streams are idle if the values must agree with each other.
    """

    cycles: int
    in_beats: int
    out_beats: int
    transfers: int
    last_latency: int | None
    last_transfer_time: int | None
    min_latency: int | None
    max_latency: int | None
    enabled: bool
    overflow: bool
    unmatched: bool
    in_busy: bool
    out_busy: bool
    pending: int

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def valid(self) -> bool:
        """No start was dropped and no output went unmatched: the latencies can be trusted."""
        return not (self.overflow or self.unmatched)

    def output_interval(self) -> float | None:
        """Mean cycles between output beats of the last transfer (its initiation interval in
        beats), from (transfer time - latency) / (beats - 1). Only defined when exactly one
        transfer of more than one output beat was measured since CLEAR, since OUT_BEATS then
        counts that transfer's beats alone."""
        if self.transfers != 1 or self.out_beats < 2 or self.last_transfer_time is None:
            return None
        return (self.last_transfer_time - self.last_latency) / (self.out_beats - 1)


class StreamProbe(DefaultIP):
    """Driver for ``psqs.org:psqs:stream_probe:1.0`` (see ``REGISTERS.md`` of the IP)."""

    bindto = [regs.VLNV]

    def __init__(self, description):
        super().__init__(description=description)

    @classmethod
    def from_mmio(cls, mmio) -> "StreamProbe":
        """A driver on any ``read(offset)``/``write(offset, value)`` object (tests, emulator)."""
        probe = cls.__new__(cls)
        probe.mmio = mmio
        return probe

    # -- raw access ---------------------------------------------------------------------------
    def read_word(self, name: str) -> int:
        """One 32-bit word by name (``CTRL``, ``CYCLES_LO``...), as an unsigned integer.

        (PYNQ.remote returns 32-bit reads as signed integers: masking makes both agree.)
        """
        offset = _word_offset(name)
        return int(self.mmio.read(offset)) & 0xFFFFFFFF

    def read64(self, name: str) -> int:
        """A 64-bit register as one consistent sample: LO (which latches HI), then HI."""
        reg = regs.register(name)
        if reg.width != 64:
            raise regs.RegisterMapError(f"register {name} is {reg.width}-bit, not 64-bit")
        lo = int(self.mmio.read(reg.offset)) & 0xFFFFFFFF
        hi = int(self.mmio.read(reg.offset + 4)) & 0xFFFFFFFF
        return (hi << 32) | lo

    # -- identification -----------------------------------------------------------------------
    def check_id(self) -> None:
        """Raise :class:`StreamProbeError` unless the ID magic and the major version match."""
        magic = self.read_word("ID")
        if magic != regs.ID_MAGIC:
            raise StreamProbeError(
                f"stream probe ID register (offset 0x{regs.register('ID').offset:02X}) reads "
                f"0x{magic:08X}, expected 0x{regs.ID_MAGIC:08X}: wrong base address, or the "
                "bitstream has no probe there")
        version = self.read_word("VERSION")
        major = regs.register("VERSION").field("MAJOR").extract(version)
        if major != regs.VERSION_MAJOR:
            raise StreamProbeError(
                f"stream probe register interface version {major}.x, this driver supports "
                f"{regs.VERSION_MAJOR}.x: update psqs or the bitstream")

    def config(self) -> dict:
        """Build-time parameters of this instance, from the CONFIG register."""
        word = self.read_word("CONFIG")
        return {"FIFO_DEPTH": _CONFIG.field("FIFO_DEPTH").extract(word),
                "DATA_WIDTH_IN": 8 * _CONFIG.field("BYTES_IN").extract(word),
                "DATA_WIDTH_OUT": 8 * _CONFIG.field("BYTES_OUT").extract(word)}

    # -- control ------------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return bool(self.read_word("CTRL") & _ENABLE)

    def clear(self) -> None:
        """Zero all counters and statistics (keeps ENABLE). Call while the streams are idle."""
        self.mmio.write(_CTRL.offset, _CLEAR | (self.read_word("CTRL") & _ENABLE))

    def arm(self, clear: bool = True) -> None:
        """Enable counting, by default after a CLEAR (both in one write)."""
        self.mmio.write(_CTRL.offset, _ENABLE | (_CLEAR if clear else 0))

    def disarm(self) -> None:
        """Stop counting beats and measuring transfers (CYCLES keeps running)."""
        self.mmio.write(_CTRL.offset, 0)

    # -- measurement --------------------------------------------------------------------------
    def snapshot(self) -> ProbeSnapshot:
        status = self.read_word("STATUS")
        ctrl = self.read_word("CTRL")
        values = {name: self.read64(name) for name in
                  ("CYCLES", "IN_BEATS", "OUT_BEATS", "TRANSFERS", "LAST_LATENCY",
                   "LAST_TRANSFER_TIME", "MIN_LATENCY", "MAX_LATENCY")}
        measured = values["MIN_LATENCY"] != regs.NO_LATENCY
        finished = values["TRANSFERS"] > 0
        snap = ProbeSnapshot(
            cycles=values["CYCLES"], in_beats=values["IN_BEATS"], out_beats=values["OUT_BEATS"],
            transfers=values["TRANSFERS"],
            last_latency=values["LAST_LATENCY"] if measured else None,
            last_transfer_time=values["LAST_TRANSFER_TIME"] if finished else None,
            min_latency=values["MIN_LATENCY"] if measured else None,
            max_latency=values["MAX_LATENCY"] if measured else None,
            enabled=bool(ctrl & _ENABLE),
            overflow=bool(_STATUS.field("OVERFLOW").extract(status)),
            unmatched=bool(_STATUS.field("UNMATCHED").extract(status)),
            in_busy=bool(_STATUS.field("IN_BUSY").extract(status)),
            out_busy=bool(_STATUS.field("OUT_BUSY").extract(status)),
            pending=_STATUS.field("PENDING").extract(status))
        if not snap.valid:
            log.warning("stream probe: %s; latencies since the last CLEAR are not reliable",
                        "start FIFO overflowed" if snap.overflow else "unmatched output transfer")
        return snap


def _word_offset(name: str) -> int:
    for word, offset, _ in regs.words():
        if word == name:
            return offset
    raise regs.RegisterMapError(
        f"stream probe has no register word {name!r}; known: {', '.join(w for w, _, _ in regs.words())}")
