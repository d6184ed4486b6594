"""argparse ``type=`` validators for every numeric option of every psqs command line.

A value that is out of range, NaN or infinite is refused while the command line is parsed, with
the option named, before anything is trained, built or streamed: ``--l1 nan`` used to reach
Keras, ``--lr inf`` a quantizer assertion and ``--port 99999`` a different port. These live in
the board-side package so that ``psqs`` and ``python3 -m psqs.host`` share them (numpy-free,
TensorFlow-free). Each returns a converter; argparse prefixes its message with the option name.
"""
from __future__ import annotations

import argparse
import math


def _show(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _describe(low, high, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{_show(low)}, {_show(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {_show(low)}"
    return f"{'<' if high_open else '<='} {_show(high)}"


def _ranged(value, low, high, low_open: bool = False, high_open: bool = False):
    inside = ((low is None or (value > low if low_open else value >= low))
              and (high is None or (value < high if high_open else value <= high)))
    if not inside:
        raise argparse.ArgumentTypeError(f"{_show(value)}: must be {_describe(low, high, low_open, high_open)}")
    return value


def integer(low: int | None = None, high: int | None = None):
    """An integer in [low, high] (either bound may be None)."""
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: not an integer") from None
        return _ranged(value, low, high)
    return convert


def real(low: float | None = None, high: float | None = None, *, low_open: bool = False, high_open: bool = False):
    """A finite number in the given range (``low_open``: ``> low``; ``high_open``: ``< high``)."""
    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number")
        return _ranged(value, low, high, low_open, high_open)
    return convert


def integer_list(low: int = 1, example: str = "1,100,1000"):
    """Comma-separated integers, each >= ``low``."""
    def convert(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. {example}") from None
        if any(v < low for v in values):
            raise argparse.ArgumentTypeError(f"{text!r}: every value must be >= {low}")
        return values
    return convert


#: A TCP port: 1..65535 (0 would let the system pick one nobody can dial).
port = integer(1, 65535)
