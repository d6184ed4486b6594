"""Board configurations: every shipped board loads, bad files are refused naming file and field,
and the values agree with real Vivado hardware handoffs (../shared/data/vendor, pynqmetadata)."""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from psqs.board_configs import Board, BoardConfigError, board_names, load_board
from psqs.overlays.ps import processing_system

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PSQS_SHARED", REPO.parent / "shared"))
VENDOR = SHARED / "data" / "vendor"

# The brief's board set and the values that matter most downstream.
EXPECTED = {
    # name: (part, ps, hp_data_width, arch)
    "pynq-z1": ("xc7z020clg400-1", "processing_system7", 64, "armv7l"),
    "pynq-z2": ("xc7z020clg400-1", "processing_system7", 64, "armv7l"),
    "ultra96-v2": ("xczu3eg-sbva484-1-i", "zynq_ultra_ps_e", 128, "aarch64"),
    "zcu104": ("xczu7ev-ffvc1156-2-e", "zynq_ultra_ps_e", 128, "aarch64"),
    "zcu102": ("xczu9eg-ffvb1156-2-e", "zynq_ultra_ps_e", 128, "aarch64"),
    "kv260": ("xck26-sfvc784-2LV-c", "zynq_ultra_ps_e", 128, "aarch64"),
    "rfsoc4x2": ("xczu48dr-ffvg1517-2-e", "zynq_ultra_ps_e", 128, "aarch64"),
}


def test_every_board_loads():
    assert set(EXPECTED) <= set(board_names())
    assert board_names() == sorted(board_names())
    for name in board_names():
        board = load_board(name)
        assert isinstance(board, Board) and board.name == name
        assert board.resources["BRAM_18K"] % 2 == 0  # whole RAMB36 blocks
        assert ("URAM" in board.resources) == (board.family == "zynquplus")
        assert 0 <= board.fclk < len(board.fclk_defaults_mhz) == 4
        assert board.ddr_size > 0 and board.pl_slave_size > 0


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_key_values(name):
    board = load_board(name)
    assert (board.part, board.ps, board.hp_data_width, board.arch) == EXPECTED[name]
    assert board.fclk == 0 and board.fclk_mhz == 100.0
    if board.family == "zynq":
        assert (board.hp_port, board.gp_port, board.gp_data_width) == ("S_AXI_HP0", "M_AXI_GP0", 32)
        assert (board.pl_slave_base, board.timing_clock, board.fclk_port) == \
            (0x4000_0000, "clk_fpga_0", "FCLK_CLK0")
        assert board.clock_name("act_freq_mhz") == "PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ"
        assert board.pynq_remote is False
    else:
        assert (board.hp_port, board.gp_port) == ("S_AXI_HP0_FPD", "M_AXI_HPM0_FPD")
        assert (board.pl_slave_base, board.timing_clock, board.fclk_port) == \
            (0xA000_0000, "clk_pl_0", "pl_clk0")
        assert board.clock_name("act_freq_mhz", 2) == "PSU__CRL_APB__PL2_REF_CTRL__ACT_FREQMHZ"


def test_board_is_frozen_and_loads_by_path():
    board = load_board("pynq-z2")
    with pytest.raises(dataclasses.FrozenInstanceError):
        board.part = "xc7z010clg400-1"
    assert hash(board) == hash(load_board(REPO / "board_configs" / "pynq-z2.yaml"))
    assert load_board(str(REPO / "board_configs" / "pynq-z2.yaml")) == board
    with pytest.raises(KeyError, match="no clock name 'nope'"):
        board.clock_name("nope")


# --------------------------------------------------------------------------- refused files

def _write(tmp_path, mutate, name="pynq-z2") -> Path:
    data = yaml.safe_load((REPO / "board_configs" / "pynq-z2.yaml").read_text())
    mutate(data)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def mutate(data):
        for key in keys[:-1]:
            data = data[key]
        data[keys[-1]] = value
    return mutate


def _drop(*keys):
    def mutate(data):
        for key in keys[:-1]:
            data = data[key]
        del data[keys[-1]]
    return mutate


