"""Helpers for the emulator tests (no tests here): overlay packages to serve, emulators on their
own loopback addresses, and pynq clients in subprocesses with private pynq state.

The real jet-tagger package comes from ``psqs.overlays.build`` (an emulation build). For fast tests
that need no training, stand-in packages are assembled here around a small C model with the
C-simulation ABI and a real Vivado hardware handoff (PYNQ-Z2: DMA at hier_0/axi_dma_0,
0x4040_0000; ZCU104: axi_dma_0 at 0xA000_0000; both with 32-bit streams), with a ``.bit``
container pynq accepts. The stream probe is not in those designs; it is mapped at a free address
of the PL window (pynq reaches it through a plain MMIO).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from psqs.common import stream_probe_regs
from psqs.common.artifact import write_manifest
from psqs.common.package import FORMAT_VERSION, KIND
from psqs.deploy.emulator import EmulatorConfig, EmulatorServer
from psqs.deploy.emulator.client_env import client_env
from psqs.deploy.emulator.packages import bin_image

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PSQS_SHARED", REPO.parent / "shared"))
VENDOR = SHARED / "data" / "vendor"
PROBE_NAME = "stream_probe_0"
# Real Vivado designs whose AXI DMA (simple mode, 32-bit streams) the stand-in packages reuse.
DESIGNS = {
    "pynq-z2": dict(hwh=VENDOR / "vivado2019_pynqz2_jet_design_1.hwh", part="xc7z020clg400-1",
                    dma="hier_0/axi_dma_0", dma_base=0x4040_0000, length_width=26, probe_base=0x43C1_0000),
    "zcu104": dict(hwh=VENDOR / "vivado2025_zcu104_iris_design_1.hwh", part="xczu7ev-ffvc1156-2-e",
                   dma="axi_dma_0", dma_base=0xA000_0000, length_width=14, probe_base=0xA001_0000),
}
DMA_BASE, PROBE_BASE = DESIGNS["pynq-z2"]["dma_base"], DESIGNS["pynq-z2"]["probe_base"]
TIMING = {"source": "test", "latency_cycles": 15, "ii_cycles": 1, "fclk_mhz": 100.0}

# A stand-in model IP with the C-simulation ABI (psqs.hls.csim.AxisLibrary): 16 int16 inputs in
# 8 beats of 32 bits, 5 int32 outputs in 5 beats; output j = sum_i (i + 1) * x_i + 1000 * j.
# Streams persist across calls; a sample is computed once its 8 beats are in; TLAST marks the last
# output beat of every sample whose input beats carried TLAST (the psqs contract's rule).
FAKE_MODEL_C = r"""
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#define IN_BEATS 8
#define OUT_BEATS 5
#define CAP (1 << 24)
static uint32_t in_data[IN_BEATS]; static uint8_t in_last[IN_BEATS]; static size_t in_n;
static uint32_t out_data[CAP]; static uint8_t out_last[CAP]; static size_t out_head, out_n;
unsigned psqs_in_bus_bytes(void) { return 4; }
unsigned psqs_out_bus_bytes(void) { return 4; }
unsigned psqs_in_beats_per_sample(void) { return IN_BEATS; }
unsigned psqs_out_beats_per_sample(void) { return OUT_BEATS; }
size_t psqs_pending_in_beats(void) { return in_n; }
size_t psqs_pending_out_beats(void) { return out_n; }
void psqs_reset(void) { in_n = 0; out_head = 0; out_n = 0; }
#ifdef PSQS_FAKE_CYCLES
/* an "RTL" clock: a push of n beats takes n + 30 cycles */
static uint64_t cycles;
uint64_t psqs_cycles(void) { return cycles; }
#endif
size_t psqs_push(const uint8_t *data, const uint8_t *last, size_t n) {
    size_t samples = 0;
#ifdef PSQS_FAKE_CYCLES
    cycles += n + 30;
#endif
    for (size_t b = 0; b < n; b++) {
        memcpy(&in_data[in_n], data + 4 * b, 4); in_last[in_n] = last[b]; in_n++;
        if (in_n == IN_BEATS) {
            int64_t acc = 0; int tl = 0;
            for (int k = 0; k < IN_BEATS; k++) {
                int16_t lo = (int16_t)(in_data[k] & 0xFFFF), hi = (int16_t)(in_data[k] >> 16);
                acc += (int64_t)(2 * k + 1) * lo + (int64_t)(2 * k + 2) * hi; tl |= in_last[k];
            }
            for (int j = 0; j < OUT_BEATS; j++) {
                size_t slot = (out_head + out_n) % CAP;
                out_data[slot] = (uint32_t)(int32_t)(acc + 1000 * j);
                out_last[slot] = (uint8_t)(tl && j == OUT_BEATS - 1); out_n++;
            }
            in_n = 0; samples++;
        }
    }
    return samples;
}
size_t psqs_pop(uint8_t *data, uint8_t *last, size_t max_beats) {
    size_t b = 0;
    for (; b < max_beats && out_n; b++) {
        memcpy(data + 4 * b, &out_data[out_head], 4); last[b] = out_last[out_head];
        out_head = (out_head + 1) % CAP; out_n--;
    }
    return b;
}
"""


def fake_model_outputs(x: np.ndarray) -> np.ndarray:
    """What the stand-in model computes for int16 samples ``x`` (n, 16): int32 (n, 5)."""
    acc = x.astype(np.int64) @ np.arange(1, 17, dtype=np.int64)
    return (acc[:, None] + 1000 * np.arange(5)).astype(np.int32)


def build_fake_library(directory: Path, cycles: bool = False) -> Path:
    """Compile the stand-in model; with ``cycles`` it also exports ``psqs_cycles()`` like an RTL model."""
    directory.mkdir(parents=True, exist_ok=True)
    source, library = directory / "fake_model.c", directory / "libfake_model.so"
    source.write_text(FAKE_MODEL_C)
    defines = ["-DPSQS_FAKE_CYCLES"] if cycles else []
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", *defines, "-o", str(library), str(source)], check=True)
    source.unlink()
    return library


def tiny_rtl_source(root: Path, n: int, seed: int = 0, span: int = 2000, cycles: bool = True,
                    board: str = "pynq-z2") -> Path:
    """An RTL stage directory whose simulation library is the stand-in model, with ``n`` test
    vectors (input codes in [-span, span)): ``psqs build --emulation`` makes a real package of it,
    with the stream probe, in about a second (the tests of signals, the local device, deploy and
    the board install share it). Its IP is declared for ``board``'s part."""
    from psqs.board_configs import load_board
    from psqs.common.contract import IOContract, StreamLayout
    from psqs.common.fixed_point import FixedFormat
    from test_overlay import rtl_dir

    library = build_fake_library(root / "lib", cycles=cycles)
    (root / "lib" / "weights").mkdir()
    contract = IOContract(StreamLayout.packed(16, FixedFormat(16, 6), 32),
                          StreamLayout.packed(5, FixedFormat(32, 32), 32), top="jet_rtl")
    rng = np.random.default_rng(seed)
    codes = rng.integers(-span, span, size=(n, 16))
    logits = fake_model_outputs(codes.astype(np.int16)).astype(np.float64)
    np.savez(root / "vectors.npz", X=codes / 1024.0, y=rng.integers(0, 5, n), logits=logits, csim_logits=logits,
             index=np.arange(n))
    source = rtl_dir(root / "rtl", contract, library, root / "vectors.npz")
    manifest = json.loads((source / "manifest.json").read_text())
    if manifest["ip"]["part"] != load_board(board).part:
        manifest["ip"]["part"] = load_board(board).part
        fields = {k: v for k, v in manifest.items() if k not in ("kind", "format_version", "created_utc", "files")}
        write_manifest(source, manifest["kind"], manifest["format_version"], fields)
    return source


