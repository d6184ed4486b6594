"""Vivado report parsers against real reports (../shared/data/vendor, never copied here), the fit
check against the board capacities, and the errors for files that are not such reports.

The expected numbers were read off each file by eye; several are chosen so that a parser picking
the wrong row or column gets them wrong (LUT as Logic vs Slice LUTs, RAMB18 vs Block RAM Tile,
Intra Clock Table vs Design Timing Summary endpoints).
"""
from __future__ import annotations

import json
import re
import os
from pathlib import Path

import pytest

from psqs.board_configs import load_board
from psqs.board_configs.fit import overflows
from psqs.overlays.vivado_reports import ReportError, parse_timing_summary, parse_utilization

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PSQS_SHARED", REPO.parent / "shared"))
VENDOR = SHARED / "data" / "vendor"


def _at(path: Path) -> str:
    """Regex for the start of an error message about ``path``."""
    return f"^{re.escape(str(path))}: "


def _vendor(name: str) -> Path:
    path = VENDOR / name
    if not path.is_file():
        pytest.skip(f"vendor report {path} not found (set PSQS_SHARED to the shared data)")
    return path


def _res(used, available, percent):
    return {"used": used, "available": available, "percent": percent}


UTILIZATION = {
    # 7-series, placed (Vivado 2019.2): Slice LUTs 18321 (LUT as Logic is 18037), 5 BRAM tiles
    # = 2 RAMB36 + 6 RAMB18
    "vivado2019_pynqz2_jet_design_1_wrapper_utilization_placed.rpt": {
        "tool_version": "2019.2", "tool_build": "2708876", "design": "design_1_wrapper",
        "device": "7z020clg400-1", "part": "xc7z020clg400-1", "design_state": "Fully Placed",
        "resources": {"LUT": _res(18321, 53200, 34.44), "FF": _res(19049, 106400, 17.90),
                      "BRAM_TILE": _res(5, 140, 3.57), "BRAM_18K": _res(10, 280, 3.57),
                      "DSP": _res(21, 220, 9.55)}},
    # UltraScale+, placed (2023.2), with the Prohibited column: 31 tiles = 22 RAMB36 + 18 RAMB18
    "vivado2023_kv260_cnn_design_1_wrapper_utilization_placed.rpt": {
        "tool_version": "2023.2", "tool_build": "4029153", "design": "design_1_wrapper",
        "device": "xck26-sfvc784-2LV-c", "part": "xck26-sfvc784-2LV-c", "design_state": "Fully Placed",
        "resources": {"LUT": _res(21156, 117120, 18.06), "FF": _res(46139, 234240, 19.70),
                      "BRAM_TILE": _res(31, 144, 21.53), "BRAM_18K": _res(62, 288, 21.53),
                      "URAM": _res(0, 64, 0.0), "DSP": _res(13, 1248, 1.04)}},
    # UltraScale+, placed (2025.1): 3 tiles = 2 RAMB36 + 2 RAMB18
    "vivado2025_zcu104_iris_design_1_wrapper_utilization_placed.rpt": {
        "tool_version": "2025.1", "tool_build": "6140274", "design": "design_1_wrapper",
        "device": "xczu7ev-ffvc1156-2-e", "part": "xczu7ev-ffvc1156-2-e",
        "design_state": "Fully Placed",
        "resources": {"LUT": _res(10786, 230400, 4.68), "FF": _res(9594, 460800, 2.08),
                      "BRAM_TILE": _res(3, 312, 0.96), "BRAM_18K": _res(6, 624, 0.96),
                      "URAM": _res(0, 96, 0.0), "DSP": _res(390, 1728, 22.57)}},
    # hls4ml vsynth, 7-series, synthesized: "Slice LUTs*" over 100 %, 33 tiles = 66 RAMB18 only
    "vivado2019_7z020_cnn_vivado_synth.rpt": {
        "tool_version": "2019.2", "tool_build": "2708876", "design": "myproject",
        "device": "7z020clg400-1", "part": "xc7z020clg400-1", "design_state": "Synthesized",
        "resources": {"LUT": _res(121299, 53200, 228.01), "FF": _res(120219, 106400, 112.99),
                      "BRAM_TILE": _res(33, 140, 23.57), "BRAM_18K": _res(66, 280, 23.57),
                      "DSP": _res(27, 220, 12.27)}},
    # hls4ml vsynth, UltraScale+ (Vitis backend, 2024.1), "CLB LUTs*", SLR sections at the end
    "vivado2024_u250_har1d_vivado_synth.rpt": {
        "tool_version": "2024.1", "tool_build": "5076996", "design": "myproject",
        "device": "xcu250-figd2104-2L-e", "part": "xcu250-figd2104-2L-e", "design_state": "Optimized",
        "resources": {"LUT": _res(8565, 1728000, 0.50), "FF": _res(4864, 3456000, 0.14),
                      "BRAM_TILE": _res(12, 2688, 0.45), "BRAM_18K": _res(24, 5376, 0.45),
                      "URAM": _res(0, 1280, 0.0), "DSP": _res(467, 12288, 3.80)}},
}

