"""What an hls4ml ``VivadoAccelerator`` project on disk says about the IP built from it.

An hls4ml user's project directory is the only description of their model IP's streams: the
``<name>_axi`` top moves one element per AXI-stream beat, of the type ``T_in`` / ``T_out`` that
hls4ml wrote into ``firmware/<name>_axi.h``, ``N_IN`` beats in and ``N_OUT`` beats out per sample.
This module reads that (and the clock, shapes and, when the user ran Vivado HLS, the csynth
report's latency and interval) without importing hls4ml, so that a project written by any hls4ml
version is read from its files, not from the hls4ml installed here.

hls4ml 1.3 writes an ``ap_fixed`` element type in its own precision notation
(``typedef fixed<16,6,TRN,WRAP,0> T_in;``), which no C++ compiler accepts, Vivado HLS included:
users fix the two lines by hand to ``ap_fixed<16,6>``. Both spellings are read as the same
:class:`~psqs.common.fixed_point.FixedFormat`.
"""
from __future__ import annotations

import dataclasses
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from psqs.common.contract import IOContract, StreamLayout
from psqs.common.errors import PsqsError
from psqs.common.fixed_point import FixedFormat, FormatError
from psqs.hls.reports import _number

CONFIG_FILE = "hls4ml_config.yml"
#: the only interface whose IP psqs can drive: a DMA's AXI streams, one element per beat
SUPPORTED_INTERFACE = "axi_stream"
#: where figures taken from the vendor HLS report come from (never measured, never invented)
HLS_REPORT = "hls-report"


class Hls4mlProjectError(PsqsError, ValueError):
    """The directory is not a readable hls4ml ``VivadoAccelerator`` axi_stream project; the message
    names the file (or directory) and what is wrong with it."""


@dataclasses.dataclass(frozen=True)
class Hls4mlProject:
    """The facts psqs needs from one hls4ml ``VivadoAccelerator`` axi_stream project."""

    directory: Path
    name: str                    # hls4ml's ProjectName: firmware/<name>.cpp, top <name>_axi
    input: StreamLayout          # N_IN elements of T_in, one per beat
    output: StreamLayout         # N_OUT elements of T_out
    input_shape: tuple
    output_shape: tuple
    io_type: str
    board: str
    part: str
    clock_period_ns: float
    csynth: dict | None          # figures from the csynth XML (provenance "hls-report"), or None

    @property
    def top(self) -> str:
        return f"{self.name}_axi"

    @property
    def contract(self) -> IOContract:
        """The top's streams in psqs's I/O contract (one element per beat, see its module)."""
        return IOContract(self.input, self.output, self.top)

    @property
    def firmware(self) -> Path:
        return self.directory / "firmware"

    @property
    def axi_header(self) -> Path:
        return self.firmware / f"{self.top}.h"

    @property
    def sources(self) -> list:
        """The firmware translation units of the top, relative to :attr:`firmware`."""
        return [f"{self.name}.cpp", f"{self.top}.cpp"]

    def to_dict(self) -> dict:
        return {"name": self.name, "top": self.top, "io": self.contract.to_dict(),
                "input_shape": list(self.input_shape), "output_shape": list(self.output_shape),
                "io_type": self.io_type, "board": self.board, "part": self.part,
                "clock_period_ns": self.clock_period_ns, "csynth": self.csynth}


class _ConfigLoader(yaml.SafeLoader):
    """hls4ml's config file tags the Keras model path (``!keras_model``); only the text is needed."""


_ConfigLoader.add_multi_constructor("!", lambda loader, tag, node: loader.construct_scalar(node))


