"""Hardware-in-the-loop benchmark: latency, throughput, fabric timing and accuracy of a package.

Three kinds of numbers, kept apart because they mean different things:
- host figures (per call, wall clock): what an application on this host sees, including Python,
  the DMA driver and, over PYNQ.remote, the network; with the per-stage breakdown;
- fabric figures (the stream probe's cycle counters): what the model IP itself does, read from
  the board after each call, so neither Python nor the network is in them. Each carries its
  ``source`` (:func:`fabric_source`): ``measured`` on hardware; under emulation the probe replays
  the package's timing model, so the label says where that model came from;
- accuracy: top-1, per-class ROC AUC and the confusion matrix on the labels of the package's test
  vectors (next to training's figures on its whole test split), and bit-agreement with the
  software references shipped in the package (the C simulation and the exact QKeras logits).

Results are not lost late: :func:`check_outputs` refuses unwritable output paths before anything
is loaded, and a run that fails part-way writes what it finished, with the error, to a partial
report. Every call's MM2S transfer numbers are recorded, so a failure or a latency outlier can be
matched with an emulator fault aimed at transfer N (``--fault hang@N``).
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

from psqs.common import classification
from psqs.common.agreement import compare
from psqs.common.artifact import ArtifactError
from psqs.common.errors import PsqsError, RunFailed

from .accelerator import Accelerator, CallTiming, board_name
from .dma import DMAError, DMATimeout

log = logging.getLogger(__name__)

REPORT_KIND = "psqs.run_report"
PARTIAL_REPORT = "run_report.partial.json"

#: The fabric label of an overlay without a stream probe (an imported hls4ml build).
NO_PROBE = "none"
#: Under emulation the probe's counters follow the package's timing model; its manifest
#: ``timing.source`` says where the model came from, this says how a figure from it is labelled.
EMULATED_FABRIC_SOURCE = {"rtl": "rtl-sim", "hls_report": "hls-report", "estimate": "estimate"}
FABRIC_SOURCE_MEANING = {
    "measured": "counted by the stream probe in the fabric",
    "rtl-sim": "the emulated probe, timed by the Verilated RTL's simulated cycles, not measured",
    "hls-report": "the emulated probe, replaying the HLS report's latency and II, not measured",
    "estimate": "the emulated probe, replaying psqs' latency/II formula, not measured",
    NO_PROBE: "no stream probe in this overlay: no fabric figure is counted or replayed "
              "(an HLS report's latency/II, if the package has one, is in timing_model, labelled hls-report)",
}
#: A call slower than this multiple of its batch size's median is pointed out in the summary.
OUTLIER_RATIO = 5.0


@dataclass(frozen=True)
class BenchConfig:
    batch_sizes: tuple[int, ...] = (1, 10, 100, 1000, 10000)
    repeats: int = 20
    warmup: int = 3


class BenchFailed(RunFailed):
    """A benchmark that failed part-way; ``partial`` is the report of what it finished."""

    def __init__(self, message: str, partial: dict):
        super().__init__(message)
        self.partial = partial


def fabric_source(package) -> str:
    """How the probe's figures of ``package`` are labelled (see the module docstring)."""
    if package.probe is None:
        return NO_PROBE
    if not package.emulation:
        return "measured"
    source = package.timing.get("source")
    if source not in EMULATED_FABRIC_SOURCE:
        raise ArtifactError(f"{package.path / 'manifest.json'}: timing.source {source!r} is none of "
                            f"{', '.join(EMULATED_FABRIC_SOURCE)}")
    return EMULATED_FABRIC_SOURCE[source]


def check_outputs(json_path: Path | None, plots: Path | None) -> None:
    """Refuse output paths that cannot be written, before anything is loaded or streamed: a
    result that cannot be saved is lost only at the end of the run."""
    if json_path is not None:
        if json_path.is_dir():
            raise PsqsError(f"--json {json_path}: is a directory; give a file name such as "
                            f"{json_path / 'run_report.json'}")
        if json_path.exists() and not os.access(json_path, os.W_OK):
            raise PsqsError(f"--json {json_path}: the file is not writable")
        _check_creatable("--json", json_path, json_path.parent)
    if plots is not None:
        if plots.exists() and not plots.is_dir():
            raise PsqsError(f"--plots {plots}: exists and is not a directory")
        _check_creatable("--plots", plots, plots)


