"""Benchmark: emulated end-to-end inference through pynq vs the bare C simulation, in one run.

Both sides run the same batch (default 10,000 jets, the package's test vectors tiled) through the
same model library: once directly (``AxisLibrary.transfer``), once through the unmodified pynq
client (a subprocess with ``PYNQ_REMOTE_DEVICES``), gRPC, the emulated DMA and the timing model.
The ratio is the emulator's overhead; the breakdown says where the time goes (client phases,
the C simulation on the emulator's fabric worker, register and buffer traffic). Before the timed
runs it makes one untimed transfer in each call order (S2MM first, and pynq's usual MM2S first)
and reads the stream probe after each: the emulator's fabric figures must not depend on the order
(they are the timing model's ``estimate``, not a measurement).

    python bench/emulator_throughput.py [--package DIR] [--batch 10000] [--repeat 5] [--json FILE]

Without ``--package`` a small model is trained on the configured data ($PSQS_DATA, else OpenML),
converted for the PYNQ-Z2 and built as an emulation package under ``--work``.
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from psqs.common import codec
from psqs.common.package import OverlayPackage
from psqs.deploy.emulator import EmulatorConfig, EmulatorServer
from psqs.deploy.emulator.client_env import client_env
from psqs.hls.csim import AxisLibrary

#: PYNQ.remote serves ZynqMP boards only (a PYNQ-Z2 package is refused over it), so this
#: benchmark of the PYNQ.remote path uses a ZCU104.
BOARD = "zcu104"

CSIM = "C simulation (push/pop, on the fabric worker)"
PROBE_TRANSFERS = 2   # the client's untimed transfers (one per call order) before its timed runs

CLIENT = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from psqs.host import pynq_compat
    pynq_compat.apply()
    from pynq import MMIO, Overlay, allocate
    from pynq.lib.dma import DMA
    from psqs.common.package import OverlayPackage
    from psqs.common.stream_probe_regs import register
    LAST_LATENCY, LAST_TRANSFER = register("LAST_LATENCY").offset, register("LAST_TRANSFER_TIME").offset

    pkg = OverlayPackage(sys.argv[1])
    data = np.load(sys.argv[2])
    repeat, n = int(sys.argv[3]), int(sys.argv[4])
    t0 = time.perf_counter()
    ol = Overlay(str(pkg.bitstream))
    dma = DMA(ol.ip_dict[pkg.dma.name])
    inp = allocate(shape=(data.size,), dtype=np.uint8)
    out = allocate(shape=(n * pkg.contract.output.bytes_per_sample,), dtype=np.uint8)
    setup = time.perf_counter() - t0
    probe = MMIO(pkg.probe.base, 0x80)
    fabric = {}                                # first (untimed): one transfer in each call order
    for order in ("s2mm_first", "mm2s_first"):
        calls = [(dma.recvchannel, out), (dma.sendchannel, inp)]
        for channel, buffer in calls if order == "s2mm_first" else calls[::-1]:
            channel.transfer(buffer)
        dma.sendchannel.wait()
        dma.recvchannel.wait()
        fabric[order] = {name: probe.read(off) | probe.read(off + 4) << 32
                         for name, off in (("last_latency", LAST_LATENCY), ("last_transfer_time", LAST_TRANSFER))}
    runs = []
    for _ in range(repeat):
        t = [time.perf_counter()]
        inp[:] = data
        dma.recvchannel.transfer(out)          # receive side first, as a host should
        t.append(time.perf_counter())
        dma.sendchannel.transfer(inp)          # flush (upload) + registers; the model starts computing
        t.append(time.perf_counter())
        dma.sendchannel.wait()
        dma.recvchannel.wait()                 # the model's time, DMASR polling + invalidate (download)
        t.append(time.perf_counter())
        runs.append(np.diff(t).tolist())
    result = np.asarray(out).tolist()
    print("RESULT " + json.dumps({"setup_s": setup, "runs": runs, "out": result, "fabric": fabric}))
""")


class Tally:
    """Seconds and calls of wrapped methods (bench instrumentation of the in-process emulator),
    counted only while ``counting()`` is true."""

    def __init__(self, counting):
        self.seconds, self.calls = {}, {}
        self.counting = counting

    def wrap(self, obj, name: str, label: str) -> None:
        method = getattr(obj, name)

        @functools.wraps(method)
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                if self.counting():
                    self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - t
                    self.calls[label] = self.calls.get(label, 0) + 1

        setattr(obj, name, timed)


def build_package(work: Path) -> Path:
    from psqs.hls import stage
    from psqs.overlays.build import build
    from psqs.qap import stage as qap_stage
    from psqs.qap.config import TrainConfig

    model = qap_stage.run(TrainConfig(epochs=3, patience=2, max_train=20000, test_vectors=2000), work / "model",
                          force=True)
    hls_dir = stage.run(model.path, work / "hls", stage.options_for_board(BOARD), force=True)
    return build(hls_dir, BOARD, work / "package", emulation=True, force=True)


def batch(pkg: OverlayPackage, n: int) -> np.ndarray:
    X = pkg.test_vectors()["X"]
    X = np.resize(X, (n, X.shape[1]))
    mean, scale = pkg.scaler
    codes, _ = codec.encode(pkg.contract.input, (X - mean) / scale)
    return codec.pack(pkg.contract.input, codes)


