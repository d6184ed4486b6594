"""The QKeras network as da4ml combinational logic, with the hls4ml project's fixed-point semantics.

da4ml's own converter reads HGQ2/Keras 3 models only; the psqs network is a QKeras chain of two
layer kinds, so it is traced here by hand, layer by layer, with exactly the arithmetic that the
QKeras reference (:mod:`psqs.qap.reference`) and hls4ml's C simulation compute:

- input: the codes of the I/O contract's input format ``ap_fixed<W, I>`` (the host rounds and
  saturates them; ``input_quant`` must describe the same format);
- ``QDense``: the exact sum ``x @ W + b`` with the weights and biases as stored (they already sit on
  their ``quantized_bits`` grid; that is checked, never re-quantized);
- ``quantized_relu(b, r)``: ``ap_ufixed<b, r, AP_RND_CONV, AP_SAT>``, i.e. round half to even, then
  saturate to ``[0, 2**r - 2**-(b-r)]``. da4ml only truncates or rounds half up, so the tie rule is
  built from primitives (:func:`relu_half_even`);
- output: the last layer's exact sum (no activation), as in the HLS contract.

Two ways to build the dense layers (``solver``): ``cmvm`` is da4ml's constant-matrix-vector
solver, which shares shift-and-add terms between outputs (0 DSP, fewest adders); it is
numba-compiled on first use (about a minute, once per environment: numba caches the compiled code
next to da4ml). ``adder-tree`` multiplies each weight as canonical signed digits and sums the
products with da4ml's latency-ordered adder tree: no compile step, more adders.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from psqs.common.fixed_point import FixedFormat
from psqs.hls.convert import ConversionError

log = logging.getLogger(__name__)

SOLVERS = ("cmvm", "adder-tree")
CMVM_METHOD = "wmc"      # da4ml's default: extract the most common (latency-weighted) digit pairs first


class TraceError(ConversionError):
    """The model cannot be traced exactly; the message names the layer and the reason."""


@dataclass(frozen=True)
class TracedLayer:
    """One traced layer, for the manifest."""

    name: str
    kind: str           # dense | relu
    n_in: int
    n_out: int
    format: str         # weights (dense) or result (relu), as an HLS type

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "n_in": self.n_in, "n_out": self.n_out,
                "format": self.format}


def quantized_bits_format(config: dict, where: str) -> FixedFormat:
    """``quantized_bits(bits, integer, keep_negative, alpha=1)`` as the format it rounds to."""
    if config.get("alpha") not in (1, 1.0) or config.get("symmetric") or config.get("use_stochastic_rounding"):
        raise TraceError(f"{where}: quantized_bits needs alpha=1, symmetric=0 and deterministic rounding, "
                         f"got {config}")
    signed = bool(config.get("keep_negative", True))
    return FixedFormat(width=int(config["bits"]), integer=int(config["integer"]) + int(signed), signed=signed)


def relu_format(config: dict, where: str) -> FixedFormat:
    """``quantized_relu(bits, integer)`` as ``ap_ufixed<bits, integer, AP_RND_CONV, AP_SAT>``."""
    if config.get("use_sigmoid") or config.get("negative_slope") or config.get("use_stochastic_rounding") \
            or config.get("relu_upper_bound") is not None:
        raise TraceError(f"{where}: only plain quantized_relu(bits, integer) is supported, got {config}")
    return FixedFormat(width=int(config["bits"]), integer=int(config["integer"]), signed=False)


def relu_half_even(v, fmt: FixedFormat):
    """ReLU of one da4ml variable into ``fmt`` (unsigned) with round-half-even and saturation.

    With ``d`` fraction bits dropped, round-half-even of the code is
    ``floor((code + 2**(d-1) - 1 + L) / 2**d)`` where ``L`` is the lowest *kept* bit: below the
    tie it rounds down, above it up, and at the tie it adds 1 exactly when the kept part is odd.
    ``L`` is a one-bit slice of ``v`` (a wrapping quantization), the rest is a constant addition,
    a truncation and da4ml's saturating quantization, whose lower clamp at 0 is the ReLU.
    """
    f = fmt.frac
    _, _, f_in = v.kif
    d = f_in - f
    if d > 0:
        kept_lsb = v.quantize(0, 1 - f, f)                  # 0 or 2**-f: bit d of the code
        v = v + (2.0 ** -(f + 1) - 2.0 ** -f_in) + kept_lsb * 2.0 ** -d
    return v.quantize(0, fmt.integer, f, "SAT", "TRN")


def _dense_cmvm(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``x @ kernel`` by da4ml's CMVM core: shared shift-and-add terms, weighted-most-common pairs first.

    This is the single-stage solver (``da4ml.cmvm.core.cmvm`` + ``to_solution``), not the search
    over two-stage kernel decompositions that ``FixedVariableArray.__matmul__`` runs
    (``da4ml.cmvm.solve``): on the 80 %-pruned 6-bit 16-64-32-32-5 network it is as good (19.6k
    estimated LUTs against 20.1k) and numba compiles it in about a minute instead of four.
    """
    from da4ml.cmvm.core import cmvm, to_solution
    from da4ml.cmvm.types import QInterval
    from numba.typed import List as NumbaList

    qints = NumbaList([QInterval(float(v.low), float(v.high), float(v.step)) for v in x])
    latencies = NumbaList([float(v.latency) for v in x])
    hwconf = x[0].hwconf
    state = cmvm(np.ascontiguousarray(kernel.astype(np.float32)), CMVM_METHOD, qints, latencies,
                 hwconf.adder_size, hwconf.carry_size)
    return np.asarray(to_solution(state, hwconf.adder_size, hwconf.carry_size)(x))


