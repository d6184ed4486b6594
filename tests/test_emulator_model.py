"""The emulator's hardware models, in process and on a controlled clock: beat timing, the AXI DMA
register semantics pynq relies on, back-pressure, the stream probe's registers, PS clocks, DDR
buffers, the sandboxed file system and package recognition."""
from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from psqs.board_configs import load_board
from psqs.deploy.emulator import dma as D
from psqs.deploy.emulator.clock import CycleClock
from psqs.deploy.emulator.errors import (
    BusError,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
)
from psqs.deploy.emulator.faults import Fault, FaultSpecError
from psqs.deploy.emulator.memory import DdrMemory
from psqs.deploy.emulator.probe import StreamProbe
from psqs.deploy.emulator.ps_regs import PsRegisters
from psqs.deploy.emulator.sandbox import BoardFiles
from psqs.deploy.emulator.stream import ModelStream
from psqs.deploy.emulator.timing import (
    InputSide,
    StreamTiming,
    accept,
    deliveries,
    production_times,
)
from psqs.common import stream_probe_regs as regs
from psqs.hls.csim import AxisLibrary
from test_emulator_support import bit_file, build_fake_library, fake_model_outputs

TIMING = StreamTiming(in_beats=8, out_beats=5, latency=15, ii=1)
PROBE = 0x1000_0000   # where the rig's register calls go for the probe


@pytest.fixture(scope="module")
def fake_library(tmp_path_factory):
    return build_fake_library(tmp_path_factory.mktemp("fake"))


class Rig:
    """A DMA, the stand-in model and a probe on a wall clock the test moves by hand (100 MHz). The
    fabric worker is real; every read waits for it first, so a test sees the state that the wall
    clock alone decides."""

    def __init__(self, library_path, tmp_path, capacity=16, rtl=False):
        # a directory of its own (an id() may be reused once an earlier rig is collected)
        private = Path(tempfile.mkdtemp(prefix="lib", dir=tmp_path)) / library_path.name
        shutil.copy2(library_path, private)   # the library's streams are per loaded path
        self.wall = [0.0]
        self.cycles = CycleClock(100.0, wall=lambda: self.wall[0])
        self.memory = DdrMemory(0, 0x2000_0000)
        self.probe = StreamProbe(self.cycles, 4, 4, 4)
        library = AxisLibrary(private)
        self.stream = ModelStream(library, TIMING, self.cycles, capacity, self.probe,
                                  library.cycle_counter if rtl else None)
        self.faults: dict[int, Fault] = {}
        self.count = 0
        self.dma = D.AxiDma(D.DmaConfig(32, 26, 4, 4, 4, 4, False, False), self.memory, self.stream,
                            self.cycles, self._fault, D.Worker())
        for channel in (D.MM2S, D.S2MM):
            self.dma.write32(channel + D.DMACR, D.RS)

    def _fault(self):
        self.count += 1
        return self.faults.pop(self.count, None)

    def settle(self) -> None:
        assert self.dma.settle(timeout=30), "the fabric worker did not finish"

    def wait(self, cycles: int) -> None:
        self.settle()
        self.wall[0] += cycles / 100e6

    def read(self, offset):
        self.settle()
        with self.dma.lock:
            return self.probe.read32(offset - PROBE) if offset >= PROBE else self.dma.read32(offset)

    def probe_reg(self, name):
        reg = regs.register(name)
        if reg.width == 32:
            return self.read(PROBE + reg.offset)
        lo = self.read(PROBE + reg.offset)
        return lo | self.read(PROBE + reg.offset + 4) << 32

    def buffer(self, data: bytes | int):
        buf = self.memory.allocate(data if isinstance(data, int) else len(data))
        if not isinstance(data, int):
            self.memory.write(buf.id, 0, data)
        return buf

    def start(self, channel, buf, nbytes=None, offset=0):
        self.dma.write32(channel + D.ADDR, buf.phys + offset)
        self.dma.write32(channel + D.ADDR_MSB, 0)
        self.dma.write32(channel + D.LENGTH, buf.size if nbytes is None else nbytes)

    def status(self, channel):
        return self.read(channel + D.DMASR)


