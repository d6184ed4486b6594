"""QKeras model -> hls4ml project, with every precision taken from the QKeras quantizers.

hls4ml does the conversion (``config_from_keras_model`` / ``convert_from_keras_model``); psqs
only (1) refuses what hls4ml cannot compute exactly like QKeras, naming the layer, (2) pins the
input layer to the hardware's input word from the model's manifest, and (3) checks afterwards that
every accumulator can hold its worst-case sum, so the C simulation is bit-exact by construction.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from psqs.common.errors import PsqsError
from psqs.common.fixed_point import FixedFormat
from psqs.hls import csim


BACKENDS = ("Vitis", "Vivado")
IO_TYPES = {"parallel": "io_parallel", "stream": "io_stream"}
STRATEGIES = {"latency": "Latency", "resource": "Resource"}


class ConversionError(PsqsError, ValueError):
    """The model cannot be converted (exactly); the message names the layer and the reason."""


@dataclass(frozen=True)
class Finding:
    layer: str
    reason: str
    exact_possible: bool   # False: unsupported outright; True: convertible, but not bit-exact


def _quantizer_problem(q, role: str) -> str | None:
    """Why hls4ml cannot reproduce quantizer ``q`` exactly, or None if it can."""
    name = type(q).__name__
    cfg = q.get_config() if hasattr(q, "get_config") else {}
    if cfg.get("use_stochastic_rounding"):
        return f"{role} quantizer {name} uses stochastic rounding"
    if name == "quantized_bits":
        if cfg.get("alpha") not in (1, 1.0):
            return f"{role} quantizer quantized_bits has alpha={cfg.get('alpha')!r} (hls4ml needs alpha=1)"
        if cfg.get("symmetric"):
            return f"{role} quantizer quantized_bits is symmetric (no ap_fixed equivalent)"
        return None
    if name == "quantized_relu":
        if cfg.get("use_sigmoid") or cfg.get("negative_slope"):
            return f"{role} quantizer quantized_relu uses sigmoid/negative slope"
        return None
    return f"{role} quantizer {name} is not supported by psqs' exact flow"


def inspect_model(model) -> list[Finding]:
    """Every layer hls4ml would not compute bit-exactly like the QKeras model."""
    findings = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        if kind == "QActivation":
            problem = _quantizer_problem(layer.quantizer, "activation")
            if problem:
                findings.append(Finding(layer.name, problem, True))
        elif kind == "QDense":
            for role, q in (("kernel", layer.kernel_quantizer_internal), ("bias", layer.bias_quantizer_internal)):
                if q is None:
                    findings.append(Finding(layer.name, f"{role} is not quantized (float)", True))
                else:
                    problem = _quantizer_problem(q, role)
                    if problem:
                        findings.append(Finding(layer.name, problem, True))
            if layer.get_config().get("activation") not in (None, "linear"):
                findings.append(Finding(layer.name, "QDense with a built-in activation; use a QActivation layer", True))
        elif kind == "Dense":
            findings.append(Finding(layer.name, "float Dense layer: hls4ml would round its weights to a default precision", True))
        elif kind == "Activation" and layer.get_config().get("activation") in ("relu", "linear"):
            findings.append(Finding(layer.name, "float activation: its output precision would be a default, not the model's", True))
        elif kind == "BatchNormalization":
            findings.append(Finding(layer.name, "BatchNormalization is computed by hls4ml in its own precision "
                                                "(psqs train folds it into the dense layers)", True))
        else:
            findings.append(Finding(layer.name, f"unsupported layer type {kind}", False))
    return findings


def hls_config(model, input_format: FixedFormat, backend: str, strategy: str, reuse: int) -> dict:
    import hls4ml

    config = hls4ml.utils.config_from_keras_model(model, granularity="name", backend=backend)
    config["Model"]["Strategy"] = STRATEGIES[strategy]
    config["Model"]["ReuseFactor"] = reuse
    input_name = model.layers[0].name
    # input_t is the model's input word with its own rounding and overflow modes: an interface
    # that carries floats converts each one to input_t in C, which must then quantize exactly as
    # the model's input quantizer does (the packed interface writes input_t's bits directly).
    config["LayerName"][input_name]["Precision"]["result"] = input_format.hls_type()
    for layer_cfg in config["LayerName"].values():
        if "ReuseFactor" in layer_cfg:
            layer_cfg["ReuseFactor"] = reuse
    return config


def to_fixed_format(precision) -> FixedFormat:
    """An hls4ml FixedPrecisionType as a FixedFormat."""
    rounding = getattr(precision.rounding_mode, "name", None) or "TRN"
    overflow = getattr(precision.saturation_mode, "name", None) or "WRAP"
    return FixedFormat(width=int(precision.width), integer=int(precision.integer), signed=bool(precision.signed),
                       rounding=rounding, overflow="SAT" if overflow.startswith("SAT") else overflow)


def accumulator_check(hls_model, keras_model) -> list[dict]:
    """Per dense layer: the worst-case |sum| against what its accumulator and result can hold.

    The bound uses the actual (quantized) weights: sum_j |w_ij| * max|x| + |b_i|, with max|x| the
    largest magnitude the layer's input type can take.
    """
    rows = []
    for layer in hls_model.get_layers():
        if layer.class_name != "Dense":
            continue
        keras_layer = keras_model.get_layer(layer.name)
        kernel = np.asarray(keras_layer.kernel_quantizer_internal(keras_layer.kernel)
                            if getattr(keras_layer, "kernel_quantizer_internal", None) else keras_layer.kernel)
        bias = np.asarray(keras_layer.bias)
        in_fmt = to_fixed_format(layer.get_input_variable().type.precision)
        x_max = max(abs(in_fmt.min_value), abs(in_fmt.max_value))
        bound = float((np.abs(kernel).sum(axis=0) * x_max + np.abs(bias)).max())
        accum = to_fixed_format(layer.get_attr("accum_t").precision)
        result = to_fixed_format(layer.get_output_variable().type.precision)
        fits = min(accum.max_value, -accum.min_value, result.max_value, -result.min_value) >= bound
        keeps_lsb = result.frac >= accum.frac
        rows.append({"layer": layer.name, "accum": accum.hls_type(), "result": result.hls_type(),
                     "worst_case_abs_sum": bound, "fits": bool(fits), "result_keeps_all_fraction_bits": keeps_lsb})
    return rows


def convert(model, input_format: FixedFormat, out: Path, project: str, backend: str, io: str,
            strategy: str, reuse: int, part: str, clock_period: float, compile_csim: bool = True):
    """Run hls4ml's conversion and (unless told not to) compile its C simulation; returns the
    hls4ml model."""
    import hls4ml

    config = hls_config(model, input_format, backend, strategy, reuse)
    hls_model = hls4ml.converters.convert_from_keras_model(
        model, hls_config=config, output_dir=str(out), project_name=project, backend=backend,
        io_type=IO_TYPES[io], part=part, clock_period=clock_period)
    if compile_csim:
        csim.compiler()       # hls4ml's build script needs g++: say so, not "Failed to compile project"
        hls_model.compile()
    return hls_model


def output_format(hls_model) -> FixedFormat:
    """The fixed-point type hls4ml gives the network's output (what the AXI-stream top sends)."""
    return to_fixed_format(hls_model.get_output_variables()[0].type.precision)
