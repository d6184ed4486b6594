"""AXI4-Stream infrastructure between the DMA and the model IP: what it does to the beats.

A design may put Xilinx's AXI4-Stream IPs (PG085) between the DMA's streams and the model IP, and
the model then sees other beats than the DMA moves (the real ZCU104 Iris design gathers the DMA's
32-bit beats into 512-bit ones, then keeps the low 320 bits). The package's manifest lists them in
stream order (``streams.mm2s``: DMA to model, ``streams.s2mm``: model to DMA; written by
``psqs import-hls4ml`` from the ``.hwh``), and the emulator carries every beat across them:

- ``axis_dwidth_converter``, upsizing by an integer factor k: k narrow beats make one wide beat,
  the first in the lowest bytes (little-endian, PG085); a narrow beat with TLAST closes the wide
  beat early, its missing bytes null (TKEEP low, TDATA zero here) when the master side has TKEEP;
  the wide beat's TLAST is its last narrow beat's;
- the same, downsizing by k: a wide beat leaves as k narrow beats, lowest bytes first; in a beat
  with TLAST, the trailing narrow beats whose bytes are all null are dropped and TLAST moves to
  the last one kept (PG085's downsizer ends a packet at its last valid bytes);
- ``axis_subset_converter``: each output bit is the input bit or constant its ``TDATA_REMAP``
  (``TKEEP_REMAP``, ``TLAST_REMAP``) expression names, e.g. ``tdata[319:0]``,
  ``{tdata[7:0],tdata[15:8]}``, ``1'b1``; a master side without TKEEP keeps every byte;
- ``axis_register_slice``, ``axis_data_fifo``, ``axis_clock_converter`` and psqs's stream probe
  carry beats unchanged.

A converter holds a partial wide beat across DMA transfers until it fills or TLAST closes it, as
the hardware does; a DMA reset clears it. Not modelled: the converters' latency and the narrow
side's beat rate (the model's beats are timed as :mod:`.timing` says, from the transfer's start),
non-integer width ratios, TUSER/TID/TDEST, and a downsizer's handling of null bytes in mid-packet
beats (it emits them as they are).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

IDENTITY = ("axis_register_slice", "axis_data_fifo", "axis_clock_converter", "stream_probe")


@dataclass
class Beats:
    """Beats of one stream width: TDATA bytes (n, width), TKEEP (n, width), TLAST (n,) and the
    fabric cycle each beat is produced at (n,)."""

    data: np.ndarray
    keep: np.ndarray
    last: np.ndarray
    times: np.ndarray

    @classmethod
    def of(cls, data: np.ndarray, width: int, last: np.ndarray, times: np.ndarray,
           keep: np.ndarray | None = None) -> Beats:
        data = np.asarray(data, dtype=np.uint8).reshape(-1, width)
        keep = np.ones(data.shape, dtype=bool) if keep is None else np.asarray(keep, dtype=bool).reshape(data.shape)
        return cls(data, keep, np.asarray(last, dtype=bool), np.asarray(times, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.last)

    @classmethod
    def concat(cls, parts: list[Beats], width: int) -> Beats:
        if not parts:
            return cls.of(np.empty(0, np.uint8), width, np.empty(0, bool), np.empty(0, np.int64))
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("data", "keep", "last", "times")))


class Hop:
    """One IP on the stream; :meth:`push` maps the beats entering it to the beats leaving it."""

    def __init__(self, name: str, in_bytes: int, out_bytes: int):
        self.name, self.in_bytes, self.out_bytes = name, in_bytes, out_bytes

    #: input beats per output beat on a stream without TLAST
    ratio = Fraction(1)

    def push(self, beats: Beats) -> Beats:
        return beats

    def reset(self) -> None:
        pass


class WidthConverter(Hop):
    def __init__(self, name: str, in_bytes: int, out_bytes: int, master_keep: bool):
        super().__init__(name, in_bytes, out_bytes)
        big, small = max(in_bytes, out_bytes), min(in_bytes, out_bytes)
        if big % small:
            raise ValueError(f"{name}: a {8 * in_bytes}-to-{8 * out_bytes}-bit width conversion is not an integer "
                             "ratio; only those are emulated")
        self.k, self.master_keep = big // small, master_keep
        self.ratio = Fraction(out_bytes, in_bytes)
        self.reset()

    def reset(self) -> None:
        self._held: list[Beats] = []      # narrow beats of the wide beat being gathered

    def push(self, beats: Beats) -> Beats:
        return self._upsize(beats) if self.out_bytes > self.in_bytes else self._downsize(beats)

    def _upsize(self, beats: Beats) -> Beats:
        out = []
        held = Beats.concat(self._held + [beats], self.in_bytes)
        ends, start = [], 0               # a group ends at TLAST or after k narrow beats
        for i in range(len(held)):
            if held.last[i] or i - start + 1 == self.k:
                ends.append(i)
                start = i + 1
        start = 0
        for end in ends:
            n = end - start + 1
            data = np.zeros(self.out_bytes, dtype=np.uint8)
            keep = np.zeros(self.out_bytes, dtype=bool)
            data[:n * self.in_bytes] = held.data[start:end + 1].reshape(-1)
            keep[:n * self.in_bytes] = held.keep[start:end + 1].reshape(-1)
            if not self.master_keep:
                keep[:] = True
            out.append(Beats.of(data, self.out_bytes, held.last[end:end + 1], held.times[end:end + 1], keep))
            start = end + 1
        rest = Beats(held.data[start:], held.keep[start:], held.last[start:], held.times[start:])
        self._held = [rest] if len(rest) else []
        return Beats.concat(out, self.out_bytes)

    def _downsize(self, beats: Beats) -> Beats:
        n, k, w = len(beats), self.k, self.out_bytes
        data = beats.data.reshape(n * k, w)
        keep = beats.keep.reshape(n * k, w)
        last = np.zeros(n * k, dtype=bool)
        times = (beats.times[:, None] + np.arange(k, dtype=np.int64)[None, :]).reshape(-1)
        alive = np.ones(n * k, dtype=bool)
        for i in np.flatnonzero(beats.last):
            chunks = keep[i * k:(i + 1) * k].any(axis=1)
            kept = int(np.flatnonzero(chunks)[-1]) + 1 if chunks.any() else 1
            alive[i * k + kept:(i + 1) * k] = False
            last[i * k + kept - 1] = True
        return Beats(data[alive], keep[alive], last[alive], times[alive])


# --------------------------------------------------------------------------- subset converter

_TERM = re.compile(r"\s*(?:(tdata|tkeep|tlast|tuser|tid|tdest)\s*\[\s*(\d+)\s*(?::\s*(\d+)\s*)?\]"
                   r"|(\d+)\s*'\s*([bhd])\s*([0-9a-fA-F_]+))\s*$")


def remap(expression: str, source: str, out_bits: int, where: str) -> list[int | None | bool]:
    """The bits of a subset converter's ``*_REMAP`` expression, least significant first: for each,
    the index of the ``source`` bit it takes, or a constant (False / True). Verilog's rules:
    ``{a, b}`` puts ``a`` in the high bits; ``x[h:l]`` is bits h down to l."""
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    bits: list = []
    for term in reversed([t for t in text.split(",")]):
        match = _TERM.match(term)
        if match is None:
            raise ValueError(f"{where}: unreadable remap term {term.strip()!r} in {expression!r}")
        signal, high, low, width, base, digits = match.groups()
        if signal is not None:
            if signal != source:
                raise ValueError(f"{where}: {expression!r} takes {signal}, which is not emulated here")
            high, low = int(high), int(low if low is not None else high)
            bits += list(range(low, high + 1)) if high >= low else list(range(low, high - 1, -1))
        else:
            value = int(digits.replace("_", ""), {"b": 2, "h": 16, "d": 10}[base])
            bits += [bool(value >> i & 1) for i in range(int(width))]
    if len(bits) != out_bits:
        raise ValueError(f"{where}: {expression!r} gives {len(bits)} bits for a {out_bits}-bit output")
    return bits


def _apply(bits: np.ndarray, mapping: list) -> np.ndarray:
    """``bits`` (n, in) -> (n, len(mapping)) by ``mapping`` (source index or constant)."""
    out = np.zeros((bits.shape[0], len(mapping)), dtype=np.uint8)
    for j, m in enumerate(mapping):
        if isinstance(m, bool):
            out[:, j] = m
        else:
            out[:, j] = bits[:, m]
    return out


class SubsetConverter(Hop):
    def __init__(self, name: str, in_bytes: int, out_bytes: int, parameters: dict):
        super().__init__(name, in_bytes, out_bytes)
        where = f"{name} (axis_subset_converter)"
        self.tdata = remap(parameters.get("tdata_remap", f"tdata[{8 * out_bytes - 1}:0]"), "tdata",
                           8 * out_bytes, where)
        if max((b for b in self.tdata if not isinstance(b, bool)), default=0) >= 8 * in_bytes:
            raise ValueError(f"{where}: TDATA_REMAP reads beyond its {8 * in_bytes}-bit input")
        self.master_keep = parameters.get("m_has_tkeep", "0") not in ("0", "false", "")
        self.tkeep = (remap(parameters.get("tkeep_remap", f"tkeep[{out_bytes - 1}:0]"), "tkeep", out_bytes, where)
                      if self.master_keep else None)
        self.tlast = remap(parameters.get("tlast_remap", "tlast[0]"), "tlast", 1, where)[0]

    def push(self, beats: Beats) -> Beats:
        n = len(beats)
        bits = np.unpackbits(beats.data, axis=1, bitorder="little")
        data = np.packbits(_apply(bits, self.tdata), axis=1, bitorder="little")
        keep = (np.ones((n, self.out_bytes), dtype=bool) if self.tkeep is None
                else _apply(beats.keep.astype(np.uint8), self.tkeep).astype(bool))
        last = np.full(n, self.tlast) if isinstance(self.tlast, bool) else beats.last.copy()
        return Beats(data, keep, last, beats.times)


# --------------------------------------------------------------------------- the chain

def hop(entry: dict, where: str) -> Hop:
    """A hop from its manifest entry ``{name, vlnv, in_bits, out_bits, parameters}``."""
    try:
        name, kind = entry["name"], entry["vlnv"].split(":")[2]
        in_bits, out_bits = int(entry["in_bits"]), int(entry["out_bits"])
        parameters = {k.lower(): str(v) for k, v in (entry.get("parameters") or {}).items()}
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{where}: stream hop {entry!r} needs name, vlnv, in_bits, out_bits ({exc})") from None
    if in_bits % 8 or out_bits % 8:
        raise ValueError(f"{where}: {name}: {in_bits}/{out_bits}-bit TDATA is not whole bytes")
    if kind == "axis_dwidth_converter":
        if in_bits == out_bits:
            return Hop(name, in_bits // 8, out_bits // 8)
        master_keep = parameters.get("has_mi_tkeep", parameters.get("has_tkeep", "1")) not in ("0", "false", "")
        return WidthConverter(name, in_bits // 8, out_bits // 8, master_keep)
    if kind == "axis_subset_converter":
        return SubsetConverter(name, in_bits // 8, out_bits // 8, parameters)
    if kind in IDENTITY and in_bits == out_bits:
        return Hop(name, in_bits // 8, out_bits // 8)
    raise ValueError(f"{where}: {name} ({entry['vlnv']}, {in_bits} -> {out_bits} bits) is not a stream IP the "
                     f"emulator carries beats across (it does: axis_dwidth_converter, axis_subset_converter, "
                     f"{', '.join(IDENTITY)})")


class Chain:
    """The hops of one direction, in stream order, from ``in_bytes`` to ``out_bytes`` beats."""

    def __init__(self, hops: list[Hop], in_bytes: int, out_bytes: int, where: str):
        width = in_bytes
        for h in hops:
            if h.in_bytes != width:
                raise ValueError(f"{where}: {h.name} takes {8 * h.in_bytes}-bit beats, but {8 * width}-bit "
                                 "beats reach it")
            width = h.out_bytes
        if width != out_bytes:
            raise ValueError(f"{where}: the stream leaves its last hop {8 * width} bits wide; "
                             f"{8 * out_bytes} bits are expected there")
        self.hops, self.in_bytes, self.out_bytes = hops, in_bytes, out_bytes
        self.ratio = Fraction(1)
        for h in hops:
            self.ratio *= h.ratio

    @classmethod
    def of(cls, entries: list, in_bytes: int, out_bytes: int, where: str) -> Chain:
        return cls([hop(e, where) for e in entries], in_bytes, out_bytes, where)

    def push(self, beats: Beats) -> Beats:
        for h in self.hops:
            beats = h.push(beats)
        return beats

    def reset(self) -> None:
        for h in self.hops:
            h.reset()

    @property
    def identity(self) -> bool:
        """Beats leave exactly as they came (no hop changes them): psqs's own designs."""
        return all(type(h) is Hop for h in self.hops)
