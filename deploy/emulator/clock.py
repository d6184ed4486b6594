"""Emulated time: the wall clock minus the emulator's own computing, and the fabric's cycles.

The emulator computes a transfer's data at once (the C simulation of the model is far slower than
the fabric it stands for) and reports the transfer complete when *emulated* time reaches the cycle
at which the fabric would have finished. Emulated time runs with the wall clock, except while the
emulator is computing: without that pause a 0.7 s C simulation of a 10,000-sample batch would look
to the host like a 0.7 s transfer, and to the stream probe like a 70-million-cycle latency, where
the fabric needs about a millisecond.
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator


class VirtualClock:
    """Seconds of emulated time: ``wall() - (time spent inside paused())``, never decreasing."""

    def __init__(self, wall: Callable[[], float] = time.monotonic):
        self._wall = wall
        self._origin = wall()
        self._lock = threading.Lock()
        self._paused_total = 0.0
        self._pause_depth = 0
        self._paused_at = 0.0

    def now(self) -> float:
        with self._lock:
            if self._pause_depth:
                return self._paused_at - self._origin - self._paused_total
            return self._wall() - self._origin - self._paused_total

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stop emulated time while the emulator computes (re-entrant, thread-safe)."""
        with self._lock:
            if self._pause_depth == 0:
                self._paused_at = self._wall()
            self._pause_depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._pause_depth -= 1
                if self._pause_depth == 0:
                    self._paused_total += self._wall() - self._paused_at


class CycleClock:
    """Cycles of the PL clock that drives the design, since power-on.

    The frequency is whatever the PS currently programs (pynq sets it from the ``.hwh`` when it
    downloads an overlay); :meth:`retune` keeps the count continuous across changes, as a counter
    in the fabric would be. A stopped clock (0 MHz) does not advance.
    """

    def __init__(self, clock: VirtualClock, mhz: float):
        self.clock = clock
        self._lock = threading.Lock()
        self._anchor_s = clock.now()
        self._anchor_cycles = 0
        self._mhz = mhz

    @property
    def mhz(self) -> float:
        return self._mhz

    def _cycles_at(self, seconds: float) -> int:
        return self._anchor_cycles + int((seconds - self._anchor_s) * self._mhz * 1e6)

    def now(self) -> int:
        with self._lock:
            return self._cycles_at(self.clock.now())

    def cycles_in(self, seconds: float) -> int:
        """How many cycles ``seconds`` of emulated time last at the current frequency."""
        return int(seconds * self._mhz * 1e6)

    def retune(self, mhz: float) -> None:
        with self._lock:
            now = self.clock.now()
            self._anchor_cycles = self._cycles_at(now)
            self._anchor_s = now
            self._mhz = mhz
