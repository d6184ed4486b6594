"""The stream probe IP as a register model driven by the emulated streams' beat times.

The register map, field positions, reset values and implemented widths all come from
:mod:`psqs.common.stream_probe_regs` (the map the Verilog, the IP-XACT file and the host driver are
generated from); this module supplies only what each register *means*, following
``overlays/ip/stream_probe/hdl/stream_probe.v`` cycle by cycle:

- a transfer is delimited by TLAST on its own stream: the first beat after a TLAST (or after a
  CLEAR or reset, which also reset this framing) starts one;
- an input transfer's start cycle waits in a ring of FIFO_DEPTH slots; a start arriving with the
  ring full is dropped (STATUS.OVERFLOW) unless an output transfer finishes in that very cycle and
  frees a slot;
- the first beat of an output transfer pairs with the oldest pending start (none pending:
  STATUS.UNMATCHED) and gives LAST_LATENCY (and MIN/MAX_LATENCY); its TLAST beat gives
  LAST_TRANSFER_TIME, frees the slot and counts TRANSFERS; a start and an output beat in the
  same cycle with nothing else pending measure 0 (the RTL's bypass);
- beats are counted and transfers measured only while CTRL.ENABLE is set; CYCLES always runs;
- reading the LO word of a 64-bit register latches its HI word; CTRL.CLEAR zeroes everything;
  address bits [1:0] and those above the block are not decoded.

The stream path reports beats with the cycles they cross the probe, which may lie ahead of the
present (the emulator computes a transfer at once); beats are applied lazily, in cycle order, up
to the cycle of each register access, so a register read mid-transfer shows what the fabric would
show at that cycle. Beats of one stream must be reported in cycle order, none at a cycle already
passed by a register access. ``tests/test_probe_cosim.py`` plays the same random traces into this
model and into the Verilog (Verilator) and compares every register read.

Correspondence with the RTL, in the cycles of ``cycles`` (edge k of ``aclk`` = cycle k): a beat at
cycle t is the handshake sampled at edge t; a register read at cycle ``now`` returns what an
AXI4-Lite read whose address handshake is at edge now+1 returns (every beat up to cycle ``now``
included); a CTRL write without CLEAR at cycle ``now`` is the write handshake at edge ``now`` (beats
after ``now`` see the new ENABLE); :meth:`reset` at ``now`` is aresetn first sampled high at edge
``now``. Two deliberate simplifications, both because the emulated fabric clock need not advance
between two host accesses, where on a board an AXI4-Lite access takes tens of cycles:

- a write with CLEAR at ``now`` is the RTL's write handshake at edge now-1: the RTL clears one edge
  after the handshake, the model at the write's own cycle, so that a read right after a CLEAR sees
  the cleared registers (CYCLES counts from ``now``);
- MIN/MAX_LATENCY include a latency measured at cycle ``now`` at once; the RTL takes them one edge
  after LAST_LATENCY, so on a board a read exactly one cycle after an output transfer's first beat
  still shows the previous MIN/MAX, in the model a read at the cycle of a single-beat output shows
  its latency.

The 48-bit age counters are not modelled as such: latencies are cycle differences, read modulo
2^48 like the counters' wrapped values; MIN/MAX comparisons past that (10.9 days at 300 MHz) differ.
"""
from __future__ import annotations

import itertools
from collections import deque
from operator import itemgetter

import numpy as np
from psqs.common import stream_probe_regs as regs

from .clock import CycleClock

_MODELLED = {"ID", "VERSION", "CONFIG", "CTRL", "STATUS", "CYCLES", "IN_BEATS", "OUT_BEATS", "TRANSFERS",
             "LAST_LATENCY", "LAST_TRANSFER_TIME", "MIN_LATENCY", "MAX_LATENCY"}
_UNMODELLED = sorted(set(regs.BY_NAME) - _MODELLED)
if _UNMODELLED:
    raise ImportError(f"psqs.common.stream_probe_regs defines registers the emulator does not model: "
                      f"{', '.join(_UNMODELLED)}; teach psqs.deploy.emulator.probe what they mean")

