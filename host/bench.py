"""Hardware-in-the-loop benchmark: latency, throughput, fabric timing and accuracy of a package.

Three kinds of numbers, kept apart because they mean different things:
- host figures (per call, wall clock): what an application on this host sees, including Python,
  the DMA driver and, over PYNQ.remote, the network; with the per-stage breakdown;
- fabric figures (the stream probe's cycle counters): what the model IP itself does, read from
  the board after each call, so neither Python nor the network is in them;
- accuracy: top-1 on the labels and bit-agreement with the software references shipped in the
  package (the C simulation and the exact QKeras logits).
"""
from __future__ import annotations

import json
import logging
import os
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

from .accelerator import Accelerator, CallTiming
from .agreement import compare

log = logging.getLogger(__name__)

REPORT_KIND = "psqs.run_report"


@dataclass(frozen=True)
class BenchConfig:
    batch_sizes: tuple[int, ...] = (1, 10, 100, 1000, 10000)
    repeats: int = 20
    warmup: int = 3


def _batch(X: np.ndarray, size: int) -> np.ndarray:
    """``size`` rows of the test features, cycling through them when more are asked for."""
    return X[np.arange(size) % X.shape[0]]


def _percentiles(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1e3
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
            "p99": float(np.percentile(ms, 99)), "max": float(ms.max()), "min": float(ms.min()),
            "mean": float(ms.mean())}


def fabric_figures(snapshot, samples: int, beats_out: int, fclk_mhz: float) -> dict:
    """Latency, transfer time and effective II of the last transfer, from probe counters.

    For a transfer of N samples the probe measures L (first input beat -> first output beat) and
    T (first input beat -> last output beat); the last sample's first output beat comes at
    T - (beats_out - 1), so the steady-state interval is (T - (beats_out - 1) - L) / (N - 1).
    """
    latency = snapshot.last_latency
    transfer = snapshot.last_transfer_time
    if latency is None or transfer is None:
        return {"measured": False, "reason": "the probe saw no complete transfer since CLEAR"}
    ii = (transfer - (beats_out - 1) - latency) / (samples - 1) if samples > 1 else None
    ns = 1e3 / fclk_mhz
    return {"measured": True, "trusted": snapshot.valid, "latency_cycles": int(latency), "latency_ns": latency * ns,
            "transfer_cycles": int(transfer), "transfer_ns": transfer * ns,
            "cycles_per_sample": transfer / samples, "effective_ii_cycles": ii,
            "min_latency_cycles": int(snapshot.min_latency), "max_latency_cycles": int(snapshot.max_latency),
            "input_beats": int(snapshot.in_beats), "output_beats": int(snapshot.out_beats),
            "transfers": int(snapshot.transfers)}


def _measure_batch(acc: Accelerator, X: np.ndarray, size: int, repeats: int) -> dict:
    data = _batch(X, size)
    latencies, timings = [], []
    for _ in range(repeats):
        acc.probe.clear()
        _, timing = acc.timed_predict(data)
        latencies.append(timing.total)
        timings.append(timing)
    # one snapshot, of the last call: over PYNQ.remote each of its register reads is a round trip
    last_chunk = size - (timings[-1].chunks - 1) * acc.chunk_samples
    fabric = fabric_figures(acc.probe.snapshot(), last_chunk, acc.output.beats_per_sample,
                            acc.package.timing["fclk_mhz"])
    stats = _percentiles(latencies)
    return {
        "batch_size": size,
        "repeats": repeats,
        "latency_ms": stats,
        "latencies_ms": [t * 1e3 for t in latencies],
        "throughput_per_s": size / (stats["p50"] / 1e3),
        "breakdown_ms": {stage: float(np.mean([getattr(t, stage) for t in timings]) * 1e3)
                         for stage in CallTiming.STAGES},
        "chunks": timings[-1].chunks,
        "fabric_last_transfer": fabric,
    }


def accuracy(acc: Accelerator) -> dict:
    vectors = acc.package.test_vectors()
    logits = acc.predict(vectors["X"])
    return {
        "n_jets": int(vectors["y"].size),
        "top1": float((logits.argmax(axis=1) == vectors["y"]).mean()),
        "vs_csim": compare("board vs C simulation", vectors["csim_logits"], logits),
        "vs_qkeras": compare("board vs QKeras (exact reference)", vectors["logits"], logits),
        "samples_in": int(vectors["X"].shape[0]),
        "samples_out": int(logits.shape[0]),
    }


