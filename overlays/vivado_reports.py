"""Vivado's text reports (``report_utilization``, ``report_timing_summary``) as plain dicts.

The overlay build records what the implemented design uses and whether it met timing in its
``report.json``, and refuses a design that does not fit its board; Vivado writes these numbers only
as ASCII tables meant for people. The tables changed between device generations (7-series "Slice
Logic" / "Memory" / "DSP", UltraScale+ "CLB Logic" / "BLOCKRAM" / "ARITHMETIC" with an extra
"Prohibited" column), so rows are found by section title and row label, columns by their header,
never by position; a row that is not there is a :class:`ReportError` naming the file and the row,
not a silently wrong number. Both parsers return only JSON-serializable values.
"""
from __future__ import annotations

import re
from pathlib import Path

from psqs.common.errors import PsqsError

__all__ = ["ReportError", "parse_utilization", "parse_timing_summary"]


class ReportError(PsqsError, ValueError):
    """A file is not the Vivado report it was expected to be, or lacks a table or row."""


# resource -> (titles of the section holding it: 7-series, UltraScale+), row labels
_UTILIZATION_ROWS = {
    "LUT": (("Slice Logic", "CLB Logic"), ("Slice LUTs", "CLB LUTs")),
    "FF": (("Slice Logic", "CLB Logic"), ("Slice Registers", "CLB Registers")),
    "BRAM_TILE": (("Memory", "BLOCKRAM"), ("Block RAM Tile",)),
    "URAM": (("Memory", "BLOCKRAM"), ("URAM",)),
    "DSP": (("DSP", "ARITHMETIC"), ("DSPs",)),
}
_OPTIONAL = {"URAM"}  # 7-series parts have none, and their reports have no such row

# "Design Timing Summary" column header -> key in the result
_TIMING_COLUMNS = {
    "WNS(ns)": "wns_ns", "TNS(ns)": "tns_ns",
    "TNS Failing Endpoints": "setup_failing_endpoints", "TNS Total Endpoints": "setup_endpoints",
    "WHS(ns)": "whs_ns", "THS(ns)": "ths_ns",
    "THS Failing Endpoints": "hold_failing_endpoints", "THS Total Endpoints": "hold_endpoints",
    "WPWS(ns)": "wpws_ns", "TPWS(ns)": "tpws_ns",
    "TPWS Failing Endpoints": "pulse_width_failing_endpoints",
    "TPWS Total Endpoints": "pulse_width_endpoints",
}
_TIMING_STATUS = {
    "All user specified timing constraints are met.": True,
    "Timing constraints are not met.": False,
    "There are no user specified timing constraints.": None,
}
_CLOCK_ROW = re.compile(r"^(\s*)(\S+)\s+\{([^}]*)\}\s+(\S+)\s+(\S+)\s*$")


def _read(path: Path) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ReportError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not text.strip():
        raise ReportError(f"{path}: empty file")
    return text.splitlines()


def _header(path: Path, lines: list[str], command: str) -> dict:
    """The ``| Key : value`` block at the top, checked to come from ``command``."""
    fields = {}
    for line in lines[:40]:
        m = re.match(r"^\|\s*([A-Za-z][A-Za-z ]*?)\s*:\s*(.*?)\s*$", line)
        if m:
            fields.setdefault(m.group(1), m.group(2))
    found = fields.get("Command", "")
    if not found:
        raise ReportError(f"{path}: no '| Command : {command} ...' header line; "
                          f"not a Vivado {command} report")
    if found.split()[0] != command:
        raise ReportError(f"{path}: a {found.split()[0]} report, not {command}")
    tool = fields.get("Tool Version", "")
    version = re.search(r"\bv\.?(\d{4}\.\d+(?:\.\d+)?)", tool)
    build = re.search(r"\bBuild (\d+)", tool)
    return {
        "tool_version": version.group(1) if version else None,
        "tool_build": build.group(1) if build else None,
        "design": fields.get("Design"),
        "device": fields.get("Device"),
        "design_state": fields.get("Design State"),
    }


def _number(path: Path, text: str, what: str):
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        raise ReportError(f"{path}: {what}: {text!r} is not a number") from None
    return int(value) if value.is_integer() and "." not in text else value


# --------------------------------------------------------------------------- utilization

