"""The I/O contract of a model IP: how samples travel as AXI-stream beats.

Written by the HLS conversion into its manifest and copied unchanged into overlay packages; the
board's codec, the emulator and the RTL wrapper all work from this one description.

Layout of one stream: each value is a fixed-point code in a ``field_bits``-wide field (8, 16, 32
or 64 bits, sign- or zero-extended), ``bus_bits // field_bits`` fields per beat, value ``i`` of a
beat in bits ``[i*field_bits, (i+1)*field_bits)`` of TDATA; a sample occupies whole beats and the
unused fields of its last beat are zero. TDATA is little-endian in memory (AXI byte lanes), so a
buffer of samples is simply an array of ``field_bits`` integers, row-padded to whole beats.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import PsqsError
from .fixed_point import FixedFormat, FormatError

FIELD_BITS = (8, 16, 32, 64)


class ContractError(PsqsError, ValueError):
    """An I/O contract is invalid or does not match what a component expects."""


@dataclass(frozen=True)
class StreamLayout:
    values: int
    format: FixedFormat
    field_bits: int
    bus_bits: int

    def __post_init__(self):
        if self.values < 1:
            raise ContractError(f"values={self.values}: must be >= 1")
        if self.field_bits not in FIELD_BITS or self.field_bits < self.format.width:
            raise ContractError(f"field_bits={self.field_bits}: must be one of {FIELD_BITS} "
                                f"and hold the {self.format.width}-bit format")
        if self.bus_bits % self.field_bits or self.bus_bits % 8 or not 8 <= self.bus_bits <= 1024:
            raise ContractError(f"bus_bits={self.bus_bits}: must be a multiple of field_bits "
                                f"({self.field_bits}) and of 8, at most 1024")

    @classmethod
    def packed(cls, values: int, fmt: FixedFormat, bus_bits: int) -> "StreamLayout":
        """The narrowest power-of-two field that holds ``fmt``, on a ``bus_bits`` bus."""
        field = next((f for f in FIELD_BITS if f >= fmt.width), None)
        if field is None:
            raise ContractError(f"{fmt.hls_type()}: wider than 64 bits")
        return cls(values, fmt, field, bus_bits)

    @property
    def values_per_beat(self) -> int:
        return self.bus_bits // self.field_bits

    @property
    def beats_per_sample(self) -> int:
        return -(-self.values // self.values_per_beat)

    @property
    def bus_bytes(self) -> int:
        return self.bus_bits // 8

    @property
    def bytes_per_sample(self) -> int:
        return self.beats_per_sample * self.bus_bytes

    def describe(self) -> str:
        """One line for people: ``16 x ap_fixed<16,5,...> in 16-bit fields, 4/beat on 64 bits, ...``."""
        return (f"{self.values} x {self.format.hls_type()} in {self.field_bits}-bit fields, "
                f"{self.values_per_beat}/beat on {self.bus_bits} bits, {self.beats_per_sample} beat(s)/sample")

    def to_dict(self) -> dict:
        return {"values": self.values, "format": self.format.to_dict(), "field_bits": self.field_bits,
                "bus_bits": self.bus_bits, "values_per_beat": self.values_per_beat,
                "beats_per_sample": self.beats_per_sample, "bytes_per_sample": self.bytes_per_sample,
                "byte_order": "little", "extension": "sign" if self.format.signed else "zero"}

    @classmethod
    def from_dict(cls, d: dict, where: str) -> "StreamLayout":
        try:
            layout = cls(int(d["values"]), FixedFormat.from_dict(d["format"], f"{where}.format"),
                         int(d["field_bits"]), int(d["bus_bits"]))
        except KeyError as exc:
            raise ContractError(f"{where}: missing field {exc.args[0]!r}") from None
        except FormatError as exc:
            raise ContractError(str(exc)) from None
        derived = layout.to_dict()
        for key in ("values_per_beat", "beats_per_sample", "bytes_per_sample", "byte_order"):
            if key in d and d[key] != derived[key]:
                raise ContractError(f"{where}.{key}={d[key]!r} contradicts the layout ({derived[key]!r})")
        return layout


@dataclass(frozen=True)
class IOContract:
    """Both streams of a model IP plus the name of its top function."""

    input: StreamLayout
    output: StreamLayout
    top: str

    #: How TLAST behaves, stated once for every implementation (HLS wrapper, RTL wrapper, emulator).
    TLAST_RULE = ("output TLAST is asserted on the last output beat of every sample whose input beats "
                  "carried TLAST (the DMA sets it on the last beat of each transfer); samples are "
                  "processed whole, so an input transfer that ends mid-sample leaves the partial "
                  "sample buffered until more beats arrive")

    def initiation_interval(self, reuse: int = 1) -> int:
        """Cycles between the starts of consecutive samples when nothing stalls: the one II rule.

        Each stream moves at most one beat per cycle, so a sample needs ``beats_per_sample``
        cycles on its input and on its output stream; hls4ml's network accepts a sample every
        ``reuse`` cycles. The HLS top's pipeline pragma, the RTL wrapper, the timing estimate and
        the emulator all use this, so they cannot disagree (e.g. with 8-bit inputs, where the
        output needs more beats than the input).
        """
        if reuse < 1:
            raise ContractError(f"reuse={reuse}: must be >= 1")
        return max(self.input.beats_per_sample, self.output.beats_per_sample, reuse)

    def to_dict(self) -> dict:
        return {"top": self.top, "input": self.input.to_dict(), "output": self.output.to_dict(),
                "tlast": self.TLAST_RULE, "protocol": "AXI4-Stream, TDATA+TKEEP+TLAST, TKEEP all ones"}

    @classmethod
    def from_dict(cls, d: dict, where: str = "io") -> "IOContract":
        try:
            return cls(StreamLayout.from_dict(d["input"], f"{where}.input"),
                       StreamLayout.from_dict(d["output"], f"{where}.output"), str(d["top"]))
        except KeyError as exc:
            raise ContractError(f"{where}: missing field {exc.args[0]!r}") from None