def run(acc: Accelerator, config: BenchConfig, progress=None) -> dict:
    """The whole benchmark on one loaded accelerator; returns the JSON-ready report."""
    X = acc.package.test_vectors()["X"]
    for _ in range(config.warmup):
        acc.predict(_batch(X, max(config.batch_sizes)))
    batches = []
    for size in config.batch_sizes:
        batches.append(_measure_batch(acc, X, size, config.repeats))
        if progress:
            progress(size)
    import pynq

    return {
        "kind": REPORT_KIND,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "package": {"path": str(acc.package.path), "name": acc.package.name,
                    "emulation": acc.package.emulation,
                    "bitstream_sha256": acc.package.manifest["files"][acc.package.bitstream.name]},
        "board": {"package_board": acc.package.board["name"],
                  "reported_board": getattr(pynq.Device.active_device, "name", None),
                  "remote": os.environ.get("PYNQ_REMOTE_DEVICES") or None,
                  "fclk_mhz_manifest": acc.package.board["fclk_mhz"], "fclk_mhz_readback": acc.fclk_mhz},
        "versions": {"pynq": pynq.__version__, "psqs": _version("psqs"), "numpy": np.__version__,
                     "python": platform.python_version()},
        "config": {"batch_sizes": list(config.batch_sizes), "repeats": config.repeats, "warmup": config.warmup,
                   "chunk_samples": acc.chunk_samples},
        "batches": batches,
        "accuracy": accuracy(acc),
        "timing_model": acc.package.timing,
    }


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def summary(report: dict) -> str:
    acc = report["accuracy"]
    lines = [f"board      {report['board']['package_board']} ({report['board']['reported_board']}"
             f"{', remote ' + report['board']['remote'] if report['board']['remote'] else ''}"
             f"{', emulated' if report['package']['emulation'] else ''}), fclk "
             f"{report['board']['fclk_mhz_readback']:.1f} MHz",
             f"accuracy   top-1 {acc['top1']:.4f} on {acc['n_jets']} jets; exact vs C simulation "
             f"{acc['vs_csim']['exact_samples']:.2%}, vs QKeras {acc['vs_qkeras']['exact_samples']:.2%}; "
             f"samples in/out {acc['samples_in']}/{acc['samples_out']}",
             f"{'batch':>7} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'max ms':>9} {'inf/s':>11} "
             f"{'fabric lat':>11} {'fabric II':>10}"]
    for b in report["batches"]:
        lat, fab = b["latency_ms"], b["fabric_last_transfer"]
        measured = fab["measured"]
        ii = f"{fab['effective_ii_cycles']:.2f} cyc" if measured and fab["effective_ii_cycles"] is not None else "-"
        fabric_latency = f"{fab['latency_ns']:>8.0f} ns" if measured else f"{'-':>11}"
        lines.append(f"{b['batch_size']:>7} {lat['p50']:>9.3f} {lat['p95']:>9.3f} {lat['p99']:>9.3f} "
                     f"{lat['max']:>9.3f} {b['throughput_per_s']:>11.0f} {fabric_latency} {ii:>10}")
    return "\n".join(lines)


def write_plots(report: dict, directory: Path) -> list[Path]:
    """Latency histogram and latency/throughput vs batch size, if matplotlib is importable."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib not importable: no plots")
        return []
    directory.mkdir(parents=True, exist_ok=True)
    batches = report["batches"]
    sizes = [b["batch_size"] for b in batches]
    name = report["package"]["name"]

    def latency(ax):
        for key, style in (("p50", "o-"), ("p95", "s--"), ("p99", "^:")):
            ax.plot(sizes, [b["latency_ms"][key] for b in batches], style, label=key)
        ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="host latency per call [ms]",
               title=f"{name}: latency")

    def throughput(ax):
        ax.plot(sizes, [b["throughput_per_s"] for b in batches], "o-", label="host (p50 call)")
        fabric = [(b["batch_size"], b["batch_size"] / (b["fabric_last_transfer"]["transfer_ns"] * 1e-9))
                  for b in batches if b["chunks"] == 1 and b["fabric_last_transfer"]["measured"]]
        ax.plot(*zip(*fabric), "s--", label="fabric (probe)")
        ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="inferences / s", title=f"{name}: throughput")

    def histogram(ax):
        every = np.concatenate([b["latencies_ms"] for b in batches])
        bins = np.geomspace(max(every.min(), 1e-3), every.max() * 1.0001, 60)
        for b in batches:
            ax.hist(b["latencies_ms"], bins=bins, histtype="stepfilled", alpha=0.6, label=f"batch {b['batch_size']}")
        ax.set(xscale="log", xlabel="host latency per call [ms]", ylabel="calls", title=f"{name}: latency histogram")

    written = []
    for filename, draw in (("latency_vs_batch.png", latency), ("throughput_vs_batch.png", throughput),
                           ("latency_histogram.png", histogram)):
        fig, ax = plt.subplots(figsize=(6, 4))
        draw(ax)
        ax.legend(fontsize="small")
        written.append(directory / filename)
        fig.savefig(written[-1], dpi=120, bbox_inches="tight")
        plt.close(fig)
    return written


def write_report(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(path)