def _check_creatable(option: str, path: Path, directory: Path) -> None:
    """``directory`` exists or can be created: its nearest existing ancestor is a writable directory."""
    existing = directory
    try:
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            raise PsqsError(f"{option} {path}: {existing} is not a directory")
    except OSError as exc:
        raise PsqsError(f"{option} {path}: {exc.strerror or exc}") from None
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PsqsError(f"{option} {path}: directory {existing} is not writable")


def partial_path(json_path: Path | None) -> Path:
    """Where a failed run's partial report goes: beside ``--json``, else the current directory."""
    return (json_path.parent if json_path is not None else Path()) / PARTIAL_REPORT


def _batch(X: np.ndarray, size: int) -> np.ndarray:
    """``size`` rows of the test features, cycling through them when more are asked for."""
    return X[np.arange(size) % X.shape[0]]


def _percentiles(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1e3
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
            "p99": float(np.percentile(ms, 99)), "max": float(ms.max()), "min": float(ms.min()),
            "mean": float(ms.mean())}


def fabric_figures(snapshot, samples: int, beats_out: int, fclk_mhz: float, source: str) -> dict:
    """Latency, transfer time and effective II of the last transfer, from probe counters.

    For a transfer of N samples the probe measures L (first input beat -> first output beat) and
    T (first input beat -> last output beat); the last sample's first output beat comes at
    T - (beats_out - 1), so the steady-state interval is (T - (beats_out - 1) - L) / (N - 1).
    Cycles become time with ``fclk_mhz``, the clock read back from the board, and every figure
    is labelled with ``source``.
    """
    latency = snapshot.last_latency
    transfer = snapshot.last_transfer_time
    if latency is None or transfer is None:
        return {"source": source, "available": False, "reason": "the probe saw no complete transfer since CLEAR"}
    ii = (transfer - (beats_out - 1) - latency) / (samples - 1) if samples > 1 else None
    ns = 1e3 / fclk_mhz
    return {"source": source, "available": True, "trusted": snapshot.valid, "fclk_mhz": fclk_mhz,
            "latency_cycles": int(latency), "latency_ns": latency * ns,
            "transfer_cycles": int(transfer), "transfer_ns": transfer * ns,
            "cycles_per_sample": transfer / samples, "effective_ii_cycles": ii,
            "min_latency_cycles": int(snapshot.min_latency), "max_latency_cycles": int(snapshot.max_latency),
            "input_beats": int(snapshot.in_beats), "output_beats": int(snapshot.out_beats),
            "transfers": int(snapshot.transfers)}