def samples(n, seed=0):
    return np.random.default_rng(seed).integers(-3000, 3000, size=(n, 16)).astype(np.int16)


def outputs(rig, buf, n):
    return np.frombuffer(rig.memory.read(buf.id, 0, n * 20), dtype=np.int32).reshape(n, 5)


# ---------------------------------------------------------------------------------------------- timing

def test_timing_formula_for_whole_samples():
    side = InputSide()
    accepted = accept(TIMING, side, 1000, 8 * 3)
    assert list(accepted.sample_ends) == [1007, 1015, 1023]
    delivered = deliveries(production_times(TIMING, accepted.sample_ends), 0)
    assert delivered[0] - 1000 == TIMING.latency
    assert delivered[-1] - 1000 == TIMING.transfer_time(3) == 15 + 2 * 8 + 4
    slow = StreamTiming(in_beats=2, out_beats=1, latency=30, ii=10)   # II dominates the beats
    assert slow.period == 10 and slow.transfer_time(4) == 30 + 3 * 10


def test_split_sample_completes_with_the_next_transfer():
    side = InputSide()
    first = accept(TIMING, side, 0, 12)            # one sample and a half
    assert first.sample_ends.tolist() == [7] and side.partial == 4
    second = accept(TIMING, side, 500, 12)         # the half's rest, then one more sample
    assert second.sample_ends.tolist() == [503, 511] and side.partial == 0
    assert second.beat_times[:4].tolist() == [500, 501, 502, 503]


def test_delivery_waits_for_the_s2mm_channel():
    produced = np.array([10, 11, 12, 20])
    assert deliveries(produced, 0).tolist() == [10, 11, 12, 20]
    assert deliveries(produced, 100).tolist() == [100, 101, 102, 103]


# ---------------------------------------------------------------------------------------------- DMA

def test_transfer_results_timing_and_probe(fake_library, tmp_path):
    rig = Rig(fake_library, tmp_path)
    x = samples(100)
    src, dst = rig.buffer(x.tobytes()), rig.buffer(100 * 20)
    assert rig.status(D.MM2S) & (D.HALTED | D.IDLE) == 0          # running, idle only after a transfer
    rig.start(D.S2MM, dst)                                          # receive side armed first
    rig.start(D.MM2S, src)
    assert not rig.status(D.S2MM) & D.IDLE                          # the fabric has not finished yet
    rig.wait(TIMING.transfer_time(100) + 1)
    for channel in (D.MM2S, D.S2MM):
        assert rig.status(channel) & (D.IDLE | D.IOC_IRQ) == D.IDLE | D.IOC_IRQ
    np.testing.assert_array_equal(outputs(rig, dst, 100), fake_model_outputs(x))
    assert rig.read(D.S2MM + D.LENGTH) == 2000
    assert rig.probe_reg("LAST_LATENCY") == TIMING.latency
    assert rig.probe_reg("LAST_TRANSFER_TIME") == TIMING.transfer_time(100)
    assert (rig.probe_reg("IN_BEATS"), rig.probe_reg("OUT_BEATS"), rig.probe_reg("TRANSFERS")) == (800, 500, 1)
    rig.dma.write32(D.MM2S + D.DMASR, D.IOC_IRQ)                    # write 1 to clear
    assert not rig.status(D.MM2S) & D.IOC_IRQ


def test_rtl_cycle_counts_replace_the_latency(tmp_path):
    """With psqs_cycles() the simulated cycles of each push time it: the stand-in "RTL" takes
    beats + 30 cycles, so 10 samples (80 beats) take 110 clock edges, the first accepting the first
    input beat and the last handing over the last output beat, 109 cycles later."""
    rig = Rig(build_fake_library(tmp_path / "rtl", cycles=True), tmp_path, rtl=True)
    src, dst = rig.buffer(samples(10).tobytes()), rig.buffer(10 * 20)
    rig.start(D.S2MM, dst)
    rig.start(D.MM2S, src)
    rig.wait(1000)
    assert rig.status(D.S2MM) & D.IDLE                              # the host sees the end, then reads
    assert rig.probe_reg("LAST_TRANSFER_TIME") == 109
    assert rig.probe_reg("LAST_LATENCY") == 109 - 9 * TIMING.period - (TIMING.out_beats - 1)


