"""The overlay's block design, described once in Python and rendered twice.

One :class:`BlockDesign` is built from a board (:mod:`psqs.board_configs`) and a model IP
(:mod:`psqs.overlays.model_ip`); :mod:`psqs.overlays.tcl` turns it into the Vivado script of a
real build and :mod:`psqs.overlays.hwh` into the hardware handoff of an emulation build, so the
two cannot disagree on a name, a width or an address. The design, on the board's PL clock::

    PS GP master -> axi_periph -> AXI DMA S_AXI_LITE            (0x..40_0000, 64 KiB)
                              \\-> stream probe s_axi_ctrl       (0x..41_0000, 64 KiB)
    DMA M_AXIS_MM2S -> probe s_axis_in,  probe m_axis_in  -> model in
    model out       -> probe s_axis_out, probe m_axis_out -> DMA S_AXIS_S2MM
    DMA M_AXI_MM2S, M_AXI_S2MM -> axi_mem_intercon -> PS HP slave (the board's DDR window)
    proc_sys_reset: PS reset -> interconnect_aresetn, peripheral_aresetn

The AXI DMA runs in simple (direct register) mode: no scatter-gather, one transfer per channel
at a time, its LENGTH register :data:`DMA_LENGTH_WIDTH` = 26 bits wide, so one transfer moves at
most 2^26 - 1 = 67,108,863 bytes (pynq reads ``c_sg_length_width`` and refuses longer buffers).
Its stream widths are the I/O contract's bus widths and its memory-mapped width the HP port's.

Addresses: the DMA sits 0x40_0000 into the board's general-purpose master window, where the
hls4ml PYNQ-Z2 design has it (0x4040_0000), and the probe in the next 64 KiB.

Layout: a model IP converted for hls4ml's interface (``psqs convert --interface hls4ml-*``) asks
for hls4ml's hierarchy: the DMA and the model IP grouped into ``hier_0`` (hls4ml's TCL does
``group_bd_cells hier_0 axi_dma_0 <name>_axi_0``), so pynq names the DMA ``hier_0/axi_dma_0`` and
hls4ml users' drivers (``self.hier_0.axi_dma_0``) find it. The stream probe stays at the top level,
on the streams between them: pynq's ``hier_0`` then holds exactly hls4ml's two IPs. Cells keep
their Vivado names (the script creates and connects them flat, then groups them, as hls4ml's does);
:meth:`BlockDesign.pynq_name` is the name pynq sees, which the handoff, ``ips`` and the manifest use.

DMA bursts (:func:`dma_burst`): the longest burst the AXI DMA accepts (2..256 beats) that the HP
port takes whole and that stays inside AXI's 4 KiB boundary. A Zynq-7000 HP port is an AXI3
slave, whose bursts end at 16 beats: a longer DMA burst gains nothing there, because the
interconnect's AXI4-to-AXI3 conversion splits it into 16-beat bursts anyway. A ZynqMP HP port is
AXI4 and takes 256-beat bursts (hls4ml's value): one address handshake per 256 beats instead
of per 16.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

from psqs.board_configs import Board
from psqs.common import stream_probe_regs as regs
from psqs.common.errors import PsqsError
from psqs.overlays.ip.stream_probe import ipxact

from .interfaces import Interface, ScalarPin, axi_full, axi_lite, axis
from .model_ip import ModelIp, ModelIpError, check_clock
from .ps import ProcessingSystem, processing_system

BD_NAME = "psqs_bd"
DMA_VLNV = "xilinx.com:ip:axi_dma:7.1"
INTERCONNECT_VLNV = "xilinx.com:ip:axi_interconnect:2.1"
RESET_VLNV = "xilinx.com:ip:proc_sys_reset:5.0"

DMA_LENGTH_WIDTH = 26
DMA_MAX_TRANSFER_BYTES = (1 << DMA_LENGTH_WIDTH) - 1
DMA_ADDR_WIDTH = 32
DMA_BURSTS = (2, 4, 8, 16, 32, 64, 128, 256)   # c_mm2s/s2mm_burst_size values the AXI DMA accepts
HP_MAX_BURST = {"AXI3": 16, "AXI4": 256}        # longest burst of an AXI3 / AXI4 slave port
AXI_BOUNDARY_BYTES = 4096                       # no AXI burst may cross a 4 KiB boundary
DMA_LITE_ADDR_WIDTH = 10              # the AXI DMA's register file: 1 KiB decoded
DMA_REGISTER_BLOCK = ("Reg", 4096)
DMA_STREAM_WIDTHS = (8, 16, 32, 64, 128, 256, 512, 1024)
DMA_MM_WIDTHS = (32, 64, 128, 256, 512, 1024)

DMA_OFFSET = 0x0040_0000
PROBE_OFFSET = 0x0041_0000
SEGMENT_RANGE = 0x1_0000

PROBE_FIFO_DEPTH = next(p.default for p in regs.HDL_PARAMETERS if p.name == "FIFO_DEPTH")


class DesignError(PsqsError, ValueError):
    """The board and the model IP cannot be put into one block design; names field and values."""


@dataclass(frozen=True)
class Endpoint:
    cell: str
    pin: str

    @property
    def path(self) -> str:
        return f"{self.cell}/{self.pin}"


@dataclass(frozen=True)
class Cell:
    """A block-design cell: its IP, its interface and scalar pins, and the CONFIG the TCL sets."""

    name: str
    vlnv: str
    role: str            # ps | dma | probe | model | interconnect | reset
    interfaces: tuple[Interface, ...]
    pins: tuple[ScalarPin, ...]
    config: dict[str, str]

    def interface(self, name: str) -> Interface:
        for i in self.interfaces:
            if i.name == name:
                return i
        raise KeyError(f"cell {self.name} has no interface {name!r}")



@dataclass(frozen=True)
class InterfaceNet:
    name: str
    master: Endpoint
    slave: Endpoint


@dataclass(frozen=True)
class Net:
    name: str
    kind: str            # clk | rst
    driver: Endpoint
    loads: tuple[Endpoint, ...]


@dataclass(frozen=True)
class Segment:
    """An address segment: ``slave``'s block mapped into ``master``'s address space."""

    master: Endpoint     # master cell and its memory-mapped master interface
    space: str           # that master's address space (Data, Data_MM2S)
    slave: Endpoint      # slave cell and interface
    block: str           # the slave's address block
    path: str            # Vivado's address segment path
    base: int
    range: int
    memtype: str         # REGISTER | MEMORY

    @property
    def space_path(self) -> str:
        return f"{self.master.cell}/{self.space}"


@dataclass(frozen=True)
class DmaSettings:
    name: str            # as pynq names it (hier_0/axi_dma_0 in hls4ml's layout)
    length_width: int
    max_transfer_bytes: int
    mm2s_tdata_width: int
    s2mm_tdata_width: int
    mm_data_width: int
    burst: int
    burst_rule: str

    def to_dict(self) -> dict:
        return {"name": self.name, "max_transfer_bytes": self.max_transfer_bytes,
                "length_width": self.length_width, "mm2s_tdata_width": self.mm2s_tdata_width,
                "s2mm_tdata_width": self.s2mm_tdata_width, "mm_data_width": self.mm_data_width,
                "burst_beats": self.burst, "burst_rule": self.burst_rule,
                "mode": "simple (direct register, no scatter-gather)",
                "note": f"c_sg_length_width {self.length_width}: one transfer moves at most "
                        f"2^{self.length_width} - 1 = {self.max_transfer_bytes} bytes"}


@dataclass(frozen=True)
class BlockDesign:
    name: str
    board: Board
    ps: ProcessingSystem
    model: ModelIp
    dma: DmaSettings
    cells: tuple[Cell, ...]
    interface_nets: tuple[InterfaceNet, ...]
    nets: tuple[Net, ...]
    segments: tuple[Segment, ...]
    hierarchy: str | None = None      # the hierarchy grouping ``grouped`` (hls4ml's hier_0), if any
    grouped: tuple[str, ...] = ()

    def cell(self, name: str) -> Cell:
        for c in self.cells:
            if c.name == name:
                return c
        raise KeyError(f"block design has no cell {name!r}")

    def role(self, role: str) -> Cell:
        return next(c for c in self.cells if c.role == role)

    def pynq_name(self, cell: str) -> str:
        """The cell's full name in the built design, which pynq uses: ``hier_0/axi_dma_0`` inside
        the hierarchy, the cell's own name outside it."""
        return _full_name(self.hierarchy, self.grouped, cell)

    @cached_property
    def ips(self) -> dict[str, dict]:
        """Every PS-addressable IP as pynq's ip_dict will name it: {vlnv, base, range}."""
        return {self.pynq_name(s.slave.cell): {"vlnv": self.cell(s.slave.cell).vlnv, "base": s.base,
                                               "range": s.range}
                for s in self.segments if s.memtype == "REGISTER"}


