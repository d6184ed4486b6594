"""Reading a user's hardware handoff: the DMA and the model IP found through the streams.

Every fact the reader returns is checked against something computed another way: pynq's own
parse of the same file (pynqmetadata's ``ip_dict`` and ``clock_dict``), the TDATA wires followed
port by port through their CONNECTIONs (the reader follows BUSINTERFACE nets), the DMA's own
width parameters where nothing sits between it and the model, the real designs' contents as
../shared/data/vendor/SOURCES.md lists them, and the block design psqs wrote a handoff from.
"""
from __future__ import annotations

import dataclasses
import importlib.resources
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import resign_manifest
from psqs.board_configs import load_board
from psqs.overlays import design, handoff, model_ip
from psqs.overlays import hwh as psqs_hwh
from psqs.overlays.from_hls4ml import hwh
from test_overlay import rtl_dir

RESIZER = Path(str(importlib.resources.files("pynqmetadata").joinpath("tests", "hwhs", "resizer.hwh")))

# What SOURCES.md says each real design holds (board, DMA, model IP, model VLNV), for the reader to find.
REAL = {
    "vivado2019_pynqz2_jet_design_1.hwh":
        ("pynq-z2", "hier_0/axi_dma_0", "hier_0/myproject_axi_0", "CERN:hls4ml:myproject_axi:1.0"),
    "vivado2019.1_pynqz2_cnn_quantized_312.hwh":
        ("pynq-z2", "hier_0/axi_dma_0", "hier_0/myproject_axi_0", "xilinx.com:hls:myproject_axi:1.0"),
    "vivado2023_kv260_cnn_design_1.hwh":
        ("kv260", "loosely_coupled_accelerator/axi_dma_0", "loosely_coupled_accelerator/myproject_axi_0",
         "xilinx.com:hls:myproject_axi:1.0"),
    "vivado2025_zcu104_iris_design_1.hwh": ("zcu104", "axi_dma_0", "myproject_0", "xilinx.com:hls:myproject:1.0"),
}
JET = "vivado2019_pynqz2_jet_design_1.hwh"
NO_DMA = "vivado2025_pynqz2_iris_gpio_nodma_design_1.hwh"


@pytest.fixture
def pynq_parse(monkeypatch):
    """pynq's parse, with psqs.host.pynq_compat's Zynq-7000 clock patch for this test only (pynqmetadata
    0.2.0 reads a Zynq-7000 PL clock as None without it); the class is restored afterwards."""
    from pynqmetadata.models.zynq_proc_sys_core import ZynqProcSysCore

    from psqs.host import pynq_compat

    monkeypatch.setattr(ZynqProcSysCore, "clk_freq_param_name", ZynqProcSysCore.clk_freq_param_name)
    pynq_compat.apply()
    return handoff.parse


# --------------------------------------------------------------------------- independent views

def _wire_loop(path: Path, dma_name: str) -> list[str]:
    """The cells the DMA's TDATA wires pass through, MM2S out to S2MM in, followed port by port
    (PORT / CONNECTIONS), not by BUSINTERFACE nets: at each cell, out by the TDATA output that pairs
    with the input (same name past its first letter, as s_axis_in/m_axis_in), else by its only one."""
    modules = {m.get("INSTANCE"): m for m in ET.parse(path).getroot().iter("MODULE")}
    full = {i: m.get("FULLNAME").lstrip("/") for i, m in modules.items()}
    dma = next(i for i, name in full.items() if name == dma_name)

    def tdata(instance: str, direction: str) -> list[ET.Element]:
        return [p for p in modules[instance].find("PORTS")
                if p.get("NAME").lower().endswith("tdata") and p.get("DIR") == direction]

    port = next(p for p in tdata(dma, "O") if p.get("NAME").lower() == "m_axis_mm2s_tdata")
    loop = []
    for _ in range(len(modules)):
        (to,) = port.findall("CONNECTIONS/CONNECTION")
        instance, entry = to.get("INSTANCE"), to.get("PORT")
        if instance == dma:
            assert entry.lower() == "s_axis_s2mm_tdata"
            return loop
        loop.append(full[instance])
        outs = tdata(instance, "O")
        paired = [p for p in outs if p.get("NAME")[1:] == entry[1:]]
        port = paired[0] if paired else outs[0]
    raise AssertionError(f"{path}: the MM2S wires never come back to the DMA")


