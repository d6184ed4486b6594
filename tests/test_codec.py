"""The board's codec against hand-written expectations and against an exact reference.

The reference below (``ref_*``) computes every value on its own, one at a time, with
``fractions.Fraction`` and Python integers, from the definitions: ``(float64(x) - mean) / scale``
as IEEE float64 operations (an exact rational rounded once to the nearest double), ap_fixed
rounding and overflow, two's-complement fields packed little-endian into beats.
"""
from __future__ import annotations

from fractions import Fraction
from math import ceil, inf, isfinite

import numpy as np
import pytest

from psqs.common import codec
from psqs.common.contract import ContractError, IOContract, StreamLayout
from psqs.common.errors import PsqsError
from psqs.common.fixed_point import FixedFormat


def test_round_half_even_saturation_and_negative_values():
    layout = StreamLayout.packed(4, FixedFormat(8, 3), 32)      # ap_fixed<8,3>: lsb 1/32, [-4, 4)
    values = np.array([[0.015625, 0.046875, -0.015625, -0.046875],   # ties -> even codes
                       [3.99, 4.5, -4.0, -4.02]])   # 3.99 rounds to 4.0: out of range too
    codes, saturated = codec.encode(layout, values)
    assert codes.tolist() == [[0, 2, 0, -2], [127, 127, -128, -128]]
    assert saturated == 3
    np.testing.assert_array_equal(codec.unpack(layout, codec.pack(layout, codes)), codes)


def test_several_values_per_beat_little_endian_lanes_and_padding():
    layout = StreamLayout.packed(5, FixedFormat(16, 6), 64)   # 4 values per 64-bit beat, 2 beats
    assert (layout.values_per_beat, layout.beats_per_sample, layout.bytes_per_sample) == (4, 2, 16)
    data = codec.pack(layout, np.array([[1, -2, 3, 0x1234, -1]]))
    # beat 0: values 0..3, each little-endian in its 16-bit lane; beat 1: value 4 then zero padding
    assert data.tobytes().hex() == "0100" "feff" "0300" "3412" "ffff" "0000" "0000" "0000"


def test_unpack_sign_extends_from_the_format_width():
    """Hardware may leave the field's upper bits as it likes: only the low `width` bits count."""
    layout = StreamLayout.packed(1, FixedFormat(18, 7), 32)
    raw = np.array([0x0003FFFF, 0x00020000, 0xFFFC0001], dtype="<u4").view(np.uint8)
    assert codec.unpack(layout, raw)[:, 0].tolist() == [-1, -(1 << 17), 1]


def test_feature_encoder_zeroes_padding_fields():
    layout = StreamLayout.packed(3, FixedFormat(8, 4), 32)                  # 4 fields, 1 padding
    encoder = codec.FeatureEncoder(layout, np.zeros(3), np.ones(3))
    out = np.full(2 * layout.bytes_per_sample, 0xAB, np.uint8)
    encoder(np.array([[1.0, -1.0, 0.5], [0, 0, 0]]), out)
    assert out.tobytes().hex() == "10f00800" "00000000"


def test_contract_round_trip_and_contradictions():
    contract = IOContract(StreamLayout.packed(16, FixedFormat(16, 5), 64),
                          StreamLayout.packed(5, FixedFormat(18, 7, rounding="TRN", overflow="WRAP"), 64), "top")
    assert IOContract.from_dict(contract.to_dict()) == contract
    bad = contract.to_dict()
    bad["input"]["beats_per_sample"] = 2
    with pytest.raises(ContractError, match=r"io.input.beats_per_sample=2 contradicts the layout \(4\)"):
        IOContract.from_dict(bad)
    with pytest.raises(ContractError, match="bus_bits=60"):
        StreamLayout(16, FixedFormat(16, 5), 16, 60)


# --------------------------------------------------------------------------- the exact reference

def ref_float64(q: Fraction) -> float:
    """An exact rational rounded once to the nearest float64, ties to even (what an IEEE
    operation returns): Python's int / int true division is correctly rounded; beyond the
    largest double, infinity."""
    try:
        return q.numerator / q.denominator
    except OverflowError:
        return inf if q > 0 else -inf


def ref_standardize(x: float, mean: float, scale: float) -> float:
    """``(float64(x) - mean) / scale``, two float64 operations, each rounded once."""
    return ref_float64(Fraction(ref_float64(Fraction(x) - Fraction(mean))) / Fraction(scale))


