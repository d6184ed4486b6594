"""Vendor HLS reports parsed with hls4ml's reader (real Vivado HLS 2019.2, Vitis HLS 2022/2025 files)."""
from __future__ import annotations

import shutil

import pytest

from psqs.hls.reports import ReportError, no_vendor_report, parse_csynth


def _project(tmp_path, fixture, top, backend):
    """The directory layout the vendor tool leaves behind, around a real csynth XML."""
    (tmp_path / "project.tcl").write_text(f'set project_name "{top}"\nset backend "{backend}"\n')
    prj = tmp_path / f"{top}_prj"
    (prj / "solution1" / "syn" / "report").mkdir(parents=True)
    (prj / "hls.app").write_text(f'<project name="{top}_prj"><solutions><solution name="solution1"/></solutions></project>')
    shutil.copy(fixture, prj / "solution1" / "syn" / "report" / f"{top}_csynth.xml")
    return tmp_path


@pytest.mark.parametrize("name, top, expected", [
    ("vivadohls2019_pynqz2_jet_myproject_axi_csynth.xml", "myproject_axi",
     dict(version="2019.2", part="xc7z020-clg400-1", latency=(300, 300), interval=(301, 301), clock=(5, 6.982),
          res={"BRAM_18K": 20, "DSP": 21, "FF": 14086, "LUT": 39835}, dsp_available=220)),
    ("vivadohls2019_pynqz2_jet_myproject_csynth.xml", "myproject",
     dict(version="2019.2", part="xc7z020-clg400-1", latency=(258, 258), interval=(64, 64), clock=(5, 6.982),
          res={"BRAM_18K": 20, "DSP": 21, "FF": 10771, "LUT": 33045}, dsp_available=220)),
    ("vitishls2022_u250_jet_myproject_csynth.xml", "myproject",
     dict(version="2022.2", part="xcu250-figd2104-2L-e", latency=(15, 15), interval=(1, 1), clock=(5, 3.636),
          res={"BRAM_18K": 8, "DSP": 2557, "FF": 24233, "LUT": 116694}, dsp_available=12288)),
    ("vitishls2025_7z020_iris_myproject_csynth.xml", "myproject",
     dict(version="2025.1", part="xc7z020-clg400-1", latency=(32, 32), interval=(1, 1), clock=(5, 3.624),
          res={"BRAM_18K": 3, "DSP": 110, "FF": 13240, "LUT": 4725}, dsp_available=220)),
    ("vivadohls2019_zu5ev_cnn_myproject_axi_csynth.xml", "myproject_axi",
     dict(version="2019.2", part="xczu5ev-sfvc784-2LV-e", latency=(467634, 467635), interval=(57346, 466946),
          clock=(5, 4.375), res={"BRAM_18K": 59, "DSP": 16, "FF": 59976, "LUT": 47999}, dsp_available=1248)),
])
def test_real_reports(tmp_path, shared_vendor, name, top, expected):
    report = parse_csynth(_project(tmp_path, shared_vendor / name, top, "vitis"))
    assert report["tool_version"] == expected["version"] and report["part"] == expected["part"]
    assert report["top"] == top
    assert (report["latency_cycles"]["min"], report["latency_cycles"]["max"]) == expected["latency"]
    assert (report["interval_cycles"]["min"], report["interval_cycles"]["max"]) == expected["interval"]
    assert (report["clock_ns"]["target"], report["clock_ns"]["estimated"]) == expected["clock"]
    assert {k: report["resources"][k] for k in expected["res"]} == expected["res"]
    assert report["available"]["DSP"] == expected["dsp_available"]
    assert report["latency_ns"]["min"] == expected["latency"][0] * 5


def test_missing_report_is_an_error(tmp_path):
    (tmp_path / "project.tcl").write_text('set project_name "top"\nset backend "vitis"\n')
    (tmp_path / "top_prj").mkdir()
    with pytest.raises(ReportError, match="unreadable HLS project"):
        parse_csynth(tmp_path)


def test_no_tool_says_so_plainly():
    report = no_vendor_report("vitis_hls not found on PATH")
    assert report == {"synthesized": False, "reason": "vitis_hls not found on PATH", "latency_cycles": None,
                      "interval_cycles": None, "resources": None, "clock_ns": None}