def read_project(directory: Path) -> Hls4mlProject:
    """Read ``directory`` as written by hls4ml's ``VivadoAccelerator`` backend (any version with
    ``hls4ml_config.yml``); :class:`Hls4mlProjectError` names the file that does not fit."""
    directory = Path(directory)
    if not directory.is_dir():
        raise Hls4mlProjectError(f"{directory}: not a directory")
    config = _config(directory)
    name = _field(config, "ProjectName", directory / CONFIG_FILE)
    backend = str(config.get("Backend", ""))
    if backend.lower() != "vivadoaccelerator":
        raise Hls4mlProjectError(f"{directory / CONFIG_FILE}: Backend {backend or 'missing'!r}, not "
                                 "VivadoAccelerator: only VivadoAccelerator builds have the DMA-facing "
                                 f"{name}_axi top")
    accelerator = config.get("AcceleratorConfig") or {}
    interface = accelerator.get("Interface", SUPPORTED_INTERFACE)  # hls4ml's default
    if interface != SUPPORTED_INTERFACE:
        raise Hls4mlProjectError(f"{directory / CONFIG_FILE}: AcceleratorConfig Interface {interface!r} is "
                                 f"not supported (only {SUPPORTED_INTERFACE!r}, the DMA-streamed one)")
    firmware = directory / "firmware"
    for source in (f"{name}.cpp", f"{name}.h", f"{name}_axi.cpp", f"{name}_axi.h", "parameters.h", "defines.h"):
        if not (firmware / source).is_file():
            raise Hls4mlProjectError(f"{firmware / source}: missing (hls4ml writes it; is the project complete?)")
    if not (firmware / "weights").is_dir():
        raise Hls4mlProjectError(f"{firmware / 'weights'}: missing (hls4ml writes it with WriteWeightsTxt)")

    header_path = firmware / f"{name}_axi.h"
    header = header_path.read_text(errors="replace")
    n_in, n_out = (_constant(header, header_path, c) for c in ("N_IN", "N_OUT"))
    layout_in, layout_out = (StreamLayout.one_per_beat(n, _element(header, header_path, t))
                             for n, t in ((n_in, "T_in"), (n_out, "T_out")))
    input_shape = _shape(config, "InputShapes", directory / CONFIG_FILE, n_in, "N_IN")
    output_shape = _shape(config, "OutputShapes", directory / CONFIG_FILE, n_out, "N_OUT")
    return Hls4mlProject(
        directory=directory, name=name, input=layout_in, output=layout_out,
        input_shape=input_shape, output_shape=output_shape,
        io_type=str(config.get("IOType", "io_parallel")), board=str(accelerator.get("Board", "pynq-z2")),
        part=str(config.get("Part", "")),
        clock_period_ns=float(_field(config, "ClockPeriod", directory / CONFIG_FILE)),
        csynth=read_csynth(directory, name))


def _config(directory: Path) -> dict:
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise Hls4mlProjectError(f"{directory}: not an hls4ml project (no {CONFIG_FILE})")
    try:
        config = yaml.load(path.read_text(errors="replace"), Loader=_ConfigLoader)
    except yaml.YAMLError as exc:
        raise Hls4mlProjectError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(config, dict):
        raise Hls4mlProjectError(f"{path}: not an hls4ml configuration (no mapping at the top)")
    return config


def _field(config: dict, key: str, path: Path):
    if config.get(key) in (None, ""):
        raise Hls4mlProjectError(f"{path}: no {key}")
    return config[key]


def _constant(header: str, path: Path, name: str) -> int:
    found = re.search(rf"\bconst\s+unsigned(?:\s+int)?\s+{name}\s*=\s*(\d+)\s*;", header)
    if not found:
        raise Hls4mlProjectError(f"{path}: no `static const unsigned {name} = ...;`")
    return int(found.group(1))


def _element(header: str, path: Path, name: str) -> str | FixedFormat:
    found = re.search(rf"\btypedef\s+([^;]+?)\s+{name}\s*;", header)
    if not found:
        raise Hls4mlProjectError(f"{path}: no `typedef ... {name};` (an axi_stream top declares its "
                                 "element types T_in and T_out)")
    try:
        return parse_element(found.group(1))
    except (ValueError, FormatError) as exc:
        raise Hls4mlProjectError(f"{path}: {name}: {exc}") from None


_FIXED = re.compile(r"^(ap_)?(u?)(fixed|int)\s*<\s*([^>]*)>$")


