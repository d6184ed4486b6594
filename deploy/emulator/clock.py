"""Emulated time: the fabric's cycle counter, which moves with the streams and never with the host.

The fabric clock of an emulated board does not run with the wall clock. It stands at the cycle of
the latest fabric event the host has *observed* (a DMA channel it read reporting a transfer
complete or failed) and moves forward only to such cycles; everything the host does between two
observations happens, in fabric time, at the current cycle. So a channel armed while the host
has seen nothing new is armed at the same cycle as the one before it, whether the host paused
for 10 us or for a gRPC round trip of 2 ms, and the stream probe measures the fabric alone:
LAST_LATENCY and LAST_TRANSFER_TIME are the same whichever DMA channel pynq starts first and
whatever the delay between the two calls. (On a board the host's delay would show when the
input is started first; the emulator reports what the fabric needs, which is what the probe is
read for.) The probe's CYCLES register reads this counter too.

The wall clock has one role: a completion (or an error found mid-transfer) becomes visible only
once the wall clock has passed the LENGTH write that started the transfer plus the transfer's
fabric duration at the current PL clock (:meth:`CycleClock.seconds`), so that a host never sees
an emulated transfer finish sooner than the fabric could, and a ``stall`` fault of 3 s is seen
3 s later. The emulator's own computing (the C simulation, on its worker thread) only delays
completions further.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class CycleClock:
    """Cycles of the PL clock that drives the design, and the wall clock that paces completions.

    The frequency is whatever the PS currently programs (pynq sets it from the ``.hwh`` when it
    downloads an overlay); :meth:`retune` changes it without touching the count, as a counter in
    the fabric would. A stopped clock (0 MHz) never lets a transfer of non-zero duration finish.
    """

    def __init__(self, mhz: float, wall: Callable[[], float] = time.monotonic):
        self.wall = wall
        self._lock = threading.Lock()
        self._cycle = 0
        self._mhz = mhz

    @property
    def mhz(self) -> float:
        return self._mhz

    def now(self) -> int:
        """The fabric cycle the host has reached (see the module docstring)."""
        with self._lock:
            return self._cycle

    def advance_to(self, cycle: int) -> None:
        """The host observed a fabric event at ``cycle``: fabric time is at least there now."""
        with self._lock:
            self._cycle = max(self._cycle, int(cycle))

    def cycles_in(self, seconds: float) -> int:
        """How many cycles ``seconds`` last at the current frequency."""
        return int(seconds * self._mhz * 1e6)

    def seconds(self, cycles: int) -> float:
        """How long ``cycles`` last at the current frequency (infinite for a stopped clock)."""
        if cycles <= 0:
            return 0.0
        return cycles / (self._mhz * 1e6) if self._mhz > 0 else math.inf

    def retune(self, mhz: float) -> None:
        with self._lock:
            self._mhz = mhz
