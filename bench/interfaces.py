"""Benchmark: psqs's packed fixed-point streams vs hls4ml's one float per beat, one model, one run.

The same trained model is converted twice (``--interface psqs`` and ``--interface hls4ml-float``)
and built twice as PYNQ-Z2 emulation packages; then, for each package:

- bytes and beats per jet over the DMA, in and out: from its I/O contract (exact, by construction);
- fabric initiation interval: the contract's one II rule, ``IOContract.initiation_interval(reuse)``,
  which the HLS top's pipeline pragma, the RTL wrapper and the emulator share (``estimate``: no
  vendor synthesis here);
- host encode and decode per jet: ``FeatureEncoder`` and ``decode_bytes`` on N jets, best of
  ``--repeat`` (``measured`` on this PC);
- end-to-end throughput: ``psqs bench`` through pynq's on-board path against the emulated board,
  at batch N (``emulated``: host wall clock around an emulated board, not a board's figure).

Ratios are hls4ml-float over packed, from the one run.

    python bench/interfaces.py [--model DIR] [--jets 10000] [--repeat 5] [--json FILE]

Without ``--model`` a small model is trained on the configured data ($PSQS_DATA) under ``--work``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from psqs.common import codec
from psqs.common.codec import FeatureEncoder, decode_bytes
from psqs.common.package import OverlayPackage
from psqs.deploy.emulator.local_device import environment

BOARD = "pynq-z2"
INTERFACES = ("psqs", "hls4ml-float")


def train(work: Path) -> Path:
    from psqs.qap import stage as qap_stage
    from psqs.qap.config import TrainConfig

    return qap_stage.run(TrainConfig(epochs=3, patience=2, max_train=20000, test_vectors=2000), work / "model",
                         force=True).path


def build(model: Path, work: Path, interface: str) -> Path:
    from psqs.hls import stage
    from psqs.overlays.build import build as build_overlay

    hls_dir = stage.run(model, work / f"hls-{interface}", stage.options_for_board(BOARD, interface=interface),
                        force=True)
    return build_overlay(hls_dir, BOARD, work / f"package-{interface}", emulation=True, force=True)


def host_costs(package: OverlayPackage, X: np.ndarray, repeat: int) -> dict:
    """Encode and decode time per jet (best of ``repeat``), into/out of buffers as the host does."""
    contract, (mean, scale) = package.contract, package.scaler
    encoder = FeatureEncoder(contract.input, mean, scale)
    inputs = np.zeros(len(X) * contract.input.bytes_per_sample, np.uint8)
    logits = np.random.default_rng(0).normal(0, 2, (len(X), contract.output.values))   # plausible outputs
    outputs = codec.pack(contract.output, codec.encode(contract.output, logits)[0])
    encode, decode = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        encoder(X, inputs)
        t1 = time.perf_counter()
        decode_bytes(contract.output, outputs, len(X))
        t2 = time.perf_counter()
        encode.append(t1 - t0)
        decode.append(t2 - t1)
    return {"encode_ns_per_jet": min(encode) / len(X) * 1e9, "decode_ns_per_jet": min(decode) / len(X) * 1e9}


def emulated_throughput(package: Path, jets: int, work: Path) -> dict:
    report = work / "run.json"
    proc = subprocess.run([sys.executable, "-m", "psqs.deploy.emulator.local_device", "-m", "psqs.host", "bench",
                           str(package), "--batch-sizes", str(jets), "--repeats", "3", "--warmup", "1",
                           "--json", str(report)], env=environment(BOARD, [package], work / "client"),
                          capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode:
        raise SystemExit(f"psqs bench on {package} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(report.read_text())
    batch, accuracy = result["batches"][0], result["accuracy"]
    return {"jets_per_s": batch["throughput_per_s"], "p50_ms": batch["latency_ms"]["p50"],
            "exact_vs_csim": accuracy["vs_csim"]["exact_samples"],
            "samples_in_out": [accuracy["samples_in"], accuracy["samples_out"]]}


def measure(packages: dict, jets: int, repeat: int, work: Path) -> dict:
    rows = {}
    for name, path in packages.items():
        package = OverlayPackage(path)
        contract = package.contract
        X = np.resize(package.test_vectors()["X"], (jets, contract.input.values))
        reuse = int((package.manifest.get("hls") or {}).get("reuse_factor", 1))
        (work / name).mkdir()
        rows[name] = {
            "layout": {"in": contract.input.describe(), "out": contract.output.describe()},
            "bytes_per_jet": {"in": contract.input.bytes_per_sample, "out": contract.output.bytes_per_sample},
            "beats_per_jet": {"in": contract.input.beats_per_sample, "out": contract.output.beats_per_sample},
            "ii_cycles_estimate": contract.initiation_interval(reuse),
            "host_measured": host_costs(package, X, repeat),
            "end_to_end_emulated": emulated_throughput(path, jets, work / name),
        }
    return rows


def table(rows: dict) -> str:
    packed, other = (rows[name] for name in INTERFACES)
    lines = [f"{'figure':<36} {'packed (psqs)':>14} {'hls4ml-float':>14} {'ratio':>8}  source"]

    def line(label, get, source, fmt="{:>14.0f}"):
        a, b = get(packed), get(other)
        lines.append(f"{label:<36} {fmt.format(a)} {fmt.format(b)} {b / a:>7.2f}x  {source}")

    line("bytes per jet in (DMA)", lambda r: r["bytes_per_jet"]["in"], "contract")
    line("bytes per jet out (DMA)", lambda r: r["bytes_per_jet"]["out"], "contract")
    line("beats per jet in", lambda r: r["beats_per_jet"]["in"], "contract")
    line("beats per jet out", lambda r: r["beats_per_jet"]["out"], "contract")
    line("fabric II [cycles]", lambda r: r["ii_cycles_estimate"], "estimate (II rule)")
    line("host encode [ns/jet]", lambda r: r["host_measured"]["encode_ns_per_jet"], "measured", "{:>14.1f}")
    line("host decode [ns/jet]", lambda r: r["host_measured"]["decode_ns_per_jet"], "measured", "{:>14.1f}")
    line("end to end [jets/s]", lambda r: r["end_to_end_emulated"]["jets_per_s"], "emulated")
    for name in INTERFACES:
        e = rows[name]["end_to_end_emulated"]
        lines.append(f"{name}: {rows[name]['layout']['in']} -> {rows[name]['layout']['out']}; "
                     f"exact vs C simulation {e['exact_vs_csim']:.2%}, samples in/out {e['samples_in_out']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="a model directory (psqs train)")
    parser.add_argument("--work", type=Path, default=Path("runs/bench-interfaces"))
    parser.add_argument("--jets", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    model = args.model or train(args.work)
    packages = {name: build(model, args.work, name) for name in INTERFACES}
    with tempfile.TemporaryDirectory(prefix="psqs-interfaces-") as tmp:
        rows = measure(packages, args.jets, args.repeat, Path(tmp))
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