def parse_element(text: str) -> str | FixedFormat:
    """An element type as C++ (``ap_fixed<16,6>``, ``ap_ufixed<8,0,AP_RND,AP_SAT>``, ``ap_int<8>``,
    ``float``) or hls4ml's notation (``fixed<16,6,TRN,WRAP,0>``, ``uint<8>``) spells it: the
    contract's element (``float32`` / ``float64``) or fixed-point format."""
    text = " ".join(text.split())
    if text in ("float", "double"):
        return "float32" if text == "float" else "float64"
    found = _FIXED.match(text)
    if not found:
        raise ValueError(f"{text!r} is not float, double or an ap_fixed/ap_int type")
    _, unsigned, kind, args = found.groups()
    params = [a.strip() for a in args.split(",")]
    numbers = 2 if kind == "fixed" else 1
    try:
        width, integer = (int(params[0]), int(params[1] if kind == "fixed" else params[0]))
    except (ValueError, IndexError):
        raise ValueError(f"{text!r}: width and integer bits must be numbers") from None
    modes = [m[3:] if m.startswith("AP_") else m for m in params[numbers:]]
    rounding = modes[0] if len(modes) > 0 else "TRN"        # ap_fixed's defaults: AP_TRN, AP_WRAP, 0
    overflow = modes[1] if len(modes) > 1 else "WRAP"
    if len(modes) > 2 and modes[2] != "0":
        raise ValueError(f"{text!r}: saturation bits {modes[2]} are not supported")
    if width % 8:
        raise ValueError(f"{text!r}: width {width} is not whole bytes (hls4ml rounds it up to them)")
    return FixedFormat(width, integer, not unsigned, rounding, overflow)


def _shape(config: dict, key: str, path: Path, elements: int, constant: str) -> tuple:
    shapes = config.get(key)
    if not isinstance(shapes, dict) or len(shapes) != 1:
        raise Hls4mlProjectError(f"{path}: {key} must name exactly one tensor (VivadoAccelerator has "
                                 f"one input and one output), found {shapes!r}")
    (tensor, shape), = shapes.items()
    shape = tuple(int(d) for d in shape)
    if math.prod(shape) != elements:
        raise Hls4mlProjectError(f"{path}: {key} {tensor} {list(shape)} has {math.prod(shape)} elements, "
                                 f"but {constant} in the firmware is {elements}")
    return shape


def read_csynth(directory: Path, name: str) -> dict | None:
    """Latency, interval and clocks of the synthesized top from the vendor HLS's csynth XML, when
    the user ran it: ``<name>_axi_csynth.xml`` (the IP in the overlay), else ``<name>_csynth.xml``
    (the network alone, without the wrapper's element-by-element I/O loops; ``top`` says which).
    Figures carry ``provenance: hls-report``; an unreadable XML is an error, a missing one is None.
    """
    for top in (f"{name}_axi", name):
        found = sorted(Path(directory).glob(f"{name}_prj/*/syn/report/{top}_csynth.xml"),
                       key=lambda p: (p.parts[-4] != "solution1", str(p)))
        if found:
            return parse_csynth_xml(found[0], relative_to=Path(directory))
    return None


def parse_csynth_xml(path: Path, relative_to: Path | None = None) -> dict:
    """The figures of one Vivado/Vitis HLS ``*_csynth.xml`` (``None`` where the tool wrote ``undef``)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise Hls4mlProjectError(f"{path}: unreadable csynth report ({exc})") from None
    if root.find("./PerformanceEstimates/SummaryOfOverallLatency") is None:
        raise Hls4mlProjectError(f"{path}: not a csynth report (no PerformanceEstimates/SummaryOfOverallLatency)")
    latency = "./PerformanceEstimates/SummaryOfOverallLatency/"
    number = lambda p: _number(root.findtext(p))
    return {
        "provenance": HLS_REPORT,
        "xml": str(path.relative_to(relative_to) if relative_to else path),
        "tool_version": (root.findtext("./ReportVersion/Version") or "").strip() or None,
        "part": (root.findtext("./UserAssignments/Part") or "").strip() or None,
        "top": (root.findtext("./UserAssignments/TopModelName") or "").strip() or None,
        "clock_ns": {"target": number("./UserAssignments/TargetClockPeriod"),
                     "estimated": number("./PerformanceEstimates/SummaryOfTimingAnalysis/EstimatedClockPeriod")},
        "latency_cycles": {"min": number(latency + "Best-caseLatency"), "max": number(latency + "Worst-caseLatency")},
        "interval_cycles": {"min": number(latency + "Interval-min"), "max": number(latency + "Interval-max")},
    }

