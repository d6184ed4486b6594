"""The processing system's configuration registers that pynq touches, with post-boot values.

pynq programs the PL clocks itself when it downloads an overlay: on Zynq-7000 it reads the PLL
and clock-control registers of the SLCR at 0xF8000000 and rewrites the FPGA<n> divisors; on
ZynqMP it does the same in CRL_APB/CRF_APB and also sets the AXI port widths in FPD/LPD_SLCR and
the AFIFM blocks. Its arithmetic divides by what it reads, so these registers must hold what the
board's boot loader leaves there: the IO PLL multiplier of the board file (``clocks.io_pll_fbdiv``,
the PLL the PL clocks divide), the other PLLs of a PYNQ image (Zynq-7000: ARM PLL 1300 MHz,
DDR PLL 1050, as in the PYNQ-Z2 base design; ZynqMP: RPLL 750, APLL 1200, DPLL 1050, VPLL 1500,
as on the ZCU104) and PL clock divisors giving the board file's default frequencies. The fabric
runs at the board's real reference clock (``clocks.ps_ref_mhz``) times those multipliers; pynq
itself assumes 50 / 33.333 MHz, as it does on a real board. Registers nothing reads are plain
read-write words that reset to 0.

:meth:`PsRegisters.pl_clock_mhz` decodes the frequency the registers currently select, which is
the clock the emulated fabric runs at.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from psqs.board_configs import Board
from psqs.overlays.ps import divisors   # pynq's own rule, as the .hwh's divisors

log = logging.getLogger(__name__)


def _field(value: int, lsb: int, width: int) -> int:
    return (value >> lsb) & ((1 << width) - 1)


def _put(value: int, lsb: int, width: int, field: int) -> int:
    mask = ((1 << width) - 1) << lsb
    return (value & ~mask) | ((field << lsb) & mask)


class RegisterBlock:
    """A window of plain read-write 32-bit registers with reset values."""

    def __init__(self, name: str, size: int, resets: dict[int, int],
                 on_write: Callable[[int, int], None] | None = None):
        self.name, self.size = name, size
        self._resets = dict(resets)
        self._values = dict(resets)
        self._on_write = on_write

    def read32(self, offset: int) -> int:
        return self._values.get(offset, 0)

    def write32(self, offset: int, value: int) -> None:
        self._values[offset] = value & 0xFFFFFFFF
        if self._on_write is not None:
            self._on_write(offset, self._values[offset])


class _Zynq7:
    """UG585 SLCR offsets and field positions pynq uses (``pynq.ps.ZYNQ_SLCR_REGISTERS``)."""

    BASE = 0xF800_0000
    SIZE = 0x1000
    ARM_PLL, DDR_PLL, IO_PLL, ARM_CLK = 0x100, 0x104, 0x108, 0x120
    FPGA_CLK = (0x170, 0x180, 0x190, 0x1A0)
    PLL_FDIV = {ARM_PLL: 26, DDR_PLL: 21}        # IO_PLL: the board file's
    SOURCES = (IO_PLL, IO_PLL, ARM_PLL, DDR_PLL)   # FPGA<n>_CLK_CTRL.SRCSEL -> PLL


class _ZynqMP:
    """UG1087 CRL_APB / CRF_APB offsets and fields pynq uses (``pynq.ps.ZU_CRL_REGISTERS``)."""

    CRL_BASE, CRF_BASE, SIZE = 0xFF5E_0000, 0xFD1A_0000, 0x1_0000
    IOPLL, RPLL, PL_REF = 0x20, 0x30, (0xC0, 0xC4, 0xC8, 0xCC)        # CRL_APB
    APLL, DPLL, VPLL, ACPU = 0x20, 0x2C, 0x38, 0x60                   # CRF_APB
    CRL_PLLS = {RPLL: 45}                          # IOPLL: the board file's
    CRF_PLLS = {APLL: 72, DPLL: 63, VPLL: 90}
    # FPD_SLCR.AXI_FS / LPD_SLCR.AXI_FS (port widths) and the AFIFM read/write control registers
    AXI_FS = ((0xFD61_0000, 0x5000, 0x0000_0A00), (0xFF41_0000, 0x9000, 0x0000_0200))
    AFIFM = (0xFD36_0000, 0xFD37_0000, 0xFD38_0000, 0xFD39_0000, 0xFD3A_0000, 0xFD3B_0000, 0xFF9B_0000)


class PsRegisters:
    """The PS register blocks of one board; ``on_clock_change`` hears of PL clock changes."""

    def __init__(self, board: Board, on_clock_change: Callable[[], None]):
        self.board = board
        self._on_clock_change = on_clock_change
        self.blocks: dict[int, RegisterBlock] = {}
        if board.family == "zynq":
            self._build_zynq7()
        elif board.family == "zynquplus":
            self._build_zynqmp()
        else:
            raise ValueError(f"board {board.name}: PS family {board.family!r} is not emulated")

    def _changed(self, offset: int, value: int) -> None:
        self._on_clock_change()

    def _build_zynq7(self) -> None:
        z = _Zynq7
        plls = {**z.PLL_FDIV, z.IO_PLL: self.board.io_pll_fbdiv}
        resets = {reg: fdiv << 12 for reg, fdiv in plls.items()}
        resets[z.ARM_CLK] = 0x1F00_0200                 # ARM PLL / 2, all CPU clocks active
        io_mhz = self.board.io_pll_mhz
        for n, reg in enumerate(z.FPGA_CLK):
            d0, d1 = divisors(io_mhz, self.board.fclk_defaults_mhz[n])
            resets[reg] = (d1 << 20) | (d0 << 8)        # SRCSEL 0: IO PLL
        self.blocks[z.BASE] = RegisterBlock("SLCR", z.SIZE, resets, self._changed)

    def _build_zynqmp(self) -> None:
        z = _ZynqMP
        plls = {**z.CRL_PLLS, z.IOPLL: self.board.io_pll_fbdiv}
        crl = {reg: (1 << 16) | (fbdiv << 8) for reg, fbdiv in plls.items()}          # DIV2 = 1
        io_mhz = self.board.io_pll_mhz
        for n, reg in enumerate(z.PL_REF):
            d0, d1 = divisors(io_mhz, self.board.fclk_defaults_mhz[n])
            crl[reg] = (1 << 24) | (d1 << 16) | (d0 << 8)                          # CLKACT, IOPLL
        crf = {reg: (1 << 16) | (fbdiv << 8) for reg, fbdiv in z.CRF_PLLS.items()}
        crf[z.ACPU] = (3 << 24) | (1 << 8)                                           # APLL / 1
        self.blocks[z.CRL_BASE] = RegisterBlock("CRL_APB", z.SIZE, crl, self._changed)
        self.blocks[z.CRF_BASE] = RegisterBlock("CRF_APB", z.SIZE, crf, self._changed)
        for base, offset, reset in z.AXI_FS:
            name = "FPD_SLCR" if base == z.AXI_FS[0][0] else "LPD_SLCR"
            self.blocks[base] = RegisterBlock(name, 0x1_0000, {offset: reset})
        for i, base in enumerate(z.AFIFM):
            self.blocks[base] = RegisterBlock(f"AFIFM{i}", 0x1_0000, {})

    def _decode(self, n: int) -> tuple[float, int, int]:
        """(source PLL MHz, DIVISOR0, DIVISOR1) of PL clock ``n``; source 0 when gated off."""
        if self.board.family == "zynq":
            z = _Zynq7
            slcr = self.blocks[z.BASE]
            ctrl = slcr.read32(z.FPGA_CLK[n])
            pll = z.SOURCES[_field(ctrl, 4, 2)]
            return self.board.ps_ref_mhz * _field(slcr.read32(pll), 12, 7), _field(ctrl, 8, 6), _field(ctrl, 20, 6)
        z = _ZynqMP
        crl, crf = self.blocks[z.CRL_BASE], self.blocks[z.CRF_BASE]
        ctrl = crl.read32(z.PL_REF[n])
        plls = {0: (crl, z.IOPLL), 2: (crl, z.RPLL), 3: (crf, z.DPLL)}
        source = 0.0
        if _field(ctrl, 24, 1) and _field(ctrl, 0, 3) in plls:           # CLKACT, a valid SRCSEL
            block, reg = plls[_field(ctrl, 0, 3)]
            pll = block.read32(reg)
            source = self.board.ps_ref_mhz * _field(pll, 8, 7) / (2 if _field(pll, 16, 1) else 1)
        return source, _field(ctrl, 8, 6), _field(ctrl, 16, 6)

    def pl_clock_mhz(self, n: int) -> float:
        """The frequency PL clock ``n`` runs at with the current register values (0: stopped)."""
        source, d0, d1 = self._decode(n)
        return source / (d0 * d1) if d0 and d1 else 0.0

    def set_pl_clock(self, n: int, div0: int, div1: int, mhz: float) -> float:
        """The ``set_pl_clk`` RPC: explicit divisors, or the pair closest to ``mhz``."""
        if not 0 <= n < 4:
            raise ValueError(f"PL clock {n}: valid indices are 0..3")
        if not (div0 and div1):
            if mhz <= 0:
                raise ValueError(f"PL clock {n}: give both divisors or a positive frequency")
            div0, div1 = divisors(self._decode(n)[0], mhz)
        if not (0 < div0 < 64 and 0 < div1 < 64):
            raise ValueError(f"PL clock {n}: divisors {div0}, {div1} must lie in 1..63")
        if self.board.family == "zynq":
            block, reg = self.blocks[_Zynq7.BASE], _Zynq7.FPGA_CLK[n]
            value = _put(_put(block.read32(reg), 8, 6, div0), 20, 6, div1)
        else:
            block, reg = self.blocks[_ZynqMP.CRL_BASE], _ZynqMP.PL_REF[n]
            value = _put(_put(_put(block.read32(reg), 8, 6, div0), 16, 6, div1), 24, 1, 1)
        block.write32(reg, value)
        return self.pl_clock_mhz(n)
