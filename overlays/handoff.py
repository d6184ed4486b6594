"""Reading a ``.hwh`` the way pynq does, and checking it against the block design.

Whether the handoff came from Vivado (a real build) or from :mod:`psqs.overlays.hwh` (an
emulation build), the package must not be written unless pynq would find in it what the
manifest promises: the DMA and the probe at the manifest's addresses, the DMA parameters pynq's
driver reads, the design clock enabled at the board's frequency and, on a ZynqMP, the PS-PL port
widths pynq programs at download. The parse is pynq 4.0's own: pynqmetadata's ``HwhFrontend``
and ``RuntimeMetadataParser`` (what ``pynq.Overlay`` gets from its bitstream handler), unpatched:
a user's plain script parses the package the same way, so the clock check below is also the check
that :mod:`psqs.overlays.zynq7_clock`'s amendment lets pynq 4.0 read a Zynq-7000 clock.
"""
from __future__ import annotations

import math
from pathlib import Path

from psqs.common.errors import RunFailed

from . import zynq7_clock
from .design import BlockDesign


class HandoffError(RunFailed, ValueError):
    """pynq's parser rejects a ``.hwh`` (the message carries its exception)."""


def parse(path: Path):
    """pynq's runtime view of ``path``: an object with ``ip_dict``, ``mem_dict``, ``clock_dict``."""
    from pynqmetadata.frontends import Metadata
    from pynqmetadata.views.runtime import RuntimeMetadataParser

    try:
        return RuntimeMetadataParser(Metadata(input=str(path)))
    except Exception as exc:  # noqa: BLE001 -- pynqmetadata raises exceptions of many unrelated kinds
        raise HandoffError(f"{path}: pynq's parser rejects it ({type(exc).__name__}: {exc})") from None


def check(parser, design: BlockDesign) -> list[str]:
    """What pynq would see differently from the design; ``[]`` when it agrees."""
    problems = []
    ip = parser.ip_dict
    for name, want in design.ips.items():
        got = ip.get(name)
        if got is None:
            problems.append(f"ip_dict has no {name} (it has {', '.join(ip)})")
            continue
        for key, value in (("type", want["vlnv"]), ("phys_addr", want["base"]), ("addr_range", want["range"])):
            if got.get(key) != value:
                problems.append(f"ip_dict[{name!r}][{key!r}] is {got.get(key)!r}, expected {value!r}")
    dma = ip.get(design.dma.name, {}).get("parameters", {})
    for key, value in (("c_include_sg", 0), ("c_micro_dma", 0), ("c_include_mm2s", 1), ("c_include_s2mm", 1),
                       ("c_sg_length_width", design.dma.length_width),
                       ("c_m_axi_mm2s_data_width", design.dma.mm_data_width),
                       ("c_m_axi_s2mm_data_width", design.dma.mm_data_width),
                       ("c_m_axis_mm2s_tdata_width", design.dma.mm2s_tdata_width),
                       ("c_s_axis_s2mm_tdata_width", design.dma.s2mm_tdata_width)):
        if str(dma.get(key)) != str(value):
            problems.append(f"DMA parameter {key} is {dma.get(key)!r}, expected {value}")
    board = design.board
    clock = parser.clock_dict.get(board.fclk, {})
    frequency = clock.get("frequency")
    if clock.get("enable") != 1 or frequency is None or not math.isclose(frequency, board.fclk_mhz, rel_tol=0.01):
        problems.append(f"clock_dict[{board.fclk}] is {clock}, expected enabled at {board.fclk_mhz:g} MHz")
    params = ip.get(parser.ps_name, {}).get("parameters", {})
    for key, value in design.ps.width_parameters.items():   # pynq writes these into a ZynqMP PS
        if params.get(key) != value:
            problems.append(f"PS parameter {key} is {params.get(key)!r}, expected {value}")
    if ":processing_system7:" in ip.get(parser.ps_name, {}).get("type", ""):
        # in a process that patched pynqmetadata the clock above reads right without the amendment
        key = zynq7_clock.TARGET.format(n=board.fclk)
        carried = params.get(key)
        if carried is None or not math.isclose(float(carried), board.fclk_mhz, rel_tol=0.01):
            problems.append(f"PS parameter {key} is {carried!r}, expected {board.fclk_mhz:g} "
                            "(where pynq 4.0 reads a Zynq-7000 clock, see psqs.overlays.zynq7_clock)")
    return problems


def summary(parser, design: BlockDesign) -> dict:
    """The parts of pynq's view the build report records."""
    return {"ip_dict": {k: {"type": v["type"], "phys_addr": v.get("phys_addr"), "addr_range": v.get("addr_range")}
                        for k, v in parser.ip_dict.items()},
            "mem_dict": sorted(parser.mem_dict),
            "clock": parser.clock_dict.get(design.board.fclk)}