def _sections(lines: list[str]) -> dict[str, list[str]]:
    """report_utilization's numbered sections (``3. Memory``, ``1.1 Summary of ...``) by title.

    A heading counts only when the next line underlines it with exactly as many dashes, which
    tells it apart from the same words in the table of contents.
    """
    starts = []
    for i, line in enumerate(lines[:-1]):
        m = re.match(r"^\d+(?:\.\d+)*\.?\s+(\S.*?)\s*$", line)
        if m and re.fullmatch(r"-{3,}", lines[i + 1].strip()) and \
                len(lines[i + 1].strip()) == len(line.rstrip()):
            starts.append((i, m.group(1)))
    bounds = starts + [(len(lines), None)]
    return {title: lines[i + 2:bounds[k + 1][0]] for k, (i, title) in enumerate(starts)}


def _table(lines: list[str]) -> tuple[list[str], list[list[str]]]:
    """The first ``+---+`` table in ``lines``: header cells and the raw cells of each row."""
    rows, started = [], False
    for line in lines:
        if line.startswith(("+", "|")):
            started = True
            if line.startswith("|"):
                rows.append(line.strip().strip("|").split("|"))
        elif started:
            break
    if not rows:
        return [], []
    return [cell.strip() for cell in rows[0]], rows[1:]


def _utilization_row(path: Path, sections: dict, key: str) -> dict | None:
    titles, labels = _UTILIZATION_ROWS[key]
    section = next((t for t in titles if t in sections), None)
    if section is None:
        if key in _OPTIONAL:
            return None
        raise ReportError(f"{path}: no '{' or '.join(titles)}' section "
                          f"(looking for the {' / '.join(labels)} row)")
    header, rows = _table(sections[section])
    for cells in rows:
        if cells[0].strip().rstrip("*").strip() not in labels:
            continue
        row = dict(zip(header, (cell.strip() for cell in cells)))
        missing = [c for c in ("Used", "Available", "Util%") if c not in row]
        if missing:
            raise ReportError(f"{path}: section '{section}' has no {', '.join(missing)} column")
        label = cells[0].strip()
        used = _number(path, row["Used"], f"{label} Used")
        available = _number(path, row["Available"], f"{label} Available")
        if row["Util%"].startswith("<"):  # "<0.01": below the report's resolution
            percent = round(100.0 * used / available, 4) if available else 0.0
        else:
            percent = float(_number(path, row["Util%"], f"{label} Util%"))
        return {"used": used, "available": available, "percent": percent}
    if key in _OPTIONAL:
        return None
    raise ReportError(f"{path}: no '{' or '.join(labels)}' row in section '{section}'")


def parse_utilization(path: str | Path) -> dict:
    """Parse a ``report_utilization`` report (placed, synthesized or hls4ml's ``vivado_synth.rpt``).

    Returns ``{"tool_version", "tool_build", "design", "device", "part", "design_state",
    "resources"}``; ``resources`` maps LUT, FF, BRAM_TILE (36 Kb tiles, may be x.5), BRAM_18K
    (2 x BRAM_TILE, the unit HLS reports), DSP and, on UltraScale+, URAM to
    ``{"used", "available", "percent"}``. ``part`` is ``device`` with the ``xc`` prefix that the
    7-series reports leave out, so it compares with a board's part.
    """
    path = Path(path)
    lines = _read(path)
    info = _header(path, lines, "report_utilization")
    sections = _sections(lines)
    if "Utilization by Hierarchy" in sections:
        raise ReportError(f"{path}: a hierarchical utilization report; "
                          "parse the flat report_utilization output instead")
    resources = {}
    for key in _UTILIZATION_ROWS:
        row = _utilization_row(path, sections, key)
        if row is not None:
            resources[key] = row
    tiles = resources["BRAM_TILE"]
    resources["BRAM_18K"] = {"used": _int_if_whole(2 * tiles["used"]),
                             "available": _int_if_whole(2 * tiles["available"]),
                             "percent": tiles["percent"]}
    device = info["device"]
    part = device if device is None or device.startswith("x") else f"xc{device}"
    return {**info, "part": part, "resources": resources}


def _int_if_whole(value):
    return int(value) if float(value).is_integer() else value


# --------------------------------------------------------------------------- timing summary

