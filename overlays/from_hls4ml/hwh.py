"""What a user's Vivado hardware handoff (``.hwh``) says about their hls4ml accelerator.

An hls4ml ``VivadoAccelerator`` design is an AXI DMA in simple mode whose MM2S stream feeds the
model IP and whose S2MM stream takes its output; everything psqs needs to emulate and drive it
is in the handoff pynq reads. The DMA and the model IP are found by following the AXI-stream
connections (each stream BUSINTERFACE names its net in BUSNAME; an initiator and a target share
it), never by instance name: users rename their cells, put them in hierarchies (``hier_0/``,
``loosely_coupled_accelerator/``; the handoff lists the cells flat, with FULLNAME carrying the
path) and put AXI-stream infrastructure between DMA and model (width and subset converters,
register slices, FIFOs), which carry the stream unchanged in content and are reported as
:class:`PassThrough` hops. psqs's own handoffs (:mod:`psqs.overlays.hwh`) read the same way, their
stream probe being such a hop.

The widths that matter are the model IP's own (``TDATA`` bits at its ports), which differ from the
DMA's when a width converter sits between (a 32-bit DMA stream gathered into 320-bit beats on the
real ZCU104 Iris design). The DMA must run in simple mode: pynq's DMA driver, hls4ml's driver and
psqs's emulator program its direct registers, which a scatter-gather DMA does not decode.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from psqs.board_configs import Board, board_names, load_board
from psqs.common import stream_probe_regs
from psqs.common.errors import PsqsError
from psqs.overlays.ip.stream_probe import ipxact

DMA_VLNV_PREFIX = "xilinx.com:ip:axi_dma:"
AXIS_VLNV_PREFIX = "xilinx.com:interface:axis:"
MM2S, S2MM = "M_AXIS_MM2S", "S_AXIS_S2MM"
#: the PS cell types, by the family names pynq and the board files use (SYSTEMINFO ARCH)
PS_MODTYPES = ("processing_system7", "zynq_ultra_ps_e")
#: an unconnected interface's BUSNAME in Vivado's handoffs (and psqs's)
UNCONNECTED = "__NOC__"

_XILINX_AXIS = {"S_AXIS": "M_AXIS"}
#: IPs that carry an AXI stream through unchanged in content (vendor:library:name, any version):
#: slave interface -> the master interface its beats leave by. Xilinx's AXI4-Stream
#: infrastructure IPs (PG085), and psqs's stream probe, which watches both streams in passing.
PASS_THROUGH: dict[str, dict[str, str]] = {
    **{f"xilinx.com:ip:{name}": _XILINX_AXIS
       for name in ("axis_dwidth_converter", "axis_register_slice", "axis_subset_converter",
                    "axis_data_fifo", "axis_clock_converter")},
    stream_probe_regs.VLNV.rsplit(":", 1)[0]: {
        slave: master for slave, s_mode, s_width in ipxact.AXIS_INTERFACES if s_mode == "slave"
        for master, m_mode, m_width in ipxact.AXIS_INTERFACES if m_mode == "master" and m_width == s_width},
}
#: PG085 parameters that decide the content of a hop's output beats (the rest is timing / wiring)
CONTENT_PARAMETERS = ("tdata_remap", "tkeep_remap", "tlast_remap", "m_has_tkeep", "m_has_tlast",
                      "has_mi_tkeep", "has_tkeep")
_PL_CLOCK = re.compile(r"(?:FCLK_CLK|pl_clk)(\d+)")


class HwhImportError(PsqsError, ValueError):
    """A hardware handoff that holds no hls4ml-style accelerator psqs can drive, or that matches no
    board; the message names the file and what is missing or wrong."""


@dataclass(frozen=True)
class PassThrough:
    """An IP a stream crosses between the DMA and the model (a width converter, a probe...)."""

    name: str        # full name, as pynq's ip_dict spells it (no leading /)
    vlnv: str
    in_bits: int     # TDATA bits entering it
    out_bits: int    # TDATA bits leaving it
    #: the IP's parameters that decide what its output beats hold (lower-case names, as
    #: :data:`CONTENT_PARAMETERS` lists them): a subset converter's remapping, which side has TKEEP
    parameters: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Dma:
    """The AXI DMA, with the parameters pynq's driver (and psqs's emulator) read."""

    name: str                  # e.g. "hier_0/axi_dma_0", the key of pynq's ip_dict
    vlnv: str
    base: int                  # its S_AXI_LITE register block, as the PS addresses it
    range: int
    length_width: int          # c_sg_length_width: bits of the LENGTH register
    mm2s_stream_bits: int      # c_m_axis_mm2s_tdata_width
    s2mm_stream_bits: int      # c_s_axis_s2mm_tdata_width
    mm2s_data_bits: int        # c_m_axi_mm2s_data_width (memory side)
    s2mm_data_bits: int        # c_m_axi_s2mm_data_width
    addr_width: int            # c_addr_width
    mm2s_dre: bool             # c_include_mm2s_dre: unaligned buffers allowed
    s2mm_dre: bool
    mm2s_burst: int            # c_mm2s_burst_size (beats)
    s2mm_burst: int
    micro: bool                # c_micro_dma


@dataclass(frozen=True)
class Register:
    """One register of an AXI-Lite block, as the handoff's IP-XACT describes it."""

    name: str
    offset: int          # byte offset in the block
    bits: int            # SIZE: the register's width (HLS data registers: the argument's)
    access: str          # read-write | read-only | write-only (Vivado HLS: its inputs are write-only)
    reset: int           # RESET_VALUE
    description: str     # e.g. "Data signal of vector_rows", "Control signals"
    fields: tuple[tuple[str, int, int, str], ...] = ()   # (name, bit offset, bit width, access)


