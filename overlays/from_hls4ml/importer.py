"""``psqs import-hls4ml``: an hls4ml user's ``VivadoAccelerator`` build as an ordinary psqs package.

The user brings what hls4ml and Vivado gave them: the hls4ml project (firmware, configuration,
maybe the csynth report), the ``.bit`` and the ``.hwh``. Nothing is rebuilt and nothing of theirs
is changed: the package holds their ``.bit`` and ``.hwh`` byte for byte (renamed to the package's
name, as pynq wants them side by side, and listed with their sha256), so pynq, the board and their
own ``NeuralNetworkOverlay`` script see the design they built. What psqs adds:

- the I/O contract, from the project: one element per beat, ``float`` or ``ap_fixed`` (checked
  against the model IP's stream widths in the ``.hwh``);
- the IP addresses, from the ``.hwh`` (DMA and model found by their stream connections);
- the bit-exact C simulation of their ``<name>_axi`` top, built here with g++ from their
  firmware, for the board emulator;
- test vectors: their inputs (``--test-data`` or the project's ``tb_data``) and the C simulation's
  outputs on them, the reference every bench compares the board against;
- timing for the emulator: the csynth report's latency and interval (``hls_report``) when the
  project has one, else the stream-only ``estimate`` below. Such an overlay has no stream probe,
  so the bench reports no fabric figure for it, measured or replayed.

Steps, each checked before the next (FINN-style, over one :class:`ImportConfig`): read the
project, read the handoff, match them, check the bitstream against the handoff, build the C
simulation, write the package into a staging directory that is renamed into place.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from psqs.common import codec, npz
from psqs.common.artifact import sha256_file, staged_directory, write_manifest
from psqs.common.contract import IOContract
from psqs.common.errors import PsqsError
from psqs.common.package import FORMAT_VERSION, KIND, OverlayPackage
from psqs.hls.csim import LIBRARY_NAME, AxisLibrary

from .. import bitfile
from ..build import board_fields
from ..design import DmaSettings
from ..model_ip import TEST_VECTORS, hls_report_timing, timing_basis
from . import csim, hwh
from .project import Hls4mlProject, read_project

log = logging.getLogger(__name__)

EMULATION_DIR = "emulation"
TB_INPUTS = "tb_data/tb_input_features.dat"


class ImportMismatch(PsqsError, ValueError):
    """The project, the ``.hwh`` and the ``.bit`` do not describe one design (the message names
    the files and what disagrees)."""


@dataclass(frozen=True)
class ImportConfig:
    project: Path
    bit: Path
    hwh: Path
    out: Path
    board: str | None = None          # default: the board the .hwh was built for
    test_data: Path | None = None     # .npz with X (n, N_IN) and optionally y (n,)
    name: str | None = None           # names the package's .bit/.hwh (default <project>_<board>)
    force: bool = False


def check_streams(project: Hls4mlProject, handoff: hwh.Handoff) -> None:
    """The model IP's own stream ports must be as wide as the project's elements: a project that
    is not the one this design was built from disagrees here. Stream IPs between the DMA and the
    model (width and subset converters, register slices...) are the design's own business: they
    go into the manifest as they are (:func:`streams`), the board runs them, and psqs's emulator
    carries the beats across the ones it models (it names any other when it is asked to serve)."""
    model = handoff.model
    for side, layout, bits in (("input", project.input, model.input_bits),
                               ("output", project.output, model.output_bits)):
        if layout.bus_bits != bits:
            raise ImportMismatch(f"{project.axi_header} declares {side} elements of {layout.bus_bits} bits "
                               f"({layout.element_type()}), but {model.name} in {handoff.path} has "
                               f"{bits}-bit {side} stream: the project is not the one this design was built from")
    dma = handoff.dma
    for side, path, start, end in (("DMA's MM2S", handoff.mm2s_path, dma.mm2s_stream_bits, model.input_bits),
                                   (f"{model.name}'s output", handoff.s2mm_path, model.output_bits,
                                    dma.s2mm_stream_bits)):
        widths = [start] + [w for hop in path for w in (hop.in_bits, hop.out_bits)] + [end]
        if widths[0::2] != widths[1::2]:
            hops = " -> ".join(f"{h.name} ({h.in_bits}->{h.out_bits})" for h in path) or "nothing"
            raise ImportMismatch(f"{handoff.path}: the {side} stream ({start} bits) reaches {end} bits through "
                               f"{hops}: the widths do not join up")


def streams(handoff: hwh.Handoff) -> dict:
    """The manifest's ``streams``: the IPs between the DMA and the model, in stream order, with
    the parameters that decide what their beats hold (what the emulator needs to carry them)."""
    def hops(path):
        return [{"name": h.name, "vlnv": h.vlnv, "in_bits": h.in_bits, "out_bits": h.out_bits,
                 "parameters": dict(h.parameters)} for h in path]
    return {"mm2s": hops(handoff.mm2s_path), "s2mm": hops(handoff.s2mm_path)}


def check_bitstream(path: Path, handoff: hwh.Handoff) -> dict:
    """The ``.bit`` must be a bitstream of the handoff's design for the handoff's part, as far as
    the header tells (design name and part; Vivado writes no checksum of the design into either)."""
    try:
        header = bitfile.read_header(path)
    except OSError as exc:
        raise ImportMismatch(f"{path}: {exc.strerror or exc}") from None
    design = header.design.split(";")[0]
    expected = handoff.design
    if design not in (expected, f"{expected}_wrapper"):
        raise ImportMismatch(f"{path}: built from design {design!r}, but {handoff.path} describes {expected!r} "
                           "(was this .bit written with that .hwh?)")
    part = header.part.lower()
    if not handoff.part.lower().removeprefix("xc").startswith(part.removeprefix("xc")):
        raise ImportMismatch(f"{path}: built for part {header.part}, but {handoff.path} is for {handoff.part}")
    return {"design": header.design, "part": header.part, "date": f"{header.date} {header.time}",
            "bin_sha256": hashlib.sha256(header.bin).hexdigest()}


def test_inputs(config: ImportConfig, project: Hls4mlProject) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Inputs (n, N_IN) and labels (or None) to put in the package, and where they came from."""
    if config.test_data is not None:
        arrays = npz.load(config.test_data, ImportMismatch, required=("X",))
        X, y, source = arrays["X"], arrays.get("y"), str(config.test_data)
    else:
        path = project.directory / TB_INPUTS
        if not path.is_file():
            raise ImportMismatch(f"{project.directory}: no test inputs: pass --test-data FILE.npz (arrays X, "
                               f"optionally y), or give hls4ml input_data_tb so that it writes {TB_INPUTS}")
        try:
            X = np.loadtxt(path, ndmin=2)
        except ValueError as exc:
            raise ImportMismatch(f"{path}: unreadable ({exc})") from None
        y, source = None, str(path)
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    if X.shape[1] != project.input.values or len(X) == 0:
        raise ImportMismatch(f"{source}: X has shape {X.shape}; the IP takes (n, {project.input.values}) with n >= 1")
    if y is not None and np.asarray(y).shape != (len(X),):
        raise ImportMismatch(f"{source}: y has shape {np.asarray(y).shape}, X {X.shape}: one label per row")
    return X, (None if y is None else np.asarray(y, dtype=np.int64)), source


