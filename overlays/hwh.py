"""The hardware handoff (``.hwh``) of a block design, written the way Vivado writes it.

An emulation package has no Vivado run behind it, yet ``pynq.Overlay`` must find in its
``.hwh`` exactly what it would find in a real one: the AXI DMA and the stream probe in
``ip_dict`` at their addresses with the parameters pynq's DMA driver reads (``c_include_sg``,
``c_sg_length_width``, ``c_m_axi_mm2s_data_width``, ...), the PS clock parameters ``clock_dict``
is built from, and on a ZynqMP the port-width parameters pynq writes into the PS at download.

pynq parses a ``.hwh`` with pynqmetadata's ``HwhFrontend``: every MODULE becomes a core, every
PORT a signal connected through its CONNECTIONs (which must name existing ports, with opposite
directions), every BUSINTERFACE a port whose PORTMAPs must name existing PORTs, and the PS's
MEMORYMAP gives ip_dict its addresses. So this writer emits, like Vivado's EDKSYSTEM format:
SYSTEMINFO, EXTERNALPORTS/EXTERNALINTERFACES (the Zynq-7000 DDR and FIXED_IO pins), and per
cell PARAMETERS, ADDRESSBLOCKS with the register maps, PORTS with CONNECTIONs, BUSINTERFACES with
PORTMAPs, and the masters' MEMORYMAP. The DMA's register block is Vivado's, fields included, so
``ol.axi_dma_0.register_map.MM2S_DMASR.Idle`` works as on a board. What it leaves out, no pynq
code reads: DOCUMENTS, the PS's thousand DDR and MIO settings, the unassigned PS segments.
Like every package handoff, a Zynq-7000 one then gets :mod:`psqs.overlays.zynq7_clock`'s copy of
its PL clock frequencies under the name pynq 4.0 reads.

A cell inside a hierarchy is written as Vivado writes it: FULLNAME ``/hier_0/axi_dma_0`` (from
which pynq takes ``hier_0/axi_dma_0`` and builds the ``hier_0`` hierarchy), INSTANCE
``hier_0_axi_dma_0`` (what every CONNECTION and MEMRANGE names), Component_Name from the leaf.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

from psqs.common import stream_probe_regs as regs
from psqs.common.errors import RunFailed

from . import zynq7_clock
from .design import BlockDesign, Cell, InterfaceNet, Net
from .interfaces import Interface, ScalarPin
from .ps import EXTERNAL_INTERFACE_VLNV

EDW_VERSION = "1.2"
VIVADO_VERSION = "psqs-emulation"

# AXI DMA 7.1's register block as Vivado writes it into every handoff (the same in 2019.1-2025.1
# handoffs, pynqmetadata's own resizer.hwh among them): name, ADDRESS_OFFSET and RESET_VALUE
# spelled as Vivado spells them, description, IS_ENABLED in simple mode (PG021 table 2-6), fields.
# A field is (name, bit offset, bit width, access, modified read value, description); Vivado takes
# the fields from the IP's static register description, so LENGTH's field is 26 bits whatever
# c_sg_length_width is (the width the DMA actually decodes is that parameter).
_RW, _RO = "read-write", "read-only"
_DMACR_FIELDS = (
    ("RS", 0, 1, _RW, "", "Run / Stop: 1 runs the channel, 0 stops it after the current transfer"),
    ("Reset", 2, 1, _RW, "", "Soft reset of the whole AXI DMA (either channel's bit resets both)"),
    ("Keyhole", 3, 1, _RW, "", "Keyhole (fixed-address) transfers; no effect in direct register mode"),
    ("Cyclic_BD_Enable", 4, 1, _RW, "", "Cyclic buffer descriptors; scatter-gather mode only"),
    ("IOC_IrqEn", 12, 1, _RW, "", "Interrupt on complete enable"),
    ("Dly_IrqEn", 13, 1, _RW, "", "Delay timer interrupt enable; ignored in direct register mode"),
    ("Err_IrqEn", 14, 1, _RW, "", "Error interrupt enable"),
    ("IRQThreshold", 16, 8, _RW, "", "Interrupt threshold; ignored in direct register mode"),
    ("IRQDelay", 24, 8, _RW, "", "Interrupt delay time-out; ignored in direct register mode"),
)
_DMASR_FIELDS = (
    ("Halted", 0, 1, _RO, "", "Channel halted (RS = 0 and operations stopped)"),
    ("Idle", 1, 1, _RO, "", "Direct register mode: the current transfer has completed"),
    ("SGIncld", 3, 1, _RO, "", "Scatter-gather included"),
    ("DMAIntErr", 4, 1, _RO, "", "DMA internal error (e.g. zero length, stream longer than LENGTH)"),
    ("DMASlvErr", 5, 1, _RO, "", "DMA slave error: the memory answered SLVERR"),
    ("DMADecErr", 6, 1, _RO, "", "DMA decode error: no slave at the address (DECERR)"),
    ("SGIntErr", 8, 1, _RO, "", "Scatter-gather internal error; 0 in direct register mode"),
    ("SGSlvErr", 9, 1, _RO, "", "Scatter-gather slave error; 0 in direct register mode"),
    ("SGDecErr", 10, 1, _RO, "", "Scatter-gather decode error; 0 in direct register mode"),
    ("IOC_Irq", 12, 1, _RW, "oneToClear", "Interrupt on complete; write 1 to clear"),
    ("Dly_Irq", 13, 1, _RW, "oneToClear", "Delay interrupt; write 1 to clear"),
    ("Err_Irq", 14, 1, _RW, "oneToClear", "Error interrupt; write 1 to clear"),
    ("IRQThresholdSts", 16, 8, _RO, "", "Interrupt threshold counter"),
    ("IRQDelaySts", 24, 8, _RO, "", "Interrupt delay counter"),
)


def _pointer(name: str, lsb: int, width: int, what: str) -> tuple:
    return ((name, lsb, width, _RW, "", what),)


_CURDESC = _pointer("Current_Descriptor_Pointer", 6, 26, "Current descriptor (scatter-gather mode only)")
_CURDESC_MSB = _pointer("Current_Descriptor_Pointer", 0, 32, "Current descriptor, upper 32 bits")
_TAILDESC = _pointer("Tail_Descriptor_Pointer", 6, 26, "Tail descriptor (scatter-gather mode only)")
_TAILDESC_MSB = _pointer("Tail_Descriptor_Pointer", 0, 32, "Tail descriptor, upper 32 bits")
_LENGTH = (("Length", 0, 26, _RW, "", "Bytes to transfer; writing it starts the transfer (S2MM: "
                                      "reads back the bytes received)"),)

# (name, ADDRESS_OFFSET, description, RESET_VALUE, IS_ENABLED, fields)
DMA_REGISTERS = (
    ("MM2S_DMACR", "0x0", "MM2S DMA Control Register", "0x10002", True, _DMACR_FIELDS),
    ("MM2S_DMASR", "0x04", "MM2S DMA Status Register", "0x10000", True, _DMASR_FIELDS),
    ("MM2S_CURDESC", "0x08", "MM2S DMA Current Descriptor Pointer Register", "0x0", False, _CURDESC),
    ("MM2S_CURDESC_MSB", "0x0C", "MM2S DMA Current Descriptor Pointer Register", "0x0", False, _CURDESC_MSB),
    ("MM2S_TAILDESC", "0x10", "MM2S DMA Tail Descriptor Pointer Register", "0x0", False, _TAILDESC),
    ("MM2S_TAILDESC_MSB", "0x14", "MM2S DMA Tail Descriptor Pointer Register", "0x0", False, _TAILDESC_MSB),
    ("MM2S_SA", "0x18", "MM2S Source Address Register", "0x0", True,
     _pointer("Source_Address", 0, 32, "Source address of the read buffer")),
    ("MM2S_SA_MSB", "0x1C", "MM2S Source Address Register", "0x0", True,
     _pointer("Source_Address", 0, 32, "Source address, upper 32 bits")),
    ("MM2S_LENGTH", "0x28", "MM2S DMA Transfer Length Register", "0x0", True, _LENGTH),
    ("SG_CTL", "0x2C", "Scatter/Gather User and Cache Control Register", "0x03", False,
     (("SG_CACHE", 0, 4, _RW, "", "Scatter-gather cache control"),
      ("SG_USER", 8, 4, _RW, "", "Scatter-gather user control"))),
    ("S2MM_DMACR", "0x30", "S2MM DMA Control Register", "0x10002", True, _DMACR_FIELDS),
    ("S2MM_DMASR", "0x34", "S2MM DMA Status Register", "0x10000", True, _DMASR_FIELDS),
    ("S2MM_CURDESC", "0x38", "S2MM DMA Current Descriptor Pointer Register", "0x0", False, _CURDESC),
    ("S2MM_CURDESC_MSB", "0x3C", "S2MM DMA Current Descriptor Pointer Register", "0x0", False, _CURDESC_MSB),
    ("S2MM_TAILDESC", "0x40", "S2MM DMA Tail Descriptor Pointer Register", "0x0", False, _TAILDESC),
    ("S2MM_TAILDESC_MSB", "0x44", "S2MM DMA Tail Descriptor Pointer Register", "0x0", False, _TAILDESC_MSB),
    ("S2MM_DA", "0x48", "S2MM DMA Destination Address Register", "0x0", True,
     _pointer("Destination_Address", 0, 32, "Destination address of the write buffer")),
    ("S2MM_DA_MSB", "0x4C", "S2MM Destination Address Register", "0x0", True,
     _pointer("Destination_Address", 0, 32, "Destination address, upper 32 bits")),
    ("S2MM_LENGTH", "0x58", "S2MM DMA Transfer Length Register", "0x0", True, _LENGTH),
)
_ACCESS = {"RO": "read-only", "RW": "read-write", "W1P": "write-only"}


class HwhError(RunFailed, ValueError):
    """The block design cannot be written as a handoff (an internal inconsistency, named)."""


def _part_fields(family: str, part: str) -> dict[str, str]:
    """SYSTEMINFO's DEVICE/PACKAGE/SPEEDGRADE, split as Vivado splits the part."""
    if family == "zynq":        # xc7z020clg400-1 -> 7z020 clg400 -1
        m = re.fullmatch(r"xc(7z\d{3}s?)([a-z]{3}\d{3,4})(-\dL?)", part)
    else:                       # xczu7ev-ffvc1156-2-e, xck26-sfvc784-2LV-c
        m = re.fullmatch(r"(x\w+)-([a-z]{4}\d{3,4})(-\d(?:L|LV)?)-[eic]", part)
    if m is None:
        raise HwhError(f"part {part!r}: not a {family} part string")
    return {"DEVICE": m.group(1), "PACKAGE": m.group(2), "SPEEDGRADE": m.group(3)}


