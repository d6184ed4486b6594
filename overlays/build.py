"""Stage 3: an HLS (or RTL) directory -> an overlay package a PYNQ board loads with pynq.Overlay.

One :class:`BuildConfig`, validated once, runs through named steps; each step produces one
thing and is checked before the next one starts:

====================  =========================================================================
step                  produces, and the check after it
====================  =========================================================================
``load``              board, model IP (every input sha256 verified), block design; the model's
                      part and HLS clock period must be the board's, its streams DMA-able
``tools``             vendor tools and versions; without Vivado only ``--emulation`` builds
``hls``               vendor build of an HLS dir: HLS synthesis + IP export in the work dir;
                      the exported IP has the design's VLNV and ports, its estimate fits
``script``            ``build.tcl``; dry-run through tclsh + the recording shim, the recorded
                      graph must equal the description (all boards' rules, see tcl_replay)
``implement``         vendor: Vivado run -> .bit, .hwh (+ the Zynq-7000 clock amendment), reports;
                      routed timing met, design fits
``emulate``           emulation: .hwh rendered from the description (amendment included), .bit
                      emulation image
``handoff``           pynq's own parser on the package's .hwh agrees with the design
``package``           test vectors, emulation/ files, report.json, manifest.json; the packaged
                      C simulation reproduces the test vectors bit-exactly, ``OverlayPackage``
                      opens the directory
====================  =========================================================================

The package is staged in a temporary sibling of ``out`` and renamed into place only when every
check passed. A vendor build keeps its Vivado/HLS project and logs in ``<out>.build/`` (a scratch
directory, replaced by the next vendor build of the same ``out``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from psqs.board_configs import Board, board_names, load_board
from psqs.common import codec
from psqs.common import package as host_package
from psqs.common import stream_probe_regs as regs
from psqs.common.artifact import ArtifactError, staged_directory, write_manifest
from psqs.common.errors import HOW_TO_GET, PsqsError, ToolMissing
from psqs.hls import reports as hls_reports
from psqs.hls import vendor as hls_vendor
from psqs.overlays.ip import stream_probe

from . import bitfile, handoff, hwh, model_ip, tcl, tcl_replay, vendor, zynq7_clock
from .design import BlockDesign, describe
from .vendor import BuildError
from .vivado_reports import parse_timing_summary, parse_utilization

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class BuildConfig:
    """Everything a build needs, checked once (a bad value names the option)."""

    source: Path
    board: str
    out: Path
    emulation: bool = False
    jobs: int = 1
    force: bool = False
    tar: bool = False
    name: str | None = None

    def __post_init__(self):
        if not isinstance(self.jobs, int) or self.jobs < 1:
            raise PsqsError(f"--jobs={self.jobs!r}: must be a positive integer")
        if self.name is not None and not _NAME.match(self.name):
            raise PsqsError(f"--name={self.name!r}: must be a letter followed by up to 63 letters, "
                            "digits or underscores (it names the .bit, and pynq's /lib/firmware/<name>.bin)")

    @property
    def tarball(self) -> Path:
        return self.out.with_name(self.out.name + ".tar.gz")

    @property
    def work(self) -> Path:
        return self.out.with_name(self.out.name + ".build")


@dataclass
class State:
    """What the steps hand on to each other."""

    config: BuildConfig
    board: Board
    model: model_ip.ModelIp
    design: BlockDesign
    name: str
    staged: Path | None = None
    tools: vendor.Tools | None = None
    hls_report: dict | None = None
    ip_repos: list[Path] = field(default_factory=list)
    bitstream: dict | None = None
    hwh: dict | None = None
    report: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- steps

def step_load(config: BuildConfig) -> State:
    board = load_board(config.board)
    model = model_ip.load(config.source)
    design = describe(board, model)
    default = model.manifest["hls"]["project"] if model.kind == "hls" else model.cell.removesuffix("_0")
    # The source's hash is part of the default name because pynq uploads /lib/firmware/<name>.bin
    # only when no file of that name is on the board yet: a rebuilt model under an old name would
    # silently keep programming the old bitstream.
    source_hash = model.identity["source_manifest_sha256"][:8]
    name = config.name or re.sub(r"[^A-Za-z0-9_]", "_", f"{default}_{board.name}_{source_hash}")
    log.info("load: %s on %s (%s, %s at %g MHz); DMA %s at %#x, probe at %#x", model.vlnv, board.name,
             board.part, board.ps, board.fclk_mhz, design.dma.name, design.ips[design.dma.name]["base"],
             design.ips[design.role("probe").name]["base"])
    return State(config, board, model, design, name)


def step_tools(state: State) -> None:
    backend = state.model.manifest["hls"]["backend"] if state.model.kind == "hls" else None
    tools = vendor.find_tools(backend)
    state.tools = tools
    if state.config.emulation:
        log.info("tools: emulation build (vendor tools %s)", tools.to_dict())
        return
    missing = [vendor.VIVADO] if tools.vivado is None else []
    if tools.hls_name and tools.hls is None:
        missing.append(tools.hls_name)
    if missing:
        raise ToolMissing(" and ".join(missing), "to build a bitstream", HOW_TO_GET[vendor.VIVADO])
    log.info("tools: %s", tools.to_dict())


def step_hls(state: State) -> None:
    """Vendor HLS synthesis and IP export (HLS dirs in vendor builds); otherwise the dir's own report."""
    model = state.model
    if model.kind == "rtl":
        state.ip_repos = [stream_probe.ip_repo_dir(), model.repo]
        return
    work = state.config.work / "hls"
    top = model.manifest["hls"]["top"]
    if state.config.emulation:
        # nothing is exported; the dry-run script names the directory a vendor build would use
        state.hls_report = json.loads((model.path / "report.json").read_text())
        state.ip_repos = [stream_probe.ip_repo_dir(), work / "axis_ip" / f"{top}_prj" / "solution1" / "impl" / "ip"]
        return
    shutil.copytree(model.path / "axis_ip", work / "axis_ip")
    shutil.copytree(model.path / "hls4ml" / "firmware", work / "hls4ml" / "firmware")
    tool = state.tools.hls
    try:
        model_log = hls_vendor.run_tcl(tool, "build_axis_ip.tcl", work / "axis_ip")
    except hls_vendor.VendorToolError as exc:
        raise BuildError(str(exc)) from None
    report = {"synthesized": True, "tool": Path(tool).name, "version": state.tools.hls_version,
              "log": str(model_log), **hls_reports.parse_csynth(work / "axis_ip")}
    exported = vendor.exported_ip(work / "axis_ip", top)
    vendor.check_component(exported / "component.xml", model.vlnv, [model.input.name, model.output.name])
    vendor.check_fit(state.board, report["resources"], f"the HLS estimate of {model.vlnv} ({exported})")
    state.hls_report = report
    state.ip_repos = [stream_probe.ip_repo_dir(), exported]
    log.info("hls: %s exported to %s; latency %s cycles, II %s", model.vlnv, exported,
             report["latency_cycles"], report["interval_cycles"])


