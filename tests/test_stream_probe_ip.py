"""Stream probe: register map consistency, generated files, IP-XACT packaging."""
from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from psqs.common import stream_probe_regs as regs
from psqs.hls.ipxact import SPIRIT
from psqs.overlays.ip import stream_probe as ip
from psqs.overlays.ip.stream_probe import ipxact

S = f"{{{SPIRIT}}}"
HDL = (ip.IP_DIR / "hdl" / "stream_probe.v").read_text()


# ------------------------------------------------------------------------------ register map
def test_register_map_is_consistent():
    regs.validate()
    offsets = [o for _, o, _ in regs.words()]
    assert len(offsets) == len(set(offsets)) and all(o % 4 == 0 for o in offsets)
    assert max(offsets) + 4 <= regs.ADDRESS_SPAN == 1 << regs.ADDR_WIDTH
    for reg in regs.REGISTERS:
        assert (reg.offset >= regs.WIDE_BASE) == (reg.width == 64)
    assert regs.VLNV == "psqs.org:psqs:stream_probe:1.0"
    assert regs.register("MIN_LATENCY").reset == regs.NO_LATENCY == (1 << 48) - 1
    assert regs.register("CONFIG").reset == regs.encode_config(4, 32, 32)


def _with(name: str, **changes) -> tuple:
    return tuple(dataclasses.replace(r, **changes) if r.name == name else r for r in regs.REGISTERS)


@pytest.mark.parametrize("registers, message", [
    (_with("VERSION", offset=0x00), "overlaps ID"),
    (_with("CTRL", offset=0x0E), "not aligned"),
    (_with("CYCLES", offset=0x44), "not aligned to 8"),
    (_with("MAX_LATENCY", offset=0x80), "outside the 7-bit address span"),
    (_with("CYCLES", offset=0x30), "must lie at or above 0x40"),
    (_with("STATUS", offset=0x40), "must lie below 0x40"),
    (_with("LAST_LATENCY", reset=1 << 48), "does not fit its 48 implemented bits"),
    (_with("CTRL", access="RX"), "access 'RX'"),
    (_with("CTRL", reset=0x6), "outside its fields"),
    (_with("STATUS", fields=(regs.Field("A", 0, 4, "RO", 0, ""), regs.Field("B", 3, 1, "RO", 0, ""))),
     "overlaps another field"),
])
def test_validate_names_the_problem(registers, message):
    with pytest.raises(regs.RegisterMapError, match=re.escape(message)):
        regs.validate(registers)


def test_parameter_checks_and_config_word():
    assert regs.encode_config(16, 512, 8) == 16 | (64 << 8) | (1 << 20)
    with pytest.raises(regs.RegisterMapError, match="FIFO_DEPTH=3: must be a power of two"):
        regs.encode_config(3, 32, 32)
    with pytest.raises(regs.RegisterMapError, match="DATA_WIDTH_IN=12: must be a multiple of 8"):
        regs.encode_config(4, 12, 32)
    with pytest.raises(regs.RegisterMapError, match="no register 'NOPE'"):
        regs.register("NOPE")