@pytest.mark.parametrize("mutate, message", [
    (_drop("part"), r"^pynq-z2\.yaml: part: required field is missing$"),
    (_drop("resources", "DSP"), r"^pynq-z2\.yaml: resources\.DSP: required field is missing$"),
    (_set("resources", "LUT", -5),
     r"^pynq-z2\.yaml: resources\.LUT: must be a positive integer, got -5$"),
    (_set("ps", "hp_data_width", "64"),
     r"^pynq-z2\.yaml: ps\.hp_data_width: must be a positive integer, got '64'$"),
    (_set("pynq_remote", "yes"), r"^pynq-z2\.yaml: pynq_remote: must be true or false, got 'yes'$"),
    (_set("ps", "ip", "versal_cips"),
     r"^pynq-z2\.yaml: ps\.ip: must be one of processing_system7, zynq_ultra_ps_e, got 'versal_cips'$"),
    (_set("ps", "ip", "zynq_ultra_ps_e"),
     r"^pynq-z2\.yaml: ps\.ip: must be 'processing_system7' for family zynq, got 'zynq_ultra_ps_e'$"),
    (_set("part", "xc7z020-clg400-1"),
     r"^pynq-z2\.yaml: part: must be a zynq Vivado part string such as xc7z020clg400-1, "
     r"got 'xc7z020-clg400-1'$"),
    (_set("part", "xczu7ev-ffvc1156-2-e"), r"^pynq-z2\.yaml: part: must be a zynq Vivado part"),
    (_set("board_part", "pynq-z2"), r"^pynq-z2\.yaml: board_part: must be a Vivado board_part"),
    (_set("ps", "hp_port", "S_AXI_HP0_FPD"),
     r"^pynq-z2\.yaml: ps\.hp_port: must be one of S_AXI_HP0, S_AXI_HP1, S_AXI_HP2, S_AXI_HP3, "
     r"got 'S_AXI_HP0_FPD'$"),
    (_set("ps", "hp_data_width", 128), r"^pynq-z2\.yaml: ps\.hp_data_width: must be one of \[32, 64\]"),
    (_set("ps", "pl_slave_base", 0xA000_0000),
     r"^pynq-z2\.yaml: ps\.pl_slave_base: must be 0x40000000, the base of the M_AXI_GP0 window, "
     r"got 0xa0000000$"),
    (_set("clocks", "fclk", 4),
     r"^pynq-z2\.yaml: clocks\.fclk: must be a PL clock index 0\.\.3, got 4$"),
    (_set("clocks", "defaults_mhz", [100.0, 50.0]),
     r"^pynq-z2\.yaml: clocks\.defaults_mhz: must be a list of 4"),
    (_set("clocks", "names", "enable", "PSU__FPGA_PL{n}_ENABLE"),
     r"^pynq-z2\.yaml: clocks\.names\.enable: must be a processing_system7 parameter name"),
    (_set("clocks", "io_pll_fbdiv", 90),
     r"^pynq-z2\.yaml: clocks\.io_pll_fbdiv: must be an integer in 13\.\.66 \(the zynq IO PLL multiplier\), "
     r"got 90$"),
    (_drop("clocks", "ps_ref_mhz"), r"^pynq-z2\.yaml: clocks\.ps_ref_mhz: required field is missing$"),
    (_set("arch", "aarch64"),
     r"^pynq-z2\.yaml: arch: must be 'armv7l' for family zynq, got 'aarch64'$"),
    (_set("ddr", "base", 0x3000_0000),
     r"^pynq-z2\.yaml: ddr: base 0x30000000 \+ size 0x20000000 ends at 0x50000000, beyond the "
     r"zynq DDR window ending at 0x40000000$"),
    (_set("colour", "blue"), r"^pynq-z2\.yaml: colour: unknown field \(allowed: name, description,"),
    (_set("name", "pynq-z1"),
     r"^pynq-z2\.yaml: name: must equal the file name 'pynq-z2', got 'pynq-z1'$"),
])
def test_schema_errors_name_file_and_field(tmp_path, mutate, message):
    with pytest.raises(BoardConfigError, match=message):
        load_board(_write(tmp_path, mutate))


