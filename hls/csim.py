"""The AXI-stream top in C simulation: a g++-built shared library driven through ctypes.

This is rung 3 of the verification ladder here, and later the board emulator's model IP: it
takes exactly the bytes a DMA would send and returns exactly the beats the IP would emit, with
numpy and the standard library only (no TensorFlow, no hls4ml at run time).
"""
from __future__ import annotations

import ctypes
import logging
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from psqs.common.errors import RunFailed, find_tool, tool_failure

log = logging.getLogger(__name__)

LIBRARY_NAME = "libpsqs_axis.so"


class CsimBuildError(RunFailed, RuntimeError):
    """g++ failed to build the C-simulation library; the message carries the compiler output."""


def compiler() -> str:
    """g++, which both hls4ml's C simulation and this library need (:class:`ToolMissing` if absent)."""
    return find_tool("g++", "to build the C simulation")


def build_library(firmware: Path, sources: list[str], out: Path) -> float:
    """Compile ``sources`` (relative to ``firmware``) into the shared library ``out``.

    The translation units compile in parallel. hls4ml's weights are read at run time from
    ``weights/`` next to the library (copied there), which keeps g++ fast: compiling the weights
    in as initialized ``ap_fixed`` arrays takes minutes. Returns the build time in seconds.
    """
    gxx = compiler()
    out.parent.mkdir(parents=True, exist_ok=True)
    flags = ["-O2", "-fPIC", "-std=c++14", "-fno-gnu-unique", "-DPSQS_GXX_CSIM",
             "-include", "psqs_weights_dir.h", "-DWEIGHTS_DIR=psqs_weights_dir()",
             f"-I{firmware}", f"-I{firmware / 'ap_types'}"]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        objects = [Path(tmp) / f"{Path(s).stem}.o" for s in sources]
        jobs = [(s, subprocess.Popen([gxx, *flags, "-c", str(firmware / s), "-o", str(o)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
                for s, o in zip(sources, objects)]
        for source, job in jobs:
            _, err = job.communicate()
            if job.returncode != 0:
                raise CsimBuildError(tool_failure("g++", f"compiling {source}", job.returncode, err))
        link = subprocess.run([gxx, "-shared", *map(str, objects), "-o", str(out), "-ldl"],
                              capture_output=True, text=True)
        if link.returncode != 0:
            raise CsimBuildError(tool_failure("g++", f"linking {out.name}", link.returncode, link.stderr))
    shutil.copytree(firmware / "weights", out.parent / "weights", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.h"))
    seconds = time.perf_counter() - t0
    log.info("built %s in %.1f s", out, seconds)
    return seconds


class AxisLibrary:
    """ctypes view of one loaded C-simulation library (its streams are process-global state)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        lib = ctypes.CDLL(str(self.path))
        u8p = ctypes.POINTER(ctypes.c_uint8)
        for name in ("psqs_in_bus_bytes", "psqs_out_bus_bytes", "psqs_in_beats_per_sample",
                     "psqs_out_beats_per_sample"):
            getattr(lib, name).restype = ctypes.c_uint
        for name in ("psqs_pending_in_beats", "psqs_pending_out_beats"):
            getattr(lib, name).restype = ctypes.c_size_t
        lib.psqs_push.argtypes = [u8p, u8p, ctypes.c_size_t]
        lib.psqs_push.restype = ctypes.c_size_t
        lib.psqs_pop.argtypes = [u8p, u8p, ctypes.c_size_t]
        lib.psqs_pop.restype = ctypes.c_size_t
        # an RTL simulation also counts its clock cycles (psqs_cycles); a C simulation has no clock
        self.cycle_counter = getattr(lib, "psqs_cycles", None)
        if self.cycle_counter is not None:
            self.cycle_counter.restype = ctypes.c_uint64
        self._lib = lib
        self.in_bus_bytes = lib.psqs_in_bus_bytes()
        self.out_bus_bytes = lib.psqs_out_bus_bytes()
        self.in_beats_per_sample = lib.psqs_in_beats_per_sample()
        self.out_beats_per_sample = lib.psqs_out_beats_per_sample()

    @staticmethod
    def _ptr(array: np.ndarray):
        return array.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))

    def reset(self) -> None:
        self._lib.psqs_reset()

    @property
    def pending_in_beats(self) -> int:
        return self._lib.psqs_pending_in_beats()

    @property
    def pending_out_beats(self) -> int:
        return self._lib.psqs_pending_out_beats()

    def push(self, data: np.ndarray, last: np.ndarray) -> int:
        """Stream beats in (``data``: n*bus bytes, ``last``: n TLAST flags); returns samples computed."""
        data = np.ascontiguousarray(data, dtype=np.uint8)
        last = np.ascontiguousarray(last, dtype=np.uint8)
        n = last.size
        if data.size != n * self.in_bus_bytes:
            raise ValueError(f"{data.size} bytes for {n} beats of {self.in_bus_bytes} bytes")
        return self._lib.psqs_push(self._ptr(data), self._ptr(last), n)

    def pop(self, max_beats: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``max_beats`` output beats: (bytes, TLAST flags)."""
        data = np.empty(max_beats * self.out_bus_bytes, dtype=np.uint8)
        last = np.empty(max_beats, dtype=np.uint8)
        n = self._lib.psqs_pop(self._ptr(data), self._ptr(last), max_beats)
        return data[:n * self.out_bus_bytes], last[:n]

    def transfer(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One DMA-style transfer: all bytes in with TLAST on the last beat, all outputs out."""
        beats = np.asarray(data).size // self.in_bus_bytes
        last = np.zeros(beats, dtype=np.uint8)
        last[-1] = 1
        self.push(data, last)
        return self.pop(self.pending_out_beats)
