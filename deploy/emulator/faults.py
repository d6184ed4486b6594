"""Injected faults: the failures a host's error paths must survive, on demand and one at a time.

A fault is armed for the n-th DMA input (MM2S) transfer from now on and fires once:

- ``hang``: the model IP swallows the transfer's samples and emits nothing, and stays stuck
  until the DMA is reset (the host sees no completion within its timeout);
- ``decode-error`` / ``slave-error``: the MM2S read of the source buffer gets an AXI DECERR /
  SLVERR, so the channel halts with DMASR.DMADecErr / DMASlvErr and Err_Irq set;
- ``no-tlast``: the transfer's output beats come without TLAST, so the S2MM channel either waits
  for an end that never comes or fills its buffer and halts with DMASR.DMAIntErr;
- ``stall=MS``: the model IP pauses MS milliseconds (emulated time) before its first output.

Spelled ``KIND`` or ``KIND@N`` (the N-th transfer, default 1) on the command line.
"""
from __future__ import annotations

from dataclasses import dataclass

from psqs.common.errors import PsqsError

KINDS = ("hang", "decode-error", "slave-error", "no-tlast", "stall")


class FaultSpecError(PsqsError, ValueError):
    """A fault specification that cannot be parsed."""


@dataclass(frozen=True)
class Fault:
    kind: str
    stall_ms: float = 0.0
    at_transfer: int = 1

    def __post_init__(self):
        if self.kind not in KINDS:
            raise FaultSpecError(f"fault {self.kind!r}: must be one of {', '.join(KINDS)}")
        if self.kind == "stall" and not self.stall_ms > 0:
            raise FaultSpecError(f"fault stall: needs a positive duration, e.g. stall=50 (ms), got {self.stall_ms}")
        if self.kind != "stall" and self.stall_ms:
            raise FaultSpecError(f"fault {self.kind}: takes no duration")
        if self.at_transfer < 1:
            raise FaultSpecError(f"fault {self.kind}@{self.at_transfer}: the transfer number must be >= 1")

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``hang``, ``no-tlast@3``, ``stall=50``, ``stall=2.5@2`` ..."""
        spec, _, at = text.strip().partition("@")
        kind, _, value = spec.partition("=")
        try:
            at_transfer = int(at) if at else 1
            stall_ms = float(value) if value else 0.0
        except ValueError:
            raise FaultSpecError(f"fault {text!r}: expected KIND[=MS][@N], e.g. hang, stall=50, no-tlast@2") from None
        return cls(kind, stall_ms, at_transfer)

    def __str__(self) -> str:
        duration = f"={self.stall_ms:g}" if self.kind == "stall" else ""
        return f"{self.kind}{duration}@{self.at_transfer}"
