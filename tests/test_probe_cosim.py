"""The emulator's stream probe model against stream_probe.v: the same random beat traces, every read.

Two independent computations of the same registers: :class:`psqs.deploy.emulator.probe.StreamProbe`
(the Python register model the emulator serves) and ``overlays/ip/stream_probe/hdl/stream_probe.v``
Verilated (with :func:`psqs.hls.rtl.verilator.build`, the project's cached Verilator build) and
clocked by the C++ driver ``probe_cosim.cpp`` next to this file. Each trace, generated from its
own seed, has random stalls on both streams (TVALID and TREADY low independently), input
transfers of 1..8 beats, output transfers of 1..5 that follow their inputs after 0..60 cycles or
never (so more than FIFO_DEPTH transfers are in flight and STATUS.OVERFLOW is set) or come with no
input (STATUS.UNMATCHED), transfers cut short by the end of the trace, CTRL writes (ENABLE and
CLEAR) and register reads (any offset, some unaligned) at random cycles, then a read of every
register word. The model is told of the beats in chunks, up to 100 cycles ahead, as the emulator
reports a DMA transfer's beats at once. Traces are played back to back in one simulation, each
opened by a CLEAR (or a PL reset), so a failing seed also reproduces alone.

Cycles map as the model's docstring states: beat at edge t = model cycle t; a read handshake at
edge r = a model read at r-1; a CTRL write at edge w = a model write at w, or w+1 with CLEAR; a
reset with aresetn low at edge i = :meth:`StreamProbe.reset` at i+1. The model's other documented
simplification (MIN/MAX_LATENCY take a latency at once, the RTL one edge later) is kept out of the
traces by never reading MIN/MAX_LATENCY_LO right after an output beat.
"""
from __future__ import annotations

import ctypes
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

import numpy as np
import pytest

from psqs.common import stream_probe_regs as regs
from psqs.overlays.ip.stream_probe import HDL_FILES, IP_DIR, TOP

SEED = 20261202
N_TRACES = 1200
#: The HDL's default parameters (verilator.build() takes none): what the Verilated probe is.
DEPTH, BYTES_IN, BYTES_OUT = (regs.register("CONFIG").field(f).extract(regs.register("CONFIG").reset)
                              for f in ("FIFO_DEPTH", "BYTES_IN", "BYTES_OUT"))
CTRL = regs.register("CTRL").offset
CLEAR, ENABLE = (1 << regs.register("CTRL").field(f).lsb for f in ("CLEAR", "ENABLE"))
READ, WRITE, RESET = 1, 2, 3          # driver actions (probe_cosim.cpp)
WORDS = {offset: word for word, offset, _ in regs.words()}
LAGGING = {regs.register(name).offset for name in ("MIN_LATENCY", "MAX_LATENCY")}
FINAL_READS = list(WORDS)             # every word, each 64-bit register LO then HI


# ---------------------------------------------------------------------------------- the RTL
@functools.cache
def rtl_probe() -> ctypes.CDLL:
    """The Verilated stream_probe with its cycle driver (built once, then from the content cache)."""
    from psqs.hls.rtl import verilator

    include, top = ((IP_DIR / rel).read_text() for rel in HDL_FILES)
    line = f'`include "{Path(HDL_FILES[0]).name}"'
    assert top.count(line) == 1, f"{HDL_FILES[1]}: expected one {line}"
    # build() gives Verilator no include path: the generated include goes in where it is included
    sources = {Path(HDL_FILES[1]).name: top.replace(line, include)}
    driver = Template((Path(__file__).parent / "probe_cosim.cpp").read_text()).substitute(vtop=verilator.PREFIX)
    lib = ctypes.CDLL(str(verilator.build(sources, TOP, driver, "`verilator_config\n").library))
    lib.psqs_probe_run.restype = ctypes.c_longlong
    lib.psqs_probe_run.argtypes = [ctypes.POINTER(ctypes.c_uint32), ctypes.c_size_t,
                                   ctypes.POINTER(ctypes.c_uint32), ctypes.c_size_t]
    return lib