# Events within one cycle sort output first (a finish frees the slot a start needs when the ring
# is full); a start goes first when the ring is empty (it is the output's match: the bypass).
_OUT_FIRST, _OUT_LAST, _IN_START = range(3)
_STREAMS = ("in", "out")
_CTRL, _STATUS = regs.register("CTRL"), regs.register("STATUS")
_WORDS = {offset: (name, reg) for name, offset, reg in regs.words()}
_DECODED = (regs.ADDRESS_SPAN - 1) & ~3


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
        self.reset()

    # ---------------------------------------------------------------- state
    def reset(self) -> None:
        """Power-on / PL reset: registers to their reset values, no beats in flight."""
        self.enable = bool(_CTRL.field("ENABLE").extract(_CTRL.reset))
        self._beats: dict[str, deque[list]] = {s: deque() for s in _STREAMS}   # [times, last, applied]
        self._clear(self.cycles.now())

    def _clear(self, now: int) -> None:
        self.cycles_base = now
        self.counts = {"IN_BEATS": 0, "OUT_BEATS": 0, "TRANSFERS": 0}
        self.busy = {s: False for s in _STREAMS}      # inside a transfer: first beat seen, TLAST not yet
        self.pending: deque[int] = deque()
        self.matched = False
        self.overflow = self.unmatched = False
        self.last_latency = self.last_transfer_time = 0
        self.min_latency, self.max_latency = regs.register("MIN_LATENCY").reset, regs.register("MAX_LATENCY").reset
        self.latched_hi = {reg.name: reg.reset >> 32 for reg in regs.REGISTERS if reg.width == 64}

    # ---------------------------------------------------------------- observation
    def observe(self, stream: str, times: np.ndarray, last: np.ndarray) -> None:
        """Beats crossing the probe's ``stream`` ("in" or "out") at ``times``, TLAST flags ``last``."""
        if stream not in self._beats:
            raise ValueError(f"stream probe: no stream {stream!r} (streams: {', '.join(_STREAMS)})")
        if times.size:
            self._beats[stream].append([np.asarray(times, dtype=np.int64), np.asarray(last, dtype=bool), 0])

    def _due(self, stream: str, now: int) -> tuple[np.ndarray, np.ndarray]:
        """The beats of ``stream`` up to cycle ``now`` not applied yet: (cycles, TLAST flags)."""
        times, lasts = [], []
        queue = self._beats[stream]
        while queue:
            segment = queue[0]
            seg_times, seg_last, applied = segment
            upto = int(np.searchsorted(seg_times, now, side="right"))
            times.append(seg_times[applied:upto])
            lasts.append(seg_last[applied:upto])
            if upto < seg_times.size:
                segment[2] = upto
                break
            queue.popleft()
        if not times:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=bool)
        return np.concatenate(times), np.concatenate(lasts)

    def _framed(self, stream: str, times: np.ndarray, last: np.ndarray) -> np.ndarray:
        """Cycles of the first beats of transfers among ``times``, continuing the TLAST framing."""
        if not times.size:
            return times
        first = np.concatenate([[not self.busy[stream]], last[:-1]])
        self.busy[stream] = not last[-1]
        return times[first]

    def _advance(self, now: int) -> None:
        (in_times, in_last), (out_times, out_last) = self._due("in", now), self._due("out", now)
        if self.enable:
            self.counts["IN_BEATS"] += in_times.size
            self.counts["OUT_BEATS"] += out_times.size
        events = sorted(itertools.chain(((int(t), _IN_START) for t in self._framed("in", in_times, in_last)),
                                        ((int(t), _OUT_FIRST) for t in self._framed("out", out_times, out_last)),
                                        ((int(t), _OUT_LAST) for t in out_times[out_last])))
        for time, group in itertools.groupby(events, key=itemgetter(0)):
            kinds = [kind for _, kind in group]
            if kinds[-1] == _IN_START and not self.pending:
                kinds.insert(0, kinds.pop())
            for kind in kinds:
                self._apply(time, kind)

    def _apply(self, time: int, kind: int) -> None:
        if kind == _IN_START:
            if self.enable:
                if len(self.pending) < self.fifo_depth:
                    self.pending.append(time)
                else:
                    self.overflow = True
        elif kind == _OUT_FIRST:
            self.matched = bool(self.enable and self.pending)
            if self.matched:
                self.last_latency = time - self.pending[0]
                self.min_latency = min(self.min_latency, self.last_latency)
                self.max_latency = max(self.max_latency, self.last_latency)
            elif self.enable:
                self.unmatched = True
        else:   # _OUT_LAST
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
            return _fields(_STATUS, OVERFLOW=self.overflow, UNMATCHED=self.unmatched, IN_BUSY=self.busy["in"],
                           OUT_BUSY=self.busy["out"], PENDING=len(self.pending))
        if name == "CYCLES":
            return now - self.cycles_base
        if name in self.counts:
            return self.counts[name]
        return {"LAST_LATENCY": self.last_latency, "LAST_TRANSFER_TIME": self.last_transfer_time,
                "MIN_LATENCY": self.min_latency, "MAX_LATENCY": self.max_latency}[name]

    def read32(self, offset: int) -> int:
        offset &= _DECODED
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
        if offset & _DECODED != _CTRL.offset:
            return                                 # read-only or unmapped: ignored
        now = self.cycles.now()
        self._advance(now)
        self.enable = bool(_CTRL.field("ENABLE").extract(value))
        if _CTRL.field("CLEAR").extract(value):
            self._clear(now)
