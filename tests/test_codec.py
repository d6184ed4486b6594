"""The board's codec against the HLS fixed-point semantics (psqs.host.fixed_point)."""
from __future__ import annotations

import numpy as np
import pytest

from psqs.host import codec
from psqs.host.contract import ContractError, IOContract, StreamLayout
from psqs.host.fixed_point import FixedFormat


def test_round_half_even_saturation_and_negative_values():
    layout = StreamLayout.packed(4, FixedFormat(8, 3), 32)      # ap_fixed<8,3>: lsb 1/32, [-4, 4)
    values = np.array([[0.015625, 0.046875, -0.015625, -0.046875],   # ties -> even codes
                       [3.99, 4.5, -4.0, -4.02]])   # 3.99 rounds to 4.0: out of range too
    codes, saturated = codec.encode(layout, values)
    assert codes.tolist() == [[0, 2, 0, -2], [127, 127, -128, -128]]
    assert saturated == 3
    np.testing.assert_array_equal(codec.unpack(layout, codec.pack(layout, codes)), codes)


@pytest.mark.parametrize("width, integer, signed", [(6, 2, True), (10, 4, True), (6, 0, False), (10, 10, True)])
def test_odd_widths_round_trip_through_their_fields(width, integer, signed):
    fmt = FixedFormat(width, integer, signed=signed)
    layout = StreamLayout.packed(5, fmt, 64)
    assert layout.field_bits == (8 if width <= 8 else 16)
    rng = np.random.default_rng(width)
    values = rng.uniform(fmt.min_value * 1.2 - 1, fmt.max_value * 1.2 + 1, size=(50, 5))
    codes, _ = codec.encode(layout, values)
    np.testing.assert_array_equal(codes, fmt.to_codes(values))            # the FixedFormat rule
    data = codec.pack(layout, codes)
    assert data.size == 50 * layout.bytes_per_sample
    np.testing.assert_array_equal(codec.decode(layout, codec.unpack(layout, data)), fmt.quantize(values))


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


def test_feature_encoder_equals_standardize_then_quantize():
    layout = StreamLayout.packed(16, FixedFormat(16, 5), 64)
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(20000, 16)) * rng.uniform(0.1, 300, 16) + 40).astype(np.float32)
    X[5, 3] = 1e9                                                           # saturates
    mean, scale = X.mean(0).astype(np.float64), X.std(0).astype(np.float64)
    encoder = codec.FeatureEncoder(layout, mean, scale)
    out = np.empty(X.shape[0] * layout.bytes_per_sample, np.uint8)
    saturated = encoder(X, out)
    expected, expected_saturated = codec.encode(layout, (X.astype(np.float64) - mean) / scale)
    np.testing.assert_array_equal(out, codec.pack(layout, expected))
    assert saturated == expected_saturated == 1


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
