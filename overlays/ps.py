"""The processing-system cell of a block design, for both PS families, from a board file.

A board file says which PS ports the design uses (``hp_port``, ``gp_port``), how wide they are
and at which frequency the fabric runs. Turning that into a PS cell needs facts about the two
hard IPs that do not vary per board and live here:

- how Vivado names each port's interface, its physical signals, its clock pin, its CONFIG
  switches and its parameters in the ``.hwh`` (``S_AXI_HP0_FPD`` is ``SAXIGP2`` inside the
  ZynqMP PS: ``PSU__USE__S_AXI_GP2``, ``C_SAXIGP2_DATA_WIDTH``, ports ``saxigp2_*``);
- the PL clock parameters pynq reads: on download pynq programs each enabled PL clock to the
  ``clock_dict`` frequency (``PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ`` /
  ``PSU__CRL_APB__PL0_REF_CTRL__ACT_FREQMHZ``), and on a ZynqMP it also writes the PS-PL port
  widths (``C_MAXIGP<k>_DATA_WIDTH``, ``C_SAXIGP<k>_DATA_WIDTH``) into the SLCR/AFIFM registers.

The divisors are those pynq's own ``Clocks`` would program for the frequency (the last divisor
pair, in pynq's table, whose product is nearest PLL / f) from the board's IO PLL
(``clocks.ps_ref_mhz`` x ``clocks.io_pll_fbdiv`` in the board file: 1000 MHz on PYNQ-Z2 and
KV260, 1500 MHz on ZCU104). Vivado may pick another pair for the same product
(the PYNQ-Z2 handoff has 5 x 2 where pynq picks 10 x 1); the frequency is what pynq uses.
"""
from __future__ import annotations

from dataclasses import dataclass

from psqs.board_configs import Board
from psqs.common.errors import PsqsError

from .interfaces import Interface, ScalarPin, axi_full


class PsConfigError(PsqsError, ValueError):
    """The board asks for a PS configuration the PS cannot provide (e.g. an unreachable clock)."""


@dataclass(frozen=True)
class PlClock:
    """One PL clock as the PS provides it: requested and achieved frequency, divisors."""

    index: int
    enabled: bool
    requested_mhz: float
    actual_mhz: float
    divisor0: int
    divisor1: int
    source: str


@dataclass(frozen=True)
class ExternalPort:
    """A PS pin made external by the board automation (Zynq-7000 DDR and FIXED_IO)."""

    pin: str
    name: str
    width: int
    interface: str      # DDR | FIXED_IO
    logical: str
    sigis: str = "undef"


@dataclass(frozen=True)
class ProcessingSystem:
    """Everything the design, the TCL and the HWH need to know about the board's PS cell."""

    cell: str
    vlnv: str
    short: str                   # ps7 | ps8, as in Vivado's generated cell names
    gp: Interface
    hp: Interface
    gp_clock_pin: str
    hp_clock_pin: str
    clock_pin: str               # FCLK_CLK0 | pl_clk0
    reset_pin: str               # FCLK_RESET0_N | pl_resetn0
    ddr_segment_path: str        # Vivado address segment of the DDR behind the HP port
    automation_rule: str
    automation_config: str
    config: dict[str, str]
    hwh_parameters: dict[str, str]
    width_parameters: dict[str, str]   # the used ports' data widths as the .hwh states them
    clocks: tuple[PlClock, ...]
    external_ports: tuple[ExternalPort, ...]

    @property
    def pins(self) -> tuple[ScalarPin, ...]:
        pins = [ScalarPin(self.clock_pin, "O", "clk"),
                ScalarPin(self.reset_pin, "O", "rst", polarity="ACTIVE_LOW"),
                ScalarPin(self.gp_clock_pin, "I", "clk", associated=(self.gp.name,)),
                ScalarPin(self.hp_clock_pin, "I", "clk", associated=(self.hp.name,))]
        pins += [ScalarPin(p.pin, "IO", p.sigis, p.width) for p in self.external_ports]
        return tuple(pins)

    @property
    def fclk(self) -> PlClock:
        return next(c for c in self.clocks if c.enabled)