@dataclass(frozen=True)
class RegisterBlock:
    """The model IP's AXI-Lite slave (Vivado HLS's ``s_axi_AXILiteS`` / ``s_axi_control``)."""

    interface: str
    base: int
    range: int
    words: tuple[Register, ...]
    #: width of the slave's ARADDR/AWADDR ports: Vivado HLS's adapter decodes only these low
    #: address bits, so its registers repeat through the block's range (None: no such port listed)
    address_bits: int | None = None


@dataclass(frozen=True)
class ModelIp:
    """The IP between the DMA's two streams, seen at its own ports."""

    name: str                  # full name, e.g. "hier_0/myproject_axi_0"
    vlnv: str                  # e.g. "CERN:hls4ml:myproject_axi:1.0"
    input: str                 # its AXI-stream slave interface (``in_r``)
    output: str                # its AXI-stream master interface (``out_r``)
    input_bits: int            # TDATA bits of one beat in
    output_bits: int
    registers: RegisterBlock | None   # None: no AXI-Lite control (ap_ctrl_none / tied ap_start)
    clock_hz: int              # CLKFREQUENCY of its clock input, as Vivado achieved it
    clock_source: str          # the driving pin, e.g. "processing_system7_0/FCLK_CLK0"
    pl_clock: int | None       # n when that pin is the PS's PL clock n (FCLK_CLKn / pl_clkn)

    @property
    def top(self) -> str:
        """The HLS top the IP was packaged from (the VLNV's name: ``myproject_axi``)."""
        return self.vlnv.split(":")[2]


@dataclass(frozen=True)
class Handoff:
    """An hls4ml accelerator as its ``.hwh`` describes it."""

    path: Path
    design: str                     # SYSTEMINFO NAME: the block design (a .bit names <design>_wrapper)
    family: str                     # SYSTEMINFO ARCH: zynq | zynquplus (| zynquplusRFSOC)
    part: str                       # the Vivado part up to the temperature grade the .hwh omits
    board_part: str | None          # SYSTEMINFO BOARD, e.g. tul.com.tw:pynq-z2:part0:1.0
    ps: str                         # PS cell type: processing_system7 | zynq_ultra_ps_e
    ps_name: str
    dma: Dma
    model: ModelIp
    mm2s_path: tuple[PassThrough, ...]   # DMA -> model, in stream order
    s2mm_path: tuple[PassThrough, ...]   # model -> DMA, in stream order


# --------------------------------------------------------------------------- the XML

