"""The jet tagger on a board: open a package, load its overlay, stream features, get logits.

Runs on the board's own Python, on a PC driving a board through PYNQ.remote
(``PYNQ_REMOTE_DEVICES``; only boards whose PYNQ image serves it, the package's ``pynq_remote``),
and against the emulated board; only numpy, pynq and the standard library. pynq is imported when an :class:`Accelerator` is created, because pynq decides at import
time whether it talks to a local or a remote device.

A call to :meth:`Accelerator.predict` validates the features, then streams them in chunks no
larger than the DMA's maximum transfer through two pairs of buffers: while chunk k moves through
the fabric, chunk k+1 is encoded and chunk k-1 decoded.
"""
from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from psqs.common.board_identity import image_board_name
from psqs.common.codec import FeatureEncoder, decode_bytes
from psqs.common.errors import PsqsError, RunFailed
from psqs.common.package import OverlayPackage

from . import pynq_compat
from .dma import VLNV as DMA_VLNV
from .dma import DMAError, DMATimeout, SimpleDMA

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SAMPLES = 16384
DEFAULT_TIMEOUT_S = 5.0     # every DMA wait may take this long beyond the data's bus time


def _is_remote(device) -> bool:
    """pynq 4.0's PYNQ.remote ``RemoteDevice`` declares the ``REMOTE`` capability."""
    return bool(getattr(device, "capabilities", {}).get("REMOTE"))


def board_name(device, environ=os.environ) -> str | None:
    """The board pynq is talking to, as the board names itself.

    A local device's ``name`` is XRT's (``edge`` on a Zynq/ZynqMP image) and names no board, so
    the image's own name for its board is taken (:mod:`psqs.common.board_identity`). pynq's
    ``RemoteDevice`` already reads the remote board's device tree into its ``name`` over RPC
    (``Unknown`` when the board has none).
    """
    if _is_remote(device):
        name = str(getattr(device, "name", "") or "")
        return None if name in ("", "Unknown") else name
    return image_board_name(environ)


class InputError(PsqsError, ValueError):
    """Features that cannot be sent: wrong shape or type, or non-finite values (rows named)."""


class BoardMismatch(PsqsError, RuntimeError):
    """The package was built for another board than the one pynq is talking to."""


class NoRemotePath(PsqsError, RuntimeError):
    """PYNQ.remote was asked for a package whose board's PYNQ image cannot serve it."""


class NoBoard(RunFailed, RuntimeError):
    """pynq sees no board: not on a PYNQ image and no (reachable) ``PYNQ_REMOTE_DEVICES``."""


@dataclass
class CallTiming:
    """Where the time of one :meth:`Accelerator.predict` call went (seconds).

    The stages overlap (double buffering), so their sum can exceed ``total``. ``encode`` is
    standardize + quantize + pack, fused, straight into the DMA buffer; ``to_device`` is starting
    the transfers and nothing else: the input buffer's flush (a cache flush on the board, an
    upload over PYNQ.remote) and both channels' register writes, up to the MM2S LENGTH write;
    ``dma`` is the wait from then until both channels are idle, so the fabric's time (on a board
    the model computes while the CPU polls; the emulator runs its model beside the host the same
    way) is here and never in ``to_device``; ``from_device`` is the output buffer's invalidate (a
    download over PYNQ.remote) and the LENGTH read-back; ``decode`` unpacks the logits.
    """

    total: float = 0.0
    validate: float = 0.0
    encode: float = 0.0
    to_device: float = 0.0
    dma: float = 0.0
    from_device: float = 0.0
    decode: float = 0.0
    chunks: int = 0
    saturated: int = 0

    STAGES: ClassVar[tuple[str, ...]] = ("validate", "encode", "to_device", "dma", "from_device", "decode")


class _Buffers:
    """Two input and two output DMA buffers for chunks of ``samples`` samples."""

    def __init__(self, allocate, samples: int, in_bytes: int, out_bytes: int):
        self.samples = samples
        self.inputs = [allocate(shape=(samples * in_bytes,), dtype=np.uint8) for _ in range(2)]
        self.outputs = [allocate(shape=(samples * out_bytes,), dtype=np.uint8) for _ in range(2)]

    def free(self) -> None:
        for buffer in (*self.inputs, *self.outputs):
            buffer.freebuffer()