def _timing_section(lines: list[str], title: str) -> list[str] | None:
    """The body of a ``| <title>`` / ``| -----`` boxed section of report_timing_summary."""
    for i, line in enumerate(lines[:-1]):
        if line.rstrip() == f"| {title}" and lines[i + 1].startswith("| -"):
            body = []
            for j in range(i + 2, len(lines)):
                if lines[j].startswith("| ") and j + 1 < len(lines) and lines[j + 1].startswith("| -"):
                    break
                body.append(lines[j])
            return body
    return None


def _design_summary(path: Path, body: list[str]) -> dict:
    """The one-row table under "Design Timing Summary"; columns are right-aligned under dashes."""
    for i, line in enumerate(body):
        if "WNS(ns)" in line and i + 2 < len(body):
            header, dashes, values = line, body[i + 1], body[i + 2]
            break
    else:
        raise ReportError(f"{path}: no WNS(ns) header in the 'Design Timing Summary' section")
    spans = [m.span() for m in re.finditer(r"-+", dashes)]
    if not spans or not values.strip():
        raise ReportError(f"{path}: no values under the 'Design Timing Summary' header")
    result, previous_end = {}, 0
    for start, end in spans:
        name, cell = header[start:end].strip(), values[previous_end:end].strip()
        previous_end = end
        if name not in _TIMING_COLUMNS:
            continue
        key = _TIMING_COLUMNS[name]
        # "NA" / "inf": no path of that kind is constrained; JSON has no infinity
        result[key] = None if cell in ("", "NA", "inf", "-inf") else _number(path, cell, name)
    missing = [name for name, key in _TIMING_COLUMNS.items() if key not in result]
    if missing:
        raise ReportError(f"{path}: 'Design Timing Summary' lacks the column(s) {', '.join(missing)}")
    return result


def _clocks(path: Path, body: list[str] | None) -> list[dict]:
    """Rows of "Clock Summary": name, waveform, period and frequency; indented = generated."""
    if body is None:
        return []
    clocks, in_table = [], False
    for line in body:
        if line.startswith("Clock") and "Period(ns)" in line:
            in_table = True
            continue
        if not in_table or line.startswith("-----"):
            continue
        if not line.strip():
            if clocks:
                break
            continue
        m = _CLOCK_ROW.match(line)
        if not m:
            raise ReportError(f"{path}: 'Clock Summary' row not understood: {line.strip()!r}")
        indent, name, waveform, period, frequency = m.groups()
        clocks.append({
            "name": name,
            "waveform_ns": [_number(path, edge, f"clock {name} waveform") for edge in waveform.split()],
            "period_ns": float(_number(path, period, f"clock {name} period")),
            "frequency_mhz": float(_number(path, frequency, f"clock {name} frequency")),
            "generated": bool(indent),
        })
    return clocks


def parse_timing_summary(path: str | Path) -> dict:
    """Parse a ``report_timing_summary`` report (normally the routed one).

    Returns the header fields, the "Design Timing Summary" numbers (``wns_ns``, ``tns_ns``,
    ``setup_failing_endpoints``, ``setup_endpoints``, ``whs_ns``, ``ths_ns``,
    ``hold_failing_endpoints``, ``hold_endpoints``, ``wpws_ns``, ``tpws_ns``,
    ``pulse_width_failing_endpoints``, ``pulse_width_endpoints``; ``None`` where Vivado prints NA
    or inf), ``failing_endpoints`` (their sum), ``constraints_met`` (True, False, or None when the
    design has no timing constraints), the verbatim ``status`` line and ``clocks`` (the "Clock
    Summary" table, ``[]`` when the report has none).
    """
    path = Path(path)
    lines = _read(path)
    info = _header(path, lines, "report_timing_summary")
    body = _timing_section(lines, "Design Timing Summary")
    if body is None:
        raise ReportError(f"{path}: no 'Design Timing Summary' section (truncated report?)")
    summary = _design_summary(path, body)
    status = next((line.strip() for line in body if line.strip() in _TIMING_STATUS), None)
    if status is None:
        raise ReportError(f"{path}: no constraint status line ('{next(iter(_TIMING_STATUS))}' "
                          "or its alternatives) in the 'Design Timing Summary' section")
    failing = [summary[k] for k in ("setup_failing_endpoints", "hold_failing_endpoints",
                                    "pulse_width_failing_endpoints")]
    return {
        **info,
        **summary,
        "failing_endpoints": sum(f for f in failing if f is not None),
        "constraints_met": _TIMING_STATUS[status],
        "status": status,
        "clocks": _clocks(path, _timing_section(lines, "Clock Summary")),
    }
