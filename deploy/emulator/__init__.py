"""psqs.deploy.emulator: a PYNQ.remote-compatible board emulator, for hardware in the loop without
hardware.

The unmodified pynq client library talks gRPC to it exactly as it would to a PYNQ.remote board:
it reads the board's files, uploads and programs an overlay through the fpga_manager, programs the
PL clocks, allocates DMA buffers and drives the AXI DMA and the stream probe through their
registers. Behind the registers, the model IP is the package's own C (or RTL) simulation, so the
outputs are bit-exact, and every transfer is timed in fabric cycles.

Modules, bottom up: :mod:`.clock` (emulated time), :mod:`.memory` (DDR buffers), :mod:`.sandbox`
(the board's files), :mod:`.ps_regs` (PS registers), :mod:`.timing` (beat timing), :mod:`.probe`
(stream probe registers), :mod:`.converters` (width/subset converters between DMA and model),
:mod:`.hls_regs` (the model IP's AXI-Lite registers), :mod:`.stream` (the model IP), :mod:`.dma`
(AXI DMA registers),
:mod:`.faults`, :mod:`.packages` (served overlays), :mod:`.board`, :mod:`.services` (gRPC),
:mod:`.server`, :mod:`.cli` (``psqs emulate``) and :mod:`.client_env` (pynq clients with private
state). :mod:`.local_device` puts the same board behind pynq's *on-board* device API (pynq's own
device discovery, in-process), for the code path a script on a PYNQ image takes.
"""
from .board import EmulatedBoard, EmulatorConfig
from .faults import Fault

__all__ = ["EmulatedBoard", "EmulatorConfig", "EmulatorServer", "Fault"]


def __getattr__(name):
    """``EmulatorServer`` on first use: it needs gRPC and pynq 4.0's PYNQ.remote stubs, which the
    on-board path (:mod:`.local_device`, in a PYNQ image's environment) has not."""
    if name == "EmulatorServer":
        from .server import EmulatorServer

        return EmulatorServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