class Accelerator:
    """One overlay package loaded on one board.

    ``timeout`` (seconds) bounds every DMA wait, on top of the time the data needs at the bus rate;
    ``download=False`` attaches to an overlay that is already loaded.

    :attr:`mm2s_transfers` counts the MM2S (input) transfers this object has started, the one
    being started included, so that a failure can name its transfer. The emulator's
    ``--fault KIND@N`` counts MM2S transfers from when the fault was armed (for ``psqs emulate``,
    its start), so for the first client of a fresh emulator the two numbers are the same.
    """

    def __init__(self, package, timeout: float = DEFAULT_TIMEOUT_S, chunk_samples: int = DEFAULT_CHUNK_SAMPLES,
                 download: bool = True):
        self.package = package if isinstance(package, OverlayPackage) else OverlayPackage(Path(package))
        self.timeout = timeout
        import pynq

        from . import stream_probe  # noqa: F401  (registers the probe's driver with pynq by VLNV)

        self._pynq = pynq
        pynq_compat.apply()
        pynq_compat.bound_remote_calls(timeout)   # every PYNQ.remote call, not only DMA waits
        try:
            device = pynq.Device.active_device
        except RuntimeError as exc:   # pynq: "No Devices Found"
            raise NoBoard(f"pynq found no board ({exc}): run on a PYNQ board, or point "
                          "PYNQ_REMOTE_DEVICES at a PYNQ.remote board or a psqs emulator") from None
        self._check_board(device)
        if download:
            pynq_compat.clear_state()
        self.overlay = pynq.Overlay(str(self.package.bitstream), download=download)
        self.dma = SimpleDMA(self._ip(self.package.dma.name, DMA_VLNV))
        self.dma.reset(timeout)
        self.probe = None
        if self.package.probe is not None:
            probe_path = self._ip(self.package.probe.name, self.package.probe.vlnv)["fullpath"]
            self.probe = functools.reduce(getattr, probe_path.split("/"), self.overlay)   # bound by VLNV
            self.probe.check_id()
        contract = self.package.contract
        self.input, self.output = contract.input, contract.output
        mean, scale = self.package.scaler
        self.encoder = FeatureEncoder(self.input, mean, scale)
        per_transfer = self.dma.max_bytes // max(self.input.bytes_per_sample, self.output.bytes_per_sample)
        self.chunk_samples = max(1, min(chunk_samples, per_transfer))
        self._buffers: _Buffers | None = None
        self.mm2s_transfers = 0

    # -- setup ------------------------------------------------------------------------------

    def _check_board(self, device) -> None:
        """The board must be the package's, and the path to it one its PYNQ image offers."""
        board = self.package.board
        expected, actual = board["pynq_board"], board_name(device)
        if actual is None or actual.strip().lower() != str(expected).strip().lower():
            raise BoardMismatch(f"{self.package.path}: built for {board['name']} "
                                f"(pynq_board {expected!r}); the board reports {actual!r}")
        if _is_remote(device) and board.get("pynq_remote") is False:   # unrecorded: unknown, so allowed
            supported = ", ".join(board.get("pynq_remote_boards") or []) or "see board_configs (pynq_remote: true)"
            raise NoRemotePath(f"{self.package.path}: {board['name']} has no PYNQ.remote (pynq_remote: false); "
                               f"run psqs on the board (python -m psqs.host bench) without PYNQ_REMOTE_DEVICES; "
                               f"boards with PYNQ.remote: {supported}")

    def _ip(self, name: str, vlnv: str) -> dict:
        ip_dict = self.overlay.ip_dict
        if name not in ip_dict:
            raise RuntimeError(f"{self.package.hwh}: no IP {name!r} (has: {', '.join(sorted(ip_dict))})")
        description = ip_dict[name]
        if description["type"] != vlnv:
            raise RuntimeError(f"{self.package.hwh}: {name} is {description['type']}, expected {vlnv}")
        expected = self.package.ips[name].base
        if description["phys_addr"] != expected:
            raise RuntimeError(f"{self.package.hwh}: {name} at 0x{description['phys_addr']:x}, "
                               f"the manifest says 0x{expected:x}")
        return description

    def _buffers_for(self, samples: int) -> _Buffers:
        if self._buffers is None or self._buffers.samples != samples:
            if self._buffers is not None:
                self._buffers.free()
            self._buffers = _Buffers(self._pynq.allocate, samples, self.input.bytes_per_sample,
                                     self.output.bytes_per_sample)
        return self._buffers

    @property
    def fclk_mhz(self) -> float:
        """The fabric clock as the board's clock registers say it is now."""
        return float(getattr(self._pynq.Clocks, f"fclk{self.package.board['fclk']}_mhz"))

    # -- inference --------------------------------------------------------------------------

    def validate(self, X) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.input.values:
            raise InputError(f"features must have shape (n, {self.input.values}), got {X.shape}")
        if X.shape[0] == 0:
            raise InputError("no samples")
        if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
            raise InputError(f"features must be numeric, got dtype {X.dtype}")
        if np.issubdtype(X.dtype, np.floating):
            finite = np.isfinite(X).all(axis=1)
            if not finite.all():
                rows = np.flatnonzero(~finite)
                raise InputError(f"{rows.size} sample(s) with NaN/inf features, rows {rows[:10].tolist()}"
                                 + (" ..." if rows.size > 10 else ""))
        return X

    def _wait_budget(self, samples: int) -> float:
        """Deadline for one chunk: the fixed timeout plus 10x the time the bytes need at bus rate."""
        bytes_per_cycle = self.input.bus_bytes
        seconds = samples * self.input.bytes_per_sample / (bytes_per_cycle * self.package.board["fclk_mhz"] * 1e6)
        return self.timeout + 10 * seconds

    def predict(self, X) -> np.ndarray:
        """Logits (float64, exactly the hardware's fixed-point values) for raw features ``X``."""
        return self.timed_predict(X)[0]

    def timed_predict(self, X) -> tuple[np.ndarray, CallTiming]:
        t_call = time.perf_counter()
        timing = CallTiming()
        X = self.validate(X)
        timing.validate = time.perf_counter() - t_call
        n = X.shape[0]
        chunk = min(self.chunk_samples, n)
        buffers = self._buffers_for(chunk)
        starts = list(range(0, n, chunk))
        logits = np.empty((n, self.output.values), dtype=np.float64)
        try:
            self._encode(X, starts, 0, chunk, buffers, timing)
            started = self._start(starts, 0, n, chunk, buffers, timing)
            for k in range(len(starts)):
                if k + 1 < len(starts):
                    self._encode(X, starts, k + 1, chunk, buffers, timing)
                self._finish(k, started, buffers, timing)
                if k + 1 < len(starts):
                    started = self._start(starts, k + 1, n, chunk, buffers, timing)
                t0 = time.perf_counter()
                count = min(chunk, n - starts[k])
                logits[starts[k]:starts[k] + count] = decode_bytes(self.output, buffers.outputs[k % 2], count)
                timing.decode += time.perf_counter() - t0
        except (DMAError, DMATimeout):
            self._recover()
            raise
        timing.chunks = len(starts)
        timing.total = time.perf_counter() - t_call
        if timing.saturated:
            log.warning("%d feature value(s) outside %s were saturated", timing.saturated,
                        self.input.format.hls_type())
        return logits, timing

    def _encode(self, X, starts, k, chunk, buffers, timing) -> None:
        t0 = time.perf_counter()
        timing.saturated += self.encoder(X[starts[k]:starts[k] + chunk], buffers.inputs[k % 2])
        timing.encode += time.perf_counter() - t0

    def _start(self, starts, k, n, chunk, buffers, timing) -> tuple[int, float, int]:
        count = min(chunk, n - starts[k])
        out_bytes = count * self.output.bytes_per_sample
        t0 = time.perf_counter()
        # S2MM first: the model's output must have somewhere to go before its input arrives.
        self.dma.s2mm.transfer(buffers.outputs[k % 2], out_bytes)
        self.mm2s_transfers += 1
        self.dma.mm2s.transfer(buffers.inputs[k % 2], count * self.input.bytes_per_sample)
        t_started = time.perf_counter()
        timing.to_device += t_started - t0      # register writes + the MM2S flush (upload when remote)
        return count, t_started, out_bytes

    def _finish(self, k, started, buffers, timing) -> None:
        count, t_start, out_bytes = started
        budget = self._wait_budget(count)
        self.dma.mm2s.wait(budget)
        self.dma.s2mm.wait_idle(budget)
        t0 = time.perf_counter()
        received = self.dma.s2mm.complete()
        timing.dma += t0 - t_start              # the wait: the fabric's time is here
        timing.from_device += time.perf_counter() - t0   # invalidate (download when remote) + LENGTH
        if received != out_bytes:   # timed_predict resets the DMA on the way out
            raise DMATimeout(f"S2MM received {received} of {out_bytes} bytes for {count} samples: "
                             "the model IP ended the transfer early (TLAST in the wrong place)")

    def _recover(self) -> None:
        """After an error: reset the DMA so that the next call starts clean."""
        try:
            self.dma.reset(self.timeout)
        except (DMAError, DMATimeout) as exc:
            log.error("DMA reset after an error failed too: %s", exc)

    def close(self) -> None:
        if self._buffers is not None:
            self._buffers.free()
            self._buffers = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
