"""The I/O contract of a model IP: how samples travel as AXI-stream beats.

Written by the HLS conversion (or the hls4ml import) into its manifest and copied unchanged into
overlay packages; the board's codec, the emulator and the RTL wrapper all work from this one
description.

Layout of one stream: each value is one *element* in a ``field_bits``-wide field, ``bus_bits //
field_bits`` fields per beat, value ``i`` of a beat in bits ``[i*field_bits, (i+1)*field_bits)``
of TDATA; a sample occupies whole beats and the unused fields of its last beat are zero. TDATA is
little-endian in memory (AXI byte lanes), so a buffer of samples is simply an array of
``field_bits``-wide little-endian fields, row-padded to whole beats. The element is one of:

- ``fixed``: an ``ap_fixed<W, I>`` code (``format``), sign- or zero-extended to its field; only
  the low ``W`` bits of a field count when read. Fields are any multiple of 8 bits up to 64.
- ``float32`` / ``float64``: an IEEE-754 binary32 / binary64 in a 32- / 64-bit field (C ``float``
  / ``double``); ``format`` is ``None``, because the element itself is the wire type and a
  fixed-point format beside it would be a second, contradictable description.

psqs's own IP packs fixed-point codes several per beat (:meth:`StreamLayout.packed`); hls4ml's
``VivadoAccelerator`` top moves one element per beat on a bus exactly one element wide
(:meth:`StreamLayout.one_per_beat`), which is the same rule with one field per beat.
"""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import Optional, Union

from .errors import PsqsError
from .fixed_point import FixedFormat, FormatError

#: Field widths a stream may use: whole bytes, up to a 64-bit code.
FIELD_BITS = tuple(range(8, 65, 8))
#: Field widths psqs's own packed layouts use (the narrowest that holds the format).
PACKED_FIELD_BITS = (8, 16, 32, 64)
#: Element kinds, and the bits and C type of the IEEE ones.
ELEMENTS = ("fixed", "float32", "float64")
FLOAT_ELEMENTS = {"float32": (32, "float"), "float64": (64, "double")}


class ContractError(PsqsError, ValueError):
    """An I/O contract is invalid or does not match what a component expects."""


