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

from psqs.hls.ipxact import (AXIS_SIGNALS, XSI, axis_interface, bus_interface, clock_and_reset, component,
                             component_name_parameter, el, file_sets, model, port, s, to_text, vendor_extensions)
from psqs.common import stream_probe_regs as regs

#: The register file's address block: Vivado's smallest AXI address segment, in which the
#: 128-byte register file aliases.
ADDRESS_BLOCK, ADDRESS_BLOCK_RANGE = "reg0", 4096

# (interface, mode, parameter giving its TDATA width)
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


def _bus_interfaces(root: ET.Element) -> None:
    bis = el(root, "busInterfaces")
    bus_interface(bis, AXI_LITE, "interface", "aximm", "slave",
                  [(sig, f"{AXI_LITE}_{sig.lower()}") for sig in AXI_LITE_SIGNALS], memory_map=AXI_LITE)
    for bus, mode, _ in AXIS_INTERFACES:
        axis_interface(bis, bus, mode)
    clock_and_reset(bis, [AXI_LITE] + [b for b, _, _ in AXIS_INTERFACES])


def _memory_maps(root: ET.Element) -> None:
    mm = el(el(root, "memoryMaps"), "memoryMap")
    el(mm, "name", AXI_LITE)
    block = el(mm, "addressBlock")
    el(block, "name", ADDRESS_BLOCK)
    el(block, "baseAddress", "0x0")
    el(block, "range", ADDRESS_BLOCK_RANGE)
    el(block, "width", regs.DATA_WIDTH)
    el(block, "usage", "register")
    for name, offset, reg in regs.words():
        r = el(block, "register")
        el(r, "name", name)
        hi = name.endswith("_HI")
        el(r, "description", f"upper half of {reg.name}, latched by reading {reg.name}_LO" if hi
            else reg.description)
        el(r, "addressOffset", f"0x{offset:X}")
        el(r, "size", 32)
        el(r, "volatile", "true" if reg.volatile else "false")
        el(r, "access", "read-write" if reg.access == "RW" else "read-only")
        word_reset = (reg.reset >> 32) if hi else reg.reset & 0xFFFFFFFF
        reset = el(r, "reset")
        el(reset, "value", f"0x{word_reset:08X}")
        el(reset, "mask", "0xFFFFFFFF")
        live = min(32, reg.implemented - (32 if hi else 0))  # implemented bits of this word
        fields = reg.fields if reg.fields else (regs.Field("VALUE", 0, live, reg.access, word_reset, ""),)
        for f in fields:
            fe = el(r, "field")
            el(fe, "name", f.name)
            el(fe, "description", f.description or r.find(s("description")).text)
            el(fe, "bitOffset", f.lsb)
            el(fe, "bitWidth", f.width)
            el(fe, "volatile", "true" if reg.volatile else "false")
            el(fe, "access", {"RO": "read-only", "RW": "read-write", "W1P": "write-only"}[f.access])


def _vector(width_param: str | None, width: int):
    """The ``vector`` of a port whose width is fixed or follows an HDL parameter (``P`` or ``P/8``)."""
    if width_param is None and width == 1:
        return None

    def add(wire: ET.Element) -> None:
        vec = el(wire, "vector")
        if width_param is None:
            el(vec, "left", width - 1, format="long")
        else:
            param, _, div = width_param.partition("/")
            default = next(p.default for p in regs.HDL_PARAMETERS if p.name == param)
            expr = f"spirit:decode(id('MODELPARAM_VALUE.{param}'))"
            expr, value = ((f"(({expr} / {div}) - 1)", default // int(div) - 1) if div
                           else (f"({expr} - 1)", default - 1))
            el(vec, "left", value, format="long", resolve="dependent", dependency=expr)
        el(vec, "right", 0, format="long")

    return add


def _model(root: ET.Element) -> None:
    m, ports = model(root, regs.NAME)
    for name, direction, width_param, width in _ports():
        # unconnected inputs: TREADY defaults to ready, everything else to 0
        default = (1 if name.endswith("tready") else 0) if direction == "in" and name not in ("aclk", "aresetn") else None
        port(ports, name, direction, _vector(width_param, width), default)
    params = el(m, "modelParameters")
    for p in regs.HDL_PARAMETERS:
        mp = el(params, "modelParameter", dataType="integer", **{f"{{{XSI}}}type": "spirit:nameValueTypeType"})
        el(mp, "name", p.name)
        el(mp, "displayName", p.name)
        el(mp, "description", p.description)
        el(mp, "value", p.default, format="long", resolve="generated", id=f"MODELPARAM_VALUE.{p.name}")


def _choices(root: ET.Element) -> None:
    choices = el(root, "choices")
    for p in regs.HDL_PARAMETERS:
        if p.power_of_two:
            c = el(choices, "choice")
            el(c, "name", f"choice_list_{p.name.lower()}")
            v = p.minimum
            while v <= p.maximum:
                el(c, "enumeration", v)
                v *= 2


def _file_sets(root: ET.Element) -> None:
    from . import HDL_FILES, INCLUDE_FILES, XGUI_FILE

    file_sets(root, HDL_FILES, XGUI_FILE, INCLUDE_FILES)


def _parameters(root: ET.Element) -> None:
    params = el(root, "parameters")
    component_name_parameter(params, regs.NAME)
    for order, hp in enumerate(regs.HDL_PARAMETERS, start=2):
        p = el(params, "parameter")
        el(p, "name", hp.name)
        el(p, "displayName", hp.name)
        el(p, "description", hp.description)
        attrs = {"format": "long", "resolve": "user", "id": f"PARAM_VALUE.{hp.name}", "order": str(order)}
        if hp.power_of_two:
            attrs["choiceRef"] = f"choice_list_{hp.name.lower()}"
        else:
            attrs.update(minimum=str(hp.minimum), maximum=str(hp.maximum), rangeType="long")
        el(p, "value", hp.default, **attrs)


def component_xml() -> str:
    """The ``component.xml`` text."""
    root = component(regs.VENDOR, regs.LIBRARY, regs.NAME, regs.IP_VERSION)
    _bus_interfaces(root)
    _memory_maps(root)
    _model(root)
    _choices(root)
    _file_sets(root)
    el(root, "description",
        "Zero-latency AXI-stream pass-through on a model's input and output streams that counts "
        "cycles, beats and per-transfer latency in the fabric (psqs).")
    _parameters(root)
    vendor_extensions(root, "psqs stream probe")
    return to_text(root)


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
