"""Stage 2: model directory -> HLS directory with a proven bit-exact C simulation.

Layout of the output directory::

    manifest.json      I/O contract, HLS settings, precisions, model identity, verification summary
    hls4ml/            hls4ml's project, plus psqs' AXI-stream top in firmware/
    axis_ip/           vendor-HLS script that exports the top as an IP-catalog core
    csim/libpsqs_axis.so   C simulation of the top (ctypes entry points, bus words as the
                       interface lays them out, :mod:`.interface`),
                       with the weights it reads at run time in csim/weights/
    verify.json, verify/*.npy   the verification ladder
    report.json        vendor synthesis figures, or why there are none
    test_vectors.npz   raw features, labels, reference logits (on the IP's own inputs, see
                       :func:`quantized_inputs`) and the C simulation's logits
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from psqs.common import codec
from psqs.common.artifact import staged_directory, write_manifest
from psqs.common.contract import IOContract, StreamLayout
from psqs.qap.artifact import ModelDir

from . import convert as convert_lib
from . import interface as interface_lib
from . import ladder, reports, vendor, wrapper
from .csim import LIBRARY_NAME, AxisLibrary, build_library

log = logging.getLogger(__name__)

KIND = "psqs.hls"
FORMAT_VERSION = 1
PROJECT = "jet_tagger"


@dataclass(frozen=True)
class ConvertOptions:
    backend: str = "Vitis"
    io: str = "parallel"
    strategy: str = "latency"
    reuse: int = 1
    clock_period: float = 10.0
    part: str = "xc7z020clg400-1"
    board: str | None = None
    bus_bits: int = 64
    allow_inexact: bool = False
    synth: bool = False
    interface: str = interface_lib.DEFAULT

    def __post_init__(self):
        def bad(name, allowed):
            raise convert_lib.ConversionError(f"{name}={getattr(self, name)!r}: must be {allowed}")

        if self.backend not in convert_lib.BACKENDS:
            bad("backend", f"one of {convert_lib.BACKENDS}")
        if self.io not in convert_lib.IO_TYPES:
            bad("io", f"one of {tuple(convert_lib.IO_TYPES)}")
        if self.strategy not in convert_lib.STRATEGIES:
            bad("strategy", f"one of {tuple(convert_lib.STRATEGIES)}")
        if self.reuse < 1:
            bad("reuse", ">= 1")
        if not 0.5 <= self.clock_period <= 100:
            bad("clock_period", "in 0.5..100 ns")
        if self.bus_bits % 8 or not 8 <= self.bus_bits <= 1024:
            bad("bus_bits", "a multiple of 8 in 8..1024")
        interface_lib.interface(self.interface)


def options_for_board(name: str, **overrides) -> ConvertOptions:
    """Options targeting a board: its part, its HP port width as the bus, its fabric clock."""
    from psqs.board_configs import load_board

    board = load_board(name)
    values = dict(part=board.part, bus_bits=board.hp_data_width, clock_period=1000.0 / board.fclk_mhz,
                  board=board.name)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return ConvertOptions(**values)


def _check_model(model, allow_inexact: bool) -> list[dict]:
    findings = convert_lib.inspect_model(model)
    hard = [f for f in findings if not f.exact_possible]
    if hard:
        raise convert_lib.ConversionError("; ".join(f"layer {f.layer}: {f.reason}" for f in hard))
    if findings and not allow_inexact:
        raise convert_lib.ConversionError(
            "; ".join(f"layer {f.layer}: {f.reason}" for f in findings)
            + " (the C simulation could not be bit-exact; pass --allow-inexact to convert anyway "
              "and measure the mismatch)")
    for f in findings:
        log.warning("inexact: layer %s: %s", f.layer, f.reason)
    return [asdict(f) for f in findings]


def quantized_inputs(md: ModelDir, X: np.ndarray, layout: StreamLayout) -> tuple[np.ndarray, int, np.ndarray]:
    """Raw features as the model IP receives them: the input elements the host sends (fixed-point
    codes, or float32 values), how many values saturated, and the real values of the network's
    ``input_t`` (what the QKeras reference and hls4ml's predict see).

    The host standardizes in float64 and encodes into the element (:mod:`psqs.common.codec`); the
    top converts each element to ``input_t`` (the model's input format, its own rounding and
    overflow included). For packed codes of that very format the conversion is the identity.
    For float32 elements the value is rounded twice - float64 -> float32 (to nearest even) on the
    host, float32 -> ``input_t`` in the top - which is *not* always the single rounding float64 ->
    ``input_t`` of the model's test vectors: a value within half a float32 ulp of a rounding
    boundary of ``input_t`` (a tie under RND_CONV) can land on the boundary and go the other way.
    So the real values are computed along the same two steps, and the reference logits of such an
    IP are recomputed on them (:func:`_reference`), never taken from the model's test vectors.
    """
    wire, saturated = codec.encode(layout, md.scaler.transform(X))
    return wire, saturated, md.input_format.quantize(codec.decode(layout, wire))


def _reference(md: ModelDir, x_q: np.ndarray, vectors: dict) -> tuple[np.ndarray, dict]:
    """The float64 QKeras reference logits on the inputs the IP actually computes with, and how many
    test vectors they change against the model directory's (the float32 wire's double rounding).
    Where those inputs are the model's own quantization of the test vectors (the packed
    interface: the wire carries ``input_t`` codes), the model directory's logits are that
    reference already and are used as they are."""
    from psqs.qap.reference import ExactModel

    if np.array_equal(x_q, md.input_format.quantize(md.scaler.transform(vectors["X"]))):
        return vectors["logits"], {"source": "the model directory's test vectors (the IP's inputs are the "
                                             "model's own input quantization)",
                                   "samples": int(len(x_q)), "samples_changed_vs_model_test_vectors": 0}
    logits, _ = ExactModel(md.keras_model(), md.config, md.input_format)(x_q)
    logits = np.asarray(logits, dtype=np.float64)
    changed = (logits != vectors["logits"]).any(axis=1)
    return logits, {"source": "psqs.qap.reference float64 QKeras twin on the IP's input_t values",
                    "samples": int(changed.size), "samples_changed_vs_model_test_vectors": int(changed.sum())}


def _ladder(vectors: dict, md: ModelDir, model, hls_model, library: AxisLibrary, contract: IOContract,
            directory: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    """Rungs 1-3 (:mod:`.ladder`), each against the float64 reference on the IP's own inputs;
    rung 3 against that reference as the output element carries it (a float32 cast for float
    elements, exact for fixed-point ones). Returns the summary, the top's outputs and the reference."""
    wire, saturated, x_q = quantized_inputs(md, vectors["X"], contract.input)
    reference, reference_info = _reference(md, x_q, vectors)
    on_the_wire = codec.decode(contract.output, codec.encode(contract.output, reference)[0])
    n = reference.shape[0]
    qkeras_row, qkeras_out = ladder.qkeras_rung(model, x_q, reference)

    t0 = time.perf_counter()
    hls4ml_out = np.asarray(hls_model.predict(np.ascontiguousarray(x_q)), dtype=np.float64).reshape(n, -1)
    hls4ml_seconds = time.perf_counter() - t0

    library.reset()
    t0 = time.perf_counter()
    data, last = library.transfer(codec.pack(contract.input, wire))
    axis_seconds = time.perf_counter() - t0
    beats = last.size
    samples_out = beats // contract.output.beats_per_sample
    axis_out = codec.decode(contract.output, codec.unpack(contract.output, data))
    tlast_ok = ladder.tlast_ends_one_transfer(last)

    rungs = [
        qkeras_row,
        ladder.compare("2 hls4ml C simulation", reference, hls4ml_out,
                       {"samples_per_second": n / hls4ml_seconds}),
        ladder.compare(f"3 AXI-stream top C simulation ({contract.input.element} DMA words, "
                       f"{contract.input.values_per_beat}/beat)", on_the_wire, axis_out,
                       {"samples_in": n, "samples_out": int(samples_out), "output_beats": int(beats),
                        "tlast_only_on_last_beat": tlast_ok, "samples_per_second": n / axis_seconds}),
    ]
    rungs[2]["success"] = rungs[2]["success"] and tlast_ok and samples_out == n
    summary = ladder.save(directory, rungs,
                          {"reference_float64": reference, "rung1_qkeras_float32": qkeras_out,
                           "rung2_hls4ml": hls4ml_out, "rung3_axis": axis_out, "inputs_quantized": x_q},
                          {"input_saturated_values": saturated, "input_format": md.input_format.hls_type(),
                           "input_element": contract.input.element_type(), "reference": reference_info})
    return summary, axis_out, reference