@dataclass(frozen=True)
class StreamLayout:
    values: int
    format: Optional[FixedFormat]
    field_bits: int
    bus_bits: int
    element: str = "fixed"

    def __post_init__(self):
        for name in ("values", "field_bits", "bus_bits"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral):
                raise ContractError(f"{name}={value!r}: must be an integer")
            object.__setattr__(self, name, int(value))      # numpy integers too, as plain ints
        if self.values < 1:
            raise ContractError(f"values={self.values}: must be >= 1")
        if self.element not in ELEMENTS:
            raise ContractError(f"element={self.element!r}: must be one of {', '.join(ELEMENTS)}")
        if self.element == "fixed":
            if not isinstance(self.format, FixedFormat):
                raise ContractError(f"format={self.format!r}: a fixed element needs a fixed-point format")
            if self.field_bits not in FIELD_BITS or self.field_bits < self.format.width:
                raise ContractError(f"field_bits={self.field_bits}: must be a multiple of 8 up to 64 "
                                    f"and hold the {self.format.width}-bit format")
        else:
            if self.format is not None:
                raise ContractError(f"format={self.format.hls_type()}: must be None for {self.element} "
                                    f"elements (the element is the wire type)")
            bits = FLOAT_ELEMENTS[self.element][0]
            if self.field_bits != bits:
                raise ContractError(f"field_bits={self.field_bits}: {self.element} elements take {bits} bits")
        if self.bus_bits % self.field_bits or not 8 <= self.bus_bits <= 1024:
            raise ContractError(f"bus_bits={self.bus_bits}: must be a multiple of field_bits "
                                f"({self.field_bits}), at most 1024")

    @classmethod
    def packed(cls, values: int, fmt: FixedFormat, bus_bits: int) -> "StreamLayout":
        """psqs's layout: the narrowest power-of-two field that holds ``fmt``, on a ``bus_bits`` bus."""
        field = next((f for f in PACKED_FIELD_BITS if f >= fmt.width), None)
        if field is None:
            raise ContractError(f"{fmt.hls_type()}: wider than 64 bits")
        return cls(values, fmt, field, bus_bits)

    @classmethod
    def one_per_beat(cls, values: int, element: Union[str, FixedFormat]) -> "StreamLayout":
        """hls4ml's ``VivadoAccelerator`` ``axi_stream`` layout: one element per beat, TDATA exactly
        one element wide, value ``i`` in beat ``i``.

        ``element`` is ``"float32"``, ``"float64"`` or the declared ``ap_fixed`` format. hls4ml
        widens a fixed-point interface type to whole bytes keeping its integer bits
        (``_next_factor8_type``: ``ap_fixed<18,8>`` travels as ``ap_fixed<24,8>``, the same range
        with more fraction bits), so the wire format here is that widened one; a format already
        byte-wide is unchanged.
        """
        if isinstance(element, FixedFormat):
            width = -(-element.width // 8) * 8
            wire = FixedFormat(width, element.integer, element.signed, element.rounding, element.overflow)
            return cls(values, wire, width, width)
        if element not in FLOAT_ELEMENTS:
            raise ContractError(f"element={element!r}: must be one of {', '.join(FLOAT_ELEMENTS)} "
                                f"or a fixed-point format")
        bits = FLOAT_ELEMENTS[element][0]
        return cls(values, None, bits, bits, element)

    @property
    def values_per_beat(self) -> int:
        return self.bus_bits // self.field_bits

    @property
    def beats_per_sample(self) -> int:
        return -(-self.values // self.values_per_beat)

    @property
    def fields_per_sample(self) -> int:
        """Fields a sample occupies, padding included (whole beats)."""
        return self.beats_per_sample * self.values_per_beat

    @property
    def bus_bytes(self) -> int:
        return self.bus_bits // 8

    @property
    def bytes_per_sample(self) -> int:
        return self.beats_per_sample * self.bus_bytes

    def element_type(self) -> str:
        """The C/HLS type of one value on the wire: ``float``, ``double`` or ``ap_fixed<...>``."""
        return self.format.hls_type() if self.element == "fixed" else FLOAT_ELEMENTS[self.element][1]

    def describe(self) -> str:
        """One line for people: ``16 x ap_fixed<16,5,...> in 16-bit fields, 4/beat on 64 bits, ...``
        or ``16 x float32, 1/beat on 32 bits, 16 beat(s)/sample``."""
        what = (f"{self.format.hls_type()} in {self.field_bits}-bit fields" if self.element == "fixed"
                else self.element)
        return (f"{self.values} x {what}, {self.values_per_beat}/beat on {self.bus_bits} bits, "
                f"{self.beats_per_sample} beat(s)/sample")

    def to_dict(self) -> dict:
        fixed = self.element == "fixed"
        return {"values": self.values, "element": self.element,
                "format": self.format.to_dict() if fixed else None, "field_bits": self.field_bits,
                "bus_bits": self.bus_bits, "values_per_beat": self.values_per_beat,
                "beats_per_sample": self.beats_per_sample, "bytes_per_sample": self.bytes_per_sample,
                "byte_order": "little",
                "extension": ("sign" if self.format.signed else "zero") if fixed else None}

    @classmethod
    def from_dict(cls, d: dict, where: str) -> "StreamLayout":
        """The layout a manifest states. Manifests written before elements existed have no
        ``element`` key: they describe fixed-point fields, so they load unchanged."""
        if not isinstance(d, dict):
            raise ContractError(f"{where}: must be a mapping, got {type(d).__name__}")
        element = d.get("element", "fixed")
        if element not in ELEMENTS:
            raise ContractError(f"{where}.element={element!r}: must be one of {', '.join(ELEMENTS)}")
        fmt = None
        if element == "fixed":
            if not isinstance(d.get("format"), dict):
                raise ContractError(f"{where}.format={d.get('format')!r}: fixed elements need a "
                                    f"fixed-point format")
            try:
                fmt = FixedFormat.from_dict(d["format"], f"{where}.format")
            except FormatError as exc:
                raise ContractError(str(exc)) from None
        elif d.get("format") is not None:
            raise ContractError(f"{where}.format: must be null for {element!r} elements "
                                f"(the element is the wire type)")
        for key in ("values", "field_bits", "bus_bits"):
            if key not in d:
                raise ContractError(f"{where}: missing field {key!r}")
        try:
            layout = cls(d["values"], fmt, d["field_bits"], d["bus_bits"], element)
        except ContractError as exc:
            raise ContractError(f"{where}.{exc}") from None
        derived = layout.to_dict()
        for key in ("values_per_beat", "beats_per_sample", "bytes_per_sample", "byte_order", "extension"):
            if key in d and d[key] != derived[key]:
                raise ContractError(f"{where}.{key}={d[key]!r} contradicts the layout ({derived[key]!r})")
        return layout


@dataclass(frozen=True)
class IOContract:
    """Both streams of a model IP plus the name of its top function."""

    input: StreamLayout
    output: StreamLayout
    top: str

    #: How TLAST behaves, stated once for every implementation (HLS wrapper, RTL wrapper, emulator,
    #: hls4ml's ``myproject_axi`` top, which sets it on the last output element the same way).
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
        output needs more beats than the input; or one element per beat, where a sample takes
        as many cycles as it has values).
        """
        if reuse < 1:
            raise ContractError(f"reuse={reuse}: must be >= 1")
        return max(self.input.beats_per_sample, self.output.beats_per_sample, reuse)

    def require_fixed(self, component: str) -> None:
        """Refuse, in one line, a contract with float elements for a component that implements
        fixed-point fields only (psqs's HLS and RTL wrappers): without this it would fail deep
        inside on the absent fixed-point format."""
        for name, layout in (("input", self.input), ("output", self.output)):
            if layout.element != "fixed":
                raise ContractError(f"io.{name}: {layout.describe()}: {component} supports fixed-point "
                                    f"elements only")

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
