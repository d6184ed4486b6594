"""Checking a generated Vivado script without Vivado: run it in ``tclsh`` against a recording shim.

:data:`SHIM` defines, as plain Tcl procedures, every Vivado command ``build.tcl`` uses. Each one
records what it was asked to do (one tab-separated line per fact) and returns a handle the next
command can take (``get_bd_cells x`` fails, as in Vivado, if cell ``x`` was never created). The
script runs unchanged — its Tcl syntax, variables, ``expr`` and ``if`` included — and
:func:`replay` rebuilds from the recording the graph Vivado would have built: cells and their
CONFIG, interface connections, nets, address assignments, runs, reports and copied outputs.
:func:`check` compares that graph with the :class:`~psqs.overlays.design.BlockDesign` the script
came from and with the properties every overlay must have (all streams and AXI-Lite slaves
connected, stream widths equal to the contract's bus widths, every slave addressed, every clock
and reset pin driven, the right PS for the family).

What it cannot check is whether Vivado accepts the names and values (a pin that the real IP
calls differently, a CONFIG key an IP version lacks): that needs the first real build.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from psqs.board_configs.schema import FAMILIES
from psqs.common.errors import RunFailed, find_tool, tool_failure

from .design import BlockDesign
from .tcl import Outputs

SHIM = r"""
# psqs recording shim: Vivado commands as Tcl procedures that log what they are asked to do.
set psqs_log [open $env(PSQS_SHIM_LOG) w]
set psqs_cells [dict create]
set psqs_runs_dir [file join [pwd] shim_runs]

proc psqs_emit {args} {
    set out {}
    foreach a $args { lappend out [string map [list "\\" "\\\\" "\t" "\\t" "\n" "\\n"] $a] }
    puts $::psqs_log [join $out "\t"]
}
proc psqs_opt {argl name} {
    set i [lsearch -exact $argl $name]
    if {$i < 0} { return "" }
    return [lindex $argl [expr {$i + 1}]]
}
proc psqs_positional {argl {flags {}}} {
    # the arguments that are neither -options nor their values (flags take no value)
    set out {}
    for {set i 0} {$i < [llength $argl]} {incr i} {
        set a [lindex $argl $i]
        if {[string index $a 0] eq "-" && ![string is double -strict $a]} {
            if {[lsearch -exact $flags $a] < 0} { incr i }
            continue
        }
        lappend out $a
    }
    return $out
}
proc psqs_strip {handle kind} {
    if {![string match "$kind:*" $handle]} { error "psqs shim: expected a $kind object, got '$handle'" }
    return [string range $handle [string length "$kind:"] end]
}
proc psqs_cell_of {path} {
    set cell [lindex [split $path /] 0]
    if {![dict exists $::psqs_cells $cell]} { error "psqs shim: no cell '$cell' (from '$path')" }
    return $cell
}

