"""FixedFormat: the ap_fixed quantization rule every stage shares."""
from __future__ import annotations

import numpy as np
import pytest

from psqs.common.fixed_point import FixedFormat, FormatError


def test_round_half_to_even_and_saturate():
    fmt = FixedFormat(width=6, integer=2)  # ap_fixed<6,2>: lsb 1/16, range [-2, 2 - 1/16]
    x = np.array([0.03125, 0.09375, -0.03125, -0.09375, 1.96, 2.5, -2.0, -2.1, 0.0])
    #             tie->0   tie->2/16 tie->-0  tie->-2/16  sat   sat  min   sat
    np.testing.assert_array_equal(fmt.to_codes(x), [0, 2, 0, -2, 31, 31, -32, -32, 0])
    np.testing.assert_array_equal(fmt.saturates(x), [0, 0, 0, 0, 0, 1, 0, 1, 0])
    assert fmt.hls_type() == "ap_fixed<6,2,AP_RND_CONV,AP_SAT>"


def test_unsigned_truncating_wrapping():
    fmt = FixedFormat(width=4, integer=1, signed=False, rounding="TRN", overflow="WRAP")
    # lsb 1/8, codes 0..15 wrap modulo 16; truncation goes toward minus infinity
    np.testing.assert_array_equal(fmt.to_codes([0.124, 0.125, 1.99, 2.0, -0.01]), [0, 1, 15, 0, 15])
    assert (fmt.min_value, fmt.max_value) == (0.0, 1.875)


def test_half_up_rounding_differs_from_half_even_only_at_ties():
    even, up = FixedFormat(8, 4), FixedFormat(8, 4, rounding="RND")
    x = np.array([0.03125, 0.09375, 0.1, -0.03125])
    assert even.to_codes(x).tolist() == [0, 2, 2, 0]
    assert up.to_codes(x).tolist() == [1, 2, 2, 0]


def test_negative_integer_bits_and_quantize_is_idempotent():
    fmt = FixedFormat(width=10, integer=-2)  # lsb 2**-12, |x| < 1/8
    x = np.random.default_rng(0).normal(0, 0.05, 1000)
    q = fmt.quantize(x)
    np.testing.assert_array_equal(fmt.quantize(q), q)
    assert q.max() <= 0.125 - 2 ** -12 and q.min() >= -0.125


@pytest.mark.parametrize("fields, message", [
    ({"width": 0, "integer": 0, "signed": True, "rounding": "RND_CONV", "overflow": "SAT"}, "width 0"),
    ({"width": 8, "integer": 2, "signed": True, "rounding": "RND_ZERO", "overflow": "SAT"}, "rounding 'RND_ZERO'"),
    ({"width": 8, "integer": 2, "signed": True, "rounding": "RND_CONV"}, "missing field 'overflow'"),
])
def test_bad_format_descriptions(fields, message):
    with pytest.raises(FormatError, match=message):
        FixedFormat.from_dict(fields, "contract input")


def test_half_up_just_below_a_tie_rounds_down():
    """floor(x + 0.5) would round 0.49999999999999994 up: the sum rounds to 1.0 in float64."""
    fmt = FixedFormat(8, 8, rounding="RND")                  # lsb 1
    below = np.nextafter(0.5, 0.0)
    assert fmt.to_codes([below, 0.5, -below, -0.5, np.nextafter(64.5, 0.0)]).tolist() == [0, 1, 0, 0, 64]


@pytest.mark.parametrize("signed, top", [(True, (1 << 63) - 1), (False, (1 << 64) - 1)])
def test_64_bit_formats_saturate_to_their_top_code(signed, top):
    """max_code of a 64-bit format is not a float64; it must not overflow into the bottom code."""
    fmt = FixedFormat(64, 40, signed=signed)                 # lsb 2**-24
    codes = fmt.to_codes([1e30, 2.0 ** (39 if signed else 40), -1e30, 2.0 ** 30])
    assert codes.dtype == fmt.code_dtype
    assert [int(c) for c in codes] == [top, top, fmt.min_code, 1 << 54]
    assert fmt.saturates([2.0 ** (39 if signed else 40)]).tolist() == [True]


def test_wrap_keeps_the_low_bits_of_huge_values():
    fmt = FixedFormat(8, 4, rounding="TRN", overflow="WRAP")  # lsb 1/16, 16 units per wrap
    assert fmt.to_codes([8.0, 8.0 + 2.0 ** 40 + 0.0625, -8.0625, 1e300]).tolist() == [-128, -127, 127, 0]


def test_nan_and_infinity_have_no_code():
    with pytest.raises(ValueError, match=r"ap_fixed<16,5,AP_RND_CONV,AP_SAT>: NaN and infinity have no fixed-point code"):
        FixedFormat(16, 5).to_codes([0.0, np.nan])