class _Module:
    """One MODULE of the handoff: its parameters, ports and stream interfaces."""

    def __init__(self, element: ET.Element):
        self.element = element
        self.instance = element.get("INSTANCE", "")
        self.name = element.get("FULLNAME", "/" + self.instance).lstrip("/")
        self.vlnv = element.get("VLNV", "")
        self.modtype = element.get("MODTYPE", "")
        params = element.find("PARAMETERS")
        self.parameters: dict[str, str] = {}
        for p in params if params is not None else ():
            # Vivado lists each DMA parameter twice (C_INCLUDE_SG, c_include_sg); pynq reads the
            # lower-case user parameter, which comes last
            self.parameters[p.get("NAME", "").lower()] = p.get("VALUE", "")
        ports = element.find("PORTS")
        self.ports = {p.get("NAME"): p for p in (ports if ports is not None else ())}
        busifs = element.find("BUSINTERFACES")
        self.busifs = {b.get("NAME"): b for b in (busifs if busifs is not None else ())}

    def streams(self):
        return [b for b in self.busifs.values() if b.get("VLNV", "").startswith(AXIS_VLNV_PREFIX)]

    def tdata_bits(self, busif: ET.Element, where: Path) -> int:
        """A stream interface's TDATA width: its TDATA_NUM_BYTES, else the width of its TDATA port."""
        value = next((p.get("VALUE") for p in busif.iter("PARAMETER") if p.get("NAME") == "TDATA_NUM_BYTES"), None)
        if value is not None and value.isdigit():
            return 8 * int(value)
        physical = next((m.get("PHYSICAL") for m in busif.iter("PORTMAP") if m.get("LOGICAL") == "TDATA"), None)
        port = self.ports.get(physical)
        if port is None:
            raise HwhImportError(f"{where}: {self.name}/{busif.get('NAME')} gives no TDATA width "
                                 "(no TDATA_NUM_BYTES parameter, no TDATA port)")
        return int(port.get("LEFT", "0")) - int(port.get("RIGHT", "0")) + 1


def _number(text: str) -> int:
    """Vivado writes offsets both ways: ``0x04`` in the DMA's register map, ``16`` in HLS IPs'."""
    return int(text, 16) if text.lower().startswith("0x") else int(text)


