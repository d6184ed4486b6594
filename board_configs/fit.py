"""Does a design fit a board? Used resources against the capacity of the board's part.

Vivado synthesizes a design at 228 % of the LUTs of an XC7Z020 without complaint (the hls4ml
``vivado_synth.rpt`` of ../shared/data/vendor does exactly that) and fails only later, in
placement. Comparing an HLS estimate or a synthesis report with the board's capacity before the
long implementation run turns that into an error that names the resource and the numbers.
"""
from __future__ import annotations

from collections.abc import Mapping

from psqs.board_configs import Board
from psqs.board_configs.schema import RESOURCES

__all__ = ["RESOURCES", "overflows"]


def _used(utilization: Mapping) -> dict[str, float]:
    """``{resource: used}`` from a parse_utilization result or a flat ``{resource: count}``."""
    table = utilization.get("resources", utilization)
    if not isinstance(table, Mapping):
        raise ValueError(f"utilization: 'resources' must be a mapping, got {type(table).__name__}")
    used = {}
    for key in RESOURCES:
        if key not in table:
            continue
        value = table[key]
        count = value.get("used") if isinstance(value, Mapping) else value
        if isinstance(count, bool) or not isinstance(count, (int, float)) or count < 0:
            raise ValueError(f"utilization: {key}: used count must be a non-negative number, "
                             f"got {count!r}")
        used[key] = count
    return used


def overflows(board: Board, utilization: Mapping) -> list[str]:
    """The resources ``utilization`` uses beyond ``board``'s capacity, one message each.

    ``utilization`` is what :func:`psqs.overlays.vivado_reports.parse_utilization` returns, or
    an estimate such as ``{"LUT": 30000, "FF": 41000, "DSP": 180, "BRAM_18K": 12}`` (a value may
    also be ``{"used": n, ...}``). Resources it does not mention are not checked; a resource the
    part does not have (URAM on a Zynq-7000) has a capacity of 0. An empty list means it fits.
    """
    problems = []
    for key, used in _used(utilization).items():
        capacity = board.resources.get(key, 0)
        if used > capacity:
            share = f"{100.0 * used / capacity:.1f} %" if capacity else "the part has none"
            problems.append(f"{key}: {used} used > {capacity} available on {board.name} "
                            f"({board.part}; {share})")
    return problems