def _synthesis_report(options: ConvertOptions, directory: Path) -> dict:
    tool = vendor.find_hls_tool(options.backend)
    if not options.synth:
        return reports.no_vendor_report("synthesis not requested (psqs convert --synth, or psqs build)")
    if tool is None:
        return reports.no_vendor_report(f"{vendor.HLS_TOOLS[options.backend]} not found on PATH")
    version = vendor.tool_version(tool)
    vendor.run_tcl(tool, "build_axis_ip.tcl", directory)
    return {"synthesized": True, "tool": Path(tool).name, "version": version, **reports.parse_csynth(directory)}


def run(model_path: Path, out: Path, options: ConvertOptions, force: bool = False) -> Path:
    """Convert, compile, verify and package; nothing is written unless verification passes."""
    import hls4ml

    md = ModelDir(model_path)
    model = md.keras_model()
    inexact = _check_model(model, options.allow_inexact)
    with staged_directory(Path(out), force=force) as tmp:
        t0 = time.perf_counter()
        hls_model = convert_lib.convert(model, md.input_format, tmp / "hls4ml", PROJECT, options.backend,
                                        options.io, options.strategy, options.reuse, options.part,
                                        options.clock_period)
        convert_seconds = time.perf_counter() - t0
        for leftover in (tmp / "hls4ml" / "firmware").glob(f"{PROJECT}-*.so"):
            leftover.unlink()   # hls4ml's own bridge library: machine-specific, not part of the artifact

        accumulators = convert_lib.accumulator_check(hls_model, model)
        overflowing = [a for a in accumulators if not (a["fits"] and a["result_keeps_all_fraction_bits"])]
        if overflowing and not options.allow_inexact:
            raise convert_lib.ConversionError(f"accumulators too narrow: {overflowing}")
        interface = interface_lib.interface(options.interface)
        contract = interface.contract((model.input_shape[-1], md.input_format),
                                      (model.output_shape[-1], convert_lib.output_format(hls_model)),
                                      options.bus_bits, top=f"{PROJECT}_axis")
        io_type = convert_lib.IO_TYPES[options.io]
        sources = wrapper.write_firmware(tmp / "hls4ml" / "firmware", contract, PROJECT, io_type, options.backend,
                                         options.reuse)
        wrapper.write_vendor_project(tmp / "axis_ip", contract, PROJECT, options.backend, options.part,
                                     options.clock_period)
        build_seconds = build_library(tmp / "hls4ml" / "firmware", sources, tmp / "csim" / LIBRARY_NAME)

        vectors = md.test_vectors()
        summary, csim_logits, reference = _ladder(vectors, md, model, hls_model,
                                                  AxisLibrary(tmp / "csim" / LIBRARY_NAME), contract, tmp)
        if not summary["success"]:
            failed = "; ".join(ladder.report_line(r) for r in ladder.gate_failures(summary["rungs"]))
            if not options.allow_inexact:
                raise convert_lib.ConversionError(f"{md.path}: C simulation is not bit-exact: {failed}")
            log.warning("--allow-inexact: packaging a model whose C simulation differs: %s", failed)

        (tmp / "report.json").write_text(json.dumps(_synthesis_report(options, tmp / "axis_ip"), indent=2) + "\n")
        # logits: the float64 reference on the IP's inputs (the model's own test vectors for the
        # packed interface; see quantized_inputs for why a float interface's may differ)
        np.savez(tmp / "test_vectors.npz", X=vectors["X"], y=vectors["y"], logits=reference,
                 csim_logits=csim_logits, index=vectors["index"])
        write_manifest(tmp, KIND, FORMAT_VERSION, {
            "io": contract.to_dict(),
            "interface": interface.to_dict(),
            "hls": {"project": PROJECT, "top": contract.top, "vlnv": wrapper.vlnv(contract.top),
                    "backend": options.backend, "io_type": io_type, "strategy": options.strategy,
                    "reuse_factor": options.reuse, "clock_period_ns": options.clock_period,
                    "part": options.part, "board": options.board, "hls4ml_version": hls4ml.__version__},
            "precisions": {layer.name: {k: str(v.precision) for k, v in layer.types.items()}
                           for layer in hls_model.get_layers()},
            "accumulators": accumulators,
            "inexact_layers": inexact,
            "csim": {"library": f"csim/{LIBRARY_NAME}", "sources": [f"hls4ml/firmware/{s}" for s in sources],
                     "build_seconds": build_seconds, "convert_seconds": convert_seconds},
            "verification": {"success": summary["success"],
                             "rungs": [ladder.report_line(r) for r in summary["rungs"]]},
            "model": md.provenance(),
            "versions": {"hls4ml": hls4ml.__version__, "psqs": metadata.version("psqs")},
        })
    return Path(out)
