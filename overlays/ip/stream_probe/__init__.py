"""The stream probe IP: Verilog, Vivado packaging and the files generated from its register map.

The probe counts cycles on the model's input and output AXI streams in the fabric (see
``hdl/stream_probe.v``); its register map lives in :mod:`psqs.common.stream_probe_regs` because
the board-side driver needs it with nothing but the standard library. This package turns that
map into the files Vivado and people read, and tells the block-design generator where the IP is:

- :func:`ip_repo_dir` is the directory to add to Vivado's ``ip_repo_paths``; the IP is then
  instantiated by :data:`VLNV`;
- :func:`generated_files` renders every generated file; :func:`write_generated` writes them
  (``python -m psqs.overlays.ip.stream_probe``) and :func:`stale_files` lets the tests fail
  when a committed copy no longer matches the register map.
"""
from __future__ import annotations

import logging
from pathlib import Path

from psqs.common.stream_probe_regs import VLNV

__all__ = ["VLNV", "TOP", "IP_DIR", "HDL_FILES", "ip_repo_dir", "include_dir",
           "generated_files", "write_generated", "stale_files"]

log = logging.getLogger(__name__)

IP_DIR = Path(__file__).resolve().parent
TOP = "stream_probe"
#: HDL files relative to :data:`IP_DIR`, include first, top module last.
HDL_FILES = ("hdl/stream_probe_regs.vh", "hdl/stream_probe.v")
INCLUDE_FILES = frozenset({"hdl/stream_probe_regs.vh"})
XGUI_FILE = "xgui/stream_probe_v1_0.tcl"


def ip_repo_dir() -> Path:
    """Directory holding ``component.xml``: add it to Vivado's ``ip_repo_paths``."""
    return IP_DIR


def include_dir() -> Path:
    return IP_DIR / "hdl"


def generated_files() -> dict[str, str]:
    """Every generated file as {path relative to :data:`IP_DIR`: content}."""
    from . import codegen, ipxact

    return {
        "hdl/stream_probe_regs.vh": codegen.verilog_include(),
        "REGISTERS.md": codegen.register_table_markdown(),
        "component.xml": ipxact.component_xml(),
        XGUI_FILE: ipxact.xgui_tcl(),
    }


def write_generated(root: Path = IP_DIR) -> list[Path]:
    """(Re)write the generated files under ``root``; returns the paths that changed."""
    changed = []
    for rel, text in generated_files().items():
        path = Path(root) / rel
        if path.is_file() and path.read_text() == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        log.info("wrote %s", path)
        changed.append(path)
    return changed


def stale_files(root: Path = IP_DIR) -> list[str]:
    """Generated files under ``root`` that are missing or differ from a fresh rendering."""
    stale = []
    for rel, text in generated_files().items():
        path = Path(root) / rel
        if not path.is_file() or path.read_text() != text:
            stale.append(rel)
    return stale