CLOCK_100 = {"waveform_ns": [0.0, 5.0], "period_ns": 10.0, "frequency_mhz": 100.0, "generated": False}
TIMING = {
    # Design Timing Summary endpoints 45878 (the Intra Clock Table row says 45782)
    "vivado2019_pynqz2_jet_design_1_wrapper_timing_summary_routed.rpt": {
        "tool_version": "2019.2", "design": "design_1_wrapper", "device": "7z020-clg400",
        "design_state": None,
        "wns_ns": 0.549, "tns_ns": 0.0, "setup_failing_endpoints": 0, "setup_endpoints": 45878,
        "whs_ns": 0.021, "ths_ns": 0.0, "hold_failing_endpoints": 0, "hold_endpoints": 45878,
        "wpws_ns": 3.750, "tpws_ns": 0.0, "pulse_width_failing_endpoints": 0,
        "pulse_width_endpoints": 19496, "failing_endpoints": 0, "constraints_met": True,
        "clocks": [{"name": "clk_fpga_0", **CLOCK_100}]},
    # two clocks in the Clock Summary; 109487 endpoints (the clk_pl_0 row says 109391)
    "vivado2023_kv260_cnn_design_1_wrapper_timing_summary_routed.rpt": {
        "tool_version": "2023.2", "design": "design_1_wrapper", "device": "xck26-sfvc784",
        "design_state": "Routed",
        "wns_ns": 2.532, "tns_ns": 0.0, "setup_failing_endpoints": 0, "setup_endpoints": 109487,
        "whs_ns": 0.009, "ths_ns": 0.0, "hold_failing_endpoints": 0, "hold_endpoints": 109487,
        "wpws_ns": 3.500, "tpws_ns": 0.0, "pulse_width_failing_endpoints": 0,
        "pulse_width_endpoints": 48059, "failing_endpoints": 0, "constraints_met": True,
        "clocks": [{"name": "clk_pl_0", **CLOCK_100}, {"name": "clk_pl_1", **CLOCK_100}]},
    "vivado2025_zcu104_iris_design_1_wrapper_timing_summary_routed.rpt": {
        "tool_version": "2025.1", "design": "design_1_wrapper", "device": "xczu7ev-ffvc1156",
        "design_state": "Routed",
        "wns_ns": 3.796, "tns_ns": 0.0, "setup_failing_endpoints": 0, "setup_endpoints": 36606,
        "whs_ns": 0.011, "ths_ns": 0.0, "hold_failing_endpoints": 0, "hold_endpoints": 36606,
        "wpws_ns": 3.500, "tpws_ns": 0.0, "pulse_width_failing_endpoints": 0,
        "pulse_width_endpoints": 10483, "failing_endpoints": 0, "constraints_met": True,
        "clocks": [{"name": "clk_pl_0", **CLOCK_100}]},
}


@pytest.mark.parametrize("name", sorted(UTILIZATION))
def test_utilization_numbers(name):
    result = parse_utilization(_vendor(name))
    assert result == UTILIZATION[name]
    assert json.loads(json.dumps(result)) == result  # report.json can hold it as is


@pytest.mark.parametrize("name", sorted(TIMING))
def test_timing_summary_numbers(name):
    result = parse_timing_summary(_vendor(name))
    expected = TIMING[name]
    assert {key: result[key] for key in expected} == expected
    assert result["status"] == "All user specified timing constraints are met."
    assert json.loads(json.dumps(result)) == result