# pynq.ps._ClocksBase: both divisors are 6-bit fields
_DIVISOR_MAX = 63
_DIV_PRODUCTS = {i * j: (i, j) for i in range(1, _DIVISOR_MAX + 1) for j in range(1, _DIVISOR_MAX + 1)}

_FAMILY = {
    "zynq": {"cell": "processing_system7_0", "vlnv": "xilinx.com:ip:processing_system7:5.5",
             "short": "ps7", "pll": "IO PLL",
             "ref_param": "PCW_CRYSTAL_PERIPHERAL_FREQMHZ", "fbdiv_param": "PCW_IOPLL_CTRL_FBDIV",
             "rule": "xilinx.com:bd_rule:processing_system7",
             "rule_config": ('make_external "FIXED_IO, DDR" apply_board_preset "1" '
                             'Master "Disable" Slave "Disable"')},
    # zynq_ultra_ps_e 3.5 is the version of Vivado 2023.1 and later (the KV260 and ZCU104 handoffs)
    "zynquplus": {"cell": "zynq_ultra_ps_e_0", "vlnv": "xilinx.com:ip:zynq_ultra_ps_e:3.5",
                  "short": "ps8", "pll": "IOPLL",
                  "ref_param": "PSU__PSS_REF_CLK__FREQMHZ", "fbdiv_param": "PSU__CRL_APB__IOPLL_CTRL__FBDIV",
                  "rule": "xilinx.com:bd_rule:zynq_ultra_ps_e", "rule_config": 'apply_board_preset "1"'},
}

# ZynqMP PS-PL ports: board name -> (SAXIGP/MAXIGP index, physical prefix, clock pin, DDR segment)
_ZU_HP = {"S_AXI_HPC0_FPD": (0, "saxihpc0_fpd_aclk", "HPC0"), "S_AXI_HPC1_FPD": (1, "saxihpc1_fpd_aclk", "HPC1"),
          "S_AXI_HP0_FPD": (2, "saxihp0_fpd_aclk", "HP0"), "S_AXI_HP1_FPD": (3, "saxihp1_fpd_aclk", "HP1"),
          "S_AXI_HP2_FPD": (4, "saxihp2_fpd_aclk", "HP2"), "S_AXI_HP3_FPD": (5, "saxihp3_fpd_aclk", "HP3")}
_ZU_GP = {"M_AXI_HPM0_FPD": (0, "maxihpm0_fpd_aclk"), "M_AXI_HPM1_FPD": (1, "maxihpm1_fpd_aclk"),
          "M_AXI_HPM0_LPD": (2, "maxihpm0_lpd_aclk")}
# Widths the ZynqMP PS reports for ports a design does not use (the ZCU104 handoff)
_ZU_DEFAULT_MAXIGP = {0: 128, 1: 128, 2: 32}
_ZU_SAXIGP_COUNT = 7
_ZU_DEFAULT_SAXIGP = 128

