"""Vectorized conversion between real values and the packed bytes of a :class:`StreamLayout`.

Encoding is what the board does to every feature on its way to the FPGA, so it must be exact
(the same rounding and saturation as the hardware types) and fast (whole arrays, no per-element
Python). Packing is a reshape: codes go into a zero-padded integer array whose element size is
the field width, and its little-endian bytes are the beats.
"""
from __future__ import annotations

import numpy as np

from .contract import StreamLayout


def _field_dtype(layout: StreamLayout) -> np.dtype:
    kind = "i" if layout.format.signed else "u"
    return np.dtype(f"<{kind}{layout.field_bits // 8}")


def encode(layout: StreamLayout, values: np.ndarray) -> tuple[np.ndarray, int]:
    """Fixed-point codes of ``values`` (n, layout.values) and how many of them saturated."""
    fmt = layout.format
    codes = fmt.round_codes(values)
    outside = (codes < fmt.min_code) | (codes > fmt.max_code)
    saturated = int(np.count_nonzero(outside))
    if saturated:
        codes = fmt.to_codes(values).astype(np.float64)   # the format's own overflow rule
    return codes.astype(_field_dtype(layout)), saturated


def pack(layout: StreamLayout, codes: np.ndarray) -> np.ndarray:
    """Bytes (uint8, n * bytes_per_sample) of the beats carrying ``codes`` (n, layout.values)."""
    codes = np.asarray(codes)
    n = codes.shape[0]
    fields = layout.beats_per_sample * layout.values_per_beat
    if fields == layout.values and codes.dtype == _field_dtype(layout) and codes.flags.c_contiguous:
        return codes.reshape(-1).view(np.uint8)
    out = np.zeros((n, fields), dtype=_field_dtype(layout))
    out[:, :layout.values] = codes
    return out.reshape(-1).view(np.uint8)


def unpack(layout: StreamLayout, data: np.ndarray) -> np.ndarray:
    """Codes (int64, n x layout.values) from beat bytes; the field's low ``width`` bits count."""
    raw = np.frombuffer(np.ascontiguousarray(data), dtype=_field_dtype(layout))
    fields = layout.beats_per_sample * layout.values_per_beat
    if raw.size % fields:
        raise ValueError(f"{np.asarray(data).size} bytes is not a whole number of "
                         f"{layout.bytes_per_sample}-byte samples")
    codes = raw.reshape(-1, fields)[:, :layout.values].astype(np.int64)
    width = layout.format.width
    if width < layout.field_bits:
        codes &= (1 << width) - 1
        if layout.format.signed:
            sign = 1 << (width - 1)
            codes = (codes ^ sign) - sign
    return codes


def decode(layout: StreamLayout, codes: np.ndarray) -> np.ndarray:
    return layout.format.from_codes(codes)