@pytest.mark.parametrize("board, utilization, timing", [
    ("pynq-z2", "vivado2019_pynqz2_jet_design_1_wrapper_utilization_placed.rpt",
     "vivado2019_pynqz2_jet_design_1_wrapper_timing_summary_routed.rpt"),
    ("kv260", "vivado2023_kv260_cnn_design_1_wrapper_utilization_placed.rpt",
     "vivado2023_kv260_cnn_design_1_wrapper_timing_summary_routed.rpt"),
    ("zcu104", "vivado2025_zcu104_iris_design_1_wrapper_utilization_placed.rpt",
     "vivado2025_zcu104_iris_design_1_wrapper_timing_summary_routed.rpt"),
])
def test_reports_agree_with_board_configs(board, utilization, timing):
    """Vivado's own capacity and clock names for the part confirm the board files."""
    board = load_board(board)
    usage = parse_utilization(_vendor(utilization))
    assert usage["part"] == board.part
    assert {key: row["available"] for key, row in usage["resources"].items() if key != "BRAM_TILE"} \
        == board.resources
    clocks = {c["name"]: c["frequency_mhz"] for c in parse_timing_summary(_vendor(timing))["clocks"]}
    assert clocks[board.timing_clock] == board.fclk_mhz
    assert overflows(board, usage) == []


def test_overflows_name_resource_and_numbers():
    pynq_z2 = load_board("pynq-z2")
    synth = parse_utilization(_vendor("vivado2019_7z020_cnn_vivado_synth.rpt"))
    assert overflows(pynq_z2, synth) == [
        "LUT: 121299 used > 53200 available on pynq-z2 (xc7z020clg400-1; 228.0 %)",
        "FF: 120219 used > 106400 available on pynq-z2 (xc7z020clg400-1; 113.0 %)"]
    assert overflows(load_board("zcu104"), synth) == []


def test_overflows_takes_flat_estimates():
    pynq_z2 = load_board("pynq-z2")
    assert overflows(pynq_z2, {"LUT": 53200, "FF": 0, "DSP": 220, "BRAM_18K": 280}) == []
    assert overflows(pynq_z2, {"DSP": 221, "BRAM_18K": {"used": 282}, "URAM": 2}) == [
        "DSP: 221 used > 220 available on pynq-z2 (xc7z020clg400-1; 100.5 %)",
        "BRAM_18K: 282 used > 280 available on pynq-z2 (xc7z020clg400-1; 100.7 %)",
        "URAM: 2 used > 0 available on pynq-z2 (xc7z020clg400-1; the part has none)"]
    with pytest.raises(ValueError,
                       match=r"utilization: LUT: used count must be a non-negative number, got -1"):
        overflows(pynq_z2, {"LUT": -1})
    with pytest.raises(ValueError, match=r"utilization: DSP: used count .* got '12'"):
        overflows(pynq_z2, {"DSP": "12"})


# --------------------------------------------------------------------------- not such a report

def _lines(name: str) -> list[str]:
    return _vendor(name).read_text().splitlines(keepends=True)


def test_truncated_utilization_names_the_missing_row(tmp_path):
    lines = _lines("vivado2019_pynqz2_jet_design_1_wrapper_utilization_placed.rpt")
    cut = next(i for i, line in enumerate(lines)  # the heading, not the table of contents entry
               if line.startswith("3. Memory") and lines[i + 1].startswith("---"))
    path = tmp_path / "cut.rpt"
    path.write_text("".join(lines[:cut]))
    missing = r"no 'Memory or BLOCKRAM' section \(looking for the Block RAM Tile row\)"
    with pytest.raises(ReportError, match=_at(path) + missing):
        parse_utilization(path)
    # the section is there but the row is not
    path.write_text("".join(line for line in lines if not line.startswith("| DSPs ")))
    with pytest.raises(ReportError, match=_at(path) + "no 'DSPs' row in section 'DSP'"):
        parse_utilization(path)
    path.write_text("".join(line.replace("| 18321 |", "|  1e3x |") for line in lines))
    with pytest.raises(ReportError, match=_at(path) + "Slice LUTs Used: '1e3x' is not a number"):
        parse_utilization(path)