def test_every_problem_is_reported(tmp_path):
    path = _write(tmp_path, lambda d: (_drop("part")(d), _set("resources", "FF", 0)(d)))
    with pytest.raises(BoardConfigError) as info:
        load_board(path)
    assert str(info.value).splitlines() == [
        "pynq-z2.yaml: part: required field is missing",
        "pynq-z2.yaml: resources.FF: must be a positive integer, got 0"]


def test_unknown_board_and_unreadable_files(tmp_path):
    with pytest.raises(BoardConfigError,
                       match=r"^ultra96\.yaml: unknown board; known boards: .*ultra96-v2"):
        load_board("ultra96")
    with pytest.raises(BoardConfigError, match=r"missing\.yaml: no such board file"):
        load_board(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("name: [pynq\n")
    with pytest.raises(BoardConfigError, match=r"^broken\.yaml: not valid YAML at line 2"):
        load_board(tmp_path / "broken.yaml")
    (tmp_path / "scalar.yaml").write_text("42\n")
    with pytest.raises(BoardConfigError,
                       match=r"^scalar\.yaml: must be a YAML mapping of fields, got int"):
        load_board(tmp_path / "scalar.yaml")


def test_hex_addresses_with_underscores_are_integers():
    text = (REPO / "board_configs" / "zcu104.yaml").read_text()
    assert "0xA000_0000" in text
    assert load_board("zcu104").pl_slave_base == 0xA000_0000


# --------------------------------------------------------------------------- real hardware handoffs

def _pynqmetadata_hwhs() -> Path | None:
    spec = importlib.util.find_spec("pynqmetadata")
    return Path(spec.origin).parent / "tests" / "hwhs" if spec and spec.origin else None


def _hwh_cases():
    shared = [("vivado2019_pynqz2_jet_design_1.hwh", "pynq-z2"),
              ("vivado2019.1_pynqz2_cnn_quantized_312.hwh", "pynq-z2"),
              ("vivado2025_pynqz2_iris_gpio_nodma_design_1.hwh", "pynq-z2"),
              ("vivado2023_kv260_cnn_design_1.hwh", "kv260"),
              ("vivado2025_zcu104_iris_design_1.hwh", "zcu104")]
    cases = [pytest.param(VENDOR / f, b, id=f"{b}:{f}") for f, b in shared]
    hwhs = _pynqmetadata_hwhs()
    cases.append(pytest.param(hwhs / "rfsoc_sam.hwh" if hwhs else None, "rfsoc4x2",
                              id="rfsoc4x2:pynqmetadata/rfsoc_sam.hwh"))
    return cases


class Hwh:
    """The few facts of a .hwh these tests compare: system info, PS parameters and ports."""

    def __init__(self, path: Path):
        root = ET.parse(path).getroot()
        self.info = root.find("SYSTEMINFO").attrib
        (self.ps,) = [m for m in root.iter("MODULE")
                      if m.get("MODTYPE") in ("processing_system7", "zynq_ultra_ps_e")]
        self.params = {p.get("NAME"): p.get("VALUE") for p in self.ps.find("PARAMETERS")}
        self.ports = {p.get("NAME"): p.attrib for p in self.ps.find("PORTS")}
        self.buses = {b.get("NAME"): b.attrib for b in self.ps.find("BUSINTERFACES")}
        self.registers = [r.attrib for r in self.ps.iter("MEMRANGE") if r.get("MEMTYPE") == "REGISTER"]
        self.ddr_segments = [r.attrib for r in root.iter("MEMRANGE")
                             if r.get("INSTANCE") == self.ps.get("INSTANCE")
                             and "DDR_LOW" in r.get("ADDRESSBLOCK", "")]

    def part(self) -> str:
        """Vivado's part string, up to the temperature grade the .hwh does not record."""
        dev, pkg, speed = self.info["DEVICE"], self.info["PACKAGE"], self.info["SPEEDGRADE"]
        return f"xc{dev}{pkg}{speed}" if dev.startswith("7z") else f"{dev}-{pkg}{speed}"


# Where the .hwh records the width of the ports the boards use (test knowledge, from UG1085:
# S_AXI_HP0_FPD is the PS's S_AXI_GP2, M_AXI_HPM0_FPD its M_AXI_GP0).
WIDTH_PARAMS = {"S_AXI_HP0": "C_S_AXI_HP0_DATA_WIDTH", "S_AXI_HP0_FPD": "PSU__SAXIGP2__DATA_WIDTH",
                "M_AXI_HPM0_FPD": "PSU__MAXIGP0__DATA_WIDTH"}
REF_PARAMS = {"zynq": ("PCW_CRYSTAL_PERIPHERAL_FREQMHZ", "PCW_IOPLL_CTRL_FBDIV"),
              "zynquplus": ("PSU__PSS_REF_CLK__FREQMHZ", "PSU__CRL_APB__IOPLL_CTRL__FBDIV")}
HWH_ARCH = {"zynq": {"zynq"}, "zynquplus": {"zynquplus", "zynquplusRFSOC"}}


@pytest.mark.parametrize("path, name", _hwh_cases())
def test_board_agrees_with_real_hwh(path, name):
    if path is None or not path.is_file():
        pytest.skip(f"hardware handoff {path} not found (set PSQS_SHARED to the shared data; "
                    "pynqmetadata ships rfsoc_sam.hwh)")
    board, hwh = load_board(name), Hwh(path)
    # part and board
    if board.family == "zynq":  # 7-series part strings carry no temperature grade
        assert board.part == hwh.part()
    else:
        assert board.part.startswith(hwh.part() + "-")
    assert hwh.info["BOARD"] == board.board_part
    assert hwh.info["ARCH"] in HWH_ARCH[board.family]
    assert hwh.ps.get("MODTYPE") == board.ps
    # PL clocks: every parameter name exists for all four clocks, the design clock is the one
    # enabled at fclk_mhz, and the others sit at the PS defaults
    for n in range(4):
        for key in ("enable", "freq_mhz", "act_freq_mhz", "divisor0", "divisor1"):
            assert board.clock_name(key, n) in hwh.params, board.clock_name(key, n)
    assert hwh.params[board.clock_name("enable")] == "1"
    assert float(hwh.params[board.clock_name("freq_mhz")]) == board.fclk_mhz
    achieved_mhz = float(hwh.params[board.clock_name("act_freq_mhz")])  # 99.999001 on KV260
    assert achieved_mhz == pytest.approx(board.fclk_mhz, rel=1e-4)
    assert int(hwh.ports[board.fclk_port]["CLKFREQUENCY"]) == pytest.approx(achieved_mhz * 1e6)
    for n, default in enumerate(board.fclk_defaults_mhz):
        if n != board.fclk:
            assert float(hwh.params[board.clock_name("freq_mhz", n)]) == default
    # the IO PLL the PL clocks divide: reference clock and multiplier, and the clock they give
    ref, fbdiv = REF_PARAMS[board.family]
    assert float(hwh.params[ref]) == pytest.approx(board.ps_ref_mhz, abs=5e-7)   # printed with 6 decimals
    assert int(hwh.params[fbdiv]) == board.io_pll_fbdiv
    pl_clock = processing_system(board).clocks[board.fclk]
    assert pl_clock.actual_mhz == pytest.approx(achieved_mhz, rel=2e-6)
    # ports: data widths, and the AXI-Lite slaves inside the general-purpose master's window
    assert int(hwh.params[WIDTH_PARAMS[board.hp_port]]) == board.hp_data_width
    if board.gp_port in hwh.buses:
        assert int(hwh.buses[board.gp_port]["DATAWIDTH"]) == board.gp_data_width
    if board.gp_port in WIDTH_PARAMS:
        assert int(hwh.params[WIDTH_PARAMS[board.gp_port]]) == board.gp_data_width
    window = range(board.pl_slave_base, board.pl_slave_base + board.pl_slave_size)
    bases = {r["INSTANCE"]: int(r["BASEVALUE"], 16) for r in hwh.registers}
    assert any(base in window for base in bases.values()), bases
    for r in hwh.registers:
        if r["MASTERBUSINTERFACE"] == board.gp_port:
            assert int(r["BASEVALUE"], 16) in window and int(r["HIGHVALUE"], 16) in window, r
    # DDR as the PL masters see it through the HP ports
    for segment in hwh.ddr_segments:
        assert (int(segment["BASEVALUE"], 16), int(segment["HIGHVALUE"], 16) + 1) == \
            (board.ddr_base, board.ddr_base + board.ddr_size), segment

