"""Stream probe resource budget: yosys synth_xilinx (xc7) must map it to under 400 LUTs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from psqs.overlays.ip.stream_probe.synth import synthesize, utilization_from_cells

REPO = Path(__file__).resolve().parents[1]
LUT_BUDGET = 400  # the target for an IP that only watches handshakes
REPORT = REPO / "build" / "stream_probe_utilization.json"  # build/ is git-ignored


def test_utilization_counts_luts_including_lutram():
    cells = {"BUFG": 1, "CARRY4": 93, "FDRE": 722, "FDSE": 97, "INV": 7, "LUT2": 99, "LUT6": 185, "RAM32M": 11}
    util = utilization_from_cells(cells, {}, "test", "script")
    assert (util.luts_as_logic, util.luts_as_memory, util.luts) == (291, 44, 335)
    assert (util.ffs, util.carry4) == (819, 93)


@pytest.mark.slow
def test_stream_probe_fits_the_lut_budget(record_property):
    util = synthesize()  # default parameters: 32-bit streams, FIFO_DEPTH 4 (cached by content)
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(util.to_dict(), indent=2) + "\n")
    for key in ("luts", "luts_as_logic", "luts_as_memory", "ffs", "carry4"):
        record_property(key, getattr(util, key))
    assert util.luts < LUT_BUDGET, (
        f"stream probe maps to {util.luts} LUTs ({util.cells}), over the budget of {LUT_BUDGET}")
    assert util.cells.get("DSP48E1", 0) == 0 and util.luts_as_memory == 0


@pytest.mark.slow
def test_data_width_does_not_cost_logic():
    """The data path is wires: wide streams add no flip-flops and stay within the budget.

    (LUT counts are not compared exactly: the CONFIG constants differ, and yosys' LUT mapper
    moves by a few LUTs for any change in the logic it is given.)"""
    narrow = synthesize()
    wide = synthesize({"DATA_WIDTH_IN": 512, "DATA_WIDTH_OUT": 256})
    assert (wide.ffs, wide.carry4) == (narrow.ffs, narrow.carry4)
    assert wide.luts < LUT_BUDGET, wide.cells