def run_rtl(program: np.ndarray, n_reads: int) -> np.ndarray:
    program = np.ascontiguousarray(program, dtype=np.uint32)
    reads = np.zeros(n_reads, dtype=np.uint32)
    u32 = ctypes.POINTER(ctypes.c_uint32)
    got = rtl_probe().psqs_probe_run(program.ctypes.data_as(u32), program.size, reads.ctypes.data_as(u32), n_reads)
    if got < 0:
        raise AssertionError(f"driver: the AXI4-Lite handshake of cycle {-1 - got} did not happen")
    assert got == n_reads, f"driver returned {got} reads, the program has {n_reads}"
    return reads


# ---------------------------------------------------------------------------------- traces
@dataclass
class Trace:
    """One trace in cycles local to it (cycle 0: the CLEAR write or reset that opens it)."""

    seed: int
    bits: np.ndarray                            # per cycle: stream bits of the driver program
    actions: list = field(default_factory=list)   # (cycle, action, address, data)
    beats: dict = field(default_factory=dict)     # stream: (cycles, TLAST flags)
    lookahead: dict = field(default_factory=dict)  # stream: list of (chunk start index, observe cycle)

    def describe(self, cycle: int) -> str:
        """The trace in brief, and its beats in the 12 cycles up to ``cycle``, as (cycle, TLAST)."""
        ctrl = [(c, d) for c, a, addr, d in self.actions[1:] if a == WRITE and addr & ~3 == CTRL]
        opening = "reset" if self.actions[0][1] == RESET else f"CTRL=0x{self.actions[0][3]:X}"
        text = [f"seed {self.seed} (alone: cosim([{self.seed}])), opened by {opening}, "
                f"CTRL writes (cycle, value) {ctrl}"]
        for stream, (times, last) in self.beats.items():
            near = (times >= cycle - 12) & (times < cycle)
            text.append(f"{stream}: {times.size} beats, {int(last.sum())} TLAST, near the read "
                        f"{[(int(t), int(x)) for t, x in zip(times[near], last[near])]}")
        return "; ".join(text)