def timing(project: Hls4mlProject, fclk_mhz: float) -> dict:
    """What the emulator replays: the csynth report's figures, else a stream-only estimate."""
    base = timing_basis(fclk_mhz)
    report = project.csynth
    if report is not None:
        where = f"{project.directory / report['xml']}"
        return {**hls_report_timing(report["latency_cycles"], report["interval_cycles"],
                                    project.output.beats_per_sample, where,
                                    f"Vivado/Vitis HLS {report.get('tool_version') or ''}"), **base}
    beats_in, beats_out = project.input.beats_per_sample, project.output.beats_per_sample
    return {"source": "estimate", "latency_cycles": beats_in, "ii_cycles": beats_in + beats_out, **base,
            "note": f"estimate without a csynth report: the {project.top} top reads its {beats_in} input "
                    f"beats, then writes its {beats_out} output beats, one per cycle; the network's own "
                    "cycles are not known and not counted"}


def _test_vectors(staged: Path, library: Path, contract: IOContract, X: np.ndarray, y) -> dict:
    """Write the test vectors with the C simulation's outputs on them; returns the figures."""
    codes, saturated = codec.encode(contract.input, X)
    lib = AxisLibrary(library)
    lib.reset()
    data, _ = lib.transfer(codec.pack(contract.input, codes))
    outputs = codec.decode(contract.output, codec.unpack(contract.output, data))
    if outputs.shape != (len(X), contract.output.values):
        raise ImportMismatch(f"{library}: the C simulation returned {outputs.shape[0]} samples for {len(X)}")
    arrays = {"X": X, "csim_logits": outputs, **({"y": y} if y is not None else {})}
    np.savez(staged / TEST_VECTORS, **arrays)
    return {"samples": int(len(X)), "saturated_inputs": saturated, "labels": y is not None}