# Zynq-7000 pins the board automation makes external (names as in the PYNQ-Z2 handoff)
_ZYNQ_EXTERNAL = (
    ExternalPort("MIO", "FIXED_IO_mio", 54, "FIXED_IO", "MIO"),
    ExternalPort("DDR_VRN", "FIXED_IO_ddr_vrn", 1, "FIXED_IO", "DDR_VRN"),
    ExternalPort("DDR_VRP", "FIXED_IO_ddr_vrp", 1, "FIXED_IO", "DDR_VRP"),
    ExternalPort("PS_SRSTB", "FIXED_IO_ps_srstb", 1, "FIXED_IO", "PS_SRSTB"),
    ExternalPort("PS_CLK", "FIXED_IO_ps_clk", 1, "FIXED_IO", "PS_CLK"),
    ExternalPort("PS_PORB", "FIXED_IO_ps_porb", 1, "FIXED_IO", "PS_PORB"),
    ExternalPort("DDR_CAS_n", "DDR_cas_n", 1, "DDR", "CAS_N"),
    ExternalPort("DDR_CKE", "DDR_cke", 1, "DDR", "CKE"),
    ExternalPort("DDR_Clk_n", "DDR_ck_n", 1, "DDR", "CK_N", "clk"),
    ExternalPort("DDR_Clk", "DDR_ck_p", 1, "DDR", "CK_P", "clk"),
    ExternalPort("DDR_CS_n", "DDR_cs_n", 1, "DDR", "CS_N"),
    ExternalPort("DDR_DRSTB", "DDR_reset_n", 1, "DDR", "RESET_N", "rst"),
    ExternalPort("DDR_ODT", "DDR_odt", 1, "DDR", "ODT"),
    ExternalPort("DDR_RAS_n", "DDR_ras_n", 1, "DDR", "RAS_N"),
    ExternalPort("DDR_WEB", "DDR_we_n", 1, "DDR", "WE_N"),
    ExternalPort("DDR_BankAddr", "DDR_ba", 3, "DDR", "BA"),
    ExternalPort("DDR_Addr", "DDR_addr", 15, "DDR", "ADDR"),
    ExternalPort("DDR_DM", "DDR_dm", 4, "DDR", "DM"),
    ExternalPort("DDR_DQ", "DDR_dq", 32, "DDR", "DQ"),
    ExternalPort("DDR_DQS_n", "DDR_dqs_n", 4, "DDR", "DQS_N"),
    ExternalPort("DDR_DQS", "DDR_dqs_p", 4, "DDR", "DQS_P"),
)
EXTERNAL_INTERFACE_VLNV = {"DDR": "xilinx.com:interface:ddrx:1.0",
                           "FIXED_IO": "xilinx.com:display_processing_system7:fixedio:1.0"}


def divisors(pll_mhz: float, mhz: float) -> tuple[int, int]:
    """The divisor pair pynq's ``Clocks.set_pl_clk`` programs for ``mhz`` from ``pll_mhz``."""
    target = round(pll_mhz / mhz, 6)
    product = min(_DIV_PRODUCTS, key=lambda p: abs(p - target))
    return _DIV_PRODUCTS[product]


def _pll_parameters(board: Board, family: dict) -> dict[str, str]:
    """The reference clock and IO PLL multiplier as the PS cell records them in the .hwh."""
    return {family["ref_param"]: f"{board.ps_ref_mhz:.6f}".rstrip("0").rstrip("."),
            family["fbdiv_param"]: str(board.io_pll_fbdiv)}


def _clocks(board: Board, pll: str) -> tuple[PlClock, ...]:
    pll_mhz, clocks = board.io_pll_mhz, []
    for n, default in enumerate(board.fclk_defaults_mhz):
        requested = board.fclk_mhz if n == board.fclk else default
        d0, d1 = divisors(pll_mhz, requested)
        clocks.append(PlClock(n, n == board.fclk, requested, pll_mhz / (d0 * d1), d0, d1, pll))
    fclk = clocks[board.fclk]
    if abs(fclk.actual_mhz - fclk.requested_mhz) > 0.01 * fclk.requested_mhz:
        raise PsConfigError(
            f"{board.source}: clocks.fclk_mhz={board.fclk_mhz}: the {pll} ({pll_mhz:g} MHz) can only "
            f"give {fclk.actual_mhz:.6g} MHz with divisors {fclk.divisor0} x {fclk.divisor1} "
            "(more than 1 % off, pynq would warn and run the fabric at that rate)")
    return tuple(clocks)


def _mhz(value: float, family: str) -> str:
    """Frequencies as the two PS IPs print them (``100`` on the PS7, ``100.000000`` on ZynqMP)."""
    return f"{value:.6f}" if family == "zynquplus" else f"{value:.6g}"