def make_trace(seed: int) -> Trace:
    rng = np.random.default_rng([SEED, seed])
    active = int(rng.integers(10, 400))              # cycles with stream traffic (then idle)
    p_in_valid, p_in_ready, p_out_valid, p_out_ready = rng.choice([1.0, 0.9, 0.6, 0.3], size=4)
    p_drop, p_extra = rng.choice([0.0, 0.0, 0.05, 0.3]), rng.choice([0.0, 0.0, 0.05, 0.2])
    delays = np.array([0, 0, 0, 1, 1, 2, 3, 5, 8, 13, 30, 60])
    in_len = list(rng.integers(1, 9, size=60))
    outs: list[list[int]] = []                        # [available from cycle, beats left]
    if rng.random() < 0.1:
        outs.append([0, int(rng.integers(1, 6))])     # an output with no input before it
    in_left, out_i = in_len[0], 0
    bits = np.zeros(active + 2, dtype=np.uint32)
    r = rng.random((active + 2, 5))
    beats = {"in": ([], []), "out": ([], [])}
    for c in range(2, active + 2):
        valid = bool(in_len) and r[c, 0] < p_in_valid
        ready = r[c, 1] < p_in_ready
        tlast = in_left == 1 if valid else r[c, 4] < 0.5     # TLAST is "don't care" without TVALID
        bits[c] |= int(valid) | int(ready) << 1 | int(tlast) << 2
        if valid and ready:
            if in_left == in_len[0]:                  # an input transfer starts: its output is due
                for _ in range(int(rng.random() < p_extra) + int(rng.random() >= p_drop)):
                    outs.append([c + int(rng.choice(delays)), int(rng.integers(1, 6))])
            beats["in"][0].append(c)
            beats["in"][1].append(tlast)
            in_left -= 1
            if not in_left:
                in_len.pop(0)
                in_left = in_len[0] if in_len else 0
        out = outs[out_i] if out_i < len(outs) and outs[out_i][0] <= c else None
        valid = out is not None and r[c, 2] < p_out_valid
        ready = r[c, 3] < p_out_ready
        tlast = out[1] == 1 if valid else r[c, 4] >= 0.5
        bits[c] |= int(valid) << 3 | int(ready) << 4 | int(tlast) << 5
        if valid and ready:
            beats["out"][0].append(c)
            beats["out"][1].append(tlast)
            out[1] -= 1
            out_i += not out[1]
    trace = Trace(seed, bits, beats={s: (np.array(t, dtype=np.int64), np.array(l, dtype=bool))
                                     for s, (t, l) in beats.items()})

    # register accesses: the opening CLEAR (or reset), random CTRL writes and reads, then every word
    opening = (0, RESET, 0, 0) if rng.random() < 0.1 else (0, WRITE, CTRL, CLEAR | ENABLE * (rng.random() < 0.9))
    wanted = []
    if rng.random() < 0.4:
        wanted += [(int(c), WRITE, CTRL, int(v)) for c, v in zip(rng.integers(2, active + 2, size=rng.integers(1, 4)),
                                                                 rng.integers(0, 4, size=3))]
    if rng.random() < 0.1:
        wanted.append((int(rng.integers(2, active + 2)), WRITE, int(rng.integers(0, 32)) * 4, int(rng.integers(0, 16))))
    for c in rng.integers(2, active + 2, size=rng.integers(0, 11)):
        offset = int(rng.integers(0, regs.ADDRESS_SPAN))
        wanted.append((int(c), READ, offset if rng.random() < 0.1 else offset & ~3, 0))
    cycle, actions = 0, [opening]
    for c, action, address, data in sorted(wanted):
        cycle = max(c, cycle + 2)                    # one access in flight: two cycles apart
        actions.append((cycle, action, address, data))
    cycle = max(cycle, active) + 2
    for offset in FINAL_READS:
        actions.append((cycle, READ, offset, 0))
        cycle += 2
    trace.bits = np.concatenate([bits, np.zeros(cycle + 1 - bits.size, dtype=np.uint32)])
    for k, (c, action, address, data) in enumerate(actions):
        # the model folds a new latency into MIN/MAX at once, the RTL one edge later (documented)
        if action == READ and address & ~3 in LAGGING and trace.bits[c - 1] & 0b11000 == 0b11000:
            address = regs.register("LAST_LATENCY").offset | (address & 3)
        actions[k] = (c, action, address, data)
    trace.actions = actions

    # the emulator reports beats ahead of time, a DMA transfer at once: chunks seen early
    for stream, (times, _) in trace.beats.items():
        cuts = np.unique(np.concatenate([[0], rng.integers(0, max(times.size, 1), size=rng.integers(0, 4))]))
        seen = np.maximum.accumulate(np.maximum(times[cuts] - rng.integers(0, 100, size=cuts.size), 1)) \
            if times.size else np.empty(0, dtype=np.int64)
        trace.lookahead[stream] = list(zip(cuts.tolist(), seen.tolist()))
    return trace


# ---------------------------------------------------------------------------------- the model
class ManualCycles:
    """The co-simulation's cycle source: set by hand to each operation's cycle."""

    def __init__(self, t: int = 0):
        self.t = t

    def now(self) -> int:
        return self.t


@dataclass
class Result:
    traces: int
    reads: int
    cycles: int
    mismatch: str | None                          # the first, described
    mismatched_traces: int
    final: list                                   # per trace: {word: RTL value} of the final reads