def ref_range(fmt: FixedFormat) -> tuple[int, int]:
    w = fmt.width
    return (-(1 << (w - 1)), (1 << (w - 1)) - 1) if fmt.signed else (0, (1 << w) - 1)


def ref_code(v: float, fmt: FixedFormat) -> tuple[int, bool]:
    """(code, saturated) of the float64 value ``v`` in ap_fixed<W, I, Q, O>, from the definition:
    value / 2**-(W - I) rounded (RND_CONV: half to even, RND: half up, TRN: down), then SAT clamps
    to the W-bit range or WRAP keeps the low W bits; saturated = the rounded value was outside."""
    lo, hi = ref_range(fmt)
    if v in (inf, -inf):                         # a finite input whose standardization overflowed
        return (hi, True) if v > 0 else (lo, True)
    q = Fraction(v) * Fraction(2) ** (fmt.width - fmt.integer)
    down = q.numerator // q.denominator
    rest = q - down
    half = Fraction(1, 2)
    if fmt.rounding == "RND_CONV":
        code = down + (rest > half or (rest == half and down % 2 == 1))
    elif fmt.rounding == "RND":
        code = down + (rest >= half)
    else:
        code = down
    outside = not lo <= code <= hi
    if fmt.overflow == "SAT":
        return min(max(code, lo), hi), outside
    return (code - lo) % (1 << fmt.width) + lo, outside


