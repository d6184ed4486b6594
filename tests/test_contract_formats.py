"""The I/O contract's element formats: hls4ml's one-element-per-beat streams beside psqs's packed ones.

Every expectation is computed independently of psqs: IEEE elements by Python's ``struct`` (its own
float -> binary32 rounding, which refuses overflow) and numpy's own cast into a float32 buffer (what
hls4ml's ``NeuralNetworkOverlay`` does), byte-wide ``ap_fixed`` fields by Python integers, the
widened interface type by hls4ml's own ``_next_factor8_type``, buffer sizes by numpy's ``nbytes``.
"""
from __future__ import annotations

import json
import re
import struct
from fractions import Fraction

import numpy as np
import pytest

from psqs.common import codec
from psqs.common.contract import ContractError, IOContract, StreamLayout
from psqs.common.fixed_point import FixedFormat

F32_MAX = struct.unpack("<f", bytes.fromhex("ffff7f7f"))[0]      # (2 - 2**-23) * 2**127


# --------------------------------------------------------------------------- layouts as data

def test_layouts_round_trip_through_json():
    layouts = [StreamLayout.one_per_beat(16, "float32"), StreamLayout.one_per_beat(5, "float64"),
               StreamLayout.one_per_beat(16, FixedFormat(18, 8, rounding="TRN", overflow="WRAP")),
               StreamLayout(7, None, 32, 128, "float32"), StreamLayout(3, FixedFormat(40, 20), 40, 80),
               StreamLayout.packed(16, FixedFormat(16, 5), 64)]
    for layout in layouts:
        assert StreamLayout.from_dict(json.loads(json.dumps(layout.to_dict())), "io.input") == layout
    contract = IOContract(layouts[0], layouts[2], "myproject_axi")
    assert IOContract.from_dict(json.loads(json.dumps(contract.to_dict()))) == contract


def test_a_manifest_written_before_elements_existed_loads_unchanged():
    """The dict below is what psqs wrote before ``element`` existed (no such key): fixed fields."""
    old = {"values": 16, "format": {"width": 16, "integer": 5, "signed": True, "rounding": "RND_CONV",
                                    "overflow": "SAT"},
           "field_bits": 16, "bus_bits": 64, "values_per_beat": 4, "beats_per_sample": 4,
           "bytes_per_sample": 32, "byte_order": "little", "extension": "sign"}
    layout = StreamLayout.from_dict(old, "io.input")
    assert layout == StreamLayout.packed(16, FixedFormat(16, 5), 64)
    assert layout.element == "fixed"
    assert {k: v for k, v in layout.to_dict().items() if k != "element"} == old


def test_one_per_beat_widens_fixed_point_exactly_as_hls4ml_does():
    types = pytest.importorskip("hls4ml.model.types")
    accel = pytest.importorskip("hls4ml.backends.vivado_accelerator.vivado_accelerator_config")
    for width, integer, signed in [(18, 8, True), (16, 6, True), (8, 3, False), (1, 1, True), (33, 5, True),
                                   (57, 20, True), (64, 10, False)]:
        declared = types.FixedPrecisionType(width, integer, signed)
        theirs = accel.VivadoAcceleratorConfig._next_factor8_type(None, declared)
        fmt = FixedFormat(width, integer, signed, "TRN", "WRAP")
        layout = StreamLayout.one_per_beat(12, fmt)
        assert (layout.format.width, layout.format.integer, layout.format.signed) == \
               (theirs.width, theirs.integer, theirs.signed)
        assert layout.format.frac >= fmt.frac and layout.format.max_value >= fmt.max_value   # same range
        assert (layout.field_bits, layout.bus_bits, layout.values_per_beat) == (theirs.width, theirs.width, 1)
        assert (layout.format.rounding, layout.format.overflow) == ("TRN", "WRAP")
        assert StreamLayout.one_per_beat(12, layout.format) == layout                      # idempotent


def test_one_per_beat_sizes_equal_the_buffers_of_hls4mls_driver():
    """hls4ml's driver allocates (n, values) arrays of the element dtype; their bytes are the transfer."""
    n = 37
    inp, out = StreamLayout.one_per_beat(16, "float32"), StreamLayout.one_per_beat(5, "float32")
    assert n * inp.bytes_per_sample == np.zeros((n, 16), np.float32).nbytes
    assert n * out.bytes_per_sample == np.zeros((n, 5), np.float32).nbytes
    assert (inp.beats_per_sample, out.beats_per_sample) == (16, 5)
    contract = IOContract(inp, out, "myproject_axi")
    assert [contract.initiation_interval(r) for r in (1, 16, 17, 301)] == [16, 16, 17, 301]
    fixed = StreamLayout.one_per_beat(16, FixedFormat(16, 6))
    assert n * fixed.bytes_per_sample == np.zeros((n, 16), np.int16).nbytes
    assert inp.describe() == "16 x float32, 1/beat on 32 bits, 16 beat(s)/sample"
    assert inp.element_type() == "float" and StreamLayout.one_per_beat(2, "float64").element_type() == "double"
    assert fixed.element_type() == FixedFormat(16, 6).hls_type()


