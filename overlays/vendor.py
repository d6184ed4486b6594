"""Vivado and the vendor HLS tool as the overlay build uses them: found, versioned, run, checked.

The build runs the tools only when they are on PATH; otherwise the user is told to use
``--emulation``. Each run streams its log to a file and its notable lines (errors, critical
warnings, phase progress) to the ``psqs`` log, and each result is checked the same way whether
it came from a real tool or a stand-in: the reports are parsed (:mod:`psqs.overlays.vivado_reports`,
:mod:`psqs.hls.reports`), a design that misses timing or does not fit its board is an error that
gives the numbers, and the exported IP must carry the VLNV and ports the block design uses.
"""
from __future__ import annotations

import logging
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from psqs.board_configs import Board
from psqs.hls import vendor as hls_vendor

from psqs.board_configs.fit import overflows
from psqs.common.errors import RunFailed, tool_failure

log = logging.getLogger(__name__)

VIVADO = "vivado"
SPIRIT = "http://www.spiritconsortium.org/XMLSchema/SPIRIT/1685-2009"
# Vivado's batch-mode milestones worth showing while a build of tens of minutes runs
_PROGRESS = re.compile(r"^(ERROR|CRITICAL WARNING|Starting \w|Finished \w|\[.*\] Launched|"
                       r"Run output will be captured|INFO: \[Common 17-206\] Exiting|write_bitstream)")


class BuildError(RunFailed, RuntimeError):
    """A vendor step failed or its result is unusable; the message has the numbers and the log."""


@dataclass(frozen=True)
class Tools:
    """The vendor tools on PATH (None: absent) and their versions."""

    vivado: str | None
    vivado_version: str | None
    hls: str | None = None
    hls_name: str | None = None       # vitis_hls | vivado_hls; None for an RTL directory
    hls_version: str | None = None

    def to_dict(self) -> dict:
        versions = {"vivado": self.vivado_version}
        if self.hls_name:
            versions[self.hls_name] = self.hls_version
        return versions


def find_tools(hls_backend: str | None) -> Tools:
    """Look up ``vivado`` and, for an HLS directory, its backend's HLS tool (with versions)."""
    vivado = shutil.which(VIVADO)
    tools = Tools(vivado, hls_vendor.tool_version(vivado) if vivado else None)
    if hls_backend is None:
        return tools
    hls = hls_vendor.find_hls_tool(hls_backend)
    return Tools(tools.vivado, tools.vivado_version, hls, hls_vendor.HLS_TOOLS[hls_backend],
                 hls_vendor.tool_version(hls) if hls else None)


def run(command: list[str], cwd: Path, log_path: Path, what: str) -> None:
    """Run ``command`` in ``cwd``, writing its output to ``log_path`` and progress to the log."""
    log.info("%s: running %s in %s (log: %s)", what, " ".join(command), cwd, log_path)
    with open(log_path, "w") as sink:
        proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            sink.write(line)
            if _PROGRESS.match(line):
                log.info("%s: %s", what, line.rstrip())
        code = proc.wait()
    if code != 0:
        raise BuildError(tool_failure(Path(command[0]).name, " ".join(command[1:]), code,
                                      log_path.read_text()[-20000:], log_path))


def exported_ip(project_dir: Path, top: str) -> Path:
    """The IP-catalog directory the vendor HLS export wrote (holding component.xml)."""
    found = sorted(Path(project_dir).glob(f"{top}_prj/*/impl/ip/component.xml"))
    if not found:
        raise BuildError(f"{project_dir}: the HLS export left no {top}_prj/<solution>/impl/ip/component.xml")
    return found[0].parent


def check_component(component: Path, vlnv: str, interfaces: list[str]) -> None:
    """The packaged IP must be ``vlnv`` and have the bus interfaces the block design connects."""
    try:
        root = ET.parse(component).getroot()
    except (OSError, ET.ParseError) as exc:
        raise BuildError(f"{component}: unreadable IP-XACT ({exc})") from None
    got = ":".join(root.findtext(f"{{{SPIRIT}}}{k}") or "?" for k in ("vendor", "library", "name", "version"))
    if got != vlnv:
        raise BuildError(f"{component}: the exported IP is {got}, the block design instantiates {vlnv}")
    names = {b.findtext(f"{{{SPIRIT}}}name") for b in root.iter(f"{{{SPIRIT}}}busInterface")}
    missing = [i for i in interfaces if i not in names]
    if missing:
        raise BuildError(f"{component}: no bus interface {', '.join(missing)} (it has {', '.join(sorted(names))})")


def check_fit(board: Board, resources: dict, what: str) -> None:
    problems = overflows(board, resources)
    if problems:
        raise BuildError(f"{what} does not fit {board.name}: " + "; ".join(problems))


def check_timing(timing: dict, path: Path) -> None:
    """Refuse a design whose routed timing fails: negative slack or failing endpoints."""
    wns, whs = timing.get("wns_ns"), timing.get("whs_ns")
    failed = (timing.get("constraints_met") is False or (wns is not None and wns < 0)
              or (whs is not None and whs < 0) or timing.get("failing_endpoints", 0) > 0)
    if failed:
        raise BuildError(
            f"{path}: timing not met: WNS {wns} ns, TNS {timing.get('tns_ns')} ns "
            f"({timing.get('setup_failing_endpoints')} failing setup endpoints), WHS {whs} ns, "
            f"THS {timing.get('ths_ns')} ns ({timing.get('hold_failing_endpoints')} failing hold endpoints): "
            f"{timing.get('status')} Lower the clock (board fclk_mhz and psqs convert) or the "
            "model's parallelism (--reuse)")