def _agrees_with_pynq(h: hwh.Handoff, parse) -> None:
    """What pynq's own parser makes of the same file agrees with the reader."""
    parsed = parse(h.path)
    ip = parsed.ip_dict
    dma = ip[h.dma.name]
    assert (dma["type"], dma["phys_addr"], dma["addr_range"]) == (h.dma.vlnv, h.dma.base, h.dma.range)
    p = dma["parameters"]
    assert (int(p["c_sg_length_width"]), int(p["c_m_axis_mm2s_tdata_width"]), int(p["c_s_axis_s2mm_tdata_width"]),
            int(p["c_m_axi_mm2s_data_width"]), int(p["c_m_axi_s2mm_data_width"]), int(p["c_micro_dma"])) == \
        (h.dma.length_width, h.dma.mm2s_stream_bits, h.dma.s2mm_stream_bits, h.dma.mm2s_data_bits,
         h.dma.s2mm_data_bits, int(h.dma.micro))
    assert int(p["c_include_sg"]) == 0
    # the model: in ip_dict with its registers when the PS addresses it, absent when it has no AXI-Lite
    if h.model.registers is None:
        assert h.model.name not in ip
    else:
        regs = ip[h.model.name]
        assert (regs["type"], regs["phys_addr"], regs["addr_range"]) == \
            (h.model.vlnv, h.model.registers.base, h.model.registers.range)
        assert {n: r["address_offset"] for n, r in regs["registers"].items()} == \
            {r.name: r.offset for r in h.model.registers.words}
    assert ip[h.ps_name]["type"].split(":")[2] == h.ps
    clock = parsed.clock_dict[h.model.pl_clock]
    assert clock["enable"] == 1
    assert clock["frequency"] == pytest.approx(h.model.clock_hz / 1e6, rel=1e-6)
    # the streams: the model's widths are the DMA's where nothing sits between, and each hop's
    # output is the next one's input
    chain_in = [p["c_m_axis_mm2s_tdata_width"]] + [x for hop in h.mm2s_path for x in (hop.in_bits, hop.out_bits)]
    chain_in.append(h.model.input_bits)
    assert [int(x) for x in chain_in[0::2]] == [int(x) for x in chain_in[1::2]]
    chain_out = [h.model.output_bits] + [x for hop in h.s2mm_path for x in (hop.in_bits, hop.out_bits)]
    chain_out.append(p["c_s_axis_s2mm_tdata_width"])
    assert [int(x) for x in chain_out[0::2]] == [int(x) for x in chain_out[1::2]]


# --------------------------------------------------------------------------- the real designs

@pytest.mark.parametrize("name", sorted(REAL))
def test_real_hls4ml_handoffs(shared_vendor, pynq_parse, name):
    path = shared_vendor / name
    h = hwh.read(path)
    board, dma, model, vlnv = REAL[name]
    assert (h.dma.name, h.model.name, h.model.vlnv) == (dma, model, vlnv)
    assert h.model.top == vlnv.split(":")[2] and hwh.read(path, top=h.model.top) == h
    assert hwh.board_for(h).name == board
    chosen = load_board(board)
    assert (h.ps, h.family, h.board_part) == (chosen.ps, chosen.family, chosen.board_part)
    assert _wire_loop(path, h.dma.name) == \
        [x.name for x in h.mm2s_path] + [h.model.name] + [x.name for x in h.s2mm_path]
    _agrees_with_pynq(h, pynq_parse)


def test_width_converters_are_reported_on_the_zcu104_design(shared_vendor, pynq_parse):
    """SOURCES.md: axis width/subset converters between DMA and model; the model takes wide beats."""
    h = hwh.read(shared_vendor / "vivado2025_zcu104_iris_design_1.hwh")
    assert [x.vlnv.split(":")[2] for x in h.mm2s_path] == ["axis_dwidth_converter", "axis_subset_converter"]
    assert [x.vlnv.split(":")[2] for x in h.s2mm_path] == ["axis_subset_converter"]
    assert h.model.input_bits != h.dma.mm2s_stream_bits          # what the converters are there for
    assert h.model.registers is None                             # ap_ctrl tied, no AXI-Lite