@pytest.mark.parametrize("make, message", [
    (lambda: StreamLayout(16, None, 32, 32, "float16"), r"^element='float16': must be one of fixed, float32, float64$"),
    (lambda: StreamLayout(16, None, 16, 32, "float32"), r"^field_bits=16: float32 elements take 32 bits$"),
    (lambda: StreamLayout(16, None, 32, 64, "float64"), r"^field_bits=32: float64 elements take 64 bits$"),
    (lambda: StreamLayout(16, FixedFormat(16, 6), 32, 32, "float32"), r"^format=ap_fixed<16,6,AP_RND_CONV,AP_SAT>: "
                                                                      r"must be None for float32 elements"),
    (lambda: StreamLayout(16, None, 16, 32), r"^format=None: a fixed element needs a fixed-point format$"),
    (lambda: StreamLayout(16, FixedFormat(18, 6), 20, 40), r"^field_bits=20: must be a multiple of 8 up to 64"),
    (lambda: StreamLayout(16, FixedFormat(18, 6), 16, 32), r"^field_bits=16: .* hold the 18-bit format$"),
    (lambda: StreamLayout(16, FixedFormat(18, 6), 72, 72), r"^field_bits=72: must be a multiple of 8 up to 64"),
    (lambda: StreamLayout(16, None, 32, 48, "float32"), r"^bus_bits=48: must be a multiple of field_bits \(32\)"),
    (lambda: StreamLayout(16, FixedFormat(24, 8), 24, 64), r"^bus_bits=64: must be a multiple of field_bits \(24\)"),
    (lambda: StreamLayout(0, None, 32, 32, "float32"), r"^values=0: must be >= 1$"),
    (lambda: StreamLayout("16", None, 32, 32, "float32"), r"^values='16': must be an integer$"),
    (lambda: StreamLayout.one_per_beat(16, "float"), r"^element='float': must be one of float32, float64 "
                                                     r"or a fixed-point format$"),
])
def test_bad_layouts_name_the_field(make, message):
    with pytest.raises(ContractError, match=message):
        make()


def _stream(**changes) -> dict:
    d = StreamLayout.one_per_beat(16, "float32").to_dict()
    d.update(changes)
    return {k: v for k, v in d.items() if v is not ...}


@pytest.mark.parametrize("d, message", [
    (_stream(element="float16"), r"^io.input.element='float16': must be one of fixed, float32, float64$"),
    (_stream(format={"width": 16, "integer": 6, "signed": True, "rounding": "TRN", "overflow": "WRAP"}),
     r"^io.input.format: must be null for 'float32' elements"),
    (_stream(element=...), r"^io.input.format=None: fixed elements need a fixed-point format$"),
    (_stream(element="fixed", format={"width": 16}), r"^io.input.format: missing field 'integer'$"),
    (_stream(bus_bits=...), r"^io.input: missing field 'bus_bits'$"),
    (_stream(field_bits=64), r"^io.input.field_bits=64: float32 elements take 32 bits$"),
    (_stream(values=16.0), r"^io.input.values=16.0: must be an integer$"),
    (_stream(beats_per_sample=4), r"^io.input.beats_per_sample=4 contradicts the layout \(16\)$"),
    (_stream(extension="sign"), r"^io.input.extension='sign' contradicts the layout \(None\)$"),
])
def test_bad_manifests_name_the_field(d, message):
    with pytest.raises(ContractError, match=message):
        StreamLayout.from_dict(d, "io.input")


def test_components_without_float_support_refuse_it_in_one_line():
    """psqs's RTL top (hls/rtl) packs fixed-point codes only and says so through require_fixed;
    the HLS top takes every element kind (its substitutions accept a float stream)."""
    hls_wrapper = pytest.importorskip("psqs.hls.wrapper")
    fixed = StreamLayout.packed(16, FixedFormat(16, 6), 64)
    contract = IOContract(fixed, StreamLayout.one_per_beat(5, "float32"), "myproject_axis")
    with pytest.raises(ContractError, match=r"^io.output: 5 x float32, 1/beat on 32 bits, 5 beat\(s\)/sample: "
                                            r"psqs's RTL top supports fixed-point elements only$"):
        contract.require_fixed("psqs's RTL top")
    IOContract(fixed, fixed, "t").require_fixed("psqs's RTL top")      # fixed streams pass
    assert hls_wrapper.substitutions(contract, "myproject", "Vitis", 1)


# --------------------------------------------------------------------------- IEEE elements

