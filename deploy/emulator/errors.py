"""Errors a client can cause, each with the gRPC status code the client receives.

pynq's client ignores the ``status``/``msg`` fields of several responses, so the only reliable
way to tell it a request failed is to abort the RPC with a status code; the services catch these
exceptions and do exactly that, then go on serving. :class:`EmulatorError` and :class:`BusError`
therefore never reach a command line (they become a status code or DMA status bits) and are not
:class:`~psqs.common.errors.PsqsError`; :class:`PackageError`, raised while the emulator starts, is.
``code`` names a ``grpc.StatusCode`` member rather than holding it, so that the board model also
runs where gRPC is absent (the on-board path in a PYNQ image's environment, :mod:`.local_device`).
"""
from __future__ import annotations

from psqs.common.errors import PsqsError


class EmulatorError(Exception):
    """A request the emulated board refuses; ``code`` is what the client sees."""

    code = "INTERNAL"


class InvalidArgument(EmulatorError):
    code = "INVALID_ARGUMENT"


class NotFound(EmulatorError):
    code = "NOT_FOUND"


class OutOfRange(EmulatorError):
    code = "OUT_OF_RANGE"


class FailedPrecondition(EmulatorError):
    code = "FAILED_PRECONDITION"


class PermissionDenied(EmulatorError):
    code = "PERMISSION_DENIED"


class ResourceExhausted(EmulatorError):
    code = "RESOURCE_EXHAUSTED"


class Unimplemented(EmulatorError):
    code = "UNIMPLEMENTED"


class DecodeError(OutOfRange):
    """A CPU access to an address no slave decodes (AXI DECERR on the general-purpose port)."""


class BusError(Exception):
    """An AXI error response seen by the DMA's memory-mapped side (not a client error)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind  # "decode" (DECERR) or "slave" (SLVERR)


class PackageError(PsqsError):
    """An overlay package the emulator cannot serve (inconsistent, or not built for emulation)."""