def step_script(state: State, directory: Path) -> Path:
    """Write build.tcl into ``directory`` and dry-run it through the recording shim."""
    repos = state.ip_repos
    script = directory / "build.tcl"
    script.write_text(tcl.render(state.design, state.name, repos))
    recording = tcl_replay.replay(script, (str(state.config.jobs),))
    problems = tcl_replay.check(recording, state.design, state.name, repos)
    if problems:
        raise BuildError(f"{script}: the recorded block design differs from the description: "
                         + "; ".join(problems))
    state.report["checks"]["tcl"] = {"checked": True, "cells": len(recording.cells),
                                     "interface_nets": len(recording.interface_nets),
                                     "address_segments": len(recording.addresses)}
    log.info("script: %s dry-run under tclsh: %d cells, %d interface nets, %d segments, as described",
             script, len(recording.cells), len(recording.interface_nets), len(recording.addresses))
    return script


def step_implement(state: State, script: Path) -> None:
    """Vivado: block design to bitstream; refuse failed timing and overfull parts."""
    out = tcl.Outputs(state.name, state.design.name)
    vivado_dir = script.parent
    vendor.run([state.tools.vivado, "-mode", "batch", "-nojournal", "-source", script.name,
                "-tclargs", str(state.config.jobs)], vivado_dir, vivado_dir / "vivado.log", "vivado")
    for rel in (out.bit, out.hwh, out.utilization, out.timing):
        if not (vivado_dir / rel).is_file():
            raise BuildError(f"vivado finished but left no {vivado_dir / rel}; see {vivado_dir / 'vivado.log'}")
    utilization = parse_utilization(vivado_dir / out.utilization)
    if utilization["part"] != state.board.part:
        raise BuildError(f"{vivado_dir / out.utilization}: a report for {utilization['part']}, "
                         f"not {state.board.name}'s {state.board.part}")
    timing = parse_timing_summary(vivado_dir / out.timing)
    clocks = {c["name"]: c for c in timing["clocks"]}
    if state.board.timing_clock not in clocks:
        raise BuildError(f"{vivado_dir / out.timing}: no clock {state.board.timing_clock} "
                         f"(clocks: {', '.join(clocks) or 'none'})")
    vendor.check_fit(state.board, utilization, f"the implemented design ({vivado_dir / out.utilization})")
    vendor.check_timing(timing, vivado_dir / out.timing)
    shutil.copy(vivado_dir / out.bit, state.staged / f"{state.name}.bit")
    shutil.copy(vivado_dir / out.hwh, state.staged / f"{state.name}.hwh")
    _amend_handoff(state, "vivado")
    header = bitfile.read_header(state.staged / f"{state.name}.bit")
    state.bitstream = {"file": f"{state.name}.bit", "bin_sha256": hashlib.sha256(header.bin).hexdigest(),
                       "design_name": header.design, "part": header.part, "emulation": False}
    state.report.update({"synthesized": True, "implemented": True, "utilization": utilization,
                         "timing": timing, "logs": {"vivado": str(vivado_dir / "vivado.log")}})
    log.info("implement: WNS %s ns, LUT %s/%s, bitstream %s", timing["wns_ns"],
             utilization["resources"]["LUT"]["used"], utilization["resources"]["LUT"]["available"],
             header.design)