class HandoffFile:
    """One parsed ``.hwh``: its modules, its PS, and the stream nets between them. The importer reads
    the whole accelerator through it (:func:`read`); the board emulator reads a package's DMA,
    probe parameters and register blocks through it, so both apply the same rules."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            root = ET.parse(self.path).getroot()
        except (OSError, ET.ParseError) as exc:
            raise HwhImportError(f"{self.path}: unreadable hardware handoff ({exc})") from None
        if root.tag != "EDKSYSTEM" or root.find("SYSTEMINFO") is None:
            raise HwhImportError(f"{self.path}: not a Vivado hardware handoff (root <{root.tag}>, "
                                 "expected <EDKSYSTEM> with a SYSTEMINFO)")
        self.info = root.find("SYSTEMINFO").attrib
        self.modules = [_Module(m) for m in root.iter("MODULE")]
        self.by_instance = {m.instance: m for m in self.modules}
        pss = [m for m in self.modules if m.modtype in PS_MODTYPES]
        if len(pss) != 1:
            raise HwhImportError(f"{self.path}: {len(pss)} processing systems ({', '.join(PS_MODTYPES)}); "
                                 "a PYNQ overlay has exactly one")
        self.ps = pss[0]
        # stream net -> its initiators and its targets, as (module, interface)
        self.drivers: dict[str, list] = {}
        self.receivers: dict[str, list] = {}
        for module in self.modules:
            for busif in module.streams():
                net = busif.get("BUSNAME", "")
                if net and net != UNCONNECTED:
                    side = self.drivers if busif.get("TYPE") in ("INITIATOR", "MASTER") else self.receivers
                    side.setdefault(net, []).append((module, busif))

    def fail(self, message: str) -> HwhImportError:
        return HwhImportError(f"{self.path}: {message}")

    def module(self, name: str) -> _Module | None:
        """The module whose full name (no leading /, as pynq's ``ip_dict`` spells it) is ``name``."""
        return next((m for m in self.modules if m.name == name), None)

    # ----------------------------------------------------------------- system

    @property
    def part(self) -> str:
        """Vivado's part string from SYSTEMINFO (as :mod:`psqs.overlays.hwh` splits it)."""
        try:
            device, package, speed = self.info["DEVICE"], self.info["PACKAGE"], self.info["SPEEDGRADE"]
        except KeyError as exc:
            raise self.fail(f"SYSTEMINFO has no {exc.args[0]}") from None
        return f"xc{device}{package}{speed}" if device.startswith("7z") else f"{device}-{package}{speed}"

    def address(self, module: _Module, interface: str | None = None) -> tuple[int, int, str] | None:
        """(base, range, slave interface) of ``module``'s register block in the PS's memory map."""
        for r in self.ps.element.iter("MEMRANGE"):
            if (r.get("INSTANCE") == module.instance and r.get("MEMTYPE") == "REGISTER"
                    and interface in (None, r.get("SLAVEBUSINTERFACE"))):
                base = int(r.get("BASEVALUE"), 16)
                return base, int(r.get("HIGHVALUE"), 16) - base + 1, r.get("SLAVEBUSINTERFACE")
        return None

    # ----------------------------------------------------------------- the DMA

    def dma(self, module: _Module) -> Dma:
        p = module.parameters

        def flag(key: str) -> bool:
            return p.get(key, "0") not in ("0", "false", "")

        if flag("c_include_sg"):
            raise self.fail(f"DMA {module.name} is built with scatter-gather (c_include_sg=1); pynq's and "
                            "hls4ml's drivers and psqs drive the DMA in simple (direct register) mode")
        for channel, key in (("MM2S", "c_include_mm2s"), ("S2MM", "c_include_s2mm")):
            if not flag(key):
                raise self.fail(f"DMA {module.name} has no {channel} channel ({key}=0); the model needs both")
        where = self.address(module, "S_AXI_LITE")
        if where is None:
            raise self.fail(f"DMA {module.name}: its S_AXI_LITE has no address in "
                            f"{self.ps.name}'s memory map (unassigned in the block design)")
        try:
            return Dma(module.name, module.vlnv, where[0], where[1], int(p["c_sg_length_width"]),
                       int(p["c_m_axis_mm2s_tdata_width"]), int(p["c_s_axis_s2mm_tdata_width"]),
                       int(p["c_m_axi_mm2s_data_width"]), int(p["c_m_axi_s2mm_data_width"]),
                       int(p.get("c_addr_width", "32")), flag("c_include_mm2s_dre"), flag("c_include_s2mm_dre"),
                       int(p.get("c_mm2s_burst_size", "16")), int(p.get("c_s2mm_burst_size", "16")),
                       flag("c_micro_dma"))
        except KeyError as exc:
            raise self.fail(f"DMA {module.name} has no parameter {exc.args[0]}") from None
        except ValueError as exc:
            raise self.fail(f"DMA {module.name}: unreadable parameter ({exc})") from None

    # ----------------------------------------------------------------- the streams

    def follow(self, dma: _Module, downstream: bool) -> tuple[_Module, ET.Element, list[PassThrough]]:
        """From the DMA's MM2S (downstream) or S2MM (upstream) along the stream, across pass-through
        IPs, to the first IP that is none: (that IP, its interface on the stream, the hops)."""
        own = MM2S if downstream else S2MM
        busif = dma.busifs.get(own)
        if busif is None:
            raise self.fail(f"DMA {dma.name} has no {own} stream interface")
        module, hops, seen = dma, [], set()
        while True:
            net = busif.get("BUSNAME", "")
            peers = [x for x in (self.receivers if downstream else self.drivers).get(net, []) if x[1] is not busif]
            if net in ("", UNCONNECTED) or not peers:
                raise self.fail(f"DMA {dma.name}'s {own} stream reaches no IP"
                                + (f" beyond {module.name}" if module is not dma else "")
                                + " (its stream interface is unconnected or leaves the block design)")
            if len(peers) > 1:
                ends = ", ".join(f"{m.name}/{b.get('NAME')}" for m, b in peers)
                raise self.fail(f"stream {net} has {len(peers)} {'targets' if downstream else 'initiators'} "
                                f"({ends}); an AXI stream has one of each")
            module, entry = peers[0]
            if module is dma:
                raise self.fail(f"DMA {dma.name}'s {own} stream loops back to the DMA"
                                + (f" through {', '.join(h.name for h in hops)}" if hops else "")
                                + " with no model IP on it")
            pairs = PASS_THROUGH.get(module.vlnv.rsplit(":", 1)[0])
            if pairs is None:
                return module, entry, hops
            if not downstream:
                pairs = {m: s for s, m in pairs.items()}
            exit_name = pairs.get(entry.get("NAME"))
            if exit_name not in module.busifs:
                raise self.fail(f"{module.name} ({module.vlnv}) carries no stream from its "
                                f"{entry.get('NAME')} interface on to another")
            if (module.name, exit_name) in seen:
                raise self.fail(f"DMA {dma.name}'s {own} stream runs in a circle through "
                                f"{', '.join(h.name for h in hops)} and reaches no model IP")
            seen.add((module.name, exit_name))
            busif = module.busifs[exit_name]
            first, second = (entry, busif) if downstream else (busif, entry)
            content = tuple((k, module.parameters[k]) for k in CONTENT_PARAMETERS if k in module.parameters)
            hops.append(PassThrough(module.name, module.vlnv, module.tdata_bits(first, self.path),
                                    module.tdata_bits(second, self.path), content))

    def registers(self, module: _Module) -> RegisterBlock | None:
        """``module``'s AXI-Lite block where the PS addresses it (:meth:`address`), its registers as
        its ADDRESSBLOCK's IP-XACT REGISTERs describe them; None when the PS addresses none."""
        where = self.address(module)
        if where is None:
            return None
        base, size, interface = where
        words = []
        for block in module.element.iter("ADDRESSBLOCK"):
            if block.get("INTERFACE") != interface:
                continue
            for reg in block.iter("REGISTER"):
                props = {p.get("NAME"): p.get("VALUE", "") for p in reg.findall("PROPERTY")}
                if "ADDRESS_OFFSET" not in props:
                    continue
                fields = []
                for field in reg.iter("FIELD"):
                    fp = {p.get("NAME"): p.get("VALUE", "") for p in field.findall("PROPERTY")}
                    fields.append((field.get("NAME", ""), _number(fp.get("BIT_OFFSET", "0") or "0"),
                                   _number(fp.get("BIT_WIDTH", "0") or "0"), fp.get("ACCESS", "")))
                try:
                    words.append(Register(reg.get("NAME", ""), _number(props["ADDRESS_OFFSET"]),
                                          _number(props.get("SIZE") or "32"), props.get("ACCESS", "read-write"),
                                          _number(props.get("RESET_VALUE") or "0"), props.get("DESCRIPTION", ""),
                                          tuple(fields)))
                except ValueError as exc:
                    raise self.fail(f"{module.name}: register {reg.get('NAME')}: unreadable property ({exc})") from None
        port = module.ports.get(f"{interface}_ARADDR")
        bits = int(port.get("LEFT", "0")) - int(port.get("RIGHT", "0")) + 1 if port is not None else None
        return RegisterBlock(interface, base, size, tuple(words), bits)

    def model(self, module: _Module, entry: ET.Element, leave: ET.Element) -> ModelIp:
        registers = self.registers(module)
        clocks = [p for p in module.ports.values() if p.get("SIGIS") == "clk" and p.get("DIR") == "I"]
        clock = next((p for p in clocks if p.find("CONNECTIONS/CONNECTION") is not None), None)
        if clock is None or not clock.get("CLKFREQUENCY", "").isdigit():
            raise self.fail(f"model IP {module.name} has no connected clock input with a CLKFREQUENCY")
        source = clock.find("CONNECTIONS/CONNECTION")
        driver = self.by_instance.get(source.get("INSTANCE"))
        pin = source.get("PORT", "")
        pl = _PL_CLOCK.fullmatch(pin) if driver is self.ps else None
        return ModelIp(module.name, module.vlnv, entry.get("NAME"), leave.get("NAME"),
                       module.tdata_bits(entry, self.path), module.tdata_bits(leave, self.path), registers,
                       int(clock.get("CLKFREQUENCY")),
                       f"{driver.name if driver else source.get('INSTANCE')}/{pin}",
                       int(pl.group(1)) if pl else None)

    def accelerator(self, dma_module: _Module, top: str | None) -> Handoff:
        dma = self.dma(dma_module)
        fed, entry, forward = self.follow(dma_module, downstream=True)
        feeding, leave, backward = self.follow(dma_module, downstream=False)
        if fed is not feeding:
            raise self.fail(f"DMA {dma.name}'s MM2S stream feeds {fed.name} but its S2MM stream comes from "
                            f"{feeding.name}: no one model IP sits on both")
        if top is not None and fed.modtype != top:
            elsewhere = [m.name for m in self.modules if m.modtype == top]
            raise self.fail(f"model IP {top!r} is not on DMA {dma.name}'s streams, which pass through "
                            f"{fed.name} ({fed.vlnv})"
                            + (f"; {', '.join(elsewhere)} is not connected to them" if elsewhere else ""))
        return Handoff(self.path, self.info.get("NAME", ""), self.info.get("ARCH", ""), self.part, self.info.get("BOARD") or None,
                       self.ps.modtype, self.ps.name, dma, self.model(fed, entry, leave),
                       tuple(forward), tuple(reversed(backward)))


def read(path: Path, top: str | None = None) -> Handoff:
    """The accelerator in the handoff at ``path``: its DMA, the model IP on the DMA's streams (whose
    HLS top must be ``top`` when given, e.g. the hls4ml project's ``myproject_axi``) and the IPs
    between them. :class:`HwhImportError` names the file and what is missing."""
    reader = HandoffFile(path)
    dmas = [m for m in reader.modules if m.vlnv.startswith(DMA_VLNV_PREFIX)]
    if not dmas:
        raise reader.fail("no AXI DMA (xilinx.com:ip:axi_dma) in the design; psqs drives an accelerator "
                          "through the DMA's MM2S and S2MM streams, as hls4ml's VivadoAccelerator builds it")
    found, errors = [], []
    for module in dmas:
        try:
            found.append(reader.accelerator(module, top))
        except HwhImportError as exc:
            errors.append(exc)
    if len(found) > 1:
        pairs = ", ".join(f"{h.dma.name} -> {h.model.name}" for h in found)
        raise reader.fail(f"{len(found)} DMAs feed model IPs ({pairs}); psqs drives one")
    if not found:
        raise errors[0]
    return found[0]


# --------------------------------------------------------------------------- the board

def _fits(board: Board, part: str) -> bool:
    """Whether a board's part is the handoff's: equal, or longer only by the temperature grade."""
    return board.part == part or board.part.startswith(part + "-")


def board_for(handoff: Handoff, board: str | Path | None = None) -> Board:
    """The psqs board the handoff was built for: ``board`` if given (its part must be the
    handoff's); else the board file whose ``board_part`` is the handoff's SYSTEMINFO BOARD (any
    board-file version), else the one board with the handoff's part."""
    where = handoff.path
    if board is not None:
        chosen = load_board(board)
        if not _fits(chosen, handoff.part):
            raise HwhImportError(f"{where}: built for part {handoff.part}, but board {chosen.name} is "
                                 f"{chosen.part}; its bitstream cannot program that board")
        return chosen
    boards = [load_board(name) for name in board_names()]
    if handoff.board_part:
        for same in (lambda b: b.board_part == handoff.board_part,
                     lambda b: b.board_part.rsplit(":", 1)[0] == handoff.board_part.rsplit(":", 1)[0]):
            hits = [b for b in boards if same(b) and _fits(b, handoff.part)]
            if len(hits) == 1:
                return hits[0]
    hits = [b for b in boards if _fits(b, handoff.part)]
    if len(hits) == 1:
        return hits[0]
    built = f"built for {handoff.board_part or 'no board'} (part {handoff.part})"
    if hits:
        raise HwhImportError(f"{where}: {built} fits several boards ({', '.join(b.name for b in hits)}); "
                             "name one with --board")
    raise HwhImportError(f"{where}: {built} matches no psqs board ({', '.join(b.name for b in boards)}); "
                         "pass --board with a board file for it")