def bare_library(pkg: OverlayPackage, scratch: Path) -> AxisLibrary:
    """The package's model library, loaded from a private copy (not the path the emulator loads)."""
    library_file = pkg.path / pkg.manifest["emulation_model"]["library"]
    private = scratch / "csim" / library_file.name
    shutil.copytree(library_file.parent, private.parent)
    return AxisLibrary(private)


def bare_csim(library: AxisLibrary, data: np.ndarray, repeat: int) -> tuple[list[float], np.ndarray]:
    times, out = [], None
    for _ in range(repeat):
        library.reset()
        t = time.perf_counter()
        out, _ = library.transfer(data)
        times.append(time.perf_counter() - t)
    return times, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, default=None, help="an emulation overlay package")
    parser.add_argument("--work", type=Path, default=Path("runs/bench-emulator"))
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")

    package = args.package or build_package(args.work)
    pkg = OverlayPackage(package)
    data = batch(pkg, args.batch)
    with tempfile.TemporaryDirectory(prefix="bench-emulator-") as tmp:
        scratch = Path(tmp)
        library = bare_library(pkg, scratch)
        csim_times, csim_out = bare_csim(library, data, args.repeat)   # before and after: the machine drifts
        np.save(scratch / "batch.npy", data)
        server = EmulatorServer.on_free_loopback(EmulatorConfig(board=BOARD, overlays=[package]))
        board = server.board
        tally = Tally(lambda: board.transfers > PROBE_TRANSFERS)   # the timed runs only
        for name in ("read32", "write32"):
            tally.wrap(board, name, f"register {name}")
        for name in ("write", "read"):
            tally.wrap(board.memory, name, f"buffer {name}")
        original_program = board.program

        def program(*a, **kw):   # instrument the model library each time the PL is programmed
            served = original_program(*a, **kw)
            for name in ("push", "pop"):
                tally.wrap(board.dma.stream.library, name, CSIM)
            return served

        board.program = program
        try:
            (scratch / "client.py").write_text(CLIENT)
            proc = subprocess.run([sys.executable, str(scratch / "client.py"), str(package.resolve()),
                                   str(scratch / "batch.npy"), str(args.repeat), str(args.batch)],
                                  env=client_env(server.config.host, scratch / "client"), capture_output=True,
                                  text=True, timeout=1800, check=False)
        finally:
            server.stop()
        if proc.returncode:
            sys.exit(f"pynq client failed:\n{proc.stderr[-4000:]}")
        result = json.loads(proc.stdout.split("RESULT ", 1)[1])
        csim_times += bare_csim(library, data, args.repeat)[0]

    exact = bool(np.array_equal(np.asarray(result["out"], dtype=np.uint8), csim_out))
    runs = np.asarray(result["runs"])                   # per run: arm S2MM, start MM2S, wait both
    emulated = runs.sum(axis=1)
    csim_s, emu_s = float(np.median(csim_times)), float(np.median(emulated))
    per_run = {k: v / args.repeat for k, v in tally.seconds.items()}
    calls = {k: v / args.repeat for k, v in tally.calls.items()}
    csim_in_emulator = per_run.get(CSIM, 0.0)
    report = {
        "batch": args.batch, "repeat": args.repeat, "package": str(package), "bit_exact": exact,
        "bare_csim": {"seconds": csim_s, "inferences_per_s": args.batch / csim_s},
        "emulated_pynq": {"seconds": emu_s, "inferences_per_s": args.batch / emu_s,
                          "overlay_setup_s": result["setup_s"]},
        "overhead_ratio": emu_s / csim_s,
        "emulation_overhead_s": emu_s - csim_in_emulator,
        "client_phases_s": {"recvchannel.transfer": float(np.median(runs[:, 0])),
                            "sendchannel.transfer (upload + registers)": float(np.median(runs[:, 1])),
                            "wait x2 (model, polling, download)": float(np.median(runs[:, 2]))},
        "emulator_per_run": {"seconds": per_run, "calls": calls},
        "fabric_cycles_by_call_order": {"source": "estimate", **result["fabric"]},
    }
    print(f"batch {args.batch}; medians of {args.repeat} emulated and {2 * args.repeat} bare runs; "
          f"outputs bit-exact with the bare C simulation: {exact}")
    print(f"  bare C simulation   {csim_s * 1e3:8.1f} ms   {args.batch / csim_s:10.0f} inferences/s")
    print(f"  emulated via pynq   {emu_s * 1e3:8.1f} ms   {args.batch / emu_s:10.0f} inferences/s")
    print(f"  overhead ratio      {emu_s / csim_s:8.3f}x  (target <= 1.5x); emulated minus its own C simulation: "
          f"{(emu_s - csim_in_emulator) * 1e3:.1f} ms")
    print("  where the time goes (per run):")
    for phase, seconds in report["client_phases_s"].items():
        print(f"    client {phase:<48} {seconds * 1e3:8.1f} ms")
    for label in sorted(per_run):
        print(f"    emulator {label:<46} {per_run[label] * 1e3:8.1f} ms  ({calls[label]:.0f} calls)")
    print("  stream probe after an untimed transfer in each call order (cycles; source: estimate, the "
          "emulator's timing model):")
    for order, figures in result["fabric"].items():
        print(f"    {order:<11} LAST_LATENCY {figures['last_latency']:>8}   LAST_TRANSFER_TIME "
              f"{figures['last_transfer_time']:>8}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