class _Run:
    """One benchmark on one accelerator; :attr:`phase` names what it is doing, for errors."""

    def __init__(self, acc: Accelerator, config: BenchConfig):
        self.acc, self.config = acc, config
        self.vectors = acc.package.test_vectors()
        self.phase = "setup"

    def _call(self, data: np.ndarray):
        """One timed call and the MM2S transfer numbers it used (first, last)."""
        first = self.acc.mm2s_transfers + 1
        logits, timing = self.acc.timed_predict(data)
        return logits, timing, [first, self.acc.mm2s_transfers]

    def warmup(self) -> dict:
        size = max(self.config.batch_sizes)
        data, spans = _batch(self.vectors["X"], size), []
        for r in range(self.config.warmup):
            self.phase = f"warm-up call {r + 1}/{self.config.warmup} (batch size {size})"
            spans.append(self._call(data)[2])
        return {"calls": self.config.warmup, "batch_size": size,
                "mm2s_transfers": [spans[0][0], spans[-1][1]] if spans else None}

    def batch(self, size: int, fclk_mhz: float, source: str) -> dict:
        acc, repeats = self.acc, self.config.repeats
        data = _batch(self.vectors["X"], size)
        latencies, timings, spans = [], [], []
        for r in range(repeats):
            self.phase = f"batch size {size} repeat {r + 1}/{repeats}"
            if acc.probe is not None:
                acc.probe.clear()
            _, timing, span = self._call(data)
            latencies.append(timing.total)
            timings.append(timing)
            spans.append(span)
        if acc.probe is None:
            fabric = {"source": source, "available": False, "reason": FABRIC_SOURCE_MEANING[NO_PROBE]}
        else:
            self.phase = f"batch size {size}: reading the stream probe"
            # one snapshot, of the last call: over PYNQ.remote each of its register reads is a round trip
            last_chunk = size - (timings[-1].chunks - 1) * acc.chunk_samples
            fabric = fabric_figures(acc.probe.snapshot(), last_chunk, acc.output.beats_per_sample, fclk_mhz, source)
        stats = _percentiles(latencies)
        slowest = int(np.argmax(latencies))
        return {
            "batch_size": size,
            "repeats": repeats,
            "latency_ms": stats,
            "latencies_ms": [t * 1e3 for t in latencies],
            "throughput_per_s": size / (stats["p50"] / 1e3),
            "breakdown_ms": {stage: float(np.mean([getattr(t, stage) for t in timings]) * 1e3)
                             for stage in CallTiming.STAGES},
            "chunks": timings[-1].chunks,
            "mm2s_transfers": [spans[0][0], spans[-1][1]],
            "repeat_mm2s_transfers": spans,
            "slowest_repeat": {"repeat": slowest + 1, "ms": latencies[slowest] * 1e3,
                               "vs_p50": latencies[slowest] * 1e3 / stats["p50"], "mm2s_transfers": spans[slowest]},
            "fabric_last_transfer": fabric,
        }

    def accuracy(self) -> dict:
        """Exactness vs the C simulation always; vs the QKeras reference and against labels where
        the package's test vectors carry them (an imported hls4ml build may have neither)."""
        self.phase = "accuracy"
        vectors, package = self.vectors, self.acc.package
        logits, _, span = self._call(vectors["X"])
        model = package.manifest.get("model") or {}
        classes = model.get("classes") or [str(c) for c in range(logits.shape[1])]
        training = (model.get("metrics") or {}).get("test")
        labelled = classification.evaluate(logits, vectors["y"], classes, "test vectors") if "y" in vectors else {
            "top1": None, "auc_macro": None, "sample_set": "test vectors (no labels)", "n": int(logits.shape[0])}
        return {
            **labelled,
            "training": None if training is None else {
                "sample_set": "test split", "n": training.get("n_jets"), "top1": training.get("accuracy"),
                "auc_macro": training.get("auc_macro")},
            "vs_csim": compare("board vs C simulation", vectors["csim_logits"], logits),
            "vs_qkeras": (compare("board vs QKeras (exact reference)", vectors["logits"], logits)
                          if "logits" in vectors else None),
            "samples_in": int(vectors["X"].shape[0]),
            "samples_out": int(logits.shape[0]),
            "mm2s_transfers": span,
        }


def _header(acc: Accelerator, config: BenchConfig, fclk_mhz: float, source: str) -> dict:
    import pynq

    return {
        "kind": REPORT_KIND,
        "complete": False,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "package": {"path": str(acc.package.path), "name": acc.package.name,
                    "emulation": acc.package.emulation,
                    "bitstream_sha256": acc.package.manifest["files"][acc.package.bitstream.name]},
        "board": {"package_board": acc.package.board["name"],
                  "reported_board": board_name(pynq.Device.active_device),   # as the board names itself
                  "remote": os.environ.get("PYNQ_REMOTE_DEVICES") or None,
                  "fclk_mhz_manifest": acc.package.board["fclk_mhz"], "fclk_mhz_readback": fclk_mhz},
        "versions": {"pynq": pynq.__version__, "psqs": _version("psqs"), "numpy": np.__version__,
                     "python": platform.python_version()},
        "config": {"batch_sizes": list(config.batch_sizes), "repeats": config.repeats, "warmup": config.warmup,
                   "chunk_samples": acc.chunk_samples},
        "fabric_source": {"label": source, "meaning": FABRIC_SOURCE_MEANING[source]},
        "timing_model": acc.package.timing,
        "batches": [],
    }


