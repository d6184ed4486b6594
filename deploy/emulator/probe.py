"""The stream probe IP as a register model driven by the emulated streams' beat times.

The register map, field positions, reset values and implemented widths all come from
:mod:`psqs.host.stream_probe_regs` (the map the Verilog, the IP-XACT file and the host driver are
generated from); this module supplies only what each register *means*, following
``overlays/ip/stream_probe/hdl/stream_probe.v`` at transaction level:

- an input transfer starts at the first input beat after a TLAST; its start cycle waits in a
  ring of FIFO_DEPTH slots (a start arriving with the ring full is dropped: STATUS.OVERFLOW);
- the first beat of an output transfer pairs with the oldest pending start (none pending:
  STATUS.UNMATCHED) and gives LAST_LATENCY (and MIN/MAX_LATENCY); its TLAST beat gives
  LAST_TRANSFER_TIME, frees the slot and counts TRANSFERS; a start and an output beat in the
  same cycle measure 0;
- beats are counted and transfers measured only while CTRL.ENABLE is set; CYCLES always runs;
- reading the LO word of a 64-bit register latches its HI word; CTRL.CLEAR zeroes everything.

The stream path reports beats with the cycles they cross the probe, which may lie ahead of the
present (the emulator computes a transfer at once); events are applied lazily, in cycle order,
up to the cycle of each register access, so a register read mid-transfer shows what the fabric
would show at that cycle. Not modelled: MIN/MAX_LATENCY lagging LAST_LATENCY by one cycle, CLEAR
taking effect one cycle after its write, and a start entering a full ring in the very cycle a
finish frees a slot.
"""
from __future__ import annotations

import heapq
import itertools
from collections import deque

import numpy as np
from psqs.host import stream_probe_regs as regs

from .clock import CycleClock

_MODELLED = {"ID", "VERSION", "CONFIG", "CTRL", "STATUS", "CYCLES", "IN_BEATS", "OUT_BEATS", "TRANSFERS",
             "LAST_LATENCY", "LAST_TRANSFER_TIME", "MIN_LATENCY", "MAX_LATENCY"}
_UNMODELLED = sorted(set(regs.BY_NAME) - _MODELLED)
if _UNMODELLED:
    raise ImportError(f"psqs.host.stream_probe_regs defines registers the emulator does not model: "
                      f"{', '.join(_UNMODELLED)}; teach psqs.deploy.emulator.probe what they mean")

# event priorities within one cycle: a start before the output beat it may pair with (bypass)
_IN_START, _OUT_FIRST, _OUT_LAST, _IN_END = range(4)
_CTRL, _STATUS = regs.register("CTRL"), regs.register("STATUS")
_WORDS = {offset: (name, reg) for name, offset, reg in regs.words()}


def _fields(reg: regs.Register, **values: int) -> int:
    word = 0
    for name, value in values.items():
        f = reg.field(name)
        word |= (int(value) << f.lsb) & f.mask
    return word