def step_emulate(state: State) -> None:
    """The emulation .hwh (from the description) and .bit (identity image)."""
    (state.staged / f"{state.name}.hwh").write_text(hwh.render(state.design))
    _amend_handoff(state, "psqs.overlays.hwh")
    model, board = state.model, state.board
    identity = {**model.identity, "board": board.name, "part": board.part,
                "io": model.manifest["io"], "ips": {k: v["base"] for k, v in state.design.ips.items()}}
    bit = state.staged / f"{state.name}.bit"
    state.bitstream = bitfile.write_emulation(bit, state.name, board.part, identity)
    header = bitfile.read_header(bit)
    if hashlib.sha256(header.bin).hexdigest() != state.bitstream["bin_sha256"] or \
            not header.design.startswith(bitfile.EMULATION_DESIGN + ";"):
        raise BuildError(f"{bit}: reads back differently from what was written")
    state.report.update({"synthesized": False, "implemented": False, "utilization": None, "timing": None,
                         "reason": "emulation build: no vendor tool ran; the .bit is an emulation image "
                                   "and the .hwh is rendered from the block-design description"})
    log.info("emulate: %s (.bin sha256 %s…), %s", bit.name, state.bitstream["bin_sha256"][:16],
             f"{state.name}.hwh")


def _amend_handoff(state: State, written_by: str) -> None:
    """Give the package's .hwh :mod:`.zynq7_clock`'s amendment and record it for the manifest.

    A Vivado handoff gets it here (the manifest keeps the sha256 of the file as Vivado wrote it,
    so a reader can tell which lines psqs added); :func:`psqs.overlays.hwh.render` already
    applied it to an emulation one, so there this only reads back what it carries.
    """
    path = state.staged / f"{state.name}.hwh"
    as_written = hashlib.sha256(path.read_bytes()).hexdigest()
    added = zynq7_clock.amend_file(path)
    state.hwh = {"written_by": written_by, **({"vivado_sha256": as_written} if written_by == "vivado" else {}),
                 "added_parameters": added, "why": zynq7_clock.WHY if added else None}
    if added:
        log.info("hwh: %s carries %s (Zynq-7000 PL clocks under the name pynq 4.0 reads)", path.name,
                 ", ".join(f"{k}={v}" for k, v in added.items()))