proc create_project {args} {
    set pos [psqs_positional $args {-force}]
    psqs_emit project [lindex $pos 0] [lindex $pos 1] [psqs_opt $args -part]
}
proc current_project {args} { return "project:current" }
proc current_fileset {args} { return "fileset:sources_1" }
proc set_property {args} {
    if {[lindex $args 0] eq "-dict"} {
        set pairs [lindex $args 1]
        set object [lindex $args 2]
    } else {
        set pairs [list [lindex $args 0] [lindex $args 1]]
        set object [lindex $args 2]
    }
    foreach {key value} $pairs { psqs_emit property $object $key $value }
}
proc update_ip_catalog {args} { psqs_emit update_ip_catalog {*}$args }
proc create_bd_design {name} { psqs_emit bd $name }
proc create_bd_cell {args} {
    set name [lindex [psqs_positional $args] 0]
    if {[psqs_opt $args -type] ne "ip"} { error "psqs shim: create_bd_cell $name: only -type ip" }
    dict set ::psqs_cells $name [psqs_opt $args -vlnv]
    psqs_emit cell $name [psqs_opt $args -vlnv]
}
proc get_bd_cells {name} { psqs_cell_of $name; return "cell:$name" }
proc get_bd_intf_pins {path} { psqs_cell_of $path; return "intf:$path" }
proc get_bd_pins {path} { psqs_cell_of $path; return "pin:$path" }
proc get_bd_addr_spaces {path} { psqs_cell_of $path; return "space:$path" }
proc get_bd_addr_segs {path} { psqs_cell_of $path; return "seg:$path" }
proc apply_bd_automation {args} {
    psqs_emit automation [psqs_strip [lindex $args end] cell] [psqs_opt $args -rule] [psqs_opt $args -config]
}
proc connect_bd_intf_net {args} {
    set pos [psqs_positional $args]
    if {[llength $pos] != 2} { error "psqs shim: connect_bd_intf_net needs two interface pins, got $pos" }
    psqs_emit intf_net [psqs_opt $args -intf_net] [psqs_strip [lindex $pos 0] intf] [psqs_strip [lindex $pos 1] intf]
}
proc connect_bd_net {args} {
    set pins {}
    foreach p [psqs_positional $args] { lappend pins [psqs_strip $p pin] }
    if {[llength $pins] < 2} { error "psqs shim: connect_bd_net [psqs_opt $args -net] needs two pins" }
    psqs_emit net [psqs_opt $args -net] {*}$pins
}
proc assign_bd_address {args} {
    set pos [psqs_positional $args {-force}]
    psqs_emit address [psqs_strip [psqs_opt $args -target_address_space] space] \
        [psqs_strip [lindex $pos 0] seg] [psqs_opt $args -offset] [psqs_opt $args -range]
}
proc group_bd_cells {name args} {
    set cells {}
    foreach c $args { lappend cells [psqs_strip $c cell] }
    psqs_emit group $name {*}$cells
}
proc validate_bd_design {args} { psqs_emit validate_bd_design }
proc save_bd_design {args} { psqs_emit save_bd_design }
proc get_files {args} {
    set pos [psqs_positional $args {-all}]
    return "file:[lindex $pos end]"
}
proc generate_target {args} { psqs_emit generate_target {*}[psqs_positional $args] }
proc make_wrapper {args} {
    psqs_emit make_wrapper [psqs_strip [psqs_opt $args -files] file]
    return "file:wrapper.v"
}
proc add_files {args} { psqs_emit add_files {*}[psqs_positional $args {-norecurse}] }
proc update_compile_order {args} { psqs_emit update_compile_order }
proc get_runs {name} { return "run:$name" }
proc launch_runs {args} {
    psqs_emit launch_runs [lindex [psqs_positional $args] 0] [psqs_opt $args -to_step] [psqs_opt $args -jobs]
}
proc wait_on_run {name} { psqs_emit wait_on_run $name }
proc get_property {name object} {
    switch -- $name {
        PROGRESS { return "100%" }
        STATUS { return "complete" }
        DIRECTORY { return [file join $::psqs_runs_dir [psqs_strip $object run]] }
        default { error "psqs shim: get_property $name is not recorded" }
    }
}
proc open_run {name} { psqs_emit open_run $name }
proc report_utilization {args} { psqs_emit report utilization [psqs_opt $args -file] }
proc report_timing_summary {args} { psqs_emit report timing_summary [psqs_opt $args -file] }
proc write_hwdef {args} { psqs_emit write_hwdef [psqs_opt $args -file] }
rename file psqs_real_file
proc file {sub args} {
    if {$sub eq "copy"} {
        set pos [psqs_positional $args {-force}]
        psqs_emit copy [lindex $pos 0] [lindex $pos 1]
        return
    }
    return [psqs_real_file $sub {*}$args]
}

