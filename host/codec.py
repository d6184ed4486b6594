"""Vectorized conversion between real values and the packed bytes of a :class:`StreamLayout`.

Encoding is what the board does to every feature on its way to the FPGA, so it must be exact
(the same rounding and saturation as the hardware types) and fast (whole arrays, no per-element
Python). Packing is a reshape: codes go into a zero-padded integer array whose element size is
the field width, and its little-endian bytes are the beats.
"""
from __future__ import annotations

import numpy as np

from .contract import StreamLayout
from .errors import PsqsError


class CodecError(PsqsError, ValueError):
    """Values the hardware format cannot carry (NaN, infinity) or a scaler that would make them."""


def _refuse_non_finite(values: np.ndarray, first_row: int = 0) -> None:
    """NaN and infinity have no fixed-point code; saturating them would invent a feature value."""
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise CodecError(f"sample {first_row + i}, value {j} is {values[i, j]}: "
                         "only finite values can be encoded (NaN and infinity have no fixed-point code)")


def _field_dtype(layout: StreamLayout) -> np.dtype:
    kind = "i" if layout.format.signed else "u"
    return np.dtype(f"<{kind}{layout.field_bits // 8}")


def encode(layout: StreamLayout, values: np.ndarray) -> tuple[np.ndarray, int]:
    """Fixed-point codes of ``values`` (n, layout.values) and how many of them saturated."""
    fmt = layout.format
    values = np.asarray(values, dtype=np.float64)
    _refuse_non_finite(values.reshape(values.shape[0], -1) if values.ndim else values.reshape(1, 1))
    saturated = int(np.count_nonzero(fmt.saturates(values)))
    return fmt.to_codes(values).astype(_field_dtype(layout)), saturated


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


def _field_codes(layout: StreamLayout, data: np.ndarray) -> np.ndarray:
    """Codes (n x values, in the field's integer type), sign-/zero-extended from the format's
    width: only the low ``width`` bits of a field count, whatever the hardware put above them."""
    raw = np.frombuffer(np.ascontiguousarray(data), dtype=_field_dtype(layout))
    fields = layout.beats_per_sample * layout.values_per_beat
    if raw.size % fields:
        raise ValueError(f"{np.asarray(data).size} bytes is not a whole number of "
                         f"{layout.bytes_per_sample}-byte samples")
    codes = raw.reshape(-1, fields)[:, :layout.values]
    spare = layout.field_bits - layout.format.width
    if spare:
        codes = np.left_shift(codes, spare)
        codes >>= spare                      # arithmetic for signed fields, logical for unsigned
    return codes


def unpack(layout: StreamLayout, data: np.ndarray) -> np.ndarray:
    """Codes (n x layout.values, the format's ``code_dtype``) from beat bytes; the field's low
    ``width`` bits count."""
    return _field_codes(layout, data).astype(layout.format.code_dtype)


def decode(layout: StreamLayout, codes: np.ndarray) -> np.ndarray:
    return layout.format.from_codes(codes)


class FeatureEncoder:
    """Raw features -> packed input beats, standardizing on the way, as fast as numpy allows.

    The contract's standardization is ``(float64(x) - mean) / scale``, then quantization to the
    input format. Dividing by ``scale * 2**-frac`` instead of dividing by ``scale`` and multiplying
    by ``2**frac`` gives the identical float64 value (scaling by a power of two is exact), which
    saves a pass. Saturation is checked against the format's exact bounds (``max_code + 1`` is a
    power of two, so a 64-bit field's top code is not rounded into overflow); NaN or infinity in
    a block is refused with its position. The work runs in row blocks that stay in cache: ~10x
    faster than whole-array numpy on large batches, because each pass no longer streams the
    batch through main memory.
    """

    BLOCK_ROWS = 8192

    def __init__(self, layout: StreamLayout, mean: np.ndarray, scale: np.ndarray):
        fmt = layout.format
        if fmt.rounding != "RND_CONV" or fmt.overflow != "SAT":
            raise ValueError(f"{fmt.hls_type()}: the input encoder implements RND_CONV/SAT only")
        self.layout = layout
        self.mean = np.asarray(mean, dtype=np.float64)
        self.divisor = np.asarray(scale, dtype=np.float64) / 2.0 ** fmt.frac
        if not (np.isfinite(self.mean).all() and np.isfinite(self.divisor).all() and self.divisor.all()):
            raise CodecError(f"scaler: mean and scale must be finite and scale non-zero "
                             f"(mean {self.mean.tolist()}, scale {np.asarray(scale).tolist()})")
        self.lo, self.limit = float(fmt.min_code), float(fmt.max_code + 1)   # both exact in float64
        self._scratch = np.empty((self.BLOCK_ROWS, layout.values), dtype=np.float64)

    def fields(self, out: np.ndarray, n: int) -> np.ndarray:
        """The (n, values) integer view of the first n samples of a byte buffer."""
        layout = self.layout
        per_sample = layout.beats_per_sample * layout.values_per_beat
        view = np.asarray(out)[:n * layout.bytes_per_sample].view(_field_dtype(layout))
        return view.reshape(n, per_sample)

    def __call__(self, X: np.ndarray, out: np.ndarray) -> int:
        """Encode ``X`` (n, values) into the byte buffer ``out``; returns the saturated count."""
        n = X.shape[0]
        fields = self.fields(out, n)
        if fields.shape[1] > self.layout.values:
            fields[:, self.layout.values:] = 0
        saturated = 0
        for start in range(0, n, self.BLOCK_ROWS):
            x = X[start:start + self.BLOCK_ROWS]
            t = self._scratch[:x.shape[0]]
            t[...] = x                       # one float64 conversion, then in-place arithmetic
            with np.errstate(over="ignore"):    # beyond float64: +-inf, which saturates
                t -= self.mean
                t /= self.divisor
            np.rint(t, out=t)
            block = fields[start:start + x.shape[0], :self.layout.values]
            if t.min() >= self.lo and t.max() < self.limit:     # False for NaN as well
                block[...] = t
                continue
            _refuse_non_finite(x, start)     # else finite values beyond the format: saturate
            saturated += int(np.count_nonzero((t < self.lo) | (t >= self.limit)))
            block[...] = self.layout.format.saturate(t)
        return saturated


def decode_bytes(layout: StreamLayout, data: np.ndarray, n: int) -> np.ndarray:
    """Real values (float64, n x values) of the first n samples in a byte buffer."""
    codes = _field_codes(layout, np.asarray(data)[:n * layout.bytes_per_sample])
    return np.multiply(codes, layout.format.lsb, dtype=np.float64)