def _is_run_failure(exc: BaseException) -> bool:
    """A failure of the board or the link (not a bug): DMA errors and timeouts, a lost connection,
    pynq's gRPC errors, any expected psqs failure."""
    return (isinstance(exc, (PsqsError, DMAError, DMATimeout, OSError))
            or type(exc).__module__.split(".")[0] == "grpc")


def run(acc: Accelerator, config: BenchConfig, progress=None, partial: Path | None = None) -> dict:
    """The whole benchmark on one loaded accelerator; returns the JSON-ready report.

    If it fails part-way, the report of what it finished, with the error, its phase and MM2S
    transfer, is written to ``partial`` (when given) before the error propagates; a failure of
    the board or the link becomes :class:`BenchFailed` naming the phase, the transfer and the file.
    """
    state = _Run(acc, config)
    fclk_mhz = acc.fclk_mhz                   # read back once: over PYNQ.remote each read is a round trip
    source = fabric_source(acc.package)
    report = _header(acc, config, fclk_mhz, source)
    try:
        report["warmup"] = state.warmup()
        for size in config.batch_sizes:
            report["batches"].append(state.batch(size, fclk_mhz, source))
            if progress:
                progress(size)
        report["accuracy"] = state.accuracy()
    except BaseException as exc:
        where = f"{state.phase}, MM2S transfer {acc.mm2s_transfers}"
        report["error"] = {"phase": state.phase, "mm2s_transfer": acc.mm2s_transfers,
                           "type": type(exc).__name__, "message": str(exc)}
        saved = _write_partial(report, partial)
        if isinstance(exc, Exception) and _is_run_failure(exc):
            finished = [b["batch_size"] for b in report["batches"]]
            raise BenchFailed(f"bench failed in {where}: {exc}; {saved} (finished batch sizes: "
                              f"{', '.join(map(str, finished)) or 'none'})", report) from exc
        log.error("bench failed in %s; %s", where, saved)
        raise
    report["complete"] = True
    return report


def _write_partial(report: dict, path: Path | None) -> str:
    if path is None:
        return "no partial report written"
    try:
        write_report(report, path)
    except OSError as exc:
        return f"the partial report could not be written to {path} ({exc.strerror or exc})"
    return f"partial report written to {path}"


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def summary(report: dict) -> str:
    """The run in a few lines; every fabric figure shows its source label."""
    board, source = report["board"], report["fabric_source"]
    lines = [f"board      {board['package_board']} ({board['reported_board']}"
             f"{', remote ' + board['remote'] if board['remote'] else ''}"
             f"{', emulated' if report['package']['emulation'] else ''}), fclk "
             f"{board['fclk_mhz_readback']:.1f} MHz (read back)"]
    if "accuracy" in report:
        acc, training = report["accuracy"], report["accuracy"]["training"]
        trained = (f" (training: {training['top1']:.4f} on {training['sample_set']}, N={training['n']})"
                   if training and training.get("top1") is not None else "")
        auc = f"; AUC (macro) {acc['auc_macro']:.4f}" if acc["auc_macro"] is not None else ""
        top1 = f"{acc['top1']:.4f}" if acc["top1"] is not None else "- (no labels)"
        lines.append(f"accuracy   top-1 {top1} on {acc['sample_set']}, N={acc['n']}{trained}{auc}")
        qkeras = f", vs QKeras {acc['vs_qkeras']['exact_samples']:.2%}" if acc["vs_qkeras"] else ""
        lines.append(f"agreement  exact vs C simulation {acc['vs_csim']['exact_samples']:.2%}{qkeras}; "
                     f"samples in/out {acc['samples_in']}/{acc['samples_out']}")
    lines.append(f"fabric     figures: {source['label']}: {source['meaning']}")
    lines.append(f"{'batch':>7} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'max ms':>9} {'inf/s':>11} "
                 f"{'fabric lat':>11} {'fabric II':>10}  fabric src")
    outliers = []
    for b in report["batches"]:
        lat, fab = b["latency_ms"], b["fabric_last_transfer"]
        available = fab["available"]
        ii = f"{fab['effective_ii_cycles']:.2f} cyc" if available and fab["effective_ii_cycles"] is not None else "-"
        fabric_latency = f"{fab['latency_ns']:>8.0f} ns" if available else f"{'-':>11}"
        lines.append(f"{b['batch_size']:>7} {lat['p50']:>9.3f} {lat['p95']:>9.3f} {lat['p99']:>9.3f} "
                     f"{lat['max']:>9.3f} {b['throughput_per_s']:>11.0f} {fabric_latency} {ii:>10}  {fab['source']}")
        slow = b["slowest_repeat"]
        if slow["vs_p50"] > OUTLIER_RATIO:
            first, last = slow["mm2s_transfers"]
            outliers.append(f"outlier    batch size {b['batch_size']} repeat {slow['repeat']}/{b['repeats']}: "
                            f"{slow['ms']:.3f} ms, {slow['vs_p50']:.1f}x its p50 (MM2S transfer "
                            f"{first if first == last else f'{first}-{last}'})")
    return "\n".join(lines + outliers)


