"""Stream probe pynq driver against a fake MMIO that keeps the hardware's read rules."""
from __future__ import annotations

import logging

import pytest

from psqs.common import stream_probe_regs as regs
from psqs.host.stream_probe import ProbeSnapshot, StreamProbe, StreamProbeError

CTRL = regs.register("CTRL").offset


class FakeProbeMMIO:
    """Register file of the probe, dict-backed, with the documented semantics.

    Reading a LO word latches the HI half of the same register; reading HI returns the latched
    half; CTRL.CLEAR resets the counters; reads can come back signed (as PYNQ.remote's do).
    ``tick`` advances every 64-bit value between two bus accesses, to catch torn reads.
    """

    def __init__(self, signed: bool = False, tick: int = 0):
        self.words = {o: r.reset & 0xFFFFFFFF for _, o, r in regs.words() if r.width == 32}
        self.wide = {r.name: r.reset for r in regs.REGISTERS if r.width == 64}
        self.latched = {name: value >> 32 for name, value in self.wide.items()}
        self.signed, self.tick = signed, tick
        self.log: list[tuple[str, int]] = []

    def _wide_at(self, offset: int):
        for r in regs.REGISTERS:
            if r.width == 64 and offset in (r.offset, r.offset + 4):
                return r.name, offset == r.offset + 4
        return None, False

    def read(self, offset: int, length: int = 4) -> int:
        assert length == 4 and offset % 4 == 0
        self.log.append(("r", offset))
        name, hi = self._wide_at(offset)
        if name is None:
            value = self.words.get(offset, 0)
        elif hi:
            value = self.latched[name]
        else:
            value = self.wide[name] & 0xFFFFFFFF
            self.latched[name] = self.wide[name] >> 32
        for key in self.wide:
            self.wide[key] += self.tick
        if self.signed and value >= 1 << 31:
            value -= 1 << 32
        return value

    def write(self, offset: int, value: int) -> None:
        self.log.append(("w", offset, value))
        if offset == CTRL:
            self.words[CTRL] = value & 0x2
            if value & 0x1:
                for r in regs.REGISTERS:
                    if r.width == 64:
                        self.wide[r.name] = r.reset
                        self.latched[r.name] = r.reset >> 32


@pytest.fixture
def fake():
    return FakeProbeMMIO()


def test_binds_to_the_vlnv():
    from pynq.overlay import _ip_drivers

    assert StreamProbe.bindto == [regs.VLNV]
    assert _ip_drivers[regs.VLNV] is StreamProbe


def test_check_id_and_config(fake):
    probe = StreamProbe.from_mmio(fake)
    probe.check_id()
    assert probe.config() == {"FIFO_DEPTH": 4, "DATA_WIDTH_IN": 32, "DATA_WIDTH_OUT": 32}
    fake.words[regs.register("ID").offset] = 0xDEADBEEF
    with pytest.raises(StreamProbeError, match="reads 0xDEADBEEF, expected 0x53505242"):
        probe.check_id()
    fake.words[regs.register("ID").offset] = regs.ID_MAGIC
    fake.words[regs.register("VERSION").offset] = 0x0200
    with pytest.raises(StreamProbeError, match="version 2.x, this driver supports 1.x"):
        probe.check_id()


def test_snapshot_of_a_fresh_probe_has_no_latencies(fake):
    snap = StreamProbe.from_mmio(fake).snapshot()
    assert isinstance(snap, ProbeSnapshot)
    assert (snap.cycles, snap.transfers, snap.enabled, snap.valid) == (0, 0, True, True)
    assert snap.last_latency is snap.min_latency is snap.max_latency is snap.last_transfer_time is None
    assert snap.output_interval() is None


@pytest.mark.parametrize("signed", [False, True])
def test_snapshot_assembles_64_bit_values(signed):
    fake = FakeProbeMMIO(signed=signed)
    fake.wide.update(CYCLES=0x1_2345_6789_ABCD, IN_BEATS=0xFFFF_FFFF_0000_0001, OUT_BEATS=101,
                     TRANSFERS=1, LAST_LATENCY=37, LAST_TRANSFER_TIME=237, MIN_LATENCY=37, MAX_LATENCY=37)
    status = regs.register("STATUS")
    fake.words[status.offset] = (1 << status.field("OVERFLOW").lsb) | (3 << status.field("PENDING").lsb)
    snap = StreamProbe.from_mmio(fake).snapshot()
    assert snap.cycles == 0x1_2345_6789_ABCD and snap.in_beats == 0xFFFF_FFFF_0000_0001
    assert (snap.last_latency, snap.last_transfer_time, snap.min_latency) == (37, 237, 37)
    assert (snap.overflow, snap.unmatched, snap.pending, snap.valid) == (True, False, 3, False)
    assert snap.output_interval() == 2.0  # (237 - 37) / (101 - 1)
    assert snap.to_dict()["out_beats"] == 101


def test_each_64_bit_value_is_read_lo_then_hi():
    """With counters moving between accesses, the result must be the sample latched by LO."""
    fake = FakeProbeMMIO(tick=0x4000_0000)
    fake.wide["CYCLES"] = 0xFFFF_FFF0  # the next tick carries into HI
    probe = StreamProbe.from_mmio(fake)
    assert probe.read64("CYCLES") == 0xFFFF_FFF0
    offsets = [entry[1] for entry in fake.log]
    cycles = regs.register("CYCLES").offset
    assert offsets == [cycles, cycles + 4]


def test_control_writes(fake):
    probe = StreamProbe.from_mmio(fake)
    fake.wide["IN_BEATS"] = 5
    probe.clear()
    assert fake.log[-1] == ("w", CTRL, 0x3) and fake.wide["IN_BEATS"] == 0
    probe.disarm()
    assert fake.log[-1] == ("w", CTRL, 0x0) and not probe.enabled
    probe.clear()  # keeps ENABLE as it was
    assert fake.log[-1] == ("w", CTRL, 0x1)
    probe.arm(clear=False)
    assert fake.log[-1] == ("w", CTRL, 0x2) and probe.enabled
    probe.arm()
    assert fake.log[-1] == ("w", CTRL, 0x3)


def test_unknown_names_and_warnings(fake, caplog):
    probe = StreamProbe.from_mmio(fake)
    with pytest.raises(regs.RegisterMapError, match="no register word 'CYCLES'"):
        probe.read_word("CYCLES")
    with pytest.raises(regs.RegisterMapError, match="CTRL is 32-bit"):
        probe.read64("CTRL")
    fake.words[regs.register("STATUS").offset] = 1 << regs.register("STATUS").field("UNMATCHED").lsb
    with caplog.at_level(logging.WARNING, logger="psqs.host.stream_probe"):
        assert probe.snapshot().unmatched
    assert "unmatched output transfer" in caplog.text