def ref_beats(codes: list[list[int]], field: int, bus: int, values: int) -> bytes:
    """Each code as a two's-complement ``field``-bit integer (sign- or zero-extended), little-endian,
    ``bus // field`` per beat, the last beat of a sample zero-padded."""
    per_beat = bus // field
    padded = ceil(values / per_beat) * per_beat
    out = bytearray()
    for row in codes:
        for c in list(row) + [0] * (padded - values):
            out += (c % (1 << field)).to_bytes(field // 8, "little")
    return bytes(out)


def ref_decode(data: bytes, fmt: FixedFormat, field: int, bus: int, values: int) -> list[list[float]]:
    """Values of packed samples: only the low W bits of a field count (sign-extended when signed);
    value = code * 2**-(W - I), rounded once to float64."""
    per_beat, size = bus // field, field // 8
    padded = ceil(values / per_beat) * per_beat
    rows = []
    for s in range(len(data) // (padded * size)):
        row = []
        for k in range(values):
            raw = int.from_bytes(data[(s * padded + k) * size:(s * padded + k + 1) * size], "little")
            code = raw & ((1 << fmt.width) - 1)
            if fmt.signed and code >> (fmt.width - 1):
                code -= 1 << fmt.width
            row.append(ref_float64(Fraction(code) / Fraction(2) ** (fmt.width - fmt.integer)))
        rows.append(row)
    return rows


def edge_values(fmt: FixedFormat, rng: np.random.Generator, n_random: int = 40) -> list[float]:
    """Zeros of both signs, exact ties of both signs and parities, the values one LSB and half an
    LSB inside and outside both ends, the doubles next to a tie, far out of range, and random."""
    lsb = Fraction(1, 1) / Fraction(2) ** (fmt.width - fmt.integer)
    lo, hi = ref_range(fmt)
    exact = [Fraction(k, 2) * lsb for k in (1, 3, 5, -1, -3, -5)]                 # ties
    exact += [c * lsb for c in (hi, hi - 1, hi + 1, lo, lo + 1, lo - 1)]            # one LSB in/out
    exact += [(c + d) * lsb for c in (hi, lo) for d in (Fraction(1, 2), Fraction(-1, 2))]
    out = [0.0, -0.0, 1e300, -1e300, 5e-324, -5e-324]
    for q in exact:
        f = ref_float64(q)
        out += [f, float(np.nextafter(f, inf)), float(np.nextafter(f, -inf))]
    span = float(hi - lo) * float(lsb)
    out += rng.uniform(float(lo * lsb) - span / 4, float(hi * lsb) + span / 4, n_random).tolist()
    return [v for v in out if isfinite(v)]


FORMATS = [  # (width, integer, signed, rounding, overflow): fields of 8, 16, 32 and 64 bits
    (4, 2, True, "RND_CONV", "SAT"), (6, 0, False, "RND_CONV", "SAT"), (8, 3, True, "RND_CONV", "SAT"),
    (8, 8, True, "RND", "SAT"), (10, 4, True, "RND_CONV", "SAT"), (16, 5, True, "RND_CONV", "SAT"),
    (16, 16, False, "TRN", "WRAP"), (18, 7, True, "RND_CONV", "SAT"), (18, 7, True, "TRN", "WRAP"),
    (24, -2, True, "RND", "SAT"), (32, 12, True, "RND_CONV", "SAT"), (32, 1, False, "RND_CONV", "WRAP"),
    (40, 20, True, "RND_CONV", "SAT"), (53, 10, True, "RND", "SAT"), (54, 10, True, "RND_CONV", "SAT"),
    (63, 30, True, "RND_CONV", "WRAP"), (64, 40, True, "RND_CONV", "SAT"), (64, 10, False, "RND_CONV", "SAT"),
    (64, 3, True, "RND", "WRAP"),
]
LAYOUTS = [(f, None, bus) for f in FORMATS for bus in (32, 64, 128) if StreamLayout.packed(
    1, FixedFormat(*f), 128).field_bits <= bus]
# fields that are whole bytes but no numpy integer (hls4ml's widened ap_fixed), with spare bits or none
LAYOUTS += [((18, 7, True, "RND_CONV", "SAT"), 24, 24), ((20, 6, True, "TRN", "WRAP"), 24, 48),
            ((24, -2, True, "RND", "SAT"), 24, 24), ((7, 3, True, "TRN", "SAT"), 24, 72),
            ((33, 5, True, "RND", "SAT"), 40, 40), ((40, 20, False, "RND_CONV", "SAT"), 48, 96),
            ((50, 10, True, "RND_CONV", "WRAP"), 56, 56), ((56, 30, False, "TRN", "WRAP"), 56, 112)]


def make_layout(values: int, fmt: FixedFormat, field: int | None, bus: int) -> StreamLayout:
    """psqs's packed layout (``field`` None: the narrowest power of two), or that field width."""
    return StreamLayout.packed(values, fmt, bus) if field is None else StreamLayout(values, fmt, field, bus)


def case_id(x) -> str:
    return "-".join(map(str, x)) if isinstance(x, tuple) else str(x)


@pytest.mark.parametrize("spec, field, bus", LAYOUTS, ids=case_id)
def test_codec_equals_the_exact_reference(spec, field, bus):
    fmt = FixedFormat(*spec)
    values = 3
    rng = np.random.default_rng([spec[0], spec[1] % 256, bus])           # deterministic per case
    flat = edge_values(fmt, rng)
    flat += [0.0] * (-len(flat) % values)
    V = np.array(flat, dtype=np.float64).reshape(-1, values)
    layout = make_layout(values, fmt, field, bus)

    expected = [[ref_code(v, fmt) for v in row] for row in V.tolist()]
    ref_codes = [[c for c, _ in row] for row in expected]
    codes, saturated = codec.encode(layout, V)
    assert codes.tolist() == ref_codes
    assert saturated == sum(s for row in expected for _, s in row)

    data = codec.pack(layout, codes)
    beats = ref_beats(ref_codes, layout.field_bits, bus, values)
    assert data.tobytes() == beats
    assert codec.unpack(layout, data).tolist() == ref_codes

    # the decoder reads only the low W bits: fill the spare bits of every field with noise
    noisy = bytearray(beats)
    size, spare = layout.field_bits // 8, layout.field_bits - fmt.width
    for i in range(0, len(noisy), size):
        word = int.from_bytes(noisy[i:i + size], "little")
        word = (word & ((1 << fmt.width) - 1)) | (int(rng.integers(0, 1 << spare)) << fmt.width if spare else 0)
        noisy[i:i + size] = word.to_bytes(size, "little")
    n = V.shape[0]
    got = codec.decode_bytes(layout, np.frombuffer(bytes(noisy), np.uint8), n)
    assert got.tolist() == ref_decode(bytes(noisy), fmt, layout.field_bits, bus, values)
    assert codec.decode(layout, codec.unpack(layout, np.frombuffer(bytes(noisy), np.uint8))).tolist() == got.tolist()


@pytest.mark.parametrize("spec, field, bus", [
    ((4, 2, True), None, 32), ((8, 3, True), None, 64), ((16, 5, True), None, 64), ((16, 6, True), None, 128),
    ((18, 7, True), None, 64), ((32, 12, True), None, 32), ((64, 40, True), None, 64), ((64, 10, False), None, 128),
    # other rounding and overflow modes (hls4ml's ap_fixed<W,I> default is TRN/WRAP), byte-wide fields
    ((16, 6, True, "TRN", "WRAP"), None, 64), ((10, 4, False, "RND", "SAT"), None, 32),
    ((18, 7, True, "RND", "SAT"), 24, 24), ((24, 8, True, "TRN", "WRAP"), 24, 24),
    ((40, 12, False, "RND_CONV", "SAT"), 40, 80), ((56, 20, True, "TRN", "SAT"), 56, 56),
    ((56, 40, True, "RND_CONV", "WRAP"), 56, 56), ((64, 30, True, "TRN", "WRAP"), None, 64)], ids=case_id)
def test_feature_encoder_equals_the_exact_reference(spec, field, bus):
    """Raw features through the board's block encoder, standardization included, value by value."""
    fmt = FixedFormat(*spec)
    layout = make_layout(5, fmt, field, bus)
    rng = np.random.default_rng(spec[0] * bus)
    mean = np.array([0.25, -3.0, 40.123456789, 0.0, 1e-3])
    scale = np.array([0.5, 2.0, 123.456, 1.0, 7e-4])         # the first two exact: ties stay ties
    per_feature = [edge_values(fmt, rng, 10) for _ in range(5)]
    rows = max(len(v) for v in per_feature)
    # x = v * scale + mean: with the exact scalers (features 0, 1, 3) the standardized value is the
    # edge value itself wherever x is representable, so ties and range ends are hit exactly
    X = np.empty((rows, 5))
    for j, vals in enumerate(per_feature):
        vals = (vals * ceil(rows / len(vals)))[:rows]
        X[:, j] = [float(Fraction(v) * Fraction(scale[j]) + Fraction(mean[j])) for v in vals]
    X = np.concatenate([X, rng.normal(size=(60, 5)) * scale * 3 + mean, [[-0.0] * 5]])
    encoder = codec.FeatureEncoder(layout, mean, scale)
    encoder.BLOCK_ROWS = 7                                     # several blocks, some saturating, some not
    out = np.full(X.shape[0] * layout.bytes_per_sample, 0xA5, np.uint8)
    saturated = encoder(X, out)
    expected = [[ref_code(ref_standardize(x, mean[j], scale[j]), fmt) for j, x in enumerate(row)]
                for row in X.tolist()]
    assert out.tobytes() == ref_beats([[c for c, _ in row] for row in expected], layout.field_bits, bus, 5)
    assert saturated == sum(s for row in expected for _, s in row)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(bad):
    layout = StreamLayout.packed(4, FixedFormat(16, 5), 64)
    X = np.zeros((10, 4))
    X[7, 2] = bad
    for call in (lambda: codec.encode(layout, X),
                 lambda: codec.FeatureEncoder(layout, np.zeros(4), np.ones(4))(X, np.zeros(80, np.uint8))):
        with pytest.raises(codec.CodecError, match=rf"sample 7, value 2 is {bad}: only finite values") as info:
            call()
        assert isinstance(info.value, PsqsError)
    with pytest.raises(codec.CodecError, match="scaler: mean and scale must be finite and scale non-zero"):
        codec.FeatureEncoder(layout, np.zeros(4), np.array([1.0, 0.0, 1.0, 1.0]))


def test_a_standardized_value_beyond_float64_saturates_but_cannot_wrap():
    """(1e308 - -1e308) / 1 is infinite in float64: SAT clamps it (and counts it), WRAP has no value."""
    X, mean, scale = np.array([[0.0], [1e308]]), np.array([-1e308]), np.array([1.0])
    for fmt in (FixedFormat(16, 6), FixedFormat(24, 8, rounding="TRN", overflow="WRAP")):
        layout = StreamLayout.one_per_beat(1, fmt)
        out = np.zeros(2 * layout.bytes_per_sample, np.uint8)
        if fmt.overflow == "SAT":
            assert codec.FeatureEncoder(layout, mean, scale)(X, out) == 2
            assert codec.unpack(layout, out)[:, 0].tolist() == [fmt.max_code, fmt.max_code]
        else:
            with pytest.raises(codec.CodecError, match=r"^sample 1, value 0 is 1e\+308: standardized it is beyond "
                                                       r"float64, which ap_fixed<24,8,AP_TRN,AP_WRAP> cannot wrap$"):
                codec.FeatureEncoder(layout, mean, scale)(X, out)
