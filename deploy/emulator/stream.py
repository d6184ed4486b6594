"""The model IP between the DMA's two channels: its data (a simulation library) and its timing.

Data: the input beats go into the model's C (or RTL) simulation exactly as the DMA would send
them, TLAST on a transfer's last beat, and the output beats come out of it; a partial sample stays
inside the library until its remaining beats arrive, as it would in the IP's input FIFO, so a host
that sends the wrong number of bytes sees a missing answer rather than invented data.

Timing: :mod:`.timing` turns beats into cycles. Output beats wait in the output FIFO until the
S2MM channel takes them; the IP and the DMA's buffers hold at most ``capacity`` samples whose
outputs nobody has taken, after which the input stream stalls (back-pressure), so a host that
waits for its MM2S transfer before arming the S2MM channel deadlocks here as it would on the board.
A stalled input resumes in the cycle the S2MM channel is armed (on hardware, a few beats later,
when the first slot frees).

Threads: the fabric runs beside the CPU, so the data is computed on the board's worker thread
(:mod:`.dma`), in three steps: :meth:`ModelStream.accept` (under the board's lock: the beats'
cycles, the probe), :meth:`ModelStream.compute` (the simulation library, without the lock, so that
register accesses go on meanwhile; only the worker thread ever calls the library) and
:meth:`ModelStream.finish` (under the lock: the outputs and their cycles). A reset between the
first and the last step starts a new epoch: the computed outputs of the old one are dropped, and
the library is reset before it computes anything for the new one.

Faults (:mod:`.faults`) that concern the IP act here: a hung IP swallows every beat until it is
reset, a stall delays a transfer's outputs, a missing TLAST strips the flag from its outputs.

Stream IPs between the DMA and the model (width and subset converters, :mod:`.converters`) sit
on either side: the DMA moves beats of its own width, the library gets the model's own beats,
and the S2MM channel takes what leaves the last converter (its null bytes are not written).
Back-pressure counts samples in DMA beats at the converters' width ratios.
"""
from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from psqs.hls.csim import AxisLibrary

from . import timing as tm
from .clock import CycleClock
from .converters import Beats, Chain
from .faults import Fault
from .probe import StreamProbe

log = logging.getLogger(__name__)

_EPOCHS = itertools.count(1)   # stream-path epochs: a reset starts a new one, voiding the pushes of the old


@dataclass
class Push:
    """Input beats on their way through the model: accepted, then computed, then finished."""

    epoch: int
    data: np.ndarray
    last: np.ndarray
    accepted: tm.Accepted
    fault: Fault | None
    samples: int = 0             # computed by the library
    measured: int = 0            # RTL cycles of the push
    out_data: np.ndarray | None = None
    out_last: np.ndarray | None = None