def test_register_map_needs_only_the_standard_library():
    """It runs on the board: importable with pynq (and numpy) unavailable."""
    code = ("import sys; sys.modules['pynq'] = None; sys.modules['numpy'] = None; "
            "import psqs.common.stream_probe_regs as r; print(r.VLNV)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == regs.VLNV
    for module in (Path(regs.__file__), Path(regs.__file__).parents[1] / "host" / "stream_probe.py"):
        source = module.read_text()
        assert not re.search(r"^\s*(from|import)\s+psqs\.(?!host|common)", source, re.M), module


# --------------------------------------------------------------------------- generated files
def test_committed_generated_files_are_current():
    stale = ip.stale_files()
    assert not stale, (f"stale generated files {stale}: run `python -m psqs.overlays.ip.stream_probe` "
                       "after changing psqs.common.stream_probe_regs")


def test_generator_round_trip(tmp_path):
    written = ip.write_generated(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == sorted(ip.generated_files())
    assert ip.stale_files(tmp_path) == [] and ip.write_generated(tmp_path) == []
    (tmp_path / "REGISTERS.md").write_text("edited by hand\n")
    assert ip.stale_files(tmp_path) == ["REGISTERS.md"]


def test_verilog_include_matches_the_map():
    vh = (ip.IP_DIR / "hdl" / "stream_probe_regs.vh").read_text()
    macros = dict(re.findall(r"^`define (\w+) (\S+)$", vh, re.M))

    def value(text: str) -> int:
        m = re.fullmatch(r"(\d+)'h([0-9A-F]+)", text)
        return int(m.group(2), 16) if m else int(text)

    for word, offset, _ in regs.words():
        assert value(macros[f"STREAM_PROBE_ADDR_{word}"]) == offset
        assert value(macros[f"STREAM_PROBE_WORD_{word}"]) == offset >> 2
    assert value(macros["STREAM_PROBE_ID_MAGIC"]) == regs.ID_MAGIC
    assert value(macros["STREAM_PROBE_LATENCY_BITS"]) == regs.LATENCY_BITS
    assert value(macros["STREAM_PROBE_CTRL_ENABLE_LSB"]) == regs.register("CTRL").field("ENABLE").lsb
    for name in re.findall(r"`(STREAM_PROBE_\w+)", HDL):  # every macro the Verilog uses exists
        assert name in macros, name


def test_markdown_table_lists_every_word():
    md = (ip.IP_DIR / "REGISTERS.md").read_text()
    for word, offset, _ in regs.words():
        assert f"| 0x{offset:02X} | {word} |" in md


# ----------------------------------------------------------------------------------- IP-XACT
def _verilog_ports() -> dict[str, str]:
    start = HDL.index("module stream_probe")
    header = HDL[start:HDL.index(");", start)]
    return {name: direction for direction, name in
            re.findall(r"^\s*(input|output)\s+wire\s+(?:\[[^\]]+\]\s*)?(\w+)", header, re.M)}


def _component() -> ET.Element:
    return ET.parse(ip.IP_DIR / "component.xml").getroot()


def test_component_identity_and_files():
    root = _component()
    vlnv = ":".join(root.find(f"{S}{t}").text for t in ("vendor", "library", "name", "version"))
    assert vlnv == regs.VLNV == ip.VLNV
    assert ip.ip_repo_dir() == ip.IP_DIR and (ip.ip_repo_dir() / "component.xml").is_file()
    names = [f.find(f"{S}name").text for f in root.iter(f"{S}file")]
    assert set(ip.HDL_FILES) <= set(names)
    for name in names:
        assert (ip.IP_DIR / name).is_file(), f"component.xml lists missing file {name}"
    include = [f for f in root.iter(f"{S}file") if f.find(f"{S}name").text.endswith(".vh")]
    assert include and all(f.find(f"{S}isIncludeFile").text == "true" for f in include)
    for view in root.iter(f"{S}view"):
        if view.find(f"{S}modelName") is not None:
            assert view.find(f"{S}modelName").text == ip.TOP


def test_component_ports_match_the_verilog():
    root = _component()
    hdl_ports = _verilog_ports()
    xml_ports = {p.find(f"{S}name").text: p.find(f"{S}wire/{S}direction").text
                 for p in root.iter(f"{S}port")}
    assert xml_ports == {name: d.replace("put", "") for name, d in hdl_ports.items()}
    params = {p.find(f"{S}name").text for p in root.iter(f"{S}modelParameter")}
    assert params == {p.name for p in regs.HDL_PARAMETERS}
    for p in regs.HDL_PARAMETERS:
        assert re.search(rf"parameter integer {p.name}\s*=\s*`STREAM_PROBE_DEFAULT_{p.name}", HDL)
    tdata = next(p for p in root.iter(f"{S}port") if p.find(f"{S}name").text == "s_axis_in_tdata")
    left = tdata.find(f"{S}wire/{S}vector/{S}left")
    assert left.get(f"{S}dependency") == "(spirit:decode(id('MODELPARAM_VALUE.DATA_WIDTH_IN')) - 1)"


def test_component_bus_interfaces():
    root = _component()
    buses = {b.find(f"{S}name").text: b for b in root.iter(f"{S}busInterface")}
    assert set(buses) == {"s_axi_ctrl", "s_axis_in", "m_axis_in", "s_axis_out", "m_axis_out",
                          "aclk", "aresetn"}
    kinds = {"s_axi_ctrl": ("aximm", "slave"), "s_axis_in": ("axis", "slave"),
             "m_axis_in": ("axis", "master"), "s_axis_out": ("axis", "slave"),
             "m_axis_out": ("axis", "master"), "aclk": ("clock", "slave"), "aresetn": ("reset", "slave")}
    hdl_ports = _verilog_ports()
    for name, (bus, mode) in kinds.items():
        b = buses[name]
        assert b.find(f"{S}busType").get(f"{S}name") == bus
        assert b.find(f"{S}abstractionType").get(f"{S}name") == f"{bus}_rtl"
        assert b.find(f"{S}{mode}") is not None, (name, mode)
        for pm in b.iter(f"{S}portMap"):
            assert pm.find(f"{S}physicalPort/{S}name").text in hdl_ports
    params = {p.find(f"{S}name").text: p.find(f"{S}value").text for p in buses["aclk"].iter(f"{S}parameter")}
    assert set(params["ASSOCIATED_BUSIF"].split(":")) == set(kinds) - {"aclk", "aresetn"}
    assert params["ASSOCIATED_RESET"] == "aresetn"
    polarity = buses["aresetn"].find(f".//{S}parameter/{S}value").text
    assert polarity == "ACTIVE_LOW"
    mapped = {pm.find(f"{S}logicalPort/{S}name").text for pm in buses["s_axi_ctrl"].iter(f"{S}portMap")}
    assert mapped == set(ipxact.AXI_LITE_SIGNALS)
    assert buses["s_axi_ctrl"].find(f"{S}slave/{S}memoryMapRef").get(f"{S}memoryMapRef") == "s_axi_ctrl"


def test_component_memory_map_covers_the_registers():
    root = _component()
    mm = root.find(f"{S}memoryMaps/{S}memoryMap")
    assert mm.find(f"{S}name").text == "s_axi_ctrl"
    block = mm.find(f"{S}addressBlock")
    assert int(block.find(f"{S}range").text) >= regs.ADDRESS_SPAN
    assert int(block.find(f"{S}width").text) == 32
    listed = {r.find(f"{S}name").text: int(r.find(f"{S}addressOffset").text, 16)
              for r in block.iter(f"{S}register")}
    assert listed == {w: o for w, o, _ in regs.words()}
    for r in block.iter(f"{S}register"):
        assert r.find(f"{S}field") is not None  # pynq's register_map wants fields


def test_xgui_propagates_every_parameter():
    tcl = (ip.IP_DIR / ip.XGUI_FILE).read_text()
    for p in regs.HDL_PARAMETERS:
        assert f"proc update_MODELPARAM_VALUE.{p.name} " in tcl
        assert f"proc validate_PARAM_VALUE.{p.name} " in tcl
    assert tcl.count("{") == tcl.count("}")