@pytest.mark.parametrize("n", [4, 50])                             # 50 > capacity 16: back-pressured
def test_the_host_between_two_calls_is_not_fabric_time(fake_library, tmp_path, n):
    """Found on main: with MM2S started first, the host's delay before arming S2MM was counted as
    fabric cycles (LAST_LATENCY = the delay). Fabric time moves with the streams only, so both call
    orders, with any delay between the calls, measure what the timing model says."""
    measured = {}
    for order in ("s2mm first", "mm2s first"):
        for delay in (0, 5000, 10_000_000):                          # 0, 50 us, 0.1 s between the calls
            rig = Rig(fake_library, tmp_path, capacity=16)
            x = samples(n, seed=delay)
            src, dst = rig.buffer(x.tobytes()), rig.buffer(n * 20)
            first, second = ((D.S2MM, dst), (D.MM2S, src)) if order == "s2mm first" else ((D.MM2S, src), (D.S2MM, dst))
            rig.start(*first)
            rig.status(first[0])                                    # the host may poll in between
            rig.wait(delay)
            rig.start(*second)
            rig.wait(TIMING.transfer_time(n) + 1)
            assert rig.status(D.MM2S) & D.IDLE and rig.status(D.S2MM) & D.IDLE, (order, delay)
            np.testing.assert_array_equal(outputs(rig, dst, n), fake_model_outputs(x))
            measured[order, delay] = (rig.probe_reg("LAST_LATENCY"), rig.probe_reg("LAST_TRANSFER_TIME"))
    assert set(measured.values()) == {(TIMING.latency, TIMING.transfer_time(n))}, measured


def test_backpressure_stalls_the_input_until_the_output_is_taken(fake_library, tmp_path):
    rig = Rig(fake_library, tmp_path, capacity=4)
    x = samples(50)
    src, dst = rig.buffer(x.tobytes()), rig.buffer(50 * 20)
    rig.start(D.MM2S, src)
    rig.wait(100_000)
    assert not rig.status(D.MM2S) & D.IDLE                          # stuck: nobody takes the outputs
    rig.cycles.advance_to(100_000)                                  # fabric time moved by hand
    assert rig.probe_reg("IN_BEATS") == 8 * 4 + 7                   # 4 samples held, the 5th waits
    rig.start(D.S2MM, dst)
    rig.wait(10_000)
    assert rig.status(D.MM2S) & D.IDLE and rig.status(D.S2MM) & D.IDLE
    np.testing.assert_array_equal(outputs(rig, dst, 50), fake_model_outputs(x))


def test_a_stall_delays_a_backpressured_transfer_once(fake_library, tmp_path):
    rig = Rig(fake_library, tmp_path, capacity=2)
    rig.faults[1] = Fault("stall", stall_ms=1.0)
    src, dst = rig.buffer(samples(40).tobytes()), rig.buffer(40 * 20)
    rig.start(D.MM2S, src)
    rig.start(D.S2MM, dst)                                          # the input resumes in many pieces
    rig.wait(100_000 - 100)
    assert not rig.status(D.S2MM) & D.IDLE
    rig.wait(100 + TIMING.transfer_time(40) + TIMING.period)        # one stall, not one per piece
    assert rig.status(D.S2MM) & D.IDLE


def test_partial_sample_waits_inside_the_ip(fake_library, tmp_path):
    rig = Rig(fake_library, tmp_path)
    x = samples(2)
    src, dst = rig.buffer(x.tobytes()), rig.buffer(2 * 20)
    rig.start(D.S2MM, dst)
    rig.start(D.MM2S, src, nbytes=48)                               # a sample and a half
    rig.wait(10_000)
    assert not rig.status(D.S2MM) & D.IDLE                          # no TLAST yet: the host times out
    rig.start(D.MM2S, src, nbytes=16, offset=48)                    # the missing half
    rig.wait(10_000)
    assert rig.status(D.S2MM) & D.IDLE and rig.read(D.S2MM + D.LENGTH) == 40
    np.testing.assert_array_equal(outputs(rig, dst, 2), fake_model_outputs(x))


