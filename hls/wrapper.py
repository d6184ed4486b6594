"""Writes psqs' AXI-stream top (and its C-simulation entry points) around an hls4ml network.

hls4ml's own accelerator wrapper moves one float per beat and cannot overlap samples; this one
packs fixed-point codes several per beat as the I/O contract says, is free-running and pipelined,
and is both the vendor-HLS top and, compiled with g++, the C simulation of the IP.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from string import Template

from psqs.host.contract import IOContract

from .vendor import HLS_TOOLS

#: IP-catalog identity of the exported HLS core (the overlay's TCL instantiates it by this VLNV).
VENDOR, LIBRARY, VERSION = "psqs.org", "hls", "1.0"


def _template(name: str) -> Template:
    return Template(resources.files("psqs.hls").joinpath("templates", name).read_text())


def vlnv(top: str) -> str:
    return f"{VENDOR}:{LIBRARY}:{top}:{VERSION}"


def substitutions(contract: IOContract, project: str, backend: str, reuse: int) -> dict:
    """Template values; ``ii`` is the one II rule (input beats, output beats and hls4ml's reuse
    factor), so the pipeline pragma never asks for a rate one of the streams cannot move."""
    i, o = contract.input, contract.output
    return {
        "project": project, "PROJECT": project.upper(), "top": contract.top,
        "in_values": i.values, "in_width": i.format.width, "in_field": i.field_bits,
        "in_per_beat": i.values_per_beat, "in_beats": i.beats_per_sample, "in_bus": i.bus_bits,
        "in_type": i.format.hls_type(),
        "out_values": o.values, "out_width": o.format.width, "out_field": o.field_bits,
        "out_per_beat": o.values_per_beat, "out_beats": o.beats_per_sample, "out_bus": o.bus_bits,
        "out_type": o.format.hls_type(), "out_int": "int" if o.format.signed else "uint",
        "ii": contract.initiation_interval(reuse),
        "last_depth": 4,
        # Vivado HLS (2019/2020) needs side channels of at least one bit in ap_axiu.
        "side_bits": 1 if backend == "Vivado" else 0,
    }


def write_firmware(firmware: Path, contract: IOContract, project: str, io_type: str, backend: str,
                   reuse: int) -> list[str]:
    """Write the top (.h/.cpp) and the C entry points into hls4ml's firmware directory.

    ``reuse`` is hls4ml's reuse factor (the network accepts a sample every ``reuse`` cycles).
    Returns the sources of the C-simulation library, relative to ``firmware``.
    """
    values = substitutions(contract, project, backend, reuse)
    top = contract.top
    body = "axis_top_parallel.cpp" if io_type == "io_parallel" else "axis_top_stream.cpp"
    (firmware / f"{top}.h").write_text(_template("axis_top.h").substitute(values))
    (firmware / f"{top}.cpp").write_text(_template(body).substitute(values))
    (firmware / f"{top}_csim.cpp").write_text(_template("axis_csim.cpp").substitute(values))
    (firmware / "psqs_weights_dir.h").write_text(_template("psqs_weights_dir.h").template)
    return [f"{project}.cpp", f"{top}.cpp", f"{top}_csim.cpp"]


def write_vendor_project(directory: Path, contract: IOContract, project: str, backend: str,
                         part: str, clock_period: float) -> None:
    """The vendor HLS script exporting the top as an IP-catalog core, and hls4ml's project.tcl."""
    directory.mkdir(parents=True, exist_ok=True)
    values = {"top": contract.top, "project": project, "part": part, "clock_period": clock_period,
              "vendor": VENDOR, "library": LIBRARY, "version": VERSION, "vlnv": vlnv(contract.top),
              "tool": HLS_TOOLS[backend], "backend": backend.lower()}
    (directory / "build_axis_ip.tcl").write_text(_template("build_axis_ip.tcl").substitute(values))
    (directory / "project.tcl").write_text(_template("axis_project.tcl").substitute(values))
