"""Vendor HLS synthesis reports -> ``report.json``, or a plain statement that there are none.

The numbers come from hls4ml's own report reader (``hls4ml.report.parse_vivado_report``), which
understands both Vivado HLS and Vitis HLS project layouts; psqs normalizes its output (numbers,
not strings; one DSP key) and adds the part and tool version from the same csynth XML.
"""
from __future__ import annotations

import contextlib
import io
import xml.etree.ElementTree as ET
from pathlib import Path

from psqs.common.errors import PsqsError



class ReportError(PsqsError, ValueError):
    """A synthesis report is missing or unreadable; the message names the directory or file."""


def _number(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return int(value) if value.is_integer() else value


def parse_csynth(project_dir: Path) -> dict:
    """Latency, interval, clock and resources of the synthesized top in ``project_dir``.

    ``project_dir`` holds the ``project.tcl`` that names the top and the ``<top>_prj`` directory
    the vendor tool wrote.
    """
    from hls4ml.report import parse_vivado_report

    project_dir = Path(project_dir)
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter):  # hls4ml prints its progress and its failures
            raw = parse_vivado_report(str(project_dir)) or {}
    except (IndexError, KeyError, AttributeError, OSError, ET.ParseError) as exc:
        # e.g. IndexError when the project has no solution: the tool never got that far
        raise ReportError(f"{project_dir}: unreadable HLS project ({type(exc).__name__}: {exc}; "
                          f"{chatter.getvalue().strip()})") from None
    csynth = raw.get("CSynthesisReport")
    if not csynth:
        raise ReportError(f"{project_dir}: no HLS synthesis report found ({chatter.getvalue().strip()})")
    resources = {k: _number(v) for k, v in csynth.items()
                 if k in ("BRAM_18K", "DSP", "FF", "LUT", "URAM")}
    available = {k[len("Available"):]: _number(v) for k, v in csynth.items()
                 if k.startswith("Available")}
    report = {
        "clock_ns": {"target": _number(csynth["TargetClockPeriod"]),
                     "estimated": _number(csynth["EstimatedClockPeriod"])},
        "latency_cycles": {"min": _number(csynth["BestLatency"]), "max": _number(csynth["WorstLatency"])},
        "interval_cycles": {"min": _number(csynth["IntervalMin"]), "max": _number(csynth["IntervalMax"])},
        "resources": resources,
        "available": available,
    }
    report["latency_ns"] = {k: v * report["clock_ns"]["target"] if v is not None else None
                            for k, v in report["latency_cycles"].items()}
    report.update(_identity(project_dir))
    return report


def _identity(project_dir: Path) -> dict:
    """Tool version, part and top from the csynth XML hls4ml read (not part of its dict)."""
    found = sorted(project_dir.glob("*_prj/*/syn/report/*_csynth.xml"))
    if not found:
        return {}
    root = ET.parse(found[0]).getroot()
    text = lambda path: (root.findtext(path) or "").strip() or None
    return {"tool_version": text("./ReportVersion/Version"), "part": text("./UserAssignments/Part"),
            "top": text("./UserAssignments/TopModelName"), "csynth_xml": str(found[0].relative_to(project_dir))}


def no_vendor_report(reason: str) -> dict:
    """What report.json says when no vendor tool ran: no invented numbers."""
    return {"synthesized": False, "reason": reason, "latency_cycles": None, "interval_cycles": None,
            "resources": None, "clock_ns": None}