def _sub(parent: ET.Element, tag: str, **attrs) -> ET.Element:
    return ET.SubElement(parent, tag, {k: str(v) for k, v in attrs.items() if v is not None})


def _parameters(parent: ET.Element, values: dict[str, str]) -> None:
    params = _sub(parent, "PARAMETERS")
    for name, value in values.items():
        _sub(params, "PARAMETER", NAME=name, VALUE=value)


def _hex(value: int) -> str:
    return f"0x{value:08X}"


class _Writer:
    def __init__(self, design: BlockDesign):
        self.d = design
        self.fclk_hz = str(round(design.ps.fclk.actual_mhz * 1e6))
        self.clk_domain = f"{design.name}_{design.ps.cell}_0_{design.ps.clock_pin}"
        # (cell, pin) -> list of (cell, pin) it connects to, and the net name
        self.links: dict[tuple[str, str], tuple[str, list[tuple[str, str]]]] = {}
        self.busnames: dict[tuple[str, str], str] = {}
        for net in design.interface_nets:
            self._link_interfaces(net)
        for net in design.nets:
            self._link_net(net)

    def _instance(self, cell: str) -> str:
        """Vivado's INSTANCE of a cell: its full name with ``_`` for ``/`` (other ends, such as
        the external ports' ``<bd>_imp``, pass unchanged)."""
        return self.d.pynq_name(cell).replace("/", "_")

    # ---------------------------------------------------------------- connectivity

    def _link_interfaces(self, net: InterfaceNet) -> None:
        m_cell, s_cell = self.d.cell(net.master.cell), self.d.cell(net.slave.cell)
        m, s = m_cell.interface(net.master.pin), s_cell.interface(net.slave.pin)
        for sig in m.signals:
            if not s.has(sig.name):
                continue
            other = s.signal(sig.name)
            if (other.width, other.m2s) != (sig.width, sig.m2s):
                raise HwhError(f"{net.name}: {sig.name} is {sig.width} bits on {net.master.path} but "
                               f"{other.width} on {net.slave.path}")
            a, b = (m_cell.name, m.physical(sig.name)), (s_cell.name, s.physical(sig.name))
            name = f"{net.name}_{sig.name.lower()}"
            self.links[a] = (name, [b])
            self.links[b] = (name, [a])
        self.busnames[(m_cell.name, m.name)] = net.name
        self.busnames[(s_cell.name, s.name)] = net.name

    def _link_net(self, net: Net) -> None:
        driver = (net.driver.cell, net.driver.pin)
        loads = [(x.cell, x.pin) for x in net.loads]
        self.links[driver] = (net.name, loads)
        for load in loads:
            self.links[load] = (net.name, [driver])

    # ---------------------------------------------------------------- elements

    def _port(self, ports: ET.Element, cell: str, name: str, direction: str, width: int,
              sigis: str, polarity: str | None = None) -> None:
        linked = self.links.get((cell, name))
        port = _sub(ports, "PORT", CLKFREQUENCY=self.fclk_hz if sigis == "clk" and direction != "IO" else None,
                    DIR=direction, LEFT=width - 1 if width > 1 else None, NAME=name,
                    POLARITY=polarity, RIGHT=0 if width > 1 else None,
                    SENSITIVITY="LEVEL_HIGH" if sigis == "INTERRUPT" else None, SIGIS=sigis,
                    SIGNAME=linked[0] if linked else None)
        if linked:
            cons = _sub(port, "CONNECTIONS")
            for other_cell, other_port in linked[1]:
                _sub(cons, "CONNECTION", INSTANCE=self._instance(other_cell), PORT=other_port)

    def _external(self, root: ET.Element) -> None:
        ports, interfaces = _sub(root, "EXTERNALPORTS"), _sub(root, "EXTERNALINTERFACES")
        ps = self.d.ps
        for p in ps.external_ports:
            port = _sub(ports, "PORT", DIR="IO", LEFT=p.width - 1 if p.width > 1 else None, NAME=p.name,
                        RIGHT=0 if p.width > 1 else None, SIGIS=p.sigis, SIGNAME=f"{ps.cell}_{p.pin}")
            _sub(_sub(port, "CONNECTIONS"), "CONNECTION", INSTANCE=ps.cell, PORT=p.pin)
            self.links[(ps.cell, p.pin)] = (f"{ps.cell}_{p.pin}", [(f"{self.d.name}_imp", p.name)])
        for bus in dict.fromkeys(p.interface for p in ps.external_ports):
            itf = _sub(interfaces, "BUSINTERFACE", BUSNAME=f"{ps.cell}_{bus}", NAME=bus, TYPE="INITIATOR")
            _sub(itf, "PARAMETER", NAME="CAN_DEBUG", VALUE="false")
            maps = _sub(itf, "PORTMAPS")
            for p in ps.external_ports:
                if p.interface == bus:
                    _sub(maps, "PORTMAP", LOGICAL=p.logical, PHYSICAL=p.name)

    def _interface_parameters(self, i: Interface) -> dict[str, str]:
        common = {"FREQ_HZ": self.fclk_hz, "PHASE": "0.000", "CLK_DOMAIN": self.clk_domain,
                  "INSERT_VIP": "0"}
        if i.bus == "axis":
            side = {k: str(i.signal(s).width) if i.has(s) else "0"
                    for k, s in (("TDEST_WIDTH", "TDEST"), ("TID_WIDTH", "TID"), ("TUSER_WIDTH", "TUSER"))}
            return {"TDATA_NUM_BYTES": str(i.data_width // 8), **side, "HAS_TREADY": "1",
                    "HAS_TSTRB": str(int(i.has("TSTRB"))), "HAS_TKEEP": str(int(i.has("TKEEP"))),
                    "HAS_TLAST": str(int(i.has("TLAST"))), **common, "LAYERED_METADATA": "undef"}
        reads, writes = i.has("ARADDR"), i.has("AWADDR")
        mode = "READ_WRITE" if reads and writes else ("READ_ONLY" if reads else "WRITE_ONLY")
        lite = i.protocol == "AXI4LITE"
        id_width = next((s.width for s in i.signals if s.name in ("AWID", "ARID")), 0)
        return {"DATA_WIDTH": str(i.data_width), "PROTOCOL": i.protocol, **common,
                "ID_WIDTH": str(id_width), "ADDR_WIDTH": str(i.addr_width),
                **{f"{u}USER_WIDTH": "0" for u in ("AW", "AR", "W", "R", "B")},
                "READ_WRITE_MODE": mode, "HAS_BURST": str(int(not lite)),
                "HAS_LOCK": str(int(i.has("AWLOCK") or i.has("ARLOCK"))),
                "HAS_PROT": str(int(i.has("AWPROT") or i.has("ARPROT"))),
                "HAS_CACHE": str(int(i.has("AWCACHE") or i.has("ARCACHE"))),
                "HAS_QOS": str(int(i.has("AWQOS") or i.has("ARQOS"))), "HAS_REGION": "0",
                "HAS_WSTRB": str(int(i.has("WSTRB"))), "HAS_BRESP": str(int(i.has("BRESP"))),
                "HAS_RRESP": str(int(i.has("RRESP"))), "SUPPORTS_NARROW_BURST": "0",
                "MAX_BURST_LENGTH": "1" if lite else ("16" if i.protocol == "AXI3" else "256")}

    def _busif(self, busifs: ET.Element, cell: Cell, i: Interface) -> None:
        if i.bus == "axis":
            kind = "INITIATOR" if i.master else "TARGET"
        else:
            kind = "MASTER" if i.master else "SLAVE"
        busname = self.busnames.get((cell.name, i.name), "__NOC__")
        itf = _sub(busifs, "BUSINTERFACE", BUSNAME=busname,
                   DATAWIDTH=str(i.data_width) if i.bus == "aximm" else None,
                   NAME=i.name, TYPE=kind, VLNV=i.vlnv)
        _parameters(itf, self._interface_parameters(i))
        maps = _sub(itf, "PORTMAPS")
        for sig in i.signals:
            _sub(maps, "PORTMAP", LOGICAL=sig.name, PHYSICAL=i.physical(sig.name))

    def _registers(self, blocks: ET.Element, interface: str, name: str, block_range: int,
                   registers: list[tuple[str, str, str, str, str, bool, tuple]]) -> None:
        """One register block; each field with the eight properties Vivado writes, in its order
        (pynq's parser needs BIT_OFFSET before BIT_WIDTH)."""
        block = _sub(blocks, "ADDRESSBLOCK", ACCESS="read-write", INTERFACE=interface, NAME=name,
                     RANGE=block_range, USAGE="register")
        regs_el = _sub(block, "REGISTERS")
        for rname, offset, description, access, reset, enabled, fields in registers:
            reg = _sub(regs_el, "REGISTER", NAME=rname)
            for key, value in (("DESCRIPTION", description), ("ADDRESS_OFFSET", offset),
                               ("SIZE", "32"), ("ACCESS", access), ("IS_ENABLED", str(enabled).lower()),
                               ("RESET_VALUE", reset)):
                _sub(reg, "PROPERTY", NAME=key, VALUE=value)
            if fields:
                fields_el = _sub(reg, "FIELDS")
                for fname, lsb, width, faccess, modified, fdesc in fields:
                    f = _sub(fields_el, "FIELD", NAME=fname)
                    for key, value in (("DESCRIPTION", fdesc), ("ADDRESS_OFFSET", lsb), ("ACCESS", faccess),
                                       ("MODIFIED_READ_VALUES", modified), ("WRITE_CONSTRAINT", 0),
                                       ("READ_ACTION", ""), ("BIT_OFFSET", lsb), ("BIT_WIDTH", width)):
                        _sub(f, "PROPERTY", NAME=key, VALUE=value)

    def _probe_registers(self) -> list:
        out = []
        for word, offset, reg in regs.words():
            hi = word.endswith("_HI")
            description = f"upper half of {reg.name} (latched by the LO read)" if hi else reg.description
            fields = () if reg.width == 64 else tuple(
                (f.name, f.lsb, f.width, _ACCESS[f.access], "", f.description) for f in reg.fields)
            reset = (reg.reset >> 32) if hi else reg.reset & 0xFFFF_FFFF
            out.append((word, f"0x{offset:X}", description, _ACCESS[reg.access], f"0x{reset:X}", True, fields))
        return out

    # ---------------------------------------------------------------- parameters per role

    def _cell_parameters(self, cell: Cell) -> dict[str, str]:
        component = {"Component_Name": f"{self.d.name}_{cell.name}_0"}
        segment = next((s for s in self.d.segments if s.slave.cell == cell.name and s.memtype == "REGISTER"), None)
        address = ({"C_BASEADDR": _hex(segment.base), "C_HIGHADDR": _hex(segment.base + segment.range - 1)}
                   if segment else {})
        if cell.role == "ps":
            return {**self.d.ps.hwh_parameters, **component, "EDK_IPTYPE": "PERIPHERAL"}
        if cell.role == "dma":
            return {**self._dma_parameters(cell), **component, **self._dma_lower(cell),
                    "EDK_IPTYPE": "PERIPHERAL", **address}
        if cell.role == "probe":
            return {**component, **cell.config, "EDK_IPTYPE": "PERIPHERAL", **address}
        if cell.role == "model":
            return {**component, "clk_period": f"{self.d.model.clock_period_ns:g}", "EDK_IPTYPE": "PERIPHERAL"}
        if cell.role == "interconnect":
            return {**cell.config, "STRATEGY": "0", **component, "EDK_IPTYPE": "BUS"}
        return {"C_FAMILY": self.d.board.family, "C_EXT_RST_WIDTH": "4", "C_AUX_RST_WIDTH": "4",
                "C_EXT_RESET_HIGH": "0", "C_AUX_RESET_HIGH": "0", "C_NUM_BUS_RST": "1",
                "C_NUM_PERP_RST": "1", "C_NUM_INTERCONNECT_ARESETN": "1", "C_NUM_PERP_ARESETN": "1",
                **component, "EDK_IPTYPE": "PERIPHERAL"}

    def _dma_parameters(self, cell: Cell) -> dict[str, str]:
        c = cell.config
        return {"C_S_AXI_LITE_ADDR_WIDTH": str(cell.interface("S_AXI_LITE").addr_width),
                "C_S_AXI_LITE_DATA_WIDTH": "32", "C_DLYTMR_RESOLUTION": "125",
                "C_PRMRY_IS_ACLK_ASYNC": "0", "C_ENABLE_MULTI_CHANNEL": "0",
                "C_NUM_MM2S_CHANNELS": "1", "C_NUM_S2MM_CHANNELS": "1",
                "C_INCLUDE_SG": c["c_include_sg"], "C_SG_INCLUDE_STSCNTRL_STRM": "0",
                "C_SG_USE_STSAPP_LENGTH": "0", "C_SG_LENGTH_WIDTH": c["c_sg_length_width"],
                "C_M_AXI_SG_ADDR_WIDTH": c["c_addr_width"], "C_M_AXI_SG_DATA_WIDTH": "32",
                "C_M_AXIS_MM2S_CNTRL_TDATA_WIDTH": "32", "C_S_AXIS_S2MM_STS_TDATA_WIDTH": "32",
                "C_MICRO_DMA": "0", "C_INCLUDE_MM2S": "1", "C_INCLUDE_MM2S_SF": "1",
                "C_MM2S_BURST_SIZE": c["c_mm2s_burst_size"], "C_M_AXI_MM2S_ADDR_WIDTH": c["c_addr_width"],
                "C_M_AXI_MM2S_DATA_WIDTH": c["c_m_axi_mm2s_data_width"],
                "C_M_AXIS_MM2S_TDATA_WIDTH": c["c_m_axis_mm2s_tdata_width"],
                "C_INCLUDE_MM2S_DRE": c["c_include_mm2s_dre"], "C_INCLUDE_S2MM": "1",
                "C_INCLUDE_S2MM_SF": "1", "C_S2MM_BURST_SIZE": c["c_s2mm_burst_size"],
                "C_M_AXI_S2MM_ADDR_WIDTH": c["c_addr_width"],
                "C_M_AXI_S2MM_DATA_WIDTH": c["c_m_axi_s2mm_data_width"],
                "C_S_AXIS_S2MM_TDATA_WIDTH": c["c_s_axis_s2mm_tdata_width"],
                "C_INCLUDE_S2MM_DRE": c["c_include_s2mm_dre"], "C_INCREASE_THROUGHPUT": "0",
                "C_FAMILY": self.d.board.family}

    def _dma_lower(self, cell: Cell) -> dict[str, str]:
        """The user parameters (lower case) pynq's DMA driver reads, in Vivado's order."""
        c = cell.config
        return {"c_include_sg": c["c_include_sg"], "c_enable_multi_channel": "0",
                "c_num_mm2s_channels": "1", "c_num_s2mm_channels": "1",
                "c_sg_length_width": c["c_sg_length_width"], "c_dlytmr_resolution": "125",
                "c_prmry_is_aclk_async": "0", "c_sg_include_stscntrl_strm": "0", "c_micro_dma": "0",
                "c_include_mm2s": "1", "c_m_axi_mm2s_data_width": c["c_m_axi_mm2s_data_width"],
                "c_m_axis_mm2s_tdata_width": c["c_m_axis_mm2s_tdata_width"],
                "c_include_mm2s_dre": c["c_include_mm2s_dre"], "c_include_mm2s_sf": "1",
                "c_mm2s_burst_size": c["c_mm2s_burst_size"], "c_include_s2mm": "1",
                "c_sg_use_stsapp_length": "0", "c_m_axi_s2mm_data_width": c["c_m_axi_s2mm_data_width"],
                "c_s_axis_s2mm_tdata_width": c["c_s_axis_s2mm_tdata_width"],
                "c_include_s2mm_dre": c["c_include_s2mm_dre"], "c_include_s2mm_sf": "1",
                "c_s2mm_burst_size": c["c_s2mm_burst_size"], "c_addr_width": c["c_addr_width"],
                "c_single_interface": "0", "c_increase_throughput": "0"}

    # ---------------------------------------------------------------- modules

    def _module(self, modules: ET.Element, cell: Cell) -> None:
        _, _, modtype, version = cell.vlnv.split(":")
        attrs = {"FULLNAME": f"/{self.d.pynq_name(cell.name)}", "HWVERSION": version,
                 "INSTANCE": self._instance(cell.name)}
        if cell.role == "ps":
            attrs = {"CONFIGURABLE": "TRUE", **attrs, "IPTYPE": "PERIPHERAL", "IS_ENABLE": "1",
                     "IS_PL": "FALSE"}
        else:
            cls = "BUS" if cell.role == "interconnect" else "PERIPHERAL"
            attrs.update({"IPTYPE": cls, "IS_ENABLE": "1", "MODCLASS": cls})
        module = _sub(modules, "MODULE", **attrs, MODTYPE=modtype, VLNV=cell.vlnv)
        if cell.role == "dma":
            blocks = _sub(module, "ADDRESSBLOCKS")
            i = cell.interface("S_AXI_LITE")
            self._registers(blocks, i.name, i.address_block, i.block_range,
                            [(n, o, d, _RW, r, e, f) for n, o, d, r, e, f in DMA_REGISTERS])
        elif cell.role == "probe":
            i = next(x for x in cell.interfaces if x.address_block)
            self._registers(_sub(module, "ADDRESSBLOCKS"), i.name, i.address_block, i.block_range,
                            self._probe_registers())
        _parameters(module, self._cell_parameters(cell))
        ports = _sub(module, "PORTS")
        for pin in cell.pins:
            self._scalar(ports, cell, pin)
        for i in cell.interfaces:
            for sig in i.signals:
                out = sig.m2s == i.master
                self._port(ports, cell.name, i.physical(sig.name), "O" if out else "I", sig.width, "undef")
        busifs = _sub(module, "BUSINTERFACES")
        if cell.role == "ps":
            for bus in dict.fromkeys(p.interface for p in self.d.ps.external_ports):
                itf = _sub(busifs, "BUSINTERFACE", BUSNAME=f"{cell.name}_{bus}", NAME=bus, TYPE="INITIATOR",
                           VLNV=EXTERNAL_INTERFACE_VLNV[bus])
                maps = _sub(itf, "PORTMAPS")
                for p in self.d.ps.external_ports:
                    if p.interface == bus:
                        _sub(maps, "PORTMAP", LOGICAL=p.logical, PHYSICAL=p.pin)
        for i in cell.interfaces:
            self._busif(busifs, cell, i)
        ranges = [s for s in self.d.segments if s.master.cell == cell.name]
        if ranges:
            memmap = _sub(module, "MEMORYMAP")
            for s in ranges:
                _sub(memmap, "MEMRANGE", ADDRESSBLOCK=s.block, BASENAME="C_BASEADDR", BASEVALUE=_hex(s.base),
                     HIGHNAME="C_HIGHADDR", HIGHVALUE=_hex(s.base + s.range - 1),
                     INSTANCE=self._instance(s.slave.cell),
                     IS_DATA="TRUE", IS_INSTRUCTION="TRUE", MASTERBUSINTERFACE=s.master.pin,
                     MEMTYPE=s.memtype, SLAVEBUSINTERFACE=s.slave.pin)

    def _scalar(self, ports: ET.Element, cell: Cell, pin: ScalarPin) -> None:
        self._port(ports, cell.name, pin.name, pin.direction, pin.width, pin.sigis, pin.polarity)

    def render(self, timestamp: str) -> str:
        root = ET.Element("EDKSYSTEM", {"EDWVERSION": EDW_VERSION, "TIMESTAMP": timestamp,
                                        "VIVADOVERSION": VIVADO_VERSION})
        board = self.d.board
        _sub(root, "SYSTEMINFO", ARCH=board.family, BOARD=board.board_part,
             **_part_fields(board.family, board.part), NAME=self.d.name)
        self._external(root)
        modules = _sub(root, "MODULES")
        for cell in sorted(self.d.cells, key=lambda c: c.name):
            self._module(modules, cell)
        ET.indent(root, space="  ")
        comment = (f"<!-- psqs emulation handoff for {board.name}: written by psqs.overlays.hwh from the "
                   f"same block-design description as the Vivado script; no Vivado run produced it -->")
        return ('<?xml version="1.0" encoding="UTF-8" standalone="no" ?>\n' + comment + "\n"
                + ET.tostring(root, encoding="unicode") + "\n")


def render(design: BlockDesign, now: datetime | None = None) -> str:
    """The ``.hwh`` text of ``design``, with :func:`psqs.overlays.zynq7_clock.amend` applied."""
    now = now or datetime.now(timezone.utc)
    return zynq7_clock.amend(_Writer(design).render(now.strftime("%a %b %d %H:%M:%S %Y")))[0]