def test_hops_are_reported_in_stream_order(shared_vendor, tmp_path):
    """A register slice inside a hierarchy, added between the ZCU104 model and its S2MM converter,
    is followed through and reported where it sits on the stream."""
    def add_slice(root):
        modules = root.find("MODULES")
        converter = next(m for m in modules if m.get("FULLNAME") == "/axis_subset_converter_0")
        piece = ET.fromstring(ET.tostring(converter))
        piece.attrib.update(FULLNAME="/hier_x/axis_register_slice_0", INSTANCE="hier_x_axis_register_slice_0",
                            MODTYPE="axis_register_slice", VLNV="xilinx.com:ip:axis_register_slice:1.1")
        modules.append(piece)
        _busif(root, "/hier_x/axis_register_slice_0", "S_AXIS").set("BUSNAME", "model_to_slice")
        _busif(root, "/myproject_0", "layer7_out").set("BUSNAME", "model_to_slice")
        _busif(root, "/hier_x/axis_register_slice_0", "M_AXIS").set("BUSNAME", "slice_to_converter")
        _busif(root, "/axis_subset_converter_0", "S_AXIS").set("BUSNAME", "slice_to_converter")
    source = shared_vendor / "vivado2025_zcu104_iris_design_1.hwh"
    h = hwh.read(_edited(tmp_path, source, add_slice))
    assert [x.name for x in h.s2mm_path] == ["hier_x/axis_register_slice_0", "axis_subset_converter_0"]
    assert h.mm2s_path == hwh.read(source).mm2s_path and h.model == hwh.read(source).model


def test_pynqmetadata_resizer_design(pynq_parse):
    """pynqmetadata's own DMA design: converters on both sides, an HLS IP with AXI-Lite registers."""
    h = hwh.read(RESIZER)
    assert _wire_loop(RESIZER, h.dma.name) == [x.name for x in h.mm2s_path] + [h.model.name] + \
        [x.name for x in h.s2mm_path]
    assert h.mm2s_path and h.s2mm_path and h.model.registers is not None
    _agrees_with_pynq(h, pynq_parse)
    with pytest.raises(hwh.HwhImportError, match=r"resizer\.hwh: built for no board \(part xc7z020clg400-1\) "
                                                 r"fits several boards \(pynq-z1, pynq-z2\); name one with --board"):
        hwh.board_for(h)
    assert hwh.board_for(h, "pynq-z1").name == "pynq-z1"


# --------------------------------------------------------------------------- psqs's own handoffs

@pytest.mark.parametrize("board_name", ["pynq-z2", "zcu104"])
def test_psqs_written_handoff(tmp_path, pynq_parse, board_name):
    board = load_board(board_name)
    source = rtl_dir(tmp_path / "rtl")
    resign_manifest(source, lambda fields: fields["ip"].update(part=board.part))
    d = design.describe(board, model_ip.load(source))
    path = tmp_path / "psqs.hwh"
    path.write_text(psqs_hwh.render(d))
    h = hwh.read(path, top=d.model.cell.rsplit("_", 1)[0])
    probe = d.role("probe").name
    assert (h.dma.name, h.model.name, h.board_part) == (d.dma.name, d.model.cell, board.board_part)
    assert (h.dma.base, h.dma.range) == (d.ips[d.dma.name]["base"], d.ips[d.dma.name]["range"])
    assert [x.name for x in h.mm2s_path] == [x.name for x in h.s2mm_path] == [probe]
    assert (h.model.input_bits, h.model.output_bits) == (d.model.contract.input.bus_bits,
                                                         d.model.contract.output.bus_bits)
    assert (h.dma.length_width, h.dma.mm2s_stream_bits) == (d.dma.length_width, d.dma.mm2s_tdata_width)
    assert h.model.clock_hz == pytest.approx(d.ps.fclk.actual_mhz * 1e6, abs=1)
    assert h.model.pl_clock == board.fclk and hwh.board_for(h) == board
    assert _wire_loop(path, h.dma.name) == [probe, h.model.name, probe]
    _agrees_with_pynq(h, pynq_parse)


# --------------------------------------------------------------------------- errors

def _edited(tmp_path: Path, source: Path, edit) -> Path:
    """A copy of a real handoff with one thing changed by ``edit(root)``."""
    tree = ET.parse(source)
    edit(tree.getroot())
    path = tmp_path / source.name
    tree.write(path)
    return path


def _busif(root: ET.Element, fullname: str, interface: str) -> ET.Element:
    module = next(m for m in root.iter("MODULE") if m.get("FULLNAME") == fullname)
    return next(b for b in module.iter("BUSINTERFACE") if b.get("NAME") == interface)


def test_no_dma(shared_vendor):
    with pytest.raises(hwh.HwhImportError, match=rf"{NO_DMA}: no AXI DMA \(xilinx\.com:ip:axi_dma\) in the design"):
        hwh.read(shared_vendor / NO_DMA)