def step_handoff(state: State) -> None:
    path = state.staged / f"{state.name}.hwh"
    try:
        parser = handoff.parse(path)
    except ImportError as exc:
        state.report["checks"]["hwh"] = {"checked": False, "reason": f"pynqmetadata not installed ({exc})"}
        log.warning("handoff: pynqmetadata not installed, %s was not parsed", path)
        return
    problems = handoff.check(parser, state.design)
    if problems:
        raise BuildError(f"{path}: pynq would see another design than described: " + "; ".join(problems))
    state.report["checks"]["hwh"] = {"checked": True, **handoff.summary(parser, state.design)}
    log.info("handoff: pynq's parser finds %s", ", ".join(f"{k} at {v['phys_addr']:#x}"
                                                        for k, v in parser.ip_dict.items() if v.get("phys_addr")))


def _check_emulation(state: State) -> dict:
    """Run the packaged simulation library on the test vectors; it must give the stored logits exactly.

    Both kinds share the C entry points of the HLS C simulation (``psqs.hls.csim.AxisLibrary``).
    """
    from psqs.hls.csim import AxisLibrary
    from psqs.qap.split import Standardizer

    model = state.model

    with np.load(state.staged / model_ip.TEST_VECTORS, allow_pickle=False) as npz:
        X, expected = npz["X"], npz["csim_logits"]
    contract = model.contract
    codes, _ = codec.encode(contract.input, Standardizer.from_dict(model.manifest["model"]["scaler"]).transform(X))
    library = AxisLibrary(state.staged / model.emulation_model["library"])
    library.reset()
    data, _ = library.transfer(codec.pack(contract.input, codes))
    got = codec.decode(contract.output, codec.unpack(contract.output, data))
    if got.shape != expected.shape or not np.array_equal(got, expected):
        raise BuildError(f"{state.staged / model.emulation_model['library']}: the packaged simulation does "
                         f"not reproduce test_vectors.npz csim_logits ({got.shape} vs {expected.shape})")
    return {"checked": True, "samples": int(expected.shape[0]), "exact": True}


def board_fields(board, fclk_actual_mhz: float) -> dict:
    """The manifest's ``board``: what the board side checks and needs, readable without yaml."""
    return {"name": board.name, "part": board.part, "board_part": board.board_part,
            "family": board.family, "ps": board.ps, "arch": board.arch, "pynq_board": board.pynq_board,
            "pynq_remote": board.pynq_remote,   # the board side checks its path without yaml
            "pynq_remote_boards": [n for n in board_names() if load_board(n).pynq_remote],
            "fclk": board.fclk, "fclk_mhz": board.fclk_mhz, "fclk_actual_mhz": fclk_actual_mhz,
            "ddr_base": board.ddr_base, "ddr_size": board.ddr_size, "hp_port": board.hp_port,
            "hp_data_width": board.hp_data_width, "gp_port": board.gp_port, "pl_slave_base": board.pl_slave_base}


