"""The DMA driver's deadlines, error decoding and recovery, against a register-level DMA model."""
from __future__ import annotations

import time

import pytest

from psqs.host import dma
from psqs.host.dma import DMAError, DMATimeout, SimpleDMA


class RegisterModel:
    """AXI DMA simple-mode registers (PG021) with a transfer that finishes after `polls` status reads."""

    def __init__(self, polls=2, received=None):
        self.regs = {}
        self.polls = polls
        self.received = received
        self.writes = []
        self.busy = {0x00: 0, 0x30: 0}
        for base in (0x00, 0x30):
            self.regs[base + dma.DMASR] = dma.SR_HALTED
            self.regs[base + dma.DMACR] = 0

    def read(self, offset):
        base = 0x30 if offset >= 0x30 else 0x00
        if offset - base == dma.DMASR and self.busy[base] > 0:
            self.busy[base] -= 1
            if self.busy[base] == 0:
                self.regs[offset] |= dma.SR_IDLE | dma.SR_IOC
                if base == 0x30 and self.received is not None:
                    self.regs[base + dma.LENGTH] = self.received
        return self.regs.get(offset, 0)

    def write(self, offset, value):
        self.writes.append((offset, value))
        base = 0x30 if offset >= 0x30 else 0x00
        reg = offset - base
        if reg == dma.DMACR:
            if value & dma.CR_RESET:               # PG021: either channel's reset resets both
                for b in (0x00, 0x30):
                    self.regs[b + dma.DMASR] = dma.SR_HALTED
                    self.regs[b + dma.DMACR] = 0
                    self.busy[b] = 0
                return
            self.regs[offset] = value
            if value & dma.CR_RUN:
                self.regs[base + dma.DMASR] &= ~dma.SR_HALTED
        elif reg == dma.DMASR:
            self.regs[offset] &= ~(value & dma.SR_IOC)
        elif reg == dma.LENGTH:
            self.regs[offset] = value
            self.regs[base + dma.DMASR] &= ~dma.SR_IDLE
            self.busy[base] = self.polls
        else:
            self.regs[offset] = value


class Buffer:
    def __init__(self, nbytes, address=0x1000_0000):
        self.nbytes, self.physical_address = nbytes, address
        self.flushed = self.invalidated = 0

    def flush(self):
        self.flushed += 1

    def invalidate(self):
        self.invalidated += 1


DESCRIPTION = {"type": dma.VLNV, "fullpath": "axi_dma_0",
               "parameters": {"c_include_sg": "0", "c_sg_length_width": "26",
                              "c_m_axi_mm2s_data_width": "64", "c_m_axi_s2mm_data_width": "64"}}


def make(**kw):
    regs = RegisterModel(**kw)
    driver = SimpleDMA(DESCRIPTION, mmio=regs)
    driver.reset()
    return driver, regs


def test_transfer_writes_length_last_and_reports_bytes_received():
    driver, regs = make(received=96)
    out, inp = Buffer(128, 0x2000_0000), Buffer(256)
    driver.s2mm.transfer(out, 128)
    driver.mm2s.transfer(inp, 256)
    assert regs.writes[-3:] == [(0x18, 0x1000_0000), (0x1C, 0), (0x28, 256)]
    assert driver.mm2s.wait(1.0) == 256 and inp.flushed == 1 and inp.invalidated == 0
    assert driver.s2mm.wait(1.0) == 96 and out.invalidated == 1 and out.flushed == 0
    assert driver.mm2s.status() & dma.SR_IOC == 0          # interrupt flag cleared


def test_a_hung_transfer_times_out_on_time():
    driver, regs = make(polls=10**9)
    driver.s2mm.transfer(Buffer(64), 64)
    t0 = time.monotonic()
    with pytest.raises(DMATimeout, match=r"S2MM channel: transfer not done after 0.2 s \(DMASR=0x"):
        driver.s2mm.wait(0.2)
    assert time.monotonic() - t0 < 0.5


@pytest.mark.parametrize("bit, text", [(dma.SR_DECODE_ERROR, "decode error"), (dma.SR_SLAVE_ERROR, "slave error"),
                                        (dma.SR_INTERNAL_ERROR, "internal error")])
def test_error_bits_become_exceptions_that_say_what_they_mean(bit, text):
    driver, regs = make(polls=10**9)
    driver.mm2s.transfer(Buffer(64), 64)
    regs.regs[dma.DMASR] |= bit | dma.SR_HALTED
    with pytest.raises(DMAError, match=text) as info:
        driver.mm2s.wait(1.0)
    assert info.value.status & bit
    with pytest.raises(DMAError):                      # a halted, errored channel refuses new work ...
        driver.mm2s.transfer(Buffer(64), 64)
    driver.reset()                                     # ... until it is reset
    driver.mm2s.transfer(Buffer(64), 64)
    regs.busy[0] = 1
    assert driver.mm2s.wait(1.0) == 64


def test_bad_transfers_are_refused_before_touching_the_hardware():
    driver, regs = make()
    before = len(regs.writes)
    with pytest.raises(ValueError, match="not aligned to 8 bytes"):
        driver.mm2s.transfer(Buffer(64, 0x1000_0004), 64)
    with pytest.raises(ValueError, match="outside 1..67108863"):
        driver.mm2s.transfer(Buffer(1 << 27), 1 << 26)
    with pytest.raises(ValueError, match="from a 16-byte buffer"):
        driver.s2mm.transfer(Buffer(16), 32)
    with pytest.raises(RuntimeError, match="wait without a transfer"):
        driver.s2mm.wait(1.0)
    assert len(regs.writes) == before


def test_reset_leaves_both_channels_running():
    driver, regs = make()
    driver.reset()
    assert not driver.mm2s.status() & dma.SR_HALTED and not driver.s2mm.status() & dma.SR_HALTED
    assert [w for w in regs.writes if w[1] & dma.CR_RESET] == [(0x00, dma.CR_RESET)] * 2   # one per reset()


def test_only_simple_mode_axi_dma_is_accepted():
    with pytest.raises(ValueError, match="is not xilinx.com:ip:axi_dma:7.1"):
        SimpleDMA({**DESCRIPTION, "type": "xilinx.com:ip:axi_vdma:6.3"}, mmio=RegisterModel())
    sg = {**DESCRIPTION, "parameters": {**DESCRIPTION["parameters"], "c_include_sg": "1"}}
    with pytest.raises(ValueError, match="scatter-gather"):
        SimpleDMA(sg, mmio=RegisterModel())