def test_the_model_computes_beside_the_host_and_a_reset_voids_its_work(fake_library, tmp_path):
    """The LENGTH write returns while the model still computes (on the board's worker, which holds
    no lock meanwhile); DMASR shows Idle only once that data is done, however late the wall clock
    is; a reset during the computation drops its results, and the next transfer is clean."""
    rig = Rig(fake_library, tmp_path)
    library, push = rig.stream.library, rig.stream.library.push
    entered, release = threading.Event(), threading.Event()

    def slow_push(*args):
        entered.set()
        assert release.wait(timeout=30)
        return push(*args)

    library.push = slow_push
    x, y = samples(10, seed=1), samples(6, seed=2)
    src, dst = rig.buffer(x.tobytes()), rig.buffer(10 * 20)
    rig.start(D.S2MM, dst)
    rig.start(D.MM2S, src)                                          # returns; the model computes elsewhere
    assert entered.wait(timeout=30)
    rig.wall[0] += 1.0                                               # far past the fabric's duration...
    assert not rig.dma.read32(D.S2MM + D.DMASR) & D.IDLE            # ...but the data is not done
    rig.dma.write32(D.MM2S + D.DMACR, D.RESET)                      # reset mid-computation
    for channel in (D.MM2S, D.S2MM):
        rig.dma.write32(channel + D.DMACR, D.RS)
    src2, dst2 = rig.buffer(y.tobytes()), rig.buffer(6 * 20)
    rig.start(D.S2MM, dst2)
    rig.start(D.MM2S, src2)
    release.set()
    rig.wait(TIMING.transfer_time(6) + 1)
    assert rig.status(D.MM2S) & D.IDLE and rig.status(D.S2MM) & D.IDLE and rig.read(D.S2MM + D.LENGTH) == 120
    np.testing.assert_array_equal(outputs(rig, dst2, 6), fake_model_outputs(y))
    assert not rig.memory.read(dst.id, 0, 200).strip(b"\0")          # the voided transfer wrote nothing
    assert (rig.probe_reg("TRANSFERS"), rig.probe_reg("IN_BEATS"), rig.probe_reg("LAST_LATENCY")) == (1, 48, 15)


def test_faults_count_the_mm2s_transfers_that_start(fake_library, tmp_path):
    """KIND@N hits the N-th MM2S LENGTH write that starts a transfer: writes to a busy or a halted
    channel have no effect and are not counted."""
    rig = Rig(fake_library, tmp_path, capacity=2)
    rig.faults[3] = Fault("decode-error")
    x = samples(20)
    src, dst = rig.buffer(x.tobytes()), rig.buffer(20 * 20)
    rig.start(D.MM2S, src)                                          # 1: back-pressured, stays busy
    rig.start(D.MM2S, src)                                          # busy: ignored
    rig.start(D.S2MM, dst)
    rig.wait(10_000)
    assert rig.status(D.MM2S) & D.IDLE and rig.status(D.S2MM) & D.IDLE
    rig.dma.write32(D.MM2S + D.DMACR, 0)
    rig.start(D.MM2S, src)                                          # halted: no effect
    rig.dma.write32(D.MM2S + D.DMACR, D.RS)
    assert rig.count == 1
    for _ in range(2):                                              # 2, then 3: the fault
        rig.start(D.S2MM, dst)
        rig.start(D.MM2S, src)
        rig.wait(10_000)
    assert rig.count == 3 and rig.status(D.MM2S) & (D.DEC_ERR | D.HALTED) == D.DEC_ERR | D.HALTED