def write_plots(report: dict, directory: Path) -> list[Path]:
    """Latency histogram, latency/throughput vs batch size, and the accuracy's ROC curves and
    confusion matrix, if matplotlib is importable (it is optional on a board).

    Only figures that exist are drawn (no point is made up for a batch size without a fabric
    figure), and the fabric series is labelled with its source.
    """
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
    source = report["fabric_source"]["label"]

    def latency(ax):
        for key, style in (("p50", "o-"), ("p95", "s--"), ("p99", "^:")):
            ax.plot(sizes, [b["latency_ms"][key] for b in batches], style, label=f"host {key}")
        ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="host latency per call [ms]",
               title=f"{name}: latency")

    def throughput(ax):
        ax.plot(sizes, [b["throughput_per_s"] for b in batches], "o-", label="host (p50 call)")
        # one transfer per call only: the probe's figures describe the last transfer alone
        fabric = [(b["batch_size"], b["batch_size"] / (b["fabric_last_transfer"]["transfer_ns"] * 1e-9))
                  for b in batches if b["chunks"] == 1 and b["fabric_last_transfer"]["available"]]
        if fabric:
            x, y = zip(*fabric)
            ax.plot(x, y, "s--", label=f"fabric (stream probe, {source})")
        ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="inferences / s",
               title=f"{name}: throughput (fabric: {source})")

    def histogram(ax):
        every = np.concatenate([b["latencies_ms"] for b in batches])
        bins = np.geomspace(max(every.min(), 1e-3), every.max() * 1.0001, 60)
        for b in batches:
            ax.hist(b["latencies_ms"], bins=bins, histtype="stepfilled", alpha=0.6, label=f"batch {b['batch_size']}")
        ax.set(xscale="log", xlabel="host latency per call [ms]", ylabel="calls", title=f"{name}: latency histogram")

    written = []
    drawings = (("latency_vs_batch.png", latency), ("throughput_vs_batch.png", throughput),
                ("latency_histogram.png", histogram)) if batches else ()
    for filename, draw in drawings:
        fig, ax = plt.subplots(figsize=(6, 4))
        draw(ax)
        ax.legend(fontsize="small")
        written.append(directory / filename)
        fig.savefig(written[-1], dpi=120, bbox_inches="tight")
        plt.close(fig)
    if report.get("accuracy", {}).get("top1") is not None:     # ROC and confusion need labels
        written += classification.write_plots(report["accuracy"], directory, f"{name} on the board")
    return written


def write_report(report: dict, path: Path) -> None:
    """Write ``report`` to ``path`` whole or not at all (through a temporary file beside it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