def run(config: ImportConfig) -> Path:
    """Import the build described by ``config``; returns the package directory."""
    project = read_project(config.project)
    handoff = hwh.read(config.hwh, top=project.top)
    board = hwh.board_for(handoff, config.board)
    contract = project.contract
    check_streams(project, handoff)
    bitstream = check_bitstream(config.bit, handoff)
    X, y, source = test_inputs(config, project)
    name = config.name or f"{project.name}_{board.name}"
    fclk_mhz = handoff.model.clock_hz / 1e6

    with staged_directory(config.out, config.force) as staged:
        shutil.copyfile(config.bit, staged / f"{name}.bit")
        shutil.copyfile(config.hwh, staged / f"{name}.hwh")
        library = staged / EMULATION_DIR / LIBRARY_NAME
        log.info("building the C simulation of %s with g++", project.top)
        seconds = csim.build_csim(project, library)
        vectors = _test_vectors(staged, library, contract, X, y)
        dma, model = handoff.dma, handoff.model
        ips = {dma.name: {"vlnv": dma.vlnv, "base": dma.base, "range": dma.range}}
        if model.registers:                  # its AXI-Lite block, where the PS addresses one
            ips[model.name] = {"vlnv": model.vlnv, "base": model.registers.base, "range": model.registers.range}
        fields = {
            "name": name,
            "board": board_fields(board, fclk_mhz),
            "emulation": False,
            "io": contract.to_dict(),
            "ips": ips,
            "dma": DmaSettings(dma.name, dma.length_width, (1 << dma.length_width) - 1, dma.mm2s_stream_bits,
                               dma.s2mm_stream_bits, dma.mm2s_data_bits, dma.mm2s_burst,
                               f"{dma.mm2s_burst} beats: as built in {Path(config.hwh).name}").to_dict(),
            "probe": None,
            "streams": streams(handoff),
            "timing": timing(project, fclk_mhz),
            "model": {"scaler": {"mean": [0.0] * project.input.values, "scale": [1.0] * project.input.values},
                      "classes": None, "note": "the features go to the IP as given: an hls4ml user's "
                                               "script scales them itself"},
            "source": {"kind": "hls4ml", "project": str(Path(config.project).resolve()),
                       "bit": {"path": str(Path(config.bit).resolve()), "sha256": sha256_file(config.bit)},
                       "hwh": {"path": str(Path(config.hwh).resolve()), "sha256": sha256_file(config.hwh)},
                       "test_data": source},
            "hls": project.to_dict(),
            "emulation_model": {"kind": "csim", "library": f"{EMULATION_DIR}/{LIBRARY_NAME}",
                                "note": f"g++ C simulation of the project's {project.top}, built in {seconds:.1f} s"},
            "bitstream": bitstream,
            "design": {"model_cell": model.name, "model_vlnv": model.vlnv, "model_clock": model.clock_source,
                       "test_vectors": vectors},
        }
        write_manifest(staged, KIND, FORMAT_VERSION, fields)
        OverlayPackage(staged)               # what every reader will do: verify it before it is renamed
    log.info("imported %s into %s", project.top, config.out)
    return Path(config.out)


def summarize(manifest: dict, path: Path) -> str:
    """The import in a few lines, every figure with its source."""
    io, timing_ = IOContract.from_dict(manifest["io"]), manifest["timing"]
    return "\n".join([
        f"package    {path}  (imported hls4ml build for {manifest['board']['name']}, {manifest['name']}.bit/.hwh "
        "unchanged)",
        f"streams    in: {io.input.describe()}; out: {io.output.describe()}",
        "ips        " + ", ".join(f"{k} @ {v['base']:#010x}" for k, v in manifest["ips"].items()),
        f"timing     {timing_['latency_cycles']} cycles latency, II {timing_['ii_cycles']} ({timing_['source']})",
        f"vectors    {manifest['design']['test_vectors']['samples']} samples from {manifest['source']['test_data']}, "
        "outputs of the C simulation",
        "fabric     no stream probe in an hls4ml design: psqs bench reports no fabric figures",
    ])