def test_unreadable_handoffs(shared_vendor, tmp_path):
    truncated = tmp_path / "cut.hwh"
    truncated.write_bytes((shared_vendor / JET).read_bytes()[:5000])
    for path in (truncated, tmp_path / "missing.hwh"):
        with pytest.raises(hwh.HwhImportError, match=rf"{path.name}: unreadable hardware handoff"):
            hwh.read(path)
    other = tmp_path / "other.xml"
    other.write_text("<profile/>")
    with pytest.raises(hwh.HwhImportError, match=r"other\.xml: not a Vivado hardware handoff \(root <profile>"):
        hwh.read(other)


def test_scatter_gather_dma_is_refused(shared_vendor, tmp_path):
    def sg(root):
        for p in root.iter("PARAMETER"):
            if p.get("NAME") in ("C_INCLUDE_SG", "c_include_sg"):
                p.set("VALUE", "1")
    with pytest.raises(hwh.HwhImportError, match=rf"{JET}: DMA hier_0/axi_dma_0 is built with scatter-gather"):
        hwh.read(_edited(tmp_path, shared_vendor / JET, sg))


def test_streams_that_reach_no_model(shared_vendor, tmp_path):
    def unplug(root):
        _busif(root, "/hier_0/myproject_axi_0", "in_r").set("BUSNAME", "__NOC__")
    with pytest.raises(hwh.HwhImportError, match=rf"{JET}: DMA hier_0/axi_dma_0's M_AXIS_MM2S stream reaches no IP"):
        hwh.read(_edited(tmp_path, shared_vendor / JET, unplug))

    def loop(root):
        mm2s = _busif(root, "/hier_0/axi_dma_0", "M_AXIS_MM2S").get("BUSNAME")
        _busif(root, "/hier_0/myproject_axi_0", "in_r").set("BUSNAME", "__NOC__")
        _busif(root, "/hier_0/axi_dma_0", "S_AXIS_S2MM").set("BUSNAME", mm2s)
    with pytest.raises(hwh.HwhImportError, match=r"M_AXIS_MM2S stream loops back to the DMA with no model IP"):
        hwh.read(_edited(tmp_path, shared_vendor / JET, loop))

    def loop_through_converters(root):   # ZCU104: S2MM fed by the MM2S side's converters
        converted = _busif(root, "/axis_subset_converter_1", "M_AXIS").get("BUSNAME")
        _busif(root, "/myproject_0", "input_layer").set("BUSNAME", "__NOC__")
        _busif(root, "/axis_subset_converter_0", "S_AXIS").set("BUSNAME", converted)
    zcu104 = shared_vendor / "vivado2025_zcu104_iris_design_1.hwh"
    with pytest.raises(hwh.HwhImportError, match=r"loops back to the DMA through axis_dwidth_converter_0, "
                                                 r"axis_subset_converter_1, axis_subset_converter_0"):
        hwh.read(_edited(tmp_path, zcu104, loop_through_converters))

    def circle(root):   # the converters' last output drives the MM2S net too: a ring with no exit
        mm2s = _busif(root, "/axi_dma_0", "M_AXIS_MM2S").get("BUSNAME")
        _busif(root, "/axis_subset_converter_1", "M_AXIS").set("BUSNAME", mm2s)
    with pytest.raises(hwh.HwhImportError, match=r"M_AXIS_MM2S stream runs in a circle through "
                                                 r"axis_dwidth_converter_0, axis_subset_converter_1 "):
        hwh.read(_edited(tmp_path, zcu104, circle))

    def fan_out(root):
        mm2s = _busif(root, "/hier_0/axi_dma_0", "M_AXIS_MM2S").get("BUSNAME")
        _busif(root, "/hier_0/axi_dma_0", "S_AXIS_S2MM").set("BUSNAME", mm2s)
    with pytest.raises(hwh.HwhImportError, match=r"stream hier_0_axi_dma_0_M_AXIS_MM2S has 2 targets"):
        hwh.read(_edited(tmp_path, shared_vendor / JET, fan_out))