@pytest.mark.parametrize("setup, bits", [
    (lambda rig, buf: rig.start(D.MM2S, buf, nbytes=0), D.INT_ERR),
    (lambda rig, buf: rig.start(D.MM2S, buf, nbytes=1 << 26), D.INT_ERR),
    (lambda rig, buf: rig.start(D.MM2S, buf, nbytes=32, offset=2), D.INT_ERR),
    (lambda rig, buf: (rig.dma.write32(D.MM2S + D.ADDR, 0x4000_0000), rig.dma.write32(D.MM2S + D.LENGTH, 64)),
     D.DEC_ERR),
    (lambda rig, buf: (rig.dma.write32(D.MM2S + D.ADDR, buf.phys + 0x10_0000), rig.dma.write32(D.MM2S + D.LENGTH, 64)),
     D.DEC_ERR),
])
def test_errors_halt_the_channel_until_reset(fake_library, tmp_path, setup, bits):
    rig = Rig(fake_library, tmp_path)
    buf = rig.buffer(samples(8).tobytes())
    setup(rig, buf)
    status = rig.status(D.MM2S)
    assert status & (bits | D.HALTED | D.ERR_IRQ) == bits | D.HALTED | D.ERR_IRQ
    assert not rig.read(D.MM2S + D.DMACR) & D.RS
    rig.dma.write32(D.MM2S + D.DMACR, D.RS)                         # RS cannot restart it
    assert rig.status(D.MM2S) & D.HALTED
    rig.dma.write32(D.S2MM + D.DMACR, D.RESET)                      # either channel resets both
    assert rig.status(D.MM2S) == D.HALTED | 1 << 16 and rig.read(D.MM2S + D.DMACR) == 0x10002


@pytest.mark.parametrize("kind", ["hang", "no-tlast", "decode-error", "slave-error", "stall"])
def test_faults_and_recovery(fake_library, tmp_path, kind):
    rig = Rig(fake_library, tmp_path)
    rig.faults[1] = Fault(kind, stall_ms=2.0 if kind == "stall" else 0.0)
    x = samples(10)
    src, dst = rig.buffer(x.tobytes()), rig.buffer(10 * 20)
    rig.start(D.S2MM, dst)
    rig.start(D.MM2S, src)
    rig.wait(100_000)                                               # 1 ms
    mm2s, s2mm = rig.status(D.MM2S), rig.status(D.S2MM)
    if kind == "hang":
        assert mm2s & D.IDLE and not s2mm & (D.IDLE | D.HALTED)     # output never comes
    elif kind == "no-tlast":
        assert s2mm & (D.INT_ERR | D.HALTED) == D.INT_ERR | D.HALTED  # buffer full, no TLAST
    elif kind == "stall":
        assert not s2mm & D.IDLE                                    # 2 ms stall, 1 ms waited
        rig.wait(150_000)
        assert rig.status(D.S2MM) & D.IDLE
        assert rig.probe_reg("LAST_LATENCY") >= 200_000
    else:
        bit = D.DEC_ERR if kind == "decode-error" else D.SLV_ERR
        assert mm2s & (bit | D.HALTED) == bit | D.HALTED
    rig.dma.write32(D.MM2S + D.DMACR, D.RESET)                      # recovery: reset, start, retry
    for channel in (D.MM2S, D.S2MM):
        rig.dma.write32(channel + D.DMACR, D.RS)
    rig.probe.write32(regs.register("CTRL").offset, 0x3)           # CLEAR, keep ENABLE
    rig.start(D.S2MM, dst)
    rig.start(D.MM2S, src)
    rig.wait(10_000)
    assert rig.status(D.S2MM) & D.IDLE and rig.status(D.MM2S) & D.IDLE
    np.testing.assert_array_equal(outputs(rig, dst, 10), fake_model_outputs(x))
    assert rig.probe_reg("LAST_LATENCY") == TIMING.latency and rig.probe_reg("TRANSFERS") == 1


def test_s2mm_longer_than_the_packet_completes_at_tlast(fake_library, tmp_path):
    rig = Rig(fake_library, tmp_path)
    src, dst = rig.buffer(samples(3).tobytes()), rig.buffer(4096)
    rig.start(D.S2MM, dst)
    rig.start(D.MM2S, src)
    rig.wait(1000)
    assert rig.status(D.S2MM) & D.IDLE and rig.read(D.S2MM + D.LENGTH) == 60