def _clock_parameters(board: Board, clocks: tuple[PlClock, ...], srcsel: str) -> dict[str, str]:
    params = {}
    for c in clocks:
        params[board.clock_name("enable", c.index)] = "1" if c.enabled else "0"
        params[board.clock_name("freq_mhz", c.index)] = f"{c.requested_mhz:g}"
        params[board.clock_name("act_freq_mhz", c.index)] = _mhz(c.actual_mhz, board.family)
        params[board.clock_name("divisor0", c.index)] = str(c.divisor0)
        params[board.clock_name("divisor1", c.index)] = str(c.divisor1)
        params[srcsel.format(n=c.index)] = c.source
    return params


def _zynq(board: Board) -> ProcessingSystem:
    f = _FAMILY["zynq"]
    gp_n = int(board.gp_port[-1])          # M_AXI_GP0 / M_AXI_GP1
    hp_n = int(board.hp_port[-1])          # S_AXI_HP0..3
    n = board.fclk
    gp = Interface(board.gp_port, "aximm", True, "AXI3",
                   axi_full(32, board.gp_data_width, id_width=12, axi3=True),
                   prefix=f"{board.gp_port}_", upper=True, address_space="Data")
    hp = Interface(board.hp_port, "aximm", False, "AXI3",
                   axi_full(32, board.hp_data_width, id_width=6, axi3=True),
                   prefix=f"{board.hp_port}_", upper=True, address_block=f"HP{hp_n}_DDR_LOWOCM",
                   block_range=board.ddr_size)
    clocks = _clocks(board, f["pll"])
    config = {f"PCW_USE_M_AXI_GP{gp_n}": "1", f"PCW_USE_S_AXI_HP{hp_n}": "1",
              f"PCW_S_AXI_HP{hp_n}_DATA_WIDTH": str(board.hp_data_width),
              board.clock_name("freq_mhz"): f"{board.fclk_mhz:g}",
              f"PCW_EN_CLK{n}_PORT": "1", f"PCW_EN_RST{n}_PORT": "1"}
    params = _pll_parameters(board, f)
    for k in range(2):
        used = "1" if k == gp_n else "0"
        params[f"C_USE_M_AXI_GP{k}"] = used
        params[f"PCW_USE_M_AXI_GP{k}"] = used
    for k in range(4):
        used = "1" if k == hp_n else "0"
        width = str(board.hp_data_width) if k == hp_n else "64"
        params.update({f"C_USE_S_AXI_HP{k}": used, f"PCW_USE_S_AXI_HP{k}": used,
                       f"C_S_AXI_HP{k}_DATA_WIDTH": width, f"PCW_S_AXI_HP{k}_DATA_WIDTH": width})
    for c in clocks:
        buf = "TRUE" if c.enabled else "FALSE"
        params.update({f"C_FCLK_CLK{c.index}_BUF": buf, f"PCW_FCLK_CLK{c.index}_BUF": buf,
                       f"PCW_EN_CLK{c.index}_PORT": "1" if c.enabled else "0",
                       f"PCW_EN_RST{c.index}_PORT": "1" if c.enabled else "0"})
    params.update(_clock_parameters(board, clocks, "PCW_FCLK{n}_PERIPHERAL_CLKSRC"))
    return ProcessingSystem(
        cell=f["cell"], vlnv=f["vlnv"], short=f["short"],
        gp=gp, hp=hp, gp_clock_pin=f"{board.gp_port}_ACLK", hp_clock_pin=f"{board.hp_port}_ACLK",
        clock_pin=board.fclk_port, reset_pin=f"FCLK_RESET{n}_N",
        ddr_segment_path=f"{f['cell']}/{board.hp_port}/{hp.address_block}",
        automation_rule=f["rule"], automation_config=f["rule_config"], config=config,
        hwh_parameters=params, clocks=clocks, external_ports=_ZYNQ_EXTERNAL,
        width_parameters={f"C_S_AXI_HP{hp_n}_DATA_WIDTH": str(board.hp_data_width)})