def step_package(state: State) -> None:
    model, board, design = state.model, state.board, state.design
    shutil.copy(model.path / model_ip.TEST_VECTORS, state.staged / model_ip.TEST_VECTORS)
    for src, dst in model.emulation_files:
        (state.staged / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(model.path / src, state.staged / dst)
    state.report["checks"]["emulation"] = _check_emulation(state)
    state.report["hls"] = state.hls_report
    state.report["fit"] = {"board": board.name, "capacity": board.resources}
    (state.staged / "report.json").write_text(json.dumps(state.report, indent=2) + "\n")
    probe = design.role("probe")
    fields = {
        "name": state.name,
        "board": board_fields(board, design.ps.fclk.actual_mhz),
        "emulation": state.config.emulation,
        "io": model.manifest["io"],
        "ips": design.ips,
        "dma": design.dma.to_dict(),
        "probe": {"name": probe.name, "vlnv": probe.vlnv, "register_map": f"{regs.VERSION_MAJOR}.{regs.VERSION_MINOR}",
                  **{k.lower(): int(v) for k, v in probe.config.items()}},
        "timing": model_ip.timing(model, board.fclk_mhz, state.hls_report),
        "model": model.manifest["model"],
        "source": {"kind": model.identity["kind"], "path": str(model.path.resolve()),
                   "manifest_sha256": model.identity["source_manifest_sha256"]},
        "hls": model.manifest.get("hls"),
        "emulation_model": model.emulation_model,
        "bitstream": state.bitstream,
        "hwh": state.hwh,
        "design": {"bd": design.name, "cells": {design.pynq_name(c.name): c.vlnv for c in design.cells},
                   "model_cell": design.pynq_name(model.cell),
                   "hierarchy": {design.hierarchy: [design.pynq_name(c) for c in design.grouped]}
                   if design.hierarchy else {},
                   "clock": {"pin": design.ps.clock_pin,
                                                       "requested_mhz": design.ps.fclk.requested_mhz,
                                                       "actual_mhz": design.ps.fclk.actual_mhz,
                                                       "divisors": [design.ps.fclk.divisor0, design.ps.fclk.divisor1]}},
        "tools": state.tools.to_dict(),
    }
    write_manifest(state.staged, host_package.KIND, host_package.FORMAT_VERSION, fields)
    package = host_package.OverlayPackage(state.staged)
    if package.dma.base != design.ips[design.dma.name]["base"] or package.max_transfer_bytes != design.dma.max_transfer_bytes:
        raise BuildError(f"{state.staged}: OverlayPackage reads the DMA differently from the design")
    log.info("package: %s (%d files) verified with OverlayPackage", state.name, len(package.manifest["files"]))


# --------------------------------------------------------------------------- driver

def _tarball(directory: Path, tarball: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{tarball.name}.", dir=tarball.parent)
    os.close(fd)
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            tar.add(directory, arcname=directory.name)
        os.replace(tmp, tarball)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("tar: %s", tarball)


def run(config: BuildConfig) -> Path:
    """Build the overlay package ``config.out`` (and ``<out>.tar.gz`` with ``tar``)."""
    out = Path(config.out)
    for existing in (out, *((config.tarball,) if config.tar else ())):
        if existing.exists() and not config.force:   # before hours of vendor runs, not after
            raise ArtifactError(f"{existing}: already exists (pass --force to replace it)")
    state = step_load(config)
    step_tools(state)
    state.report = {"build": "emulation" if config.emulation else "vivado", "tools": state.tools.to_dict(),
                    "jobs": config.jobs, "checks": {}}
    if not config.emulation:
        if config.work.exists():
            log.info("replacing the scratch directory %s", config.work)
            shutil.rmtree(config.work)
        config.work.mkdir(parents=True)
    step_hls(state)
    with staged_directory(out, force=config.force) as staged:
        state.staged = staged
        if config.emulation:
            with tempfile.TemporaryDirectory(prefix="psqs-script-") as tmp:
                step_script(state, Path(tmp))
            step_emulate(state)
        else:
            (config.work / "vivado").mkdir()
            step_implement(state, step_script(state, config.work / "vivado"))
        step_handoff(state)
        step_package(state)
    if config.tar:
        _tarball(out, config.tarball)
    return out


def build(source: Path, board: str, out: Path, emulation: bool = False, force: bool = False,
          jobs: int = 1, tar: bool = False, name: str | None = None) -> Path:
    """Build an overlay package; what ``make demo`` calls (``emulation=True`` for pynq-z2)."""
    return run(BuildConfig(Path(source), board, Path(out), emulation=emulation, jobs=jobs, force=force,
                           tar=tar, name=name))