def test_length_written_while_halted_has_no_effect(fake_library, tmp_path):
    rig = Rig(fake_library, tmp_path)
    rig.dma.write32(D.MM2S + D.DMACR, 0)
    rig.start(D.MM2S, rig.buffer(samples(1).tobytes()))
    assert rig.status(D.MM2S) & D.HALTED and rig.probe_reg("IN_BEATS") == 0


# ---------------------------------------------------------------------------------------------- probe

def test_probe_hi_latch_and_aliasing(fake_library, tmp_path):
    """What the co-simulation against the Verilog (test_probe_cosim) cannot reach: CYCLES past
    2^32 and addresses above the probe's 7-bit window, through the board's address map."""
    rig = Rig(fake_library, tmp_path)
    assert rig.read(PROBE + 0x1000) == regs.ID_MAGIC                 # higher address bits alias
    cycles = regs.register("CYCLES")
    rig.cycles.advance_to(5 * (1 << 32) + 1000)                      # CYCLES past 2^32 (fabric time by hand)
    lo = rig.read(PROBE + cycles.offset)
    rig.cycles.advance_to(7 * (1 << 32) + 1000)                      # the true HI word moves on...
    assert rig.read(PROBE + cycles.offset + 4) == 5                  # ...the latched one does not
    assert lo == 1000
    rig.read(PROBE + cycles.offset)
    assert rig.read(PROBE + cycles.offset + 4) == 7


# ---------------------------------------------------------------------------------------------- PS, DDR, files

def test_pl_clock_follows_the_slcr():
    board = load_board("pynq-z2")
    ps = PsRegisters(board, lambda: None)
    slcr = ps.blocks[0xF800_0000]
    assert (slcr.read32(0x108) >> 12) & 0x7F == 20 and ps.pl_clock_mhz(0) == 100.0
    slcr.write32(0x170, (1 << 20) | (8 << 8))                        # IO PLL / 8 / 1
    assert ps.pl_clock_mhz(0) == 125.0
    assert ps.set_pl_clock(0, 0, 0, 50.0) == 50.0
    zu = PsRegisters(load_board("zcu104"), lambda: None)
    assert round(zu.pl_clock_mhz(0), 2) == 100.0
    crl = zu.blocks[0xFF5E_0000]
    assert (crl.read32(0x20) >> 8) & 0x7F == 90 and (crl.read32(0xC0) >> 8) & 0x3F == 15
    kv = PsRegisters(load_board("kv260"), lambda: None)   # the board file's IOPLL: 33.333 x 60 / 2
    crl = kv.blocks[0xFF5E_0000]
    assert (crl.read32(0x20) >> 8) & 0x7F == 60 and (crl.read32(0xC0) >> 8) & 0x3F == 10
    assert kv.pl_clock_mhz(0) == pytest.approx(99.999)


def test_fabric_time_ignores_the_wall_clock_and_only_moves_forward():
    wall = [0.0]
    cycles = CycleClock(100.0, wall=lambda: wall[0])
    wall[0] = 5.0                                                    # the host, or the emulator, busy
    assert cycles.now() == 0
    cycles.advance_to(1000)
    cycles.advance_to(10)                                            # an older event: no step back
    assert cycles.now() == 1000
    assert cycles.seconds(100_000) == pytest.approx(1e-3) and cycles.cycles_in(1e-3) == 100_000
    cycles.retune(200.0)                                             # the count survives, the rate changes
    assert cycles.now() == 1000 and cycles.seconds(100_000) == pytest.approx(0.5e-3)
    cycles.retune(0.0)
    assert cycles.seconds(1) == float("inf") and cycles.seconds(0) == 0.0