def cosim(seeds, probe_cls=None) -> Result:
    """Play the traces of ``seeds`` into the RTL and into ``probe_cls`` (default: the emulator's)."""
    if probe_cls is None:
        from psqs.deploy.emulator.probe import StreamProbe as probe_cls
    traces = [make_trace(s) for s in seeds]
    program, ops, reads = [np.array([RESET << 8, 0], dtype=np.uint32)], [], []   # AXI4-Lite live from edge 2
    base = 2
    for k, trace in enumerate(traces):
        word = trace.bits.copy()
        for c, action, address, data in trace.actions:
            word[c] |= action << 8 | address << 16 | data << 24
            t = base + c
            if action == RESET:
                ops.append((t + 1, 0, "reset", k))
            elif action == WRITE:
                ops.append((t + 1 if address & ~3 == CTRL and data & CLEAR else t, 2, "write", (address, data)))
            else:
                ops.append((t - 1, 2, "read", (len(reads), address)))
                reads.append((k, c, address))
        for stream, (times, last) in trace.beats.items():
            chunks = trace.lookahead[stream]
            for (start, seen), (stop, _) in zip(chunks, chunks[1:] + [(times.size, 0)]):
                ops.append((base + seen, 1, "observe", (stream, base + times[start:stop], last[start:stop])))
        program.append(word)
        base += word.size
    program = np.concatenate(program)
    rtl = run_rtl(program, len(reads))

    cycles = ManualCycles(1)
    probe = probe_cls(cycles, DEPTH, BYTES_IN, BYTES_OUT)
    model = np.zeros(len(reads), dtype=np.int64)
    ops.sort(key=lambda op: op[:2])                  # stable: program order within a cycle and kind
    for t, _, kind, arg in ops:
        cycles.t = int(t)
        if kind == "reset":
            probe.reset()
        elif kind == "write":
            probe.write32(*arg)
        elif kind == "observe":
            probe.observe(*arg)
        else:
            index, address = arg
            model[index] = probe.read32(address)

    final = [{} for _ in traces]
    mismatch, bad = None, set()
    for (k, c, address), got, want in zip(reads, rtl, model):
        if c >= traces[k].actions[-len(FINAL_READS)][0]:
            final[k][WORDS[address]] = int(got)
        if got != want:
            bad.add(k)
        if mismatch is None and got != want:
            mismatch = (f"trace {k} ({traces[k].describe(c)}): read of {WORDS.get(address & ~3, 'unmapped')} "
                        f"(offset 0x{address:02X}) at trace cycle {c}: RTL 0x{int(got):X}, model 0x{int(want):X}")
    return Result(len(traces), len(reads), program.size, mismatch, len(bad), final)


# ---------------------------------------------------------------------------------- tests
def _field(value: int, name: str) -> int:
    return regs.register("STATUS").field(name).extract(value)


@pytest.mark.slow
def test_probe_model_matches_rtl_on_random_traces():
    start = time.monotonic()
    rtl_probe()
    built = time.monotonic()
    result = cosim(range(N_TRACES))
    print(f"\n{result.traces} traces, {result.cycles} cycles, {result.reads} register reads compared "
          f"(rtl-sim): build/load {built - start:.1f} s, co-simulation {time.monotonic() - built:.1f} s")
    assert result.mismatch is None, result.mismatch
    # the traces reach every behaviour the comparison is meant to cover
    final = result.final
    count = lambda pred: sum(1 for f in final if pred(f))
    coverage = {
        "OVERFLOW": count(lambda f: _field(f["STATUS"], "OVERFLOW")),
        "UNMATCHED": count(lambda f: _field(f["STATUS"], "UNMATCHED")),
        "ring full": count(lambda f: _field(f["STATUS"], "PENDING") == DEPTH),
        "busy at the end": count(lambda f: _field(f["STATUS"], "IN_BUSY") or _field(f["STATUS"], "OUT_BUSY")),
        "latency 0": count(lambda f: f["MIN_LATENCY_LO"] == 0 and f["TRANSFERS_LO"]),
        "disabled": count(lambda f: not f["CTRL"]),
        "transfers > 5": count(lambda f: f["TRANSFERS_LO"] > 5),
    }
    print("traces ending with:", coverage)
    assert all(n >= N_TRACES // 50 for n in coverage.values()), coverage