def warm_up() -> None:
    """Compile da4ml's CMVM solver now (numba caches it next to da4ml for every later process).

    The first ``cmvm`` trace in an environment otherwise spends minutes compiling before it
    starts; a caller that knows it will need the solver can pay this in a side process.
    """
    from da4ml.trace import FixedVariableArray

    x = FixedVariableArray.from_kif(np.ones(2, int), np.ones(2, int), np.full(2, 4))
    _dense_cmvm(np.asarray(x._vars), np.array([[0.5, -0.25], [0.75, 1.0]]))


def _dense_adder_tree(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    from da4ml.trace.fixed_variable_array import mmm

    return mmm(x, kernel.astype(np.float64))


def _on_grid(values: np.ndarray, fmt: FixedFormat, where: str) -> None:
    codes = values.astype(np.float64) * 2.0 ** fmt.frac
    off = (codes != np.round(codes)) | (codes < fmt.min_code) | (codes > fmt.max_code)
    if off.any():
        bad = values.ravel()[np.flatnonzero(off.ravel())[0]]
        raise TraceError(f"{where}: {int(off.sum())} value(s) are not on the {fmt.hls_type()} grid "
                         f"(e.g. {bad!r}); psqs uses weights exactly as stored")


def _check_chain(model) -> None:
    """The network must be a plain chain: each layer fed by the one before it."""
    layers = model.get_config()["layers"]
    for prev, layer in itertools.pairwise(layers):
        nodes = layer.get("inbound_nodes") or []
        sources = [inbound[0] for node in nodes for inbound in node]
        if sources != [prev["name"]]:
            raise TraceError(f"layer {layer['name']}: fed by {sources}, expected only {prev['name']!r} "
                             "(psqs traces a plain chain of layers)")


def trace(model, input_format: FixedFormat, solver: str):
    """The model as a da4ml ``CombLogic`` from input codes to the exact output sums.

    Returns ``(comb, layers)``. Every layer the trace cannot reproduce exactly is an error that
    names it.
    """
    from da4ml.trace import FixedVariableArray, comb_trace

    if solver not in SOLVERS:
        raise TraceError(f"solver={solver!r}: must be one of {SOLVERS}")
    dense = _dense_cmvm if solver == "cmvm" else _dense_adder_tree
    _check_chain(model)
    n_in = int(model.input_shape[-1])
    k, i, f = int(input_format.signed), input_format.integer - int(input_format.signed), input_format.frac
    inputs = FixedVariableArray.from_kif(np.full(n_in, k), np.full(n_in, i), np.full(n_in, f))
    x = np.asarray(inputs._vars)
    layers: list[TracedLayer] = []
    input_seen = False
    for layer in model.layers:
        kind, where = type(layer).__name__, f"layer {layer.name}"
        if kind == "InputLayer":
            continue
        if kind == "QActivation" and type(layer.quantizer).__name__ == "quantized_bits":
            fmt = quantized_bits_format(layer.quantizer.get_config(), where)
            if input_seen or layers or (fmt.width, fmt.integer, fmt.signed) != \
                    (input_format.width, input_format.integer, input_format.signed):
                raise TraceError(f"{where}: quantized_bits activation {fmt.hls_type()} is not the input "
                                 f"quantizer of the input format {input_format.hls_type()}")
            input_seen = True
        elif kind == "QActivation" and type(layer.quantizer).__name__ == "quantized_relu":
            fmt = relu_format(layer.quantizer.get_config(), where)
            x = np.array([relu_half_even(v, fmt) for v in x], dtype=object)
            layers.append(TracedLayer(layer.name, "relu", x.size, x.size, fmt.hls_type()))
        elif kind == "QDense":
            if not input_seen:
                raise TraceError(f"{where}: no quantized_bits input quantizer before it; the hardware computes "
                                 f"on {input_format.hls_type()} codes, so the model must too")
            if layer.get_config().get("activation") not in (None, "linear"):
                raise TraceError(f"{where}: QDense with a built-in activation; use a QActivation layer")
            quantizers = (layer.kernel_quantizer_internal, layer.bias_quantizer_internal)
            if any(q is None or type(q).__name__ != "quantized_bits" for q in quantizers) or not layer.use_bias:
                raise TraceError(f"{where}: kernel and bias must both be quantized_bits-quantized")
            kernel, bias = (np.asarray(w) for w in layer.get_weights())
            w_fmt = quantized_bits_format(quantizers[0].get_config(), f"{where} kernel")
            _on_grid(kernel, w_fmt, f"{where} kernel")
            _on_grid(bias, quantized_bits_format(quantizers[1].get_config(), f"{where} bias"), f"{where} bias")
            x = dense(x, kernel)
            x = np.array([v + Decimal(float(b)) for v, b in zip(x, bias)], dtype=object)
            layers.append(TracedLayer(layer.name, "dense", kernel.shape[0], kernel.shape[1], w_fmt.hls_type()))
        else:
            raise TraceError(f"{where}: unsupported layer type {kind} for the RTL trace")
    if not layers or layers[-1].kind != "dense":
        raise TraceError("the network must end in a dense layer (its exact sums are the outputs)")
    comb = comb_trace(inputs._vars, x, keep_dead_inputs=True)
    log.info("traced %d layers with %s: %s", len(layers), solver, comb)
    return comb, layers