set psqs_script [lindex $argv 0]
set argv [lrange $argv 1 end]
set argc [llength $argv]
source $psqs_script
close $psqs_log
"""




class TclReplayError(RunFailed, RuntimeError):
    """The script failed under the shim (a Tcl error, or a command the shim does not know)."""


@dataclass
class Recording:
    """The graph a script builds, as recorded by the shim."""

    script: Path
    project: tuple[str, str, str] | None = None           # name, directory, part
    properties: list[tuple[str, str, str]] = field(default_factory=list)
    bd: str | None = None
    cells: dict[str, str] = field(default_factory=dict)    # name -> vlnv
    groups: dict[str, list[str]] = field(default_factory=dict)   # hierarchy -> cells grouped into it
    automation: dict[str, tuple[str, str]] = field(default_factory=dict)
    interface_nets: list[tuple[str, str, str]] = field(default_factory=list)   # name, a, b
    nets: dict[str, list[str]] = field(default_factory=dict)                     # name -> pins
    addresses: list[tuple[str, str, int, int]] = field(default_factory=list)   # space, seg, base, range
    runs: list[tuple[str, str, str]] = field(default_factory=list)             # run, to_step, jobs
    reports: dict[str, str] = field(default_factory=dict)
    copies: list[tuple[str, str]] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)

    def config(self, cell: str) -> dict[str, str]:
        return {k[len("CONFIG."):]: v for obj, k, v in self.properties
                if obj == f"cell:{cell}" and k.startswith("CONFIG.")}

    def project_property(self, key: str) -> str | None:
        return next((v for obj, k, v in self.properties if obj == "project:current" and k == key), None)


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append({"t": "\t", "n": "\n", "\\": "\\"}[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def replay(script: Path, args: tuple[str, ...] = ("2",)) -> Recording:
    """Run ``script`` under the shim (in a scratch directory) and parse what it recorded."""
    tcl = find_tool("tclsh", "to dry-run the generated Vivado script")
    script = Path(script).resolve()
    with tempfile.TemporaryDirectory(prefix="psqs-tcl-") as tmp:
        shim, log_path = Path(tmp) / "shim.tcl", Path(tmp) / "calls.log"
        shim.write_text(SHIM)
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        copy = Path(shutil.copy(script, run_dir / script.name))
        proc = subprocess.run([tcl, str(shim), str(copy), *args], cwd=run_dir,
                              env={**os.environ, "PSQS_SHIM_LOG": str(log_path)},
                              capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise TclReplayError(tool_failure("tclsh", f"replaying {script} under the Vivado shim", proc.returncode,
                                              proc.stderr))
        lines = log_path.read_text().splitlines()
    rec = Recording(script)
    for line in lines:
        kind, *f = [_unescape(x) for x in line.split("\t")]
        rec.steps.append(kind)
        if kind == "project":
            rec.project = (f[0], f[1], f[2])
        elif kind == "property":
            rec.properties.append((f[0], f[1], f[2]))
        elif kind == "bd":
            rec.bd = f[0]
        elif kind == "cell":
            rec.cells[f[0]] = f[1]
        elif kind == "group":
            rec.groups[f[0]] = f[1:]
        elif kind == "automation":
            rec.automation[f[0]] = (f[1], f[2])
        elif kind == "intf_net":
            rec.interface_nets.append((f[0], f[1], f[2]))
        elif kind == "net":
            rec.nets[f[0]] = f[1:]
        elif kind == "address":
            rec.addresses.append((f[0], f[1], int(f[2], 16), int(f[3], 16)))
        elif kind == "launch_runs":
            rec.runs.append((f[0], f[1], f[2]))
        elif kind == "report":
            rec.reports[f[0]] = f[1]
        elif kind == "copy":
            rec.copies.append((f[0], f[1]))
    return rec


def check(rec: Recording, design: BlockDesign, name: str, ip_repos: list[Path]) -> list[str]:
    """Everything wrong with the recorded graph, one message each; ``[]`` when it is right."""
    problems: list[str] = []
    board, contract = design.board, design.model.contract
    bad = problems.append

    if rec.project is None or rec.project[2] != board.part:
        bad(f"project part {rec.project and rec.project[2]!r} is not {board.name}'s {board.part}")
    if rec.project_property("board_part") != board.board_part:
        bad(f"board_part {rec.project_property('board_part')!r} is not {board.board_part}")
    repos = rec.project_property("ip_repo_paths") or ""
    for repo in ip_repos:
        if str(Path(repo).resolve()) not in repos.split():
            bad(f"ip_repo_paths {repos!r} lacks {repo}")
    if rec.bd != design.name:
        bad(f"block design {rec.bd!r}, expected {design.name}")

    # cells and their configuration
    expected_cells = {c.name: c.vlnv for c in design.cells}
    if rec.cells != expected_cells:
        bad(f"cells {sorted(rec.cells.items())} differ from the description {sorted(expected_cells.items())}")
    for cell in design.cells:
        got = rec.config(cell.name)
        for key, value in cell.config.items():
            if got.get(key) != value:
                bad(f"{cell.name}: CONFIG.{key} is {got.get(key)!r}, expected {value!r}")
    ps_ips = {facts["ps"] for facts in FAMILIES.values()}
    ps_types = {n: v.split(":")[2] for n, v in rec.cells.items() if v.split(":")[2] in ps_ips}
    if list(ps_types.values()) != [board.ps]:
        bad(f"{board.name} is {board.family}: expected one {board.ps} cell, got {ps_types}")
    elif next(iter(ps_types)) not in rec.automation:
        bad(f"{next(iter(ps_types))}: no board automation (DDR, MIO and presets would be missing)")

    # interfaces: every recorded end exists, every interface of every cell is connected once
    interfaces = {f"{c.name}/{i.name}": (c, i) for c in design.cells for i in c.interfaces}
    connected: dict[str, int] = defaultdict(int)
    for net_name, a, b in rec.interface_nets:
        for end in (a, b):
            if end not in interfaces:
                bad(f"interface net {net_name}: {end} is not an interface of the design")
            connected[end] += 1
        if a in interfaces and b in interfaces:
            (_, ia), (_, ib) = interfaces[a], interfaces[b]
            if ia.bus != ib.bus or ia.master == ib.master:
                bad(f"interface net {net_name}: {a} and {b} are not a master and a slave of one bus type")
            if ia.bus == "axis" and ia.data_width != ib.data_width:
                bad(f"interface net {net_name}: stream widths {ia.data_width} and {ib.data_width} differ")
    for path, (_, itf) in interfaces.items():
        if connected[path] != 1:
            kind = "stream" if itf.bus == "axis" else itf.protocol
            bad(f"{kind} interface {path} is connected {connected[path]} times, expected once")
    expected_links = {(n.master.path, n.slave.path) for n in design.interface_nets}
    if {(a, b) for _, a, b in rec.interface_nets} != expected_links:
        bad("interface connections differ from the description")

    # stream widths against the contract (the manifest's bus widths)
    dma, probe = rec.config(design.role("dma").name), rec.config(design.role("probe").name)
    for what, got, want in (
            ("axi_dma c_m_axis_mm2s_tdata_width", dma.get("c_m_axis_mm2s_tdata_width"), contract.input.bus_bits),
            ("axi_dma c_s_axis_s2mm_tdata_width", dma.get("c_s_axis_s2mm_tdata_width"), contract.output.bus_bits),
            ("stream probe DATA_WIDTH_IN", probe.get("DATA_WIDTH_IN"), contract.input.bus_bits),
            ("stream probe DATA_WIDTH_OUT", probe.get("DATA_WIDTH_OUT"), contract.output.bus_bits),
            ("axi_dma c_m_axi_mm2s_data_width", dma.get("c_m_axi_mm2s_data_width"), board.hp_data_width)):
        if got != str(want):
            bad(f"{what} is {got!r}, expected {want}")

    # clock and reset: every clock input on the one PL clock, every reset input driven
    clock_driver = f"{design.ps.cell}/{design.ps.clock_pin}"
    nets_by_driver = {pins[0]: pins[1:] for pins in rec.nets.values()}
    clocked = set(nets_by_driver.get(clock_driver, []))
    reset_loads = {p for driver, loads in nets_by_driver.items() if driver != clock_driver for p in loads}
    for cell in design.cells:
        for pin in cell.pins:
            path = f"{cell.name}/{pin.name}"
            if pin.sigis == "clk" and pin.direction == "I" and path not in clocked:
                bad(f"clock pin {path} is not on {clock_driver}")
    for net in design.nets:
        if net.kind == "rst":
            for load in net.loads:
                if load.path not in reset_loads:
                    bad(f"reset pin {load.path} is not driven")
    designed_nets = {n.name: [n.driver.path, *(e.path for e in n.loads)] for n in design.nets}
    if rec.nets != designed_nets:
        bad("clock/reset nets differ from the description")

    # addresses: every register slave in the PS's space, the DDR in both DMA spaces
    assigned = {(space, seg): (base, size) for space, seg, base, size in rec.addresses}
    for s in design.segments:
        got = assigned.get((s.space_path, s.path))
        if got != (s.base, s.range):
            bad(f"address segment {s.path} in {s.space_path}: {got}, expected ({s.base:#x}, {s.range:#x})")
    for cell in design.cells:
        for itf in cell.interfaces:
            slave = itf.bus == "aximm" and not itf.master and cell.role != "interconnect"
            if slave and not any(s.slave.path == f"{cell.name}/{itf.name}" and (s.space_path, s.path) in assigned
                                 for s in design.segments):
                bad(f"slave {cell.name}/{itf.name} has no address")

    # implementation and outputs
    runs = {r[0]: r for r in rec.runs}
    if "synth_1" not in runs or runs.get("impl_1", (None, None))[1] != "write_bitstream":
        bad(f"runs {rec.runs}: expected synth_1 and impl_1 to write_bitstream")
    out = Outputs(name, design.name)
    copied = {Path(dst).as_posix() for _, dst in rec.copies}
    for wanted in (out.bit, out.hwh):
        if not any(c.endswith("/" + wanted) for c in copied):
            bad(f"{wanted} is not written")
    for report, wanted in (("utilization", out.utilization), ("timing_summary", out.timing)):
        if not rec.reports.get(report, "").endswith("/" + wanted):
            bad(f"report_{report} does not write {wanted}")
    expected_groups = {design.hierarchy: list(design.grouped)} if design.hierarchy else {}
    if rec.groups != expected_groups:
        bad(f"hierarchies {rec.groups} differ from the description {expected_groups}")
    if "validate_bd_design" not in rec.steps:
        bad("the block design is never validated")
    return problems