def bit_file(design: str, part: str, payload: bytes) -> bytes:
    """A .bit container pynq's parse_bit_header accepts, carrying ``payload`` (padded to words)."""
    payload += b"\0" * (-len(payload) % 4)

    def field(key: bytes, text: str) -> bytes:
        data = text.encode() + b"\0"
        return key + struct.pack(">h", len(data)) + data

    header = struct.pack(">h", 9) + bytes.fromhex("0ff00ff00ff00ff000") + struct.pack(">h", 1)
    header += field(b"a", f"{design};UserID=0XFFFFFFFF;Version=2019.1") + field(b"b", part)
    header += field(b"c", "2025/01/01") + field(b"d", "00:00:00")
    return header + b"e" + struct.pack(">i", len(payload)) + payload


def _stream(values: int, width: int, integer: int, field_bits: int) -> dict:
    fmt = {"width": width, "integer": integer, "signed": True, "rounding": "RND_CONV", "overflow": "SAT"}
    per_beat = 32 // field_bits
    beats = -(-values // per_beat)
    return {"values": values, "format": fmt, "field_bits": field_bits, "bus_bits": 32, "values_per_beat": per_beat,
            "beats_per_sample": beats, "bytes_per_sample": beats * 4, "byte_order": "little",
            "extension": "sign"}


FAKE_IO = {"top": "fake_axis", "input": _stream(16, 16, 6, 16), "output": _stream(5, 32, 32, 32)}


def write_package(out: Path, name: str, library: Path, io: dict, *, board: str = "pynq-z2", probe: bool = True,
                  timing: dict = TIMING, tag: str = "", kind: str = "csim") -> Path:
    """An emulation overlay package at ``out`` around the model ``library`` (and its weights/)."""
    design = DESIGNS[board]
    out.mkdir(parents=True)
    shutil.copy2(design["hwh"], out / f"{name}.hwh")
    bit = bit_file(name, design["part"], f"psqs emulation bitstream {name} {tag}".encode())
    (out / f"{name}.bit").write_bytes(bit)
    (out / "emulation").mkdir()
    shutil.copy2(library, out / "emulation" / library.name)
    if (library.parent / "weights").is_dir():
        shutil.copytree(library.parent / "weights", out / "emulation" / "weights")
    ips = {design["dma"]: {"vlnv": "xilinx.com:ip:axi_dma:7.1", "base": design["dma_base"], "range": 0x1_0000}}
    if probe:
        ips[PROBE_NAME] = {"vlnv": stream_probe_regs.VLNV, "base": design["probe_base"], "range": 0x1_0000}
    write_manifest(out, KIND, FORMAT_VERSION, {
        "name": name, "board": {"name": board, "part": design["part"]}, "emulation": True, "io": io,
        "ips": ips, "dma": {"name": design["dma"], "max_transfer_bytes": (1 << design["length_width"]) - 1},
        "probe": {"name": PROBE_NAME} if probe else None, "timing": timing,
        "model": {"classes": ["t", "w", "z", "q", "g"], "scaler": {"mean": [0.0] * 16, "scale": [1.0] * 16}},
        "emulation_model": {"kind": kind, "library": f"emulation/{library.name}"},
        "bitstream": {"bin_sha256": hashlib.sha256(bin_image(bit)).hexdigest()},
    })
    return out


def start_emulator(overlays: list[Path], **options) -> EmulatorServer:
    """An emulator on a free loopback address 127.0.x.y (pynq's port is fixed at 7967)."""
    return EmulatorServer.on_free_loopback(EmulatorConfig(overlays=list(overlays), **options))


CLIENT_PRELUDE = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from psqs.host import pynq_compat
    pynq_compat.apply()
    import pynq
    from pynq import Overlay, allocate, MMIO
    from pynq.lib.dma import DMA

    def emit(**values):
        print("RESULT " + json.dumps(values), flush=True)
""")


def client_script(path: Path, body: str, helpers: str = "") -> Path:
    """Write ``CLIENT_PRELUDE`` + ``helpers`` + ``body`` (dedented) to ``path``."""
    path.write_text(CLIENT_PRELUDE + textwrap.dedent(helpers) + textwrap.dedent(body))
    return path


def run_client(body: str, host: str, workdir: Path, timeout: float = 120, args: tuple = (), helpers: str = "") -> dict:
    """Run a pynq client script (``CLIENT_PRELUDE`` + ``helpers`` + ``body``) against the board at
    ``host``; returns the values it passed to ``emit``, merged."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    script = client_script(workdir / "client.py", body, helpers)
    return _results([sys.executable, str(script), *map(str, args)], client_env(host, workdir), workdir, timeout)


def run_local_client(body: str, overlays: list[Path], workdir: Path, board: str = "pynq-z2", timeout: float = 120,
                     args: tuple = ()) -> dict:
    """:func:`run_client` on pynq's on-board path: the script runs against the emulated *local*
    board (``psqs.deploy.emulator.local_device``), as it would on a board without PYNQ.remote."""
    from psqs.deploy.emulator.local_device import environment

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    script = client_script(workdir / "client.py", body)
    command = [sys.executable, "-m", "psqs.deploy.emulator.local_device", str(script), *map(str, args)]
    return _results(command, environment(board, overlays, workdir / "client"), workdir, timeout)


def _results(command: list, env: dict, workdir: Path, timeout: float) -> dict:
    proc = subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"pynq client failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            results.update(json.loads(line[len("RESULT "):]))
    return results
