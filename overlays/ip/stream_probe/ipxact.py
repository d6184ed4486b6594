"""IP-XACT (IEEE 1685-2009, Vivado's dialect) packaging of the stream probe, generated.

Vivado finds an IP through the ``component.xml`` in an ``ip_repo_paths`` directory and
instantiates it by VLNV. The file normally comes from the IP Packager GUI; generating it here
from the register map and the HDL file list keeps it reviewable, reproducible and in step with
the driver (its register list also ends up in the overlay's ``.hwh``, where pynq reads it).
``xgui_tcl`` is the small parameter-GUI script Vivado expects next to it: its
``update_MODELPARAM_VALUE`` procedures are what carry a ``CONFIG.DATA_WIDTH_IN`` set in a
block-design TCL down to the Verilog parameter.

The output is deterministic (no dates, no checksums) so that the staleness test can compare it.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from psqs.host import stream_probe_regs as regs

SPIRIT = "http://www.spiritconsortium.org/XMLSchema/SPIRIT/1685-2009"
XILINX = "http://www.xilinx.com"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
for _prefix, _uri in (("spirit", SPIRIT), ("xilinx", XILINX), ("xsi", XSI)):
    ET.register_namespace(_prefix, _uri)

#: Vivado's smallest AXI address segment; the 128-byte register file aliases inside it.
ADDRESS_BLOCK_RANGE = 4096
SUPPORTED_FAMILIES = ("zynq", "zynquplus", "artix7", "kintex7", "virtex7", "spartan7",
                      "kintexu", "kintexuplus", "virtexu", "virtexuplus")
XILINX_VERSION = "2022.1"  # informational: the packager version the format follows
VIEWS = (
    ("xilinx_anylanguagesynthesis", "Synthesis", ":vivado.xilinx.com:synthesis"),
    ("xilinx_anylanguagebehavioralsimulation", "Simulation", ":vivado.xilinx.com:simulation"),
)
XGUI_VIEW = ("xilinx_xpgui", "UI Layout", ":vivado.xilinx.com:xgui.ui")

# (interface, mode, parameter giving its TDATA width)
AXIS_SIGNALS = ("TDATA", "TKEEP", "TLAST", "TVALID", "TREADY")
AXIS_INTERFACES = (
    ("s_axis_in", "slave", "DATA_WIDTH_IN"),
    ("m_axis_in", "master", "DATA_WIDTH_IN"),
    ("s_axis_out", "slave", "DATA_WIDTH_OUT"),
    ("m_axis_out", "master", "DATA_WIDTH_OUT"),
)
AXI_LITE = "s_axi_ctrl"
AXI_LITE_SIGNALS = ("AWADDR", "AWVALID", "AWREADY", "WDATA", "WSTRB", "WVALID", "WREADY",
                    "BRESP", "BVALID", "BREADY", "ARADDR", "ARVALID", "ARREADY",
                    "RDATA", "RRESP", "RVALID", "RREADY")
MASTER_TO_SLAVE = {"TDATA", "TKEEP", "TLAST", "TVALID", "AWADDR", "AWVALID", "WDATA", "WSTRB",
                   "WVALID", "BREADY", "ARADDR", "ARVALID", "RREADY"}
FIXED_WIDTHS = {"AWADDR": regs.ADDR_WIDTH, "ARADDR": regs.ADDR_WIDTH, "WDATA": 32, "RDATA": 32,
                "WSTRB": 4, "BRESP": 2, "RRESP": 2}


def _s(tag: str) -> str:
    return f"{{{SPIRIT}}}{tag}"


def _x(tag: str) -> str:
    return f"{{{XILINX}}}{tag}"


def _el(parent: ET.Element, tag: str, text: str | int | None = None, **attrs: str) -> ET.Element:
    """Child element ``spirit:tag`` (or a full ``{ns}tag``); attribute names get ``spirit:``."""
    qtag = tag if tag.startswith("{") else _s(tag)
    el = ET.SubElement(parent, qtag, {(k if k.startswith("{") else _s(k)): v for k, v in attrs.items()})
    if text is not None:
        el.text = str(text)
    return el


def _ports() -> list[tuple[str, str, str | None, int]]:
    """Every HDL port as (name, direction, width parameter or None, fixed width)."""
    ports = [("aclk", "in", None, 1), ("aresetn", "in", None, 1)]
    for bus, mode, param in AXIS_INTERFACES:
        for sig in AXIS_SIGNALS:
            into = (sig in MASTER_TO_SLAVE) == (mode == "slave")
            width_param = param if sig == "TDATA" else (f"{param}/8" if sig == "TKEEP" else None)
            ports.append((f"{bus}_{sig.lower()}", "in" if into else "out", width_param, 1))
    for sig in AXI_LITE_SIGNALS:
        ports.append((f"{AXI_LITE}_{sig.lower()}", "in" if sig in MASTER_TO_SLAVE else "out",
                      None, FIXED_WIDTHS.get(sig, 1)))
    return ports


def _bus_interface(parent, name, lib, bus, mode, port_map, params=(), memory_map=None):
    bi = _el(parent, "busInterface")
    _el(bi, "name", name)
    _el(bi, "busType", vendor="xilinx.com", library=lib, name=bus, version="1.0")
    _el(bi, "abstractionType", vendor="xilinx.com", library=lib, name=f"{bus}_rtl", version="1.0")
    role = _el(bi, mode)
    if memory_map:
        _el(role, "memoryMapRef", memoryMapRef=memory_map)
    maps = _el(bi, "portMaps")
    for logical, physical in port_map:
        pm = _el(maps, "portMap")
        _el(_el(pm, "logicalPort"), "name", logical)
        _el(_el(pm, "physicalPort"), "name", physical)
    if params:
        ps = _el(bi, "parameters")
        for pname, value in params:
            p = _el(ps, "parameter")
            _el(p, "name", pname)
            _el(p, "value", value, id=f"BUSIFPARAM_VALUE.{name.upper()}.{pname}")


def _bus_interfaces(root: ET.Element) -> None:
    bis = _el(root, "busInterfaces")
    _bus_interface(bis, AXI_LITE, "interface", "aximm", "slave",
                   [(s, f"{AXI_LITE}_{s.lower()}") for s in AXI_LITE_SIGNALS], memory_map=AXI_LITE)
    for bus, mode, _ in AXIS_INTERFACES:
        _bus_interface(bis, bus, "interface", "axis", mode, [(s, f"{bus}_{s.lower()}") for s in AXIS_SIGNALS])
    _bus_interface(bis, "aresetn", "signal", "reset", "slave", [("RST", "aresetn")],
                   params=[("POLARITY", "ACTIVE_LOW")])
    busifs = ":".join([AXI_LITE] + [b for b, _, _ in AXIS_INTERFACES])
    _bus_interface(bis, "aclk", "signal", "clock", "slave", [("CLK", "aclk")],
                   params=[("ASSOCIATED_BUSIF", busifs), ("ASSOCIATED_RESET", "aresetn")])


def _memory_maps(root: ET.Element) -> None:
    mm = _el(_el(root, "memoryMaps"), "memoryMap")
    _el(mm, "name", AXI_LITE)
    block = _el(mm, "addressBlock")
    _el(block, "name", "reg0")
    _el(block, "baseAddress", "0x0")
    _el(block, "range", ADDRESS_BLOCK_RANGE)
    _el(block, "width", regs.DATA_WIDTH)
    _el(block, "usage", "register")
    for name, offset, reg in regs.words():
        r = _el(block, "register")
        _el(r, "name", name)
        hi = name.endswith("_HI")
        _el(r, "description", f"upper half of {reg.name}, latched by reading {reg.name}_LO" if hi
            else reg.description)
        _el(r, "addressOffset", f"0x{offset:X}")
        _el(r, "size", 32)
        _el(r, "volatile", "true" if reg.volatile else "false")
        _el(r, "access", "read-write" if reg.access == "RW" else "read-only")
        word_reset = (reg.reset >> 32) if hi else reg.reset & 0xFFFFFFFF
        reset = _el(r, "reset")
        _el(reset, "value", f"0x{word_reset:08X}")
        _el(reset, "mask", "0xFFFFFFFF")
        live = min(32, reg.implemented - (32 if hi else 0))  # implemented bits of this word
        fields = reg.fields if reg.fields else (regs.Field("VALUE", 0, live, reg.access, word_reset, ""),)
        for f in fields:
            fe = _el(r, "field")
            _el(fe, "name", f.name)
            _el(fe, "description", f.description or r.find(_s("description")).text)
            _el(fe, "bitOffset", f.lsb)
            _el(fe, "bitWidth", f.width)
            _el(fe, "volatile", "true" if reg.volatile else "false")
            _el(fe, "access", {"RO": "read-only", "RW": "read-write", "W1P": "write-only"}[f.access])


def _vector(wire: ET.Element, width_param: str | None, width: int) -> None:
    if width_param is None and width == 1:
        return
    vec = _el(wire, "vector")
    if width_param is None:
        _el(vec, "left", width - 1, format="long")
    else:
        param, _, div = width_param.partition("/")
        default = next(p.default for p in regs.HDL_PARAMETERS if p.name == param)
        expr = f"spirit:decode(id('MODELPARAM_VALUE.{param}'))"
        expr, value = (f"(({expr} / {div}) - 1)", default // int(div) - 1) if div else (f"({expr} - 1)", default - 1)
        _el(vec, "left", value, format="long", resolve="dependent", dependency=expr)
    _el(vec, "right", 0, format="long")


def _model(root: ET.Element) -> None:
    model = _el(root, "model")
    views = _el(model, "views")
    for name, display, env in VIEWS:
        v = _el(views, "view")
        _el(v, "name", name)
        _el(v, "displayName", display)
        _el(v, "envIdentifier", env)
        _el(v, "language", "Verilog")
        _el(v, "modelName", regs.NAME)
        _el(_el(v, "fileSetRef"), "localName", f"{name}_view_fileset")
    v = _el(views, "view")
    _el(v, "name", XGUI_VIEW[0])
    _el(v, "displayName", XGUI_VIEW[1])
    _el(v, "envIdentifier", XGUI_VIEW[2])
    _el(_el(v, "fileSetRef"), "localName", f"{XGUI_VIEW[0]}_view_fileset")
    ports = _el(model, "ports")
    for name, direction, width_param, width in _ports():
        port = _el(ports, "port")
        _el(port, "name", name)
        wire = _el(port, "wire")
        _el(wire, "direction", direction)
        _vector(wire, width_param, width)
        defs = _el(_el(wire, "wireTypeDefs"), "wireTypeDef")
        _el(defs, "typeName", "wire")
        for view, _, _ in VIEWS:
            _el(defs, "viewNameRef", view)
        if direction == "in" and name not in ("aclk", "aresetn"):
            # unconnected inputs: TREADY defaults to ready, everything else to 0
            _el(_el(wire, "driver"), "defaultValue", 1 if name.endswith("tready") else 0, format="long")
    params = _el(model, "modelParameters")
    for p in regs.HDL_PARAMETERS:
        mp = _el(params, "modelParameter", dataType="integer", **{f"{{{XSI}}}type": "spirit:nameValueTypeType"})
        _el(mp, "name", p.name)
        _el(mp, "displayName", p.name)
        _el(mp, "description", p.description)
        _el(mp, "value", p.default, format="long", resolve="generated", id=f"MODELPARAM_VALUE.{p.name}")


def _choices(root: ET.Element) -> None:
    choices = _el(root, "choices")
    for p in regs.HDL_PARAMETERS:
        if p.power_of_two:
            c = _el(choices, "choice")
            _el(c, "name", f"choice_list_{p.name.lower()}")
            v = p.minimum
            while v <= p.maximum:
                _el(c, "enumeration", v)
                v *= 2


def _file_sets(root: ET.Element) -> None:
    from . import HDL_FILES, INCLUDE_FILES, XGUI_FILE

    sets = _el(root, "fileSets")
    for view, _, _ in VIEWS:
        fs = _el(sets, "fileSet")
        _el(fs, "name", f"{view}_view_fileset")
        for rel in HDL_FILES:
            f = _el(fs, "file")
            _el(f, "name", rel)
            _el(f, "fileType", "verilogSource")
            if rel in INCLUDE_FILES:
                _el(f, "isIncludeFile", "true")
    fs = _el(sets, "fileSet")
    _el(fs, "name", f"{XGUI_VIEW[0]}_view_fileset")
    f = _el(fs, "file")
    _el(f, "name", XGUI_FILE)
    _el(f, "fileType", "tclSource")
    _el(f, "userFileType", "XGUI_VERSION_2")


def _parameters(root: ET.Element) -> None:
    params = _el(root, "parameters")
    p = _el(params, "parameter")
    _el(p, "name", "Component_Name")
    _el(p, "value", f"{regs.NAME}_v1_0", resolve="user", id="PARAM_VALUE.Component_Name", order="1")
    for order, hp in enumerate(regs.HDL_PARAMETERS, start=2):
        p = _el(params, "parameter")
        _el(p, "name", hp.name)
        _el(p, "displayName", hp.name)
        _el(p, "description", hp.description)
        attrs = {"format": "long", "resolve": "user", "id": f"PARAM_VALUE.{hp.name}", "order": str(order)}
        if hp.power_of_two:
            attrs["choiceRef"] = f"choice_list_{hp.name.lower()}"
        else:
            attrs.update(minimum=str(hp.minimum), maximum=str(hp.maximum), rangeType="long")
        _el(p, "value", hp.default, **attrs)


def _vendor_extensions(root: ET.Element) -> None:
    ext = _el(root, "vendorExtensions")
    core = _el(ext, _x("coreExtensions"))
    fams = _el(core, _x("supportedFamilies"))
    for fam in SUPPORTED_FAMILIES:
        _el(fams, _x("family"), fam, **{_x("lifeCycle"): "Production"})
    _el(_el(core, _x("taxonomies")), _x("taxonomy"), "/UserIP")
    _el(core, _x("displayName"), "psqs stream probe")
    _el(core, _x("coreRevision"), 1)
    _el(_el(ext, _x("packagingInfo")), _x("xilinxVersion"), XILINX_VERSION)


def component_xml() -> str:
    """The ``component.xml`` text."""
    root = ET.Element(_s("component"))
    _el(root, "vendor", regs.VENDOR)
    _el(root, "library", regs.LIBRARY)
    _el(root, "name", regs.NAME)
    _el(root, "version", regs.IP_VERSION)
    _bus_interfaces(root)
    _memory_maps(root)
    _model(root)
    _choices(root)
    _file_sets(root)
    _el(root, "description",
        "Zero-latency AXI-stream pass-through on a model's input and output streams that counts "
        "cycles, beats and per-transfer latency in the fabric (psqs).")
    _parameters(root)
    _vendor_extensions(root)
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def xgui_tcl() -> str:
    """``xgui/stream_probe_v1_0.tcl``: parameter page, validation, parameter propagation."""
    out = ["# Generated by psqs.overlays.ip.stream_probe (ipxact.py); do not edit.", "",
           "proc init_gui { IPINST } {",
           '  ipgui::add_param $IPINST -name "Component_Name"',
           '  set Page_0 [ipgui::add_page $IPINST -name "Page 0"]']
    for p in regs.HDL_PARAMETERS:
        out.append(f'  ipgui::add_param $IPINST -name "{p.name}" -parent ${{Page_0}}')
    out += ["}", ""]
    for p in regs.HDL_PARAMETERS:
        pv, mv = f"PARAM_VALUE.{p.name}", f"MODELPARAM_VALUE.{p.name}"
        checks = [f"$v < {p.minimum} || $v > {p.maximum}"]
        rule = f"{p.minimum}..{p.maximum}"
        if p.multiple_of > 1:
            checks.append(f"$v % {p.multiple_of} != 0")
            rule += f", a multiple of {p.multiple_of}"
        if p.power_of_two:
            checks.append("($v & ($v - 1)) != 0")
            rule += ", a power of two"
        out += [
            f"proc update_{pv} {{ {pv} }} {{", "}", "",
            f"proc validate_{pv} {{ {pv} }} {{",
            f"  set v [get_property value ${{{pv}}}]",
            f"  if {{{' || '.join(checks)}}} {{",
            f'    set_property errmsg "{p.name} must be {rule}" ${{{pv}}}',
            "    return false", "  }", "  return true", "}", "",
            f"proc update_{mv} {{ {mv} {pv} }} {{",
            f"  set_property value [get_property value ${{{pv}}}] ${{{mv}}}", "}", "",
        ]
    return "\n".join(out)