def test_ddr_buffers():
    memory = DdrMemory(0, 0x2000_0000)
    a, b = memory.allocate(10), memory.allocate(5000)
    assert a.phys % 4096 == 0 and b.phys >= a.phys + 4096 and a.phys >= 0x1000_0000
    with pytest.raises(OutOfRange):
        memory.write(a.id, 8, b"abc")
    with pytest.raises(NotFound):
        memory.get("nope")
    with pytest.raises(BusError):
        memory.dma_read(a.phys + 8, 8)                               # runs past the buffer
    memory.free(a.id)
    assert memory.allocate(4096).phys == a.phys                      # the space is reused


def test_board_files_stay_in_the_sandbox(tmp_path):
    files = BoardFiles(tmp_path / "root", load_board("pynq-z2"))
    assert "armv7l" in files.read("/proc/version").decode()
    assert files.read("/proc/device-tree/chosen/pynq_board") == b"Pynq-Z2\0"
    for bad in ("/lib/firmware/../../../etc/passwd", "relative/path", "", "/proc/\0x"):
        with pytest.raises(InvalidArgument):
            files.read(bad)
    (tmp_path / "secret").write_text("x")
    (tmp_path / "root" / "lib" / "firmware" / "link.bin").symlink_to(tmp_path / "secret")
    with pytest.raises(InvalidArgument):
        files.read("/lib/firmware/link.bin")
    with pytest.raises(PermissionDenied):
        files.write("/proc/version", b"aarch64")
    files.write("/lib/firmware/a.bin", b"1234")
    assert files.exists("/lib/firmware/a.bin") and not files.exists("/lib/firmware/b.bin")


def test_a_client_writes_where_a_board_lets_it_and_nowhere_else(tmp_path):
    """Found on main: only the firmware paths were writable. A board's /tmp and home directories
    are too (below them as well); the rest stays read-only and no path leaves the sandbox."""
    files = BoardFiles(tmp_path / "root", load_board("pynq-z2"))
    for path in ("/tmp/a.txt", "/home/xilinx/notes.json", "/root/r.bin", "/tmp//./b.txt"):
        files.write(path, path.encode())
        assert files.read(path) == path.encode() and files.exists(path)
    (tmp_path / "root" / "tmp" / "sub").mkdir()                      # a directory already there
    files.write("/tmp/sub/c.txt", b"c")
    assert (tmp_path / "root" / "tmp" / "sub" / "c.txt").read_bytes() == b"c"
    (tmp_path / "secret").write_text("x")
    (tmp_path / "root" / "tmp" / "out").symlink_to(tmp_path / "secret")
    (tmp_path / "root" / "tmp" / "ver").symlink_to(tmp_path / "root" / "proc" / "version")
    (tmp_path / "root" / "tmp" / "procdir").symlink_to(tmp_path / "root" / "proc")
    version = files.read("/proc/version")
    for bad, error in [("/tmp/../etc/passwd", InvalidArgument), ("tmp/a.txt", InvalidArgument),
                       ("/tmp/out", InvalidArgument), ("/etc/passwd", PermissionDenied),
                       ("/tmp/ver", PermissionDenied), ("/tmp/procdir/version", PermissionDenied),
                       ("/home/other/x", PermissionDenied), ("/tmp", PermissionDenied),
                       ("/tmp/missing/x.txt", NotFound)]:
        with pytest.raises(error):
            files.write(bad, b"overwritten")
    assert (tmp_path / "secret").read_text() == "x" and files.read("/proc/version") == version
    assert not (tmp_path / "root" / "etc").exists()


def test_fault_specs():
    assert Fault.parse("stall=50@3") == Fault("stall", 50.0, 3)
    assert Fault.parse("no-tlast") == Fault("no-tlast")
    for bad in ("stall", "hang=5", "boom", "hang@0", "stall=x"):
        with pytest.raises(FaultSpecError):
            Fault.parse(bad)


def test_bin_image_is_pynqs_bit2bin():
    from psqs.deploy.emulator.packages import bin_image
    from pynq.pl_server.embedded_device import bit2bin

    bit = bit_file("design", "7z020clg400", bytes(range(256)) * 3)
    assert bin_image(bit) == bit2bin(bit)