def float_edges(rng: np.random.Generator) -> list[float]:
    """Ties between float32 neighbours (both parities), float32 subnormals and the tie below the
    smallest one, the largest float32 and the doubles just below its overflow tie, signed zeros,
    and random values of every magnitude float32 holds."""
    one = [1 + 2.0 ** -24, 1 + 3 * 2.0 ** -24, 1 + 2.0 ** -24 + 2.0 ** -52, -(1 + 3 * 2.0 ** -24)]
    tiny = [2.0 ** -149, 2.0 ** -150, 3 * 2.0 ** -150, 2.0 ** -151, -2.0 ** -149, 1e-45, 1.17e-38]
    top = [F32_MAX, -F32_MAX, float(np.nextafter(2.0 ** 128 - 2.0 ** 103, 0)), 3.4e38]
    rand = (rng.standard_normal(60) * 10.0 ** rng.integers(-40, 38, 60)).tolist()
    return one + tiny + top + [0.0, -0.0, 0.1, -2.5, 1e-300] + rand


def test_float32_elements_are_numpys_and_structs_own_float32():
    values = np.array(float_edges(np.random.default_rng(1)), dtype=np.float64).reshape(-1, 4)
    layout = StreamLayout.one_per_beat(4, "float32")
    codes, saturated = codec.encode(layout, values)
    data = codec.pack(layout, codes)
    driver = np.empty(values.shape, np.float32)     # hls4ml's NeuralNetworkOverlay: input_buffer[:] = X
    driver[:] = values
    assert data.tobytes() == driver.view(np.uint8).tobytes() == b"".join(struct.pack("<f", v) for v in values.flat)
    assert saturated == 0
    decoded = codec.decode_bytes(layout, data, values.shape[0])
    assert decoded.tolist() == [[struct.unpack("<f", struct.pack("<f", v))[0] for v in row] for row in values.tolist()]
    assert codec.decode(layout, codec.unpack(layout, data)).tolist() == decoded.tolist()
    assert np.signbit(decoded).tolist() == np.signbit(values).tolist()           # -0.0 travels as -0.0


def test_float32_elements_packed_several_per_beat_are_zero_padded():
    layout = StreamLayout(3, None, 32, 128, "float32")         # 4 fields per beat, 1 of padding
    values = np.array([[1.5, -2.0, 3.25], [0.0, 1e-3, -1e30]])
    data = codec.pack(layout, codec.encode(layout, values)[0])
    assert data.tobytes() == b"".join(struct.pack("<3fI", *row, 0) for row in values.tolist())
    out = np.full(2 * layout.bytes_per_sample, 0xAB, np.uint8)
    codec.FeatureEncoder(layout, np.zeros(3), np.ones(3))(values, out)
    assert out.tobytes() == data.tobytes()
    assert codec.decode_bytes(layout, data, 2).tolist() == [[struct.unpack("<f", struct.pack("<f", v))[0] for v in r]
                                                            for r in values.tolist()]


def test_float64_elements_are_the_doubles_themselves():
    layout = StreamLayout.one_per_beat(3, "float64")
    values = np.array([[0.1, -1e300, 5e-324], [-0.0, 2.0 ** 1023, 1 / 3]])
    data = codec.pack(layout, codec.encode(layout, values)[0])
    assert data.tobytes() == b"".join(struct.pack("<d", v) for v in values.flat)
    assert codec.decode_bytes(layout, data, 2).tolist() == values.tolist()


def test_feature_encoder_standardizes_then_casts_like_python():
    layout = StreamLayout.one_per_beat(5, "float32")
    rng = np.random.default_rng(2)
    mean = np.array([0.25, -3.0, 40.123456789, 0.0, 1e-3])
    scale = np.array([0.5, 2.0, 123.456, 1.0, 7e-4])
    X = np.concatenate([rng.normal(size=(50, 5)) * scale * 3 + mean, [[-0.0] * 5], [[1e30, -1e30, 3e40, 1e-40, 0]]])
    encoder = codec.FeatureEncoder(layout, mean, scale)
    encoder.BLOCK_ROWS = 7
    out = np.full(X.shape[0] * layout.bytes_per_sample, 0xA5, np.uint8)
    assert encoder(X, out) == 0
    expected = b"".join(struct.pack("<f", (x - m) / s) for row in X.tolist()
                        for x, m, s in zip(row, mean.tolist(), scale.tolist()))     # Python floats
    assert out.tobytes() == expected


