"""Fixed-point formats in the ``ap_fixed<W, I, Q, O>`` sense, and their numpy quantization.

One description of a number format is shared by every stage: the trainer sizes the hardware's
input format with it, the converter writes it into the HLS I/O contract, and the board encodes
features with it. Keeping the quantization rule in one place is what makes "bit-exact" a
property of the pipeline rather than a coincidence.

Conventions (those of Vivado/Vitis HLS ``ap_fixed``):
- ``width`` is the total number of bits, ``integer`` the bits left of the binary point
  *including* the sign bit for signed formats; ``frac = width - integer`` may exceed ``width``
  or be negative, as in HLS.
- rounding ``RND_CONV`` is round-half-to-even (what QKeras' ``tf.round`` does), ``RND`` is
  round-half-up, ``TRN`` truncates toward minus infinity; overflow ``SAT`` clamps, ``WRAP``
  keeps the low ``width`` bits.
- Codes are exact for every width up to 64 bits: rounding and range checks work on float64 values
  that are integers (scaling by a power of two is exact), compared against bounds that are powers
  of two, so a 64-bit format's ``max_code`` (not a float64) is never rounded into overflow. NaN and
  infinity have no code and are refused.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import PsqsError

ROUNDING_MODES = ("RND_CONV", "RND", "TRN")
OVERFLOW_MODES = ("SAT", "WRAP")


class FormatError(PsqsError, ValueError):
    """A fixed-point format description is invalid."""


@dataclass(frozen=True)
class FixedFormat:
    width: int
    integer: int
    signed: bool = True
    rounding: str = "RND_CONV"
    overflow: str = "SAT"

    def __post_init__(self):
        if not isinstance(self.width, int) or not 1 <= self.width <= 64:
            raise FormatError(f"width {self.width!r}: must be an integer in 1..64")
        if not isinstance(self.integer, int):
            raise FormatError(f"integer {self.integer!r}: must be an integer")
        if self.rounding not in ROUNDING_MODES:
            raise FormatError(f"rounding {self.rounding!r}: must be one of {ROUNDING_MODES}")
        if self.overflow not in OVERFLOW_MODES:
            raise FormatError(f"overflow {self.overflow!r}: must be one of {OVERFLOW_MODES}")

    @property
    def frac(self) -> int:
        return self.width - self.integer

    @property
    def lsb(self) -> float:
        return 2.0 ** -self.frac

    @property
    def min_code(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_code(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def code_dtype(self) -> np.dtype:
        """int64, or uint64 for a 64-bit unsigned format (whose codes reach 2**64 - 1)."""
        return np.dtype(np.uint64 if not self.signed and self.width == 64 else np.int64)

    @property
    def _limit(self) -> float:
        """``max_code + 1`` as a float64: a power of two, so exact even where max_code is not."""
        return float(self.max_code + 1)

    @property
    def min_value(self) -> float:
        return self.min_code * self.lsb

    @property
    def max_value(self) -> float:
        return self.max_code * self.lsb

    def hls_type(self) -> str:
        """The type as hls4ml and HLS C++ spell it, e.g. ``ap_fixed<16,5,AP_RND_CONV,AP_SAT>``."""
        base = "ap_fixed" if self.signed else "ap_ufixed"
        return f"{base}<{self.width},{self.integer},AP_{self.rounding},AP_{self.overflow}>"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "format") -> "FixedFormat":
        try:
            return cls(**{k: data[k] for k in ("width", "integer", "signed", "rounding", "overflow")})
        except KeyError as exc:
            raise FormatError(f"{where}: missing field {exc.args[0]!r}") from None
        except (TypeError, FormatError) as exc:
            raise FormatError(f"{where}: {exc}") from None

    def round_codes(self, x: np.ndarray) -> np.ndarray:
        """Values in units of the LSB, rounded to integers but not yet saturated (float64)."""
        # a value beyond float64 once scaled becomes +-inf, which saturates
        with np.errstate(over="ignore"):
            return self.round_scaled(np.asarray(x, dtype=np.float64) * (2.0 ** self.frac))

    def round_scaled(self, scaled: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Values already in units of the LSB (float64) rounded to integers by the format's
        rounding mode; ``out`` (float64, ``scaled`` itself allowed) saves an array."""
        if self.rounding == "RND_CONV":
            return np.rint(scaled, out=out)
        floor = np.floor(scaled)
        if self.rounding == "RND":      # not floor(scaled + 0.5): 0.49999999999999994 + 0.5 == 1.0
            with np.errstate(invalid="ignore"):     # inf - inf is NaN (not >= 0.5): inf stays inf
                floor += scaled - floor >= 0.5      # the fraction scaled - floor is exact
        if out is None:
            return floor
        out[...] = floor
        return out

    def to_codes(self, x: np.ndarray) -> np.ndarray:
        """Quantize real values to integer codes (value = code * lsb) as the hardware would."""
        x = np.asarray(x, dtype=np.float64)
        if not np.isfinite(x).all():
            raise ValueError(f"{self.hls_type()}: NaN and infinity have no fixed-point code")
        if self.overflow == "SAT":
            return self.saturate(self.round_codes(x))
        # x modulo 2**integer first (exact): the code changes by multiples of 2**width, which WRAP
        # drops anyway, and x * 2**frac can no longer overflow to infinity
        return self._wrap(self.round_codes(np.fmod(x, 2.0 ** self.integer)))

    def saturate(self, codes: np.ndarray) -> np.ndarray:
        """Rounded codes (integral float64, +-inf allowed) clamped to the format, as ``code_dtype``."""
        codes = np.asarray(codes, dtype=np.float64)
        above = codes >= self._limit
        top = np.nextafter(self._limit, 0.0)          # below the limit: converts without overflow
        out = np.clip(codes, self.min_code, top).astype(self.code_dtype)
        out[above] = self.max_code
        return out

    def _wrap(self, codes: np.ndarray) -> np.ndarray:
        """The low ``width`` bits of each (finite, integral) code, sign-extended when signed."""
        codes = np.asarray(codes, dtype=np.float64)
        r = np.atleast_1d(np.fmod(codes, 2.0 ** 64))     # exact; |r| < 2**64
        magnitude = np.abs(r).astype(np.uint64)
        bits = np.where(r < 0, np.uint64(0) - magnitude, magnitude)   # r modulo 2**64
        bits &= np.uint64((1 << self.width) - 1)
        if self.signed:
            sign = np.uint64(1 << (self.width - 1))
            bits = ((bits ^ sign) - sign).view(np.int64)   # modular, then two's complement
        return bits.astype(self.code_dtype).reshape(codes.shape)

    def from_codes(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(codes, dtype=np.float64) * self.lsb

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Round and saturate/wrap to representable values (float64, exact)."""
        return self.from_codes(self.to_codes(x))

    def saturates(self, x: np.ndarray) -> np.ndarray:
        """Boolean mask of the values that fall outside the representable range after rounding."""
        codes = self.round_codes(x)
        return (codes < self.min_code) | (codes >= self._limit)