def _full_name(hierarchy: str | None, grouped: tuple[str, ...], cell: str) -> str:
    return f"{hierarchy}/{cell}" if cell in grouped else cell


def dma_burst(hp: Interface) -> tuple[int, str]:
    """Beats per DMA burst on ``hp`` (the board's HP port) and why: see the module docstring."""
    limit = min(HP_MAX_BURST[hp.protocol], AXI_BOUNDARY_BYTES // (hp.data_width // 8))
    beats = max(b for b in DMA_BURSTS if b <= limit)
    return beats, (f"{beats} beats: the longest AXI DMA burst ({', '.join(map(str, DMA_BURSTS))}) that the "
                   f"{hp.protocol} port {hp.name} takes whole (at most {HP_MAX_BURST[hp.protocol]} beats) "
                   f"and that stays within AXI's {AXI_BOUNDARY_BYTES}-byte boundary at {hp.data_width} bits"
                   + ("; a longer one would only be split into 16-beat AXI3 bursts by the interconnect"
                      if hp.protocol == "AXI3" else ""))


def _dma(name: str, pynq_name: str, board: Board, hp: Interface, model: ModelIp) -> tuple[Cell, DmaSettings]:
    i_w, o_w, mm_w = model.contract.input.bus_bits, model.contract.output.bus_bits, board.hp_data_width
    for what, width in (("io.input.bus_bits", i_w), ("io.output.bus_bits", o_w)):
        if width not in DMA_STREAM_WIDTHS:
            raise DesignError(f"{model.path}/manifest.json: {what}={width}: the AXI DMA streams "
                              f"{', '.join(map(str, DMA_STREAM_WIDTHS))} bits")
        if width > mm_w:
            raise DesignError(f"{model.path}/manifest.json: {what}={width} is wider than {board.name}'s "
                              f"{board.hp_port} ({mm_w} bits); the AXI DMA's stream cannot be wider than "
                              f"its memory-mapped side (convert with --bus-width {mm_w} or less)")
    if mm_w not in DMA_MM_WIDTHS:
        raise DesignError(f"{board.source}: ps.hp_data_width={mm_w}: the AXI DMA's memory-mapped side "
                          f"is {', '.join(map(str, DMA_MM_WIDTHS))} bits")
    burst, burst_rule = dma_burst(hp)
    settings = DmaSettings(pynq_name, DMA_LENGTH_WIDTH, DMA_MAX_TRANSFER_BYTES, i_w, o_w, mm_w, burst, burst_rule)
    config = {"c_include_sg": "0", "c_sg_length_width": str(DMA_LENGTH_WIDTH),
              "c_addr_width": str(DMA_ADDR_WIDTH),
              "c_m_axi_mm2s_data_width": str(mm_w), "c_m_axis_mm2s_tdata_width": str(i_w),
              "c_m_axi_s2mm_data_width": str(mm_w), "c_s_axis_s2mm_tdata_width": str(o_w),
              "c_mm2s_burst_size": str(burst), "c_s2mm_burst_size": str(burst),
              "c_include_mm2s_dre": "0", "c_include_s2mm_dre": "0"}
    read = axi_full(DMA_ADDR_WIDTH, mm_w, id_width=0, axi3=False, write=False, qos=False,
                    lock=False, ids=False)
    write = axi_full(DMA_ADDR_WIDTH, mm_w, id_width=0, axi3=False, read=False, qos=False,
                     lock=False, ids=False)
    block, block_range = DMA_REGISTER_BLOCK
    interfaces = (
        Interface("S_AXI_LITE", "aximm", False, "AXI4LITE", axi_lite(DMA_LITE_ADDR_WIDTH, wstrb=False),
                  prefix="s_axi_lite_", upper=False, address_block=block, block_range=block_range),
        Interface("M_AXI_MM2S", "aximm", True, "AXI4", read, prefix="m_axi_mm2s_", upper=False,
                  address_space="Data_MM2S"),
        Interface("M_AXI_S2MM", "aximm", True, "AXI4", write, prefix="m_axi_s2mm_", upper=False,
                  address_space="Data_S2MM"),
        Interface("M_AXIS_MM2S", "axis", True, "AXIS", axis(i_w), prefix="m_axis_mm2s_", upper=False),
        Interface("S_AXIS_S2MM", "axis", False, "AXIS", axis(o_w), prefix="s_axis_s2mm_", upper=False),
    )
    pins = (ScalarPin("s_axi_lite_aclk", "I", "clk", associated=("S_AXI_LITE",)),
            ScalarPin("m_axi_mm2s_aclk", "I", "clk", associated=("M_AXI_MM2S", "M_AXIS_MM2S")),
            ScalarPin("m_axi_s2mm_aclk", "I", "clk", associated=("M_AXI_S2MM", "S_AXIS_S2MM")),
            ScalarPin("axi_resetn", "I", "rst", polarity="ACTIVE_LOW"),
            ScalarPin("mm2s_prmry_reset_out_n", "O", "rst", polarity="ACTIVE_LOW"),
            ScalarPin("s2mm_prmry_reset_out_n", "O", "rst", polarity="ACTIVE_LOW"),
            ScalarPin("mm2s_introut", "O", "INTERRUPT"),
            ScalarPin("s2mm_introut", "O", "INTERRUPT"))
    return Cell(name, DMA_VLNV, "dma", interfaces, pins, config), settings


def _probe(name: str, model: ModelIp) -> Cell:
    widths = {"DATA_WIDTH_IN": model.contract.input.bus_bits,
              "DATA_WIDTH_OUT": model.contract.output.bus_bits, "FIFO_DEPTH": PROBE_FIFO_DEPTH}
    for p in regs.HDL_PARAMETERS:
        try:
            p.check(widths[p.name])
        except regs.RegisterMapError as exc:
            raise DesignError(f"stream probe: {exc}") from None
    interfaces = [Interface(ipxact.AXI_LITE, "aximm", False, "AXI4LITE",
                            axi_lite(regs.ADDR_WIDTH, wstrb=True), prefix=f"{ipxact.AXI_LITE}_", upper=False,
                            address_block=ipxact.ADDRESS_BLOCK, block_range=ipxact.ADDRESS_BLOCK_RANGE)]
    for bus, mode, param in ipxact.AXIS_INTERFACES:
        interfaces.append(Interface(bus, "axis", mode == "master", "AXIS", axis(widths[param]),
                                    prefix=f"{bus}_", upper=False))
    pins = (ScalarPin("aclk", "I", "clk", associated=tuple(i.name for i in interfaces)),
            ScalarPin("aresetn", "I", "rst", polarity="ACTIVE_LOW"))
    return Cell(name, regs.VLNV, "probe", tuple(interfaces), pins, {k: str(v) for k, v in widths.items()})


def _mirror(peer: Interface, name: str) -> Interface:
    """The interconnect side of a connection: the peer's signals, opposite direction."""
    return replace(peer, name=name, master=not peer.master, prefix=f"{name}_", upper=False,
                   address_space=None, address_block=None, block_range=None)


def _interconnect(name: str, slaves: list[Interface], masters: list[Interface]) -> Cell:
    """An axi_interconnect whose Sxx_AXI face ``slaves`` (masters elsewhere) and Mxx_AXI ``masters``."""
    s = [_mirror(peer, f"S{k:02d}_AXI") for k, peer in enumerate(slaves)]
    m = [_mirror(peer, f"M{k:02d}_AXI") for k, peer in enumerate(masters)]
    pins = [ScalarPin("ACLK", "I", "clk"), ScalarPin("ARESETN", "I", "rst", polarity="ACTIVE_LOW")]
    for i in (*s, *m):
        port = i.name[:3]
        pins += [ScalarPin(f"{port}_ACLK", "I", "clk", associated=(i.name,)),
                 ScalarPin(f"{port}_ARESETN", "I", "rst", polarity="ACTIVE_LOW")]
    return Cell(name, INTERCONNECT_VLNV, "interconnect", (*s, *m), tuple(pins),
                {"NUM_SI": str(len(s)), "NUM_MI": str(len(m))})


def _reset(name: str) -> Cell:
    pins = (ScalarPin("slowest_sync_clk", "I", "clk"),
            ScalarPin("ext_reset_in", "I", "rst", polarity="ACTIVE_LOW"),
            ScalarPin("aux_reset_in", "I", "rst", polarity="ACTIVE_LOW"),
            ScalarPin("mb_debug_sys_rst", "I", "rst", polarity="ACTIVE_HIGH"),
            ScalarPin("dcm_locked", "I", "undef"),
            ScalarPin("mb_reset", "O", "rst", polarity="ACTIVE_HIGH"),
            ScalarPin("bus_struct_reset", "O", "rst", polarity="ACTIVE_HIGH"),
            ScalarPin("peripheral_reset", "O", "rst", polarity="ACTIVE_HIGH"),
            ScalarPin("interconnect_aresetn", "O", "rst", polarity="ACTIVE_LOW"),
            ScalarPin("peripheral_aresetn", "O", "rst", polarity="ACTIVE_LOW"))
    return Cell(name, RESET_VLNV, "reset", (), pins, {})


def _check_model(board: Board, model: ModelIp) -> None:
    if model.part is not None and model.part != board.part:
        field_name = "hls.part" if model.kind == "hls" else "ip.part"
        raise DesignError(f"{model.path}/manifest.json: {field_name}={model.part!r}, but {board.name} "
                          f"is a {board.part}; convert again with --board {board.name}")
    try:
        check_clock(model, board.fclk_mhz, board.name)
    except ModelIpError as exc:
        raise DesignError(str(exc)) from None


def describe(board: Board, model: ModelIp) -> BlockDesign:
    """The block design of ``model`` on ``board``; :class:`DesignError` if they do not fit together."""
    _check_model(board, model)
    ps = processing_system(board)
    grouped = ("axi_dma_0", model.cell) if model.hierarchy else ()
    dma, dma_settings = _dma("axi_dma_0", _full_name(model.hierarchy, grouped, "axi_dma_0"), board, ps.hp, model)
    probe = _probe("stream_probe_0", model)
    model_cell = Cell(model.cell, model.vlnv, "model", (model.input, model.output), model.pins, {})
    ps_cell = Cell(ps.cell, ps.vlnv, "ps", (ps.gp, ps.hp), ps.pins, dict(ps.config))
    lite = [dma.interface("S_AXI_LITE"), probe.interface(ipxact.AXI_LITE)]
    periph = _interconnect(f"{ps.short}_0_axi_periph", [ps.gp], lite)
    mem = _interconnect("axi_mem_intercon",
                        [dma.interface("M_AXI_MM2S"), dma.interface("M_AXI_S2MM")], [ps.hp])
    reset = _reset(f"rst_{ps.short}_0_{round(board.fclk_mhz)}M")
    cells = (ps_cell, periph, mem, reset, dma, probe, model_cell)

    def e(cell: Cell, pin: str) -> Endpoint:
        if not any(x.name == pin for x in (*cell.interfaces, *cell.pins)):
            raise KeyError(f"cell {cell.name} has no pin or interface {pin!r}")
        return Endpoint(cell.name, pin)

    links = [(ps_cell, ps.gp.name, periph, "S00_AXI"),
             (periph, "M00_AXI", dma, "S_AXI_LITE"),
             (periph, "M01_AXI", probe, ipxact.AXI_LITE),
             (dma, "M_AXI_MM2S", mem, "S00_AXI"),
             (dma, "M_AXI_S2MM", mem, "S01_AXI"),
             (mem, "M00_AXI", ps_cell, ps.hp.name),
             (dma, "M_AXIS_MM2S", probe, "s_axis_in"),
             (probe, "m_axis_in", model_cell, model.input.name),
             (model_cell, model.output.name, probe, "s_axis_out"),
             (probe, "m_axis_out", dma, "S_AXIS_S2MM")]
    interface_nets = tuple(InterfaceNet(f"{m.name}_{mi}", e(m, mi), e(s, si)) for m, mi, s, si in links)

    clock_loads = [e(c, p.name) for c in cells for p in c.pins
                   if p.sigis == "clk" and p.direction == "I"]
    def reset_inputs(*cs):
        return [e(c, p.name) for c in cs for p in c.pins
                if p.sigis == "rst" and p.direction == "I" and p.name != "ARESETN"]

    # The stream IPs behind the DMA (model and probe) are reset by it (PG021: mm2s_prmry_reset_out_n
    # follows the DMA's hard and soft resets), so the host's DMA reset after a timeout also drops a
    # partial sample buffered in the model and the probe's half-seen transfer: the next transfer
    # starts on a sample boundary instead of shifted outputs.
    peripheral_resets = reset_inputs(dma, periph, mem)
    nets = (Net(f"{ps.cell}_{ps.clock_pin}", "clk", e(ps_cell, ps.clock_pin), tuple(clock_loads)),
            Net(f"{ps.cell}_{ps.reset_pin}", "rst", e(ps_cell, ps.reset_pin),
                (e(reset, "ext_reset_in"),)),
            Net(f"{reset.name}_interconnect_aresetn", "rst", e(reset, "interconnect_aresetn"),
                (e(periph, "ARESETN"), e(mem, "ARESETN"))),
            Net(f"{reset.name}_peripheral_aresetn", "rst", e(reset, "peripheral_aresetn"),
                tuple(peripheral_resets)),
            Net(f"{dma.name}_mm2s_prmry_reset_out_n", "rst", e(dma, "mm2s_prmry_reset_out_n"),
                tuple(reset_inputs(model_cell, probe))))

    gp_base = board.pl_slave_base
    segments = [
        Segment(e(ps_cell, ps.gp.name), ps.gp.address_space, e(dma, "S_AXI_LITE"), DMA_REGISTER_BLOCK[0],
                f"{dma.name}/S_AXI_LITE/{DMA_REGISTER_BLOCK[0]}", gp_base + DMA_OFFSET, SEGMENT_RANGE, "REGISTER"),
        Segment(e(ps_cell, ps.gp.name), ps.gp.address_space, e(probe, ipxact.AXI_LITE),
                probe.interface(ipxact.AXI_LITE).address_block,
                f"{probe.name}/{ipxact.AXI_LITE}/{probe.interface(ipxact.AXI_LITE).address_block}",
                gp_base + PROBE_OFFSET, SEGMENT_RANGE, "REGISTER")]
    for master in ("M_AXI_MM2S", "M_AXI_S2MM"):
        segments.append(Segment(e(dma, master), dma.interface(master).address_space, e(ps_cell, ps.hp.name),
                                ps.hp.address_block, ps.ddr_segment_path, board.ddr_base, board.ddr_size,
                                "MEMORY"))
    for s in segments:
        if s.memtype == "REGISTER" and s.base + s.range > board.pl_slave_base + board.pl_slave_size:
            raise DesignError(f"{board.source}: {s.path} at {s.base:#x} lies outside the "
                              f"{board.gp_port} window {board.pl_slave_base:#x}+{board.pl_slave_size:#x}")
    if board.ddr_base + board.ddr_size > 1 << DMA_ADDR_WIDTH:
        raise DesignError(f"{board.source}: ddr window ends above 4 GiB; the DMA addresses {DMA_ADDR_WIDTH} bits")
    return BlockDesign(BD_NAME, board, ps, model, dma_settings, cells, interface_nets, nets, tuple(segments),
                       model.hierarchy, grouped)