@pytest.mark.parametrize("element", ["float32", "float64"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_are_refused_for_ieee_elements_too(element, bad):
    layout = StreamLayout.one_per_beat(4, element)
    X = np.zeros((10, 4))
    X[7, 2] = bad
    for call in (lambda: codec.encode(layout, X),
                 lambda: codec.FeatureEncoder(layout, np.zeros(4), np.ones(4))(X, np.zeros(10 * 4 * 8, np.uint8))):
        with pytest.raises(codec.CodecError, match=rf"^sample 7, value 2 is {bad}: only finite values"):
            call()


def test_values_beyond_float32_are_refused_exactly_where_struct_refuses_them():
    layout = StreamLayout.one_per_beat(1, "float32")
    tie = 2.0 ** 128 - 2.0 ** 103                                 # halfway between F32_MAX and 2**128
    for v in (tie, -tie, 1e39, float(np.nextafter(tie, 0)), F32_MAX):
        try:
            expected = struct.pack("<f", v)
        except OverflowError:
            expected = None
        if expected is None:
            message = rf"^sample 0, value 0 is {re.escape(str(v))}: its float32 element is -?inf"
            with pytest.raises(codec.CodecError, match=message):
                codec.encode(layout, np.array([[v]]))
            with pytest.raises(codec.CodecError, match=r"^sample 3, value 0 .* float32 element is -?inf"):
                codec.FeatureEncoder(layout, [0.0], [1.0])(np.array([[0.0]] * 3 + [[v]]), np.zeros(16, np.uint8))
        else:
            assert codec.pack(layout, codec.encode(layout, np.array([[v]]))[0]).tobytes() == expected


# --------------------------------------------------------------------------- byte-wide ap_fixed fields

def ref_fixed_field(v: float, fmt: FixedFormat) -> bytes:
    """One value as hls4ml's byte-wide ap_fixed field, from the definition with Python integers:
    v * 2**frac rounded (TRN: down; RND_CONV: half to even), then WRAP (low W bits) or SAT."""
    q = Fraction(v) * Fraction(2) ** fmt.frac
    code = q.numerator // q.denominator
    if fmt.rounding == "RND_CONV":
        rest = q - code
        code += rest > Fraction(1, 2) or (rest == Fraction(1, 2) and code % 2 == 1)
    lo, hi = (-(1 << (fmt.width - 1)), (1 << (fmt.width - 1)) - 1) if fmt.signed else (0, (1 << fmt.width) - 1)
    if fmt.overflow == "SAT":
        code = min(max(code, lo), hi)
    return (code % (1 << fmt.width)).to_bytes(fmt.width // 8, "little")


@pytest.mark.parametrize("declared", [FixedFormat(18, 8, rounding="TRN", overflow="WRAP"), FixedFormat(24, 8),
                                      FixedFormat(20, 4, signed=False), FixedFormat(40, 12, rounding="TRN"),
                                      FixedFormat(56, 30, overflow="WRAP")],
                         ids=lambda f: f.hls_type())
def test_byte_wide_fixed_fields_equal_python_integers(declared):
    layout = StreamLayout.one_per_beat(3, declared)
    fmt = layout.format
    rng = np.random.default_rng(fmt.width)
    lsb = 2.0 ** -fmt.frac
    edges = [0.0, -0.0, lsb / 2, 3 * lsb / 2, -lsb / 2, -3 * lsb / 2, fmt.max_value, fmt.min_value,
             fmt.max_value + lsb, fmt.min_value - lsb, fmt.max_value * 3, -fmt.max_value * 3]
    span = fmt.max_value - fmt.min_value
    flat = edges + rng.uniform(fmt.min_value - span / 4, fmt.max_value + span / 4, 60).tolist()
    V = np.array(flat).reshape(-1, 3)
    codes, _ = codec.encode(layout, V)
    data = codec.pack(layout, codes)
    assert data.tobytes() == b"".join(ref_fixed_field(v, fmt) for v in V.flat)
    # decode: each field's bytes as a W-bit two's-complement (or unsigned) integer times the LSB
    size = fmt.width // 8
    fields = [int.from_bytes(data.tobytes()[k:k + size], "little", signed=fmt.signed)
              for k in range(0, data.size, size)]
    expected = np.array([float(Fraction(c) * Fraction(2) ** -fmt.frac) for c in fields]).reshape(V.shape)
    assert codec.decode_bytes(layout, data, V.shape[0]).tolist() == expected.tolist()
    assert codec.unpack(layout, data).tolist() == np.array(fields).reshape(V.shape).tolist()
    encoder = codec.FeatureEncoder(layout, np.zeros(3), np.ones(3))
    encoder.BLOCK_ROWS = 5
    out = np.full(data.size, 0x5A, np.uint8)
    encoder(V, out)
    assert out.tobytes() == data.tobytes()


def test_a_short_buffer_is_named():
    layout = StreamLayout.one_per_beat(5, FixedFormat(18, 8))
    with pytest.raises(codec.CodecError, match=r"^16 bytes is not a whole number of 15-byte samples$"):
        codec.unpack(layout, np.zeros(16, np.uint8))
