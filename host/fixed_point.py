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
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

ROUNDING_MODES = ("RND_CONV", "RND", "TRN")
OVERFLOW_MODES = ("SAT", "WRAP")


class FormatError(ValueError):
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
        scaled = np.asarray(x, dtype=np.float64) * (2.0 ** self.frac)
        if self.rounding == "RND_CONV":
            return np.rint(scaled)
        if self.rounding == "RND":
            return np.floor(scaled + 0.5)
        return np.floor(scaled)

    def to_codes(self, x: np.ndarray) -> np.ndarray:
        """Quantize real values to integer codes (value = code * lsb) as the hardware would."""
        codes = self.round_codes(x)
        if self.overflow == "SAT":
            return np.clip(codes, self.min_code, self.max_code).astype(np.int64)
        span = 1 << self.width
        wrapped = np.mod(codes.astype(np.int64) - self.min_code, span) + self.min_code
        return wrapped.astype(np.int64)

    def from_codes(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(codes, dtype=np.float64) * self.lsb

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Round and saturate/wrap to representable values (float64, exact)."""
        return self.from_codes(self.to_codes(x))

    def saturates(self, x: np.ndarray) -> np.ndarray:
        """Boolean mask of the values that fall outside the representable range after rounding."""
        codes = self.round_codes(x)
        return (codes < self.min_code) | (codes > self.max_code)