def test_truncated_timing_summary(tmp_path):
    lines = _lines("vivado2023_kv260_cnn_design_1_wrapper_timing_summary_routed.rpt")
    cut = next(i for i, line in enumerate(lines) if line.startswith("| Design Timing Summary"))
    path = tmp_path / "cut.rpt"
    path.write_text("".join(lines[:cut]))
    with pytest.raises(ReportError, match=_at(path) + "no 'Design Timing Summary' section"):
        parse_timing_summary(path)
    path.write_text("".join(lines[:cut + 6]))  # heading and column header, no values
    with pytest.raises(ReportError, match=_at(path) + r"no (WNS\(ns\) header|values under)"):
        parse_timing_summary(path)


def test_timing_violation_is_reported(tmp_path):
    """Same report with a failing setup summary: the parser must not just look for "met"."""
    text = _vendor("vivado2019_pynqz2_jet_design_1_wrapper_timing_summary_routed.rpt").read_text()
    good = ("      0.549        0.000                      0                45878        0.021"
            "        0.000                      0                45878        3.750        0.000"
            "                       0                 19496  ")
    bad = ("     -1.204     -123.456                     87                45878        0.021"
           "        0.000                      0                45878        3.750        0.000"
           "                       0                 19496  ")
    assert good in text and len(bad) == len(good)
    path = tmp_path / "violated.rpt"
    path.write_text(text.replace(good, bad).replace(
        "All user specified timing constraints are met.", "Timing constraints are not met."))
    result = parse_timing_summary(path)
    assert (result["wns_ns"], result["tns_ns"]) == (-1.204, -123.456)
    assert result["setup_failing_endpoints"] == 87
    assert (result["failing_endpoints"], result["constraints_met"]) == (87, False)
    assert result["status"] == "Timing constraints are not met."


def test_generated_clocks_and_na_values(tmp_path):
    """Generated clocks are indented under their master; NA (no such paths) becomes None."""
    text = _vendor("vivado2019_pynqz2_jet_design_1_wrapper_timing_summary_routed.rpt").read_text()
    master = "clk_fpga_0  {0.000 5.000}      10.000          100.000         \n"
    assert master in text
    generated = "  clk_out1_design_1_clk_wiz_0_0  {0.000 2.500}      5.000           200.000\n"
    path = tmp_path / "edited.rpt"
    hold = "        0.021        0.000                      0                45878"
    path.write_text(text.replace(master, master + generated, 1)
                    .replace(hold, f"{'NA':>13}{'NA':>13}{'NA':>23}{'NA':>21}", 1))
    result = parse_timing_summary(path)
    assert result["clocks"][1] == {"name": "clk_out1_design_1_clk_wiz_0_0", "waveform_ns": [0.0, 2.5],
                                   "period_ns": 5.0, "frequency_mhz": 200.0, "generated": True}
    assert (result["whs_ns"], result["ths_ns"], result["hold_failing_endpoints"]) == (None, None, None)
    assert result["failing_endpoints"] == 0 and result["wns_ns"] == 0.549


@pytest.mark.parametrize("parse", [parse_utilization, parse_timing_summary])
def test_unrelated_files_are_refused(tmp_path, parse):
    hwh = _vendor("vivado2019_pynqz2_jet_design_1.hwh")
    with pytest.raises(ReportError, match=_at(hwh) + r"no '\| Command : report_"):
        parse(hwh)
    csynth = _vendor("vivadohls2019_pynqz2_jet_myproject_csynth.rpt")
    with pytest.raises(ReportError, match=_at(csynth)):
        parse(csynth)
    empty = tmp_path / "empty.rpt"
    empty.write_text("\n")
    with pytest.raises(ReportError, match=_at(empty) + "empty file"):
        parse(empty)
    with pytest.raises(ReportError, match=r"missing\.rpt: cannot read"):
        parse(tmp_path / "missing.rpt")


def test_each_parser_refuses_the_other_report():
    timing = _vendor("vivado2019_pynqz2_jet_design_1_wrapper_timing_summary_routed.rpt")
    with pytest.raises(ReportError, match=r"a report_timing_summary report, not report_utilization"):
        parse_utilization(timing)
    usage = _vendor("vivado2019_pynqz2_jet_design_1_wrapper_utilization_placed.rpt")
    with pytest.raises(ReportError, match=r"a report_utilization report, not report_timing_summary"):
        parse_timing_summary(usage)
