"""Bus interfaces and scalar pins of block-design cells, down to the signal.

The block design is described once (:mod:`psqs.overlays.design`) and turned into two outputs:
Vivado TCL, which only names interfaces (``connect_bd_intf_net``) and lets Vivado expand them, and
the hardware handoff (``.hwh``), which lists every physical port of every cell with its
connections. pynq's parser (pynqmetadata ``HwhFrontend``) connects ports signal by signal, refuses
a PORTMAP whose physical port is missing and two connected signals driven from the same side, so
the emulation ``.hwh`` must know the signals of each interface as Vivado would write them. That
knowledge is here: the AXI4-Lite, AXI3/AXI4 and AXI4-Stream signal sets (ARM IHI 0022, IHI 0051)
and each IP's physical naming (``M_AXI_GP0_ARADDR`` on the PS7, ``maxigp0_araddr`` on the ZynqMP
PS, ``s_axi_lite_awaddr`` on the AXI DMA, ``in_r_TDATA`` on an HLS export).
"""
from __future__ import annotations

from dataclasses import dataclass, field

AXIMM = "xilinx.com:interface:aximm:1.0"
AXIS = "xilinx.com:interface:axis:1.0"
BUS_VLNV = {"aximm": AXIMM, "axis": AXIS}


@dataclass(frozen=True)
class Signal:
    """One logical signal of an interface; ``m2s``: driven by the master (initiator) side."""

    name: str
    width: int
    m2s: bool


@dataclass(frozen=True)
class Interface:
    """A bus interface pin of a cell (``connect_bd_intf_net`` connects two of them).

    ``prefix`` and ``upper`` give the physical port names: ``prefix + logical`` with the logical
    name upper- or lower-cased. A master memory-mapped interface names the address space it
    issues addresses into (``Data``, ``Data_MM2S``); a slave names its address block and the
    block's range as packaged in the IP.
    """

    name: str
    bus: str                      # aximm | axis
    master: bool
    protocol: str                 # AXI4LITE | AXI4 | AXI3 | AXIS
    signals: tuple[Signal, ...]
    prefix: str
    upper: bool
    address_space: str | None = None
    address_block: str | None = None
    block_range: int | None = None

    @property
    def vlnv(self) -> str:
        return BUS_VLNV[self.bus]

    @property
    def data_width(self) -> int:
        wanted = ("TDATA",) if self.bus == "axis" else ("WDATA", "RDATA")
        return next(s.width for s in self.signals if s.name in wanted)

    @property
    def addr_width(self) -> int | None:
        return next((s.width for s in self.signals if s.name in ("AWADDR", "ARADDR")), None)

    def signal(self, name: str) -> Signal:
        return next(s for s in self.signals if s.name == name)

    def physical(self, logical: str) -> str:
        return self.prefix + (logical.upper() if self.upper else logical.lower())

    def has(self, logical: str) -> bool:
        return any(s.name == logical for s in self.signals)


@dataclass(frozen=True)
class ScalarPin:
    """A single-wire (or vector) pin that is not part of a bus interface."""

    name: str
    direction: str                # I | O | IO
    sigis: str                    # clk | rst | INTERRUPT | undef
    width: int = 1
    polarity: str | None = None   # ACTIVE_LOW for active-low resets
    associated: tuple[str, ...] = field(default=())   # ASSOCIATED_BUSIF of a clock


def _s(spec: str, width: int = 1, m2s: bool = True) -> Signal:
    return Signal(spec, width, m2s)


def axi_lite(addr_width: int, *, wstrb: bool, data_width: int = 32) -> tuple[Signal, ...]:
    """AXI4-Lite: the five channels without PROT (neither the AXI DMA nor the probe has it)."""
    out = [_s("AWADDR", addr_width), _s("AWVALID"), _s("AWREADY", m2s=False),
           _s("WDATA", data_width)]
    if wstrb:
        out.append(_s("WSTRB", data_width // 8))
    out += [_s("WVALID"), _s("WREADY", m2s=False),
            _s("BRESP", 2, m2s=False), _s("BVALID", m2s=False), _s("BREADY"),
            _s("ARADDR", addr_width), _s("ARVALID"), _s("ARREADY", m2s=False),
            _s("RDATA", data_width, m2s=False), _s("RRESP", 2, m2s=False),
            _s("RVALID", m2s=False), _s("RREADY")]
    return tuple(out)


def axi_full(addr_width: int, data_width: int, *, id_width: int, axi3: bool,
             read: bool = True, write: bool = True, qos: bool = True, lock: bool = True,
             ids: bool = True) -> tuple[Signal, ...]:
    """AXI3 (4-bit LEN, 2-bit LOCK, WID) or AXI4 (8-bit LEN, 1-bit LOCK), either direction."""
    length, lock_width = (4, 2) if axi3 else (8, 1)
    out: list[Signal] = []

    def address(ch: str) -> None:
        if ids:
            out.append(_s(f"{ch}ID", id_width))
        out.extend([_s(f"{ch}ADDR", addr_width), _s(f"{ch}LEN", length), _s(f"{ch}SIZE", 3),
                    _s(f"{ch}BURST", 2)])
        if lock:
            out.append(_s(f"{ch}LOCK", lock_width))
        out.extend([_s(f"{ch}CACHE", 4), _s(f"{ch}PROT", 3)])
        if qos:
            out.append(_s(f"{ch}QOS", 4))
        out.extend([_s(f"{ch}VALID"), _s(f"{ch}READY", m2s=False)])

    if write:
        address("AW")
        if ids and axi3:
            out.append(_s("WID", id_width))
        out.extend([_s("WDATA", data_width), _s("WSTRB", data_width // 8), _s("WLAST"),
                    _s("WVALID"), _s("WREADY", m2s=False)])
        if ids:
            out.append(_s("BID", id_width, m2s=False))
        out.extend([_s("BRESP", 2, m2s=False), _s("BVALID", m2s=False), _s("BREADY")])
    if read:
        address("AR")
        if ids:
            out.append(_s("RID", id_width, m2s=False))
        out.extend([_s("RDATA", data_width, m2s=False), _s("RRESP", 2, m2s=False),
                    _s("RLAST", m2s=False), _s("RVALID", m2s=False), _s("RREADY")])
    return tuple(out)


def axis(data_width: int, *, keep: bool = True, strb: bool = False,
         side_bits: int = 0) -> tuple[Signal, ...]:
    """AXI4-Stream with TLAST; ``side_bits`` adds 1-bit TUSER/TID/TDEST (Vivado HLS ap_axiu)."""
    out = [_s("TDATA", data_width)]
    if keep:
        out.append(_s("TKEEP", data_width // 8))
    if strb:
        out.append(_s("TSTRB", data_width // 8))
    out += [_s("TLAST"), _s("TVALID"), _s("TREADY", m2s=False)]
    if side_bits:
        out += [_s("TUSER", side_bits), _s("TID", side_bits), _s("TDEST", side_bits)]
    return tuple(out)