class ModelStream:
    """The model IP's input and output streams (one instance per programmed overlay)."""

    def __init__(self, library: AxisLibrary, timing: tm.StreamTiming, cycles: CycleClock, capacity: int,
                 probe: StreamProbe | None = None, rtl_cycles: Callable[[], int] | None = None,
                 mm2s: Chain | None = None, s2mm: Chain | None = None):
        if capacity < 1:
            raise ValueError(f"stream capacity {capacity}: must be at least one sample")
        self.library, self.timing, self.cycles = library, timing, cycles
        self.capacity, self.probe, self.rtl_cycles = capacity, probe, rtl_cycles
        model_in, model_out = library.in_bus_bytes, library.out_bus_bytes
        self.mm2s = mm2s if mm2s is not None else Chain([], model_in, model_in, "MM2S stream")
        self.s2mm = s2mm if s2mm is not None else Chain([], model_out, model_out, "S2MM stream")
        if (self.mm2s.out_bytes, self.s2mm.in_bytes) != (model_in, model_out):
            raise ValueError(f"the stream IPs deliver {self.mm2s.out_bytes}/{self.s2mm.in_bytes}-byte beats, the model "
                             f"library moves {model_in}/{model_out}")
        self.model_in_bytes, self.model_out_bytes = model_in, model_out
        self.in_bytes, self.out_bytes = self.mm2s.in_bytes, self.s2mm.out_bytes   # the DMA's side
        self.dma_out_beats = -(-timing.out_beats // self.s2mm.ratio)   # S2MM beats per sample, without TLAST
        self._library_epoch: int | None = None   # the epoch whose data the library holds (worker thread only)
        if (library.in_beats_per_sample, library.out_beats_per_sample) != (timing.in_beats, timing.out_beats):
            raise ValueError(f"the model library moves {library.in_beats_per_sample}/{library.out_beats_per_sample} "
                             f"beats per sample, the timing model {timing.in_beats}/{timing.out_beats}")
        self.reset()

    def reset(self) -> None:
        """Reset the stream path (the IP and the probe): buffered beats, partial samples, a hang and
        the probe's registers are gone (the library itself is reset by the worker, before its next
        computation)."""
        self.epoch = next(_EPOCHS)
        if self.probe is not None:
            self.probe.reset()
        self.side = tm.InputSide()
        self.mm2s.reset()
        self.s2mm.reset()
        self.dma_last_beat = -1
        self.hung = False
        self._queue: deque[list] = deque()   # [data (n, width), keep (n, width), last (n,), produced (n,)]
        self.queued_beats = 0

    # ---------------------------------------------------------------- input side
    def room(self, s2mm_beats: int) -> int:
        """How many more samples may complete now without overfilling the output path, given that
        the S2MM channel will take up to ``s2mm_beats`` beats."""
        if self.hung:
            return 1 << 62                                # a hung IP takes every beat and drops it
        queued_after = max(0, self.queued_beats - s2mm_beats)
        free_beats = self.capacity * self.dma_out_beats - queued_after
        credit = max(0, s2mm_beats - self.queued_beats)   # beats of not-yet-produced samples it will take
        return max(0, (free_beats + credit) // self.dma_out_beats)

    def beats_for(self, samples: int) -> int:
        """The most input beats (of the DMA's width) that complete at most ``samples`` more samples."""
        model_beats = max(0, samples * self.timing.in_beats - self.side.partial + self.timing.in_beats - 1)
        return int(-(-model_beats * self.mm2s.ratio // 1))

    @property
    def input_done(self) -> int:
        """The cycle after the last input beat left the DMA (entered the model or a converter)."""
        return max(self.side.last_beat, self.dma_last_beat) + 1

    def accept(self, data: np.ndarray, tlast: bool, start: int, fault: Fault | None,
               valid: int | None = None) -> Push | None:
        """Beats (``data``: whole beats of bytes of the DMA's width, the first ``valid`` of them
        valid, default all) offered from cycle ``start``; TLAST on the last one if ``tlast``. Carries
        them across the stream IPs, times the model's beats (the probe sees them); returns what the
        library must compute, or None when a hung IP swallows them."""
        n_dma = data.size // self.in_bytes
        keep = np.arange(data.size) < (data.size if valid is None else valid)
        dma_last = np.zeros(n_dma, dtype=bool)
        dma_last[-1] = tlast
        beats = self.mm2s.push(Beats.of(data, self.in_bytes, dma_last, start + np.arange(n_dma), keep))
        self.dma_last_beat = max(self.dma_last_beat, start + n_dma - 1)
        data, last, n = beats.data.reshape(-1), beats.last.astype(np.uint8), len(beats)
        if fault is not None and fault.kind == "hang":
            log.warning("fault: the model IP hangs (no output until the DMA is reset)")
            self.hung = True
        accepted = tm.accept(self.timing, self.side, start, n)
        if self.probe is not None:
            self.probe.observe("in", accepted.beat_times, last)
        return None if self.hung else Push(self.epoch, data, last, accepted, fault)

    def compute(self, push: Push) -> None:
        """Run the library on ``push`` (the worker thread, without the board's lock)."""
        if self._library_epoch != push.epoch:
            self.library.reset()
            self._library_epoch = push.epoch
        before = self.rtl_cycles() if self.rtl_cycles else 0
        push.samples = self.library.push(push.data, push.last)
        push.measured = self.rtl_cycles() - before if self.rtl_cycles else 0
        push.out_data, push.out_last = self.library.pop(self.library.pending_out_beats)

    def finish(self, push: Push) -> bool:
        """Queue the outputs of a computed ``push`` with their cycles; False if a reset since
        :meth:`accept` made them void."""
        if push.epoch != self.epoch:
            return False
        accepted, fault, out_data, out_last = push.accepted, push.fault, push.out_data, push.out_last
        if push.samples != accepted.sample_ends.size or out_last.size != push.samples * self.timing.out_beats:
            raise RuntimeError(f"model library and timing model disagree: {push.samples} samples computed, "
                               f"{accepted.sample_ends.size} completed, {out_last.size} output beats")
        delay = 0
        if fault is not None and fault.kind == "stall":
            delay = self.cycles.cycles_in(fault.stall_ms / 1000)
            log.warning("fault: the model IP stalls %g ms (%d cycles)", fault.stall_ms, delay)
            if self.side.next_start is not None:
                self.side.next_start += delay
        if fault is not None and fault.kind == "no-tlast":
            log.warning("fault: output TLAST suppressed on %d beats", out_last.size)
            out_last = np.zeros_like(out_last)
        if self.rtl_cycles and push.samples:
            produced = tm.measured_production_times(self.timing, int(accepted.beat_times[0]),
                                                     accepted.sample_ends, push.measured, delay)
        else:
            produced = tm.production_times(self.timing, accepted.sample_ends, delay)
        beats = self.s2mm.push(Beats.of(out_data, self.model_out_bytes, out_last, produced))
        if len(beats):
            self._queue.append([beats.data, beats.keep, beats.last.astype(np.uint8), beats.times])
            self.queued_beats += len(beats)
        return True

    # ---------------------------------------------------------------- output side
    def beats_to_tlast(self) -> int | None:
        """Queued beats up to and including the first queued TLAST, if any."""
        seen = 0
        for _, _, last, _ in self._queue:
            hits = np.flatnonzero(last)
            if hits.size:
                return seen + int(hits[0]) + 1
            seen += last.size
        return None

    def take(self, max_beats: int, ready_from: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Up to ``max_beats`` output beats, stopping after a TLAST beat, as the S2MM channel takes
        them from cycle ``ready_from``: (their valid bytes, TLAST flags, delivery cycles)."""
        stop = self.beats_to_tlast()
        want = min(max_beats, self.queued_beats, stop if stop is not None else max_beats)
        chunks, got = [], 0
        while got < want:
            data, keep, last, produced = self._queue[0]
            k = min(want - got, last.size)
            chunks.append((data[:k][keep[:k]], last[:k], produced[:k]))
            if k == last.size:
                self._queue.popleft()
            else:
                self._queue[0] = [data[k:], keep[k:], last[k:], produced[k:]]
            got += k
        self.queued_beats -= got
        if not chunks:
            empty = np.empty(0, dtype=np.uint8)
            return empty, empty, np.empty(0, dtype=np.int64)
        data = np.concatenate([c[0] for c in chunks])
        last = np.concatenate([c[1] for c in chunks])
        delivered = tm.deliveries(np.concatenate([c[2] for c in chunks]), ready_from)
        if self.probe is not None:
            self.probe.observe("out", delivered, last)
        return data, last, delivered
