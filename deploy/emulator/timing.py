"""When each beat crosses the model IP's two AXI streams, in cycles of the fabric clock.

The emulator computes data with the C simulation (or the RTL simulation) and times it with this
transaction-level model of a pipelined streaming IP. With

    ib, ob   input / output beats per sample (the I/O contract),
    II       the IP's initiation interval and L its latency (the package's ``timing``: cycles from
             the first input beat of a sample to its first output beat),
    P        = max(II, ib, ob), the cycles between the starts of consecutive samples (each stream
             moves at most one beat per cycle),

a DMA input transfer that starts at cycle ``a`` (the fabric cycle of its LENGTH write, see
:mod:`.clock`) feeds its beats at one per cycle, sample k of the transfer starting at
``S_k = max(a, S_prev + P) + k*P`` (``S_prev`` the start of the sample before,
possibly in an earlier transfer), its beats at ``S_k .. S_k + ib - 1``. A sample whose last input
beat is at cycle ``e`` produces its output beats at ``e - (ib - 1) + L + j`` for j < ob (so ``L``
after its first beat when the sample arrived in one piece; at least one cycle after its last).
The output stream moves a beat only when the DMA's S2MM channel takes it: beat m is delivered at
``d_m = max(p_m, d_(m-1) + 1, s)``, p_m its production cycle and s the cycle the S2MM channel was
armed. For a transfer of n whole samples into an S2MM channel armed before it, this gives the
stream probe's figures:

    latency       = L                                  (first input beat -> first output beat)
    transfer time = L + (n - 1) * P + (ob - 1)          (first input beat -> last output beat)

With an RTL model (``psqs_cycles()``), the simulated cycles of each push replace L: a push of k
samples that took D cycles puts the last output beat at ``first beat + D`` and the others P apart.
The DMA's own memory latency and the AXI write responses are not modelled.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StreamTiming:
    in_beats: int      # per sample
    out_beats: int
    latency: int       # L, cycles
    ii: int            # initiation interval, cycles

    def __post_init__(self):
        for name in ("in_beats", "out_beats", "ii"):
            if getattr(self, name) < 1:
                raise ValueError(f"timing: {name}={getattr(self, name)} must be >= 1")
        if self.latency < 0:
            raise ValueError(f"timing: latency={self.latency} must be >= 0")

    @property
    def period(self) -> int:
        return max(self.ii, self.in_beats, self.out_beats)

    def transfer_time(self, n_samples: int) -> int:
        """First input beat to last output beat of ``n_samples`` whole samples (nothing queued)."""
        return self.latency + (n_samples - 1) * self.period + (self.out_beats - 1)


@dataclass
class InputSide:
    """Where the IP's input stream stands between transfers."""

    partial: int = 0             # beats of the current, incomplete sample already accepted
    next_start: int | None = None  # earliest cycle the next sample may start (S_prev + P)
    last_beat: int = -1          # cycle of the last accepted beat


@dataclass
class Accepted:
    """The outcome of feeding beats: when each was accepted and when each completed sample ends."""

    beat_times: np.ndarray       # int64, one per beat fed
    sample_ends: np.ndarray      # int64, cycle of the last input beat of each completed sample


def accept(timing: StreamTiming, side: InputSide, start: int, n_beats: int) -> Accepted:
    """Feed ``n_beats`` beats offered from cycle ``start`` on; updates ``side``."""
    ib, period = timing.in_beats, timing.period
    t0 = max(start, side.last_beat + 1)
    lead = min((ib - side.partial) % ib, n_beats)       # beats completing a sample begun earlier
    lead_times = t0 + np.arange(lead, dtype=np.int64)
    rest = n_beats - lead
    full, tail = divmod(rest, ib)
    starts = np.empty(0, dtype=np.int64)
    if rest:
        first = t0 + lead
        if side.next_start is not None:
            first = max(first, side.next_start)
        starts = first + period * np.arange(full + (1 if tail else 0), dtype=np.int64)
        body = (starts[:, None] + np.arange(ib, dtype=np.int64)[None, :]).reshape(-1)[:rest]
        beat_times = np.concatenate([lead_times, body])
        side.next_start = int(starts[-1]) + period
    else:
        beat_times = lead_times
    ends = starts[:full] + (ib - 1)
    if lead and side.partial + lead == ib:
        ends = np.concatenate([lead_times[-1:], ends])
    side.partial = (side.partial + n_beats) % ib
    if n_beats:
        side.last_beat = int(beat_times[-1])
    return Accepted(beat_times, ends)


def production_times(timing: StreamTiming, sample_ends: np.ndarray, extra_delay: int = 0) -> np.ndarray:
    """Cycle of every output beat of the samples ending at ``sample_ends`` (model latency)."""
    first = sample_ends + max(timing.latency - (timing.in_beats - 1), 1) + extra_delay
    return (first[:, None] + np.arange(timing.out_beats, dtype=np.int64)[None, :]).reshape(-1)


def measured_production_times(timing: StreamTiming, first_beat: int, sample_ends: np.ndarray,
                              cycles: int, extra_delay: int = 0) -> np.ndarray:
    """Output beat cycles when an RTL simulation measured ``cycles`` for the whole push.

    The simulation's first clock edge accepts the first input beat (at ``first_beat``) and its
    last edge hands over the last output beat, so that beat leaves at ``first_beat + cycles - 1``.
    """
    k, ob = sample_ends.size, timing.out_beats
    if k == 0:
        return np.empty(0, dtype=np.int64)
    last_sample_first = first_beat + cycles - 1 - (ob - 1)
    first = last_sample_first - timing.period * np.arange(k - 1, -1, -1, dtype=np.int64)
    first = np.maximum(first, sample_ends + 1) + extra_delay
    return (first[:, None] + np.arange(ob, dtype=np.int64)[None, :]).reshape(-1)


def deliveries(produced: np.ndarray, ready_from: int) -> np.ndarray:
    """Cycles the S2MM side takes beats produced at ``produced``: one per cycle, none before
    ``ready_from`` and none before it exists (``d_m = max(p_m, d_(m-1) + 1, ready_from)``)."""
    m = np.arange(produced.size, dtype=np.int64)
    return np.maximum.accumulate(np.maximum(produced - m, ready_from)) + m
