"""The stream interfaces a converted model IP can have: configuration as data, validated once.

``psqs`` (the default) packs the model's fixed-point codes several per beat on the board's HP-port
width (fewest beats per jet). The two ``hls4ml-*`` interfaces are what scripts written for hls4ml's
``VivadoAccelerator`` overlays expect, so such a script runs on a psqs-built overlay unchanged:

- ``hls4ml-float``: ``float`` (IEEE binary32) elements in and out, one per beat on a 32-bit bus.
  The top converts each input float to the network's ``input_t`` in C, as hls4ml's
  ``myproject_axi`` does (``in_local[i] = in[i].data``), so the host only casts to float32;
  each output value is converted to ``float`` (round to nearest even, exact up to 24 bits);
- ``hls4ml-fixed``: the model's own input and output ``ap_fixed`` formats, widened to whole bytes
  as hls4ml widens them (:meth:`StreamLayout.one_per_beat`), one per beat.

Both ``hls4ml-*`` interfaces also ask the overlay build for hls4ml's block-design layout: the DMA
and the model IP in a hierarchy ``hier_0``, so ``overlay.hier_0.axi_dma_0`` exists.
"""
from __future__ import annotations

from dataclasses import dataclass

from psqs.common.contract import IOContract, StreamLayout
from psqs.common.fixed_point import FixedFormat

from .convert import ConversionError


@dataclass(frozen=True)
class StreamInterface:
    name: str
    #: the IEEE element both streams carry, or None: the model's own fixed-point formats
    element: str | None
    #: several values per beat on the bus (psqs), or one per beat on a bus one element wide (hls4ml)
    packed: bool
    #: the block-design hierarchy the overlay puts the DMA and the model IP in (None: top level)
    hierarchy: str | None

    def layout(self, values: int, fmt: FixedFormat, bus_bits: int) -> StreamLayout:
        if self.packed:
            return StreamLayout.packed(values, fmt, bus_bits)
        return StreamLayout.one_per_beat(values, self.element or fmt)

    def contract(self, inputs: tuple[int, FixedFormat], outputs: tuple[int, FixedFormat], bus_bits: int,
                 top: str) -> IOContract:
        """The I/O contract of a model with ``inputs``/``outputs`` (values, fixed-point format)."""
        return IOContract(self.layout(*inputs, bus_bits), self.layout(*outputs, bus_bits), top)

    def to_dict(self) -> dict:
        return {"name": self.name, "hierarchy": self.hierarchy,
                "layout": "packed" if self.packed else "one element per beat",
                "element": self.element or "the model's fixed-point formats"}


INTERFACES = {i.name: i for i in (
    StreamInterface("psqs", None, True, None),
    StreamInterface("hls4ml-float", "float32", False, "hier_0"),
    StreamInterface("hls4ml-fixed", None, False, "hier_0"),
)}
DEFAULT = "psqs"


def interface(name: str) -> StreamInterface:
    """The interface called ``name``; one line naming the choices otherwise."""
    try:
        return INTERFACES[name]
    except KeyError:
        raise ConversionError(f"interface={name!r}: must be one of {', '.join(INTERFACES)}") from None
