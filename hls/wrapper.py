"""Writes psqs' AXI-stream top (and its C-simulation entry points) around an hls4ml network.

hls4ml's own accelerator wrapper moves one float per beat and cannot overlap samples; this one
moves whatever the I/O contract says (fixed-point codes packed several per beat, or hls4ml's one
float or ``ap_fixed`` element per beat, :mod:`.interface`), is free-running and pipelined, and is
both the vendor-HLS top and, compiled with g++, the C simulation of the IP.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from string import Template

from psqs.common.contract import IOContract

from .vendor import HLS_TOOLS

#: IP-catalog identity of the exported HLS core (the overlay's TCL instantiates it by this VLNV).
VENDOR, LIBRARY, VERSION = "psqs.org", "hls", "1.0"


def _template(name: str) -> Template:
    return Template(resources.files("psqs.hls").joinpath("templates", name).read_text())


def vlnv(top: str) -> str:
    return f"{VENDOR}:{LIBRARY}:{top}:{VERSION}"


# How one field becomes the input element and one output value becomes a field, per element kind:
# the only place the element kinds differ. A fixed-point code is its low ``width`` bits; an IEEE
# element is the field's bits reinterpreted (a union, which g++ and both HLS tools support).
# Assigning the element to input_t converts it with input_t's own quantization, and assigning an
# output value to the output element converts it (exact for a fixed-point element: hls4ml widens
# formats by fraction bits only; ``to_float``'s round-to-nearest-even for a float).
_IN_FROM_FIELD = {
    "fixed": ("    psqs_in_elem_t e;\n"
              "    e.range(PSQS_IN_WIDTH - 1, 0) = field.range(PSQS_IN_WIDTH - 1, 0);\n"
              "    return e;"),
    "float32": ("    union { uint32_t bits; float value; } u;\n"
                "    u.bits = field.to_uint();\n"
                "    return u.value;"),
    "float64": ("    union { uint64_t bits; double value; } u;\n"
                "    u.bits = field.to_uint64();\n"
                "    return u.value;"),
}
_OUT_TO_FIELD = {
    "fixed": ("    psqs_out_elem_t e = v;\n"
              "    ap_{int}<PSQS_OUT_WIDTH> code;\n"
              "    code.range(PSQS_OUT_WIDTH - 1, 0) = e.range(PSQS_OUT_WIDTH - 1, 0);\n"
              "    ap_{int}<PSQS_OUT_FIELD> field = code;\n"
              "    return field;"),
    "float32": ("    union { float value; uint32_t bits; } u;\n"
                "    u.value = psqs_out_elem_t(v);\n"
                "    return ap_uint<PSQS_OUT_FIELD>(u.bits);"),
    "float64": ("    union { double value; uint64_t bits; } u;\n"
                "    u.value = psqs_out_elem_t(v);\n"
                "    return ap_uint<PSQS_OUT_FIELD>(u.bits);"),
}


def _width(layout) -> int:
    """Bits of a field that count: the fixed-point format's width, or the whole IEEE element."""
    return layout.format.width if layout.element == "fixed" else layout.field_bits


def substitutions(contract: IOContract, project: str, backend: str, reuse: int) -> dict:
    """Template values; ``ii`` is the one II rule (input beats, output beats and hls4ml's reuse
    factor), so the pipeline pragma never asks for a rate one of the streams cannot move."""
    i, o = contract.input, contract.output
    signed_out = o.element != "fixed" or o.format.signed
    return {
        "project": project, "PROJECT": project.upper(), "top": contract.top,
        "in_values": i.values, "in_width": _width(i), "in_field": i.field_bits,
        "in_per_beat": i.values_per_beat, "in_beats": i.beats_per_sample, "in_bus": i.bus_bits,
        "in_type": i.element_type(), "in_from_field": _IN_FROM_FIELD[i.element],
        "out_values": o.values, "out_width": _width(o), "out_field": o.field_bits,
        "out_per_beat": o.values_per_beat, "out_beats": o.beats_per_sample, "out_bus": o.bus_bits,
        "out_type": o.element_type(),
        "out_to_field": _OUT_TO_FIELD[o.element].replace("{int}", "int" if signed_out else "uint"),
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
