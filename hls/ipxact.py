"""Writing IP-XACT ``component.xml`` files (IEEE 1685-2009, in Vivado's dialect).

Vivado finds an IP through the ``component.xml`` in a directory of ``ip_repo_paths`` and
instantiates it by VLNV. The file normally comes from the IP Packager GUI; psqs generates it for
each of its own IPs (the stream probe, the RTL model IP) so that it is reviewable, reproducible
and in step with the HDL. This module holds the parts every such file shares; each IP's packager
adds its own ports, parameters and memory maps. It lives in stage 2 (``hls``) because the first IP
packaged is the model itself (:mod:`psqs.hls.rtl.ipxact`); the overlay stage's own IPs import it
from here, so imports only ever point backwards along the pipeline. Output is deterministic (no
dates, no checksums) so that committed files can be checked for staleness.

Not verified here: no Vivado on these machines. The structure follows what Vivado 2022.x writes
for a packaged Verilog module.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Callable

SPIRIT = "http://www.spiritconsortium.org/XMLSchema/SPIRIT/1685-2009"
XILINX = "http://www.xilinx.com"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
for _prefix, _uri in (("spirit", SPIRIT), ("xilinx", XILINX), ("xsi", XSI)):
    ET.register_namespace(_prefix, _uri)

SUPPORTED_FAMILIES = ("zynq", "zynquplus", "artix7", "kintex7", "virtex7", "spartan7",
                      "kintexu", "kintexuplus", "virtexu", "virtexuplus")
XILINX_VERSION = "2022.1"  # informational: the packager version the format follows
VIEWS = (
    ("xilinx_anylanguagesynthesis", "Synthesis", ":vivado.xilinx.com:synthesis"),
    ("xilinx_anylanguagebehavioralsimulation", "Simulation", ":vivado.xilinx.com:simulation"),
)
XGUI_VIEW = ("xilinx_xpgui", "UI Layout", ":vivado.xilinx.com:xgui.ui")
AXIS_SIGNALS = ("TDATA", "TKEEP", "TLAST", "TVALID", "TREADY")


def s(tag: str) -> str:
    return f"{{{SPIRIT}}}{tag}"


def x(tag: str) -> str:
    return f"{{{XILINX}}}{tag}"


def el(parent: ET.Element, tag: str, text: str | int | None = None, **attrs: str) -> ET.Element:
    """Child element ``spirit:tag`` (or a full ``{ns}tag``); attribute names get ``spirit:``."""
    qtag = tag if tag.startswith("{") else s(tag)
    child = ET.SubElement(parent, qtag, {(k if k.startswith("{") else s(k)): v for k, v in attrs.items()})
    if text is not None:
        child.text = str(text)
    return child


def component(vendor: str, library: str, name: str, version: str) -> ET.Element:
    root = ET.Element(s("component"))
    el(root, "vendor", vendor)
    el(root, "library", library)
    el(root, "name", name)
    el(root, "version", version)
    return root


def bus_interface(parent, name: str, lib: str, bus: str, mode: str, port_map, params=(), memory_map=None) -> None:
    """One ``busInterface`` (``lib``/``bus``: ``interface``/``axis``, ``signal``/``clock`` ...)."""
    bi = el(parent, "busInterface")
    el(bi, "name", name)
    el(bi, "busType", vendor="xilinx.com", library=lib, name=bus, version="1.0")
    el(bi, "abstractionType", vendor="xilinx.com", library=lib, name=f"{bus}_rtl", version="1.0")
    role = el(bi, mode)
    if memory_map:
        el(role, "memoryMapRef", memoryMapRef=memory_map)
    maps = el(bi, "portMaps")
    for logical, physical in port_map:
        pm = el(maps, "portMap")
        el(el(pm, "logicalPort"), "name", logical)
        el(el(pm, "physicalPort"), "name", physical)
    if params:
        ps = el(bi, "parameters")
        for pname, value in params:
            p = el(ps, "parameter")
            el(p, "name", pname)
            el(p, "value", value, id=f"BUSIFPARAM_VALUE.{name.upper()}.{pname}")


def axis_interface(parent, name: str, mode: str) -> None:
    """An AXI4-Stream interface whose ports are ``<name>_tdata`` ... ``<name>_tready``."""
    bus_interface(parent, name, "interface", "axis", mode, [(sig, f"{name}_{sig.lower()}") for sig in AXIS_SIGNALS])


def clock_and_reset(parent, bus_interfaces: list[str], clock: str = "aclk", reset: str = "aresetn") -> None:
    """The active-low reset and the clock every listed bus interface is synchronous to."""
    bus_interface(parent, reset, "signal", "reset", "slave", [("RST", reset)], params=[("POLARITY", "ACTIVE_LOW")])
    bus_interface(parent, clock, "signal", "clock", "slave", [("CLK", clock)],
                  params=[("ASSOCIATED_BUSIF", ":".join(bus_interfaces)), ("ASSOCIATED_RESET", reset)])


def model(root: ET.Element, module: str) -> tuple[ET.Element, ET.Element]:
    """The ``model`` with its synthesis, simulation and GUI views; returns (model, ports)."""
    m = el(root, "model")
    views = el(m, "views")
    for name, display, env in VIEWS:
        v = el(views, "view")
        el(v, "name", name)
        el(v, "displayName", display)
        el(v, "envIdentifier", env)
        el(v, "language", "Verilog")
        el(v, "modelName", module)
        el(el(v, "fileSetRef"), "localName", f"{name}_view_fileset")
    v = el(views, "view")
    el(v, "name", XGUI_VIEW[0])
    el(v, "displayName", XGUI_VIEW[1])
    el(v, "envIdentifier", XGUI_VIEW[2])
    el(el(v, "fileSetRef"), "localName", f"{XGUI_VIEW[0]}_view_fileset")
    return m, el(m, "ports")


def port(ports: ET.Element, name: str, direction: str, vector: Callable[[ET.Element], None] | None = None,
         default: int | None = None) -> None:
    """One HDL port; ``vector`` adds its width to the wire, ``default`` drives it when unconnected."""
    p = el(ports, "port")
    el(p, "name", name)
    wire = el(p, "wire")
    el(wire, "direction", direction)
    if vector is not None:
        vector(wire)
    defs = el(el(wire, "wireTypeDefs"), "wireTypeDef")
    el(defs, "typeName", "wire")
    for view, _, _ in VIEWS:
        el(defs, "viewNameRef", view)
    if default is not None:
        el(el(wire, "driver"), "defaultValue", default, format="long")


def fixed_vector(width: int) -> Callable[[ET.Element], None] | None:
    """A ``vector`` for :func:`port` of a constant width (None for a single bit)."""
    if width == 1:
        return None

    def add(wire: ET.Element) -> None:
        vec = el(wire, "vector")
        el(vec, "left", width - 1, format="long")
        el(vec, "right", 0, format="long")

    return add


def file_sets(root: ET.Element, hdl_files, xgui_file: str, include_files=()) -> None:
    sets = el(root, "fileSets")
    for view, _, _ in VIEWS:
        fs = el(sets, "fileSet")
        el(fs, "name", f"{view}_view_fileset")
        for rel in hdl_files:
            f = el(fs, "file")
            el(f, "name", rel)
            el(f, "fileType", "verilogSource")
            if rel in include_files:
                el(f, "isIncludeFile", "true")
    fs = el(sets, "fileSet")
    el(fs, "name", f"{XGUI_VIEW[0]}_view_fileset")
    f = el(fs, "file")
    el(f, "name", xgui_file)
    el(f, "fileType", "tclSource")
    el(f, "userFileType", "XGUI_VERSION_2")


def component_name_parameter(parameters: ET.Element, module: str) -> None:
    p = el(parameters, "parameter")
    el(p, "name", "Component_Name")
    el(p, "value", f"{module}_v1_0", resolve="user", id="PARAM_VALUE.Component_Name", order="1")


def vendor_extensions(root: ET.Element, display_name: str) -> None:
    ext = el(root, "vendorExtensions")
    core = el(ext, x("coreExtensions"))
    fams = el(core, x("supportedFamilies"))
    for fam in SUPPORTED_FAMILIES:
        el(fams, x("family"), fam, **{x("lifeCycle"): "Production"})
    el(el(core, x("taxonomies")), x("taxonomy"), "/UserIP")
    el(core, x("displayName"), display_name)
    el(core, x("coreRevision"), 1)
    el(el(ext, x("packagingInfo")), x("xilinxVersion"), XILINX_VERSION)


def to_text(root: ET.Element) -> str:
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
