"""The bit-exact C simulation of an hls4ml user's ``<name>_axi`` IP, built with g++ (no Vivado).

The library compiles the user's own firmware (``<name>.cpp``, ``<name>_axi.cpp``) with a harness
that exposes exactly the ABI of psqs's C-simulation library (``psqs_push`` / ``psqs_pop`` ...), so
:class:`psqs.hls.csim.AxisLibrary` and hence the board emulator drive the imported IP as they drive
psqs's own. The firmware is compiled from a copy: the user's project is never written to, and
the only line that differs in the copy is the element typedefs, spelled as C++ (hls4ml 1.3 writes
``ap_fixed`` element types in a notation no compiler accepts; see :mod:`.project`).
"""
from __future__ import annotations

import re
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from string import Template

from psqs.hls.csim import build_library

from .project import Hls4mlProject

HARNESS = "psqs_hls4ml_axi_csim.cpp"


def _template(name: str) -> str:
    return resources.files("psqs.overlays.from_hls4ml").joinpath("templates", name).read_text()


def stage_firmware(project: Hls4mlProject, staged: Path) -> list:
    """Copy the project's firmware to ``staged`` with the C++ element typedefs and the harness;
    returns the sources of the library, relative to ``staged``."""
    shutil.copytree(project.firmware, staged, ignore=shutil.ignore_patterns("*.so", "*.o"))
    header = (staged / project.axi_header.name).read_text(errors="replace")
    for name, layout in (("T_in", project.input), ("T_out", project.output)):
        header = re.sub(rf"\btypedef\s+[^;]+?\s+{name}\s*;", f"typedef {layout.element_type()} {name};", header, count=1)
    (staged / project.axi_header.name).write_text(header)
    (staged / HARNESS).write_text(Template(_template("hls4ml_axi_csim.cpp")).substitute(top=project.top))
    # build_library force-includes it; the one copy lives with psqs's own C-simulation templates
    weights_dir_h = resources.files("psqs.hls").joinpath("templates", "psqs_weights_dir.h").read_text()
    (staged / "psqs_weights_dir.h").write_text(weights_dir_h)
    return [*project.sources, HARNESS]


def build_csim(project: Hls4mlProject, out: Path) -> float:
    """Build the C-simulation library ``out`` (its weights go to ``weights/`` beside it, read at
    run time); returns the g++ build time in seconds."""
    with tempfile.TemporaryDirectory(prefix="psqs-hls4ml-") as tmp:
        staged = Path(tmp) / "firmware"
        sources = stage_firmware(project, staged)
        return build_library(staged, sources, Path(out))