class StreamProbe:
    """One stream probe instance, its counters in cycles of ``cycles``."""

    def __init__(self, cycles: CycleClock, fifo_depth: int, bytes_in: int, bytes_out: int):
        self.cycles = cycles
        self.fifo_depth = fifo_depth
        self.config_word = regs.encode_config(fifo_depth, 8 * bytes_in, 8 * bytes_out)
        self._seq = itertools.count()
        self.reset()

    # ---------------------------------------------------------------- state
    def reset(self) -> None:
        """Power-on / PL reset: registers to their reset values, no beats in flight."""
        self.enable = bool(_CTRL.field("ENABLE").extract(_CTRL.reset))
        self.in_busy = self.out_busy = False
        self._gen_in_busy = self._gen_out_busy = False
        self._events: list = []
        self._segments: list[list] = []   # [times, n counted, "in"|"out"]
        self._clear(self.cycles.now())

    def _clear(self, now: int) -> None:
        self.cycles_base = now
        self.counts = {"IN_BEATS": 0, "OUT_BEATS": 0, "TRANSFERS": 0}
        self.pending: deque[int] = deque()
        self.matched = False
        self.overflow = self.unmatched = False
        self.last_latency = self.last_transfer_time = 0
        self.min_latency, self.max_latency = regs.register("MIN_LATENCY").reset, regs.register("MAX_LATENCY").reset
        self.latched_hi = {reg.name: reg.reset >> 32 for reg in regs.REGISTERS if reg.width == 64}

    # ---------------------------------------------------------------- observation
    def _push(self, time: int, priority: int) -> None:
        heapq.heappush(self._events, (int(time), priority, next(self._seq)))

    def observe(self, stream: str, times: np.ndarray, last: np.ndarray) -> None:
        """Beats crossing the probe's ``stream`` ("in" or "out") at ``times``, TLAST flags ``last``."""
        if times.size == 0:
            return
        last = last.astype(bool)
        busy = self._gen_in_busy if stream == "in" else self._gen_out_busy
        first = np.concatenate([[not busy], last[:-1]])
        start, end = (_IN_START, _IN_END) if stream == "in" else (_OUT_FIRST, _OUT_LAST)
        for t in times[first]:
            self._push(t, start)
        for t in times[last]:
            self._push(t, end)
        if stream == "in":
            self._gen_in_busy = not last[-1]
        else:
            self._gen_out_busy = not last[-1]
        self._segments.append([times, 0, stream])

    def _advance(self, now: int) -> None:
        for segment in self._segments:
            times, counted, stream = segment
            upto = int(np.searchsorted(times, now, side="right"))
            if upto > counted and self.enable:
                self.counts["IN_BEATS" if stream == "in" else "OUT_BEATS"] += upto - counted
            segment[1] = max(counted, upto)
        self._segments = [s for s in self._segments if s[1] < s[0].size]
        while self._events and self._events[0][0] <= now:
            time, kind, _ = heapq.heappop(self._events)
            self._apply(time, kind)

    def _apply(self, time: int, kind: int) -> None:
        if kind == _IN_START:
            self.in_busy = True
            if self.enable:
                if len(self.pending) < self.fifo_depth:
                    self.pending.append(time)
                else:
                    self.overflow = True
        elif kind == _IN_END:
            self.in_busy = False
        elif kind == _OUT_FIRST:
            self.out_busy = True
            self.matched = bool(self.enable and self.pending)
            if self.matched:
                self.last_latency = time - self.pending[0]
                self.min_latency = min(self.min_latency, self.last_latency)
                self.max_latency = max(self.max_latency, self.last_latency)
            elif self.enable:
                self.unmatched = True
        elif kind == _OUT_LAST:
            self.out_busy = False
            if self.enable and self.matched:
                self.last_transfer_time = time - self.pending.popleft()
                self.counts["TRANSFERS"] += 1
            self.matched = False

    # ---------------------------------------------------------------- registers
    def _value(self, name: str, now: int) -> int:
        if name in ("ID", "VERSION"):
            return regs.register(name).reset
        if name == "CONFIG":
            return self.config_word
        if name == "CTRL":
            return _fields(_CTRL, ENABLE=self.enable)
        if name == "STATUS":
            return _fields(_STATUS, OVERFLOW=self.overflow, UNMATCHED=self.unmatched, IN_BUSY=self.in_busy,
                           OUT_BUSY=self.out_busy, PENDING=len(self.pending))
        if name == "CYCLES":
            return now - self.cycles_base
        if name in self.counts:
            return self.counts[name]
        return {"LAST_LATENCY": self.last_latency, "LAST_TRANSFER_TIME": self.last_transfer_time,
                "MIN_LATENCY": self.min_latency, "MAX_LATENCY": self.max_latency}[name]

    def read32(self, offset: int) -> int:
        offset &= regs.ADDRESS_SPAN - 1   # higher address bits are not decoded (the block aliases)
        if offset not in _WORDS:
            return 0
        word, reg = _WORDS[offset]
        now = self.cycles.now()
        self._advance(now)
        if reg.width == 32:
            return self._value(reg.name, now) & 0xFFFFFFFF
        if word.endswith("_HI"):
            return self.latched_hi[reg.name]
        value = self._value(reg.name, now) & ((1 << reg.implemented) - 1)
        self.latched_hi[reg.name] = value >> 32
        return value & 0xFFFFFFFF

    def write32(self, offset: int, value: int) -> None:
        offset &= regs.ADDRESS_SPAN - 1
        if offset != _CTRL.offset:
            return                                 # read-only or unmapped: ignored
        now = self.cycles.now()
        self._advance(now)
        self.enable = bool(_CTRL.field("ENABLE").extract(value))
        if _CTRL.field("CLEAR").extract(value):
            self._clear(now)