def _zynquplus(board: Board) -> ProcessingSystem:
    f = _FAMILY["zynquplus"]
    gp_k, gp_clock = _ZU_GP[board.gp_port]
    hp_k, hp_clock, hp_short = _ZU_HP[board.hp_port]
    n = board.fclk
    gp = Interface(board.gp_port, "aximm", True, "AXI4",
                   axi_full(40, board.gp_data_width, id_width=16, axi3=False),
                   prefix=f"maxigp{gp_k}_", upper=False, address_space="Data")
    hp = Interface(board.hp_port, "aximm", False, "AXI4",
                   axi_full(49, board.hp_data_width, id_width=6, axi3=False),
                   prefix=f"saxigp{hp_k}_", upper=False, address_block=f"{hp_short}_DDR_LOW",
                   block_range=board.ddr_size)
    clocks = _clocks(board, f["pll"])
    # board presets enable HPM0 and HPM1; an unused master would need a clock of its own
    config = {f"PSU__USE__M_AXI_GP{k}": "1" if k == gp_k else "0" for k in sorted(_ZU_DEFAULT_MAXIGP)}
    config.update({f"PSU__MAXIGP{gp_k}__DATA_WIDTH": str(board.gp_data_width),
                   f"PSU__USE__S_AXI_GP{hp_k}": "1",
                   f"PSU__SAXIGP{hp_k}__DATA_WIDTH": str(board.hp_data_width),
                   board.clock_name("freq_mhz"): f"{board.fclk_mhz:g}",
                   board.clock_name("enable"): "1"})
    params = {**_pll_parameters(board, f), "PSU__CRL_APB__IOPLL_CTRL__DIV2": "1"}
    for k, default in _ZU_DEFAULT_MAXIGP.items():
        width = str(board.gp_data_width if k == gp_k else default)
        params.update({f"C_MAXIGP{k}_DATA_WIDTH": width, f"PSU__MAXIGP{k}__DATA_WIDTH": width,
                       f"PSU__USE__M_AXI_GP{k}": "1" if k == gp_k else "0"})
    for k in range(_ZU_SAXIGP_COUNT):
        width = str(board.hp_data_width if k == hp_k else _ZU_DEFAULT_SAXIGP)
        params.update({f"C_SAXIGP{k}_DATA_WIDTH": width, f"PSU__SAXIGP{k}__DATA_WIDTH": width,
                       f"PSU__USE__S_AXI_GP{k}": "1" if k == hp_k else "0"})
    for c in clocks:
        buf = "TRUE" if c.enabled else "FALSE"
        params.update({f"C_PL_CLK{c.index}_BUF": buf, f"PSU__PL_CLK{c.index}_BUF": buf})
    params.update(_clock_parameters(board, clocks, "PSU__CRL_APB__PL{n}_REF_CTRL__SRCSEL"))
    return ProcessingSystem(
        cell=f["cell"], vlnv=f["vlnv"], short=f["short"],
        gp=gp, hp=hp, gp_clock_pin=gp_clock, hp_clock_pin=hp_clock,
        clock_pin=board.fclk_port, reset_pin=f"pl_resetn{n}",
        ddr_segment_path=f"{f['cell']}/SAXIGP{hp_k}/{hp.address_block}",
        automation_rule=f["rule"], automation_config=f["rule_config"], config=config,
        hwh_parameters=params, clocks=clocks, external_ports=(),
        width_parameters={f"C_MAXIGP{gp_k}_DATA_WIDTH": str(board.gp_data_width),
                          f"C_SAXIGP{hp_k}_DATA_WIDTH": str(board.hp_data_width)})


def processing_system(board: Board) -> ProcessingSystem:
    """The PS cell of ``board`` (its ports, clocks, CONFIG and handoff parameters)."""
    return _zynq(board) if board.family == "zynq" else _zynquplus(board)