def test_model_ip_not_on_the_streams(shared_vendor, tmp_path):
    with pytest.raises(hwh.HwhImportError, match=rf"{JET}: model IP 'myproject' is not on DMA hier_0/axi_dma_0's "
                                                 r"streams, which pass through hier_0/myproject_axi_0"):
        hwh.read(shared_vendor / JET, top="myproject")

    def two_models(root):   # the S2MM stream now comes from a second, unrelated IP
        modules = root.find("MODULES")
        model = next(m for m in modules if m.get("FULLNAME") == "/hier_0/myproject_axi_0")
        other = ET.fromstring(ET.tostring(model))
        other.set("FULLNAME", "/hier_0/other_0")
        other.set("INSTANCE", "hier_0_other_0")
        modules.append(other)
        _busif(root, "/hier_0/myproject_axi_0", "out_r").set("BUSNAME", "__NOC__")
        _busif(root, "/hier_0/other_0", "in_r").set("BUSNAME", "__NOC__")
    with pytest.raises(hwh.HwhImportError, match=r"MM2S stream feeds hier_0/myproject_axi_0 but its S2MM stream "
                                                 r"comes from hier_0/other_0: no one model IP sits on both"):
        hwh.read(_edited(tmp_path, shared_vendor / JET, two_models))


def _second_accelerator(connected: bool):
    """An edit adding a copy of the jet design's DMA (at the next 64 KiB) and model, inside hier_1;
    their streams joined to each other when ``connected``, else left unconnected."""
    def edit(root):
        modules = root.find("MODULES")
        for cell in ("axi_dma_0", "myproject_axi_0"):
            original = next(m for m in modules if m.get("FULLNAME") == f"/hier_0/{cell}")
            copy = ET.fromstring(ET.tostring(original))
            copy.attrib.update(FULLNAME=f"/hier_1/{cell}", INSTANCE=f"hier_1_{cell}")
            modules.append(copy)
        for busif in ("M_AXIS_MM2S", "S_AXIS_S2MM"):
            _busif(root, "/hier_1/axi_dma_0", busif).set("BUSNAME", f"hier_1_{busif}" if connected else "__NOC__")
        _busif(root, "/hier_1/myproject_axi_0", "in_r").set("BUSNAME", "hier_1_M_AXIS_MM2S")
        _busif(root, "/hier_1/myproject_axi_0", "out_r").set("BUSNAME", "hier_1_S_AXIS_S2MM")
        memory_map = next(m for m in modules if m.get("MODTYPE") == "processing_system7").find("MEMORYMAP")
        dma = next(r for r in memory_map if r.get("INSTANCE") == "hier_0_axi_dma_0")
        copy = ET.fromstring(ET.tostring(dma))
        copy.attrib.update(INSTANCE="hier_1_axi_dma_0", BASEVALUE="0x40410000", HIGHVALUE="0x4041FFFF")
        memory_map.append(copy)
    return edit


def test_one_accelerator_among_several_dmas(shared_vendor, tmp_path):
    """A second DMA whose streams go nowhere is passed over; two complete accelerators are refused."""
    h = hwh.read(_edited(tmp_path, shared_vendor / JET, _second_accelerator(connected=False)))
    assert h == dataclasses.replace(hwh.read(shared_vendor / JET), path=h.path)
    both = _edited(tmp_path, shared_vendor / JET, _second_accelerator(connected=True))
    with pytest.raises(hwh.HwhImportError, match=r"2 DMAs feed model IPs \(hier_0/axi_dma_0 -> hier_0/myproject_axi_0, "
                                                 r"hier_1/axi_dma_0 -> hier_1/myproject_axi_0\); psqs drives one"):
        hwh.read(both)


def test_board_errors(shared_vendor, tmp_path):
    h = hwh.read(shared_vendor / JET)
    with pytest.raises(hwh.HwhImportError, match=rf"{JET}: built for part xc7z020clg400-1, but board zcu104 is "
                                                 r"xczu7ev-ffvc1156-2-e"):
        hwh.board_for(h, "zcu104")
    assert hwh.board_for(h, "pynq-z1").name == "pynq-z1"      # same silicon: the user's call

    def elsewhere(root):
        root.find("SYSTEMINFO").set("DEVICE", "7z010")
        root.find("SYSTEMINFO").set("BOARD", "digilentinc.com:zybo-z7-10:part0:1.0")
    other = hwh.read(_edited(tmp_path, shared_vendor / JET, elsewhere))
    with pytest.raises(hwh.HwhImportError, match=r"built for digilentinc\.com:zybo-z7-10:part0:1\.0 \(part "
                                                 r"xc7z010clg400-1\) matches no psqs board \(.*pynq-z2.*\); "
                                                 r"pass --board"):
        hwh.board_for(other)

