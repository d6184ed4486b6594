"""The sweep's results table: one row per checkpoint and per stage artifact, read from the directory.

Everything comes from the plan (``sweep.json``) and the artifacts the units wrote, never from a
process that ran them, so a report can be drawn on any machine, during a sweep or after it.

Rows (column ``stage``):
- ``model``: one per model artifact that exists (each checkpoint of a pruning chain as soon as it is
  written, each search trial): its labels and the figures of its ``metrics.json``;
- ``convert``, ``rtl``, ``build``, ``bench``: one per stage artifact, carrying the model figures of
  the checkpoint it was made from (so accuracy can be drawn against LUTs) and its own figures.

Every hardware figure has a provenance column saying where it came from (:data:`SOURCES`), because
an HLS estimate, a yosys count, a Verilator cycle count and a board measurement are not the same
kind of number. A figure the artifact does not have is empty (NaN), never guessed.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from psqs.common.artifact import MANIFEST, ArtifactError, read_manifest
from psqs.common.errors import PsqsError
from psqs.common.package import FORMAT_VERSION as OVERLAY_VERSION
from psqs.common.package import KIND as OVERLAY_KIND
from psqs.hls.rtl.stage import FORMAT_VERSION as RTL_VERSION
from psqs.hls.rtl.stage import KIND as RTL_KIND
from psqs.hls.stage import FORMAT_VERSION as HLS_VERSION
from psqs.hls.stage import KIND as HLS_KIND
from psqs.qap.artifact import FORMAT_VERSION as MODEL_VERSION
from psqs.qap.artifact import KIND as MODEL_KIND
from psqs.qap.config import FLOAT_BITS

from .layout import SweepDir, Unit
from .units import BENCH_KIND, BENCH_VERSION

#: The artifact kind (and newest format this code reads) each unit kind writes.
ARTIFACT_KINDS = {"chain": (MODEL_KIND, MODEL_VERSION), "trial": (MODEL_KIND, MODEL_VERSION),
                  "convert": (HLS_KIND, HLS_VERSION), "rtl": (RTL_KIND, RTL_VERSION),
                  "build": (OVERLAY_KIND, OVERLAY_VERSION), "bench": (BENCH_KIND, BENCH_VERSION)}
MODEL_UNITS = ("chain", "trial")

#: Provenance labels of the hardware columns (``*_source``).
SOURCES = {
    "rtl-sim": "counted on the Verilated RTL (psqs rtl): cycle-accurate simulation, not a board",
    "estimate (yosys)": "yosys synthesis of the RTL: an estimate, Vivado maps and packs differently",
    "hls-report": "the HLS tool's synthesis report: scheduled worst case and estimated resources",
    "vivado (implemented)": "Vivado's post-implementation utilization report",
    "estimate (psqs formula)": "psqs' latency/II formula for an overlay without RTL timing or HLS report",
    "emulated": "psqs bench on an emulated board: the host's wall clock, or the emulated probe "
                "replaying the label in brackets",
    "measured": "psqs bench on a real board: the host's wall clock, or the stream probe in the fabric",
}

#: How an overlay's ``timing.source`` (psqs.overlays.model_ip) reads as a provenance label.
_PACKAGE_TIMING = {"rtl": "rtl-sim", "hls_report": "hls-report", "estimate": "estimate (psqs formula)"}

#: Families of checkpoints the figures compare (see :func:`family`).
FAMILIES = ("QAP", "QAT", "prune-float", "float", "BO")

#: The table's columns, in order. Classes add ``auc_<c>`` and ``rejection_<c>`` after ``auc_macro``.
COLUMNS = (
    "key",                    # the unit's key (a chain's checkpoints share it; ``step`` tells them apart)
    "stage",                  # model | convert | rtl | build | bench
    "method", "family", "bits", "seed", "randomized_labels",
    "step",                   # index of the checkpoint in its chain (0-based); NaN for a trial
    "trial",                  # search trial number; NaN otherwise
    "sparsity_target",        # the checkpoint's target sparsity (plan)
    "sparsity",               # the mask-pruned fraction of all dense weights (metrics.json)
    "widths",                 # hidden layer widths, e.g. "64-32-32"
    "accuracy", "auc_macro",  # the checkpoint's test-split figures (metrics.json test.*)
    "bops", "eta_n", "aiq",
    "data_source",            # manifest data.source: openml:42468 or the file trained on
    "stage_accuracy",         # top-1 the stage itself measured (bench: on its test vectors); NaN otherwise
    "exact",                  # the stage's output bit-exact against its reference (True/False; empty for model)
    "latency_cycles", "latency_ns", "ii_cycles", "latency_source",
    "lut", "ff", "dsp", "resources_source",
    "throughput_jets_per_s", "throughput_source",
    "path",                   # the artifact, relative to the sweep directory
    "model_path",             # the checkpoint's model artifact, relative to the sweep directory
)


#: The columns a stage fills (a model row leaves them empty).
STAGE_COLUMNS = COLUMNS[COLUMNS.index("stage_accuracy"):COLUMNS.index("path")]


class ResultsError(PsqsError):
    """A sweep directory cannot be reported; the message names the path."""


def family(kind: str, bits: int, sparsity_target: float) -> str:
    """QAP (quantized and pruned), QAT (quantized, dense), prune-float (float, pruned), float (float,
    dense) or BO (a search trial): what a checkpoint is, whatever method's chain made it."""
    if kind == "trial":
        return "BO"
    pruned = sparsity_target > 0
    if bits == FLOAT_BITS:
        return "prune-float" if pruned else "float"
    return "QAP" if pruned else "QAT"


def _dig(d, *keys):
    """``d[k0][k1]...`` or None when any level is missing or null."""
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return d


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: unreadable ({exc})") from None


def _manifest(sweep: SweepDir, unit: Unit, out: str) -> dict:
    """The manifest of one unit output (kind checked; files not re-hashed: a report reads hundreds
    of artifacts and trusts what the units wrote; ``psqs`` stages verify before they use one)."""
    kind, version = ARTIFACT_KINDS[unit.kind]
    try:
        return read_manifest(sweep.path / out, kind, version, verify=False)
    except ArtifactError as exc:
        raise ResultsError(f"unit {unit.key} ({unit.describe()}): {exc}") from None


def model_row(sweep: SweepDir, unit: Unit, index: int) -> dict:
    """The row of one model artifact (a chain's ``index``-th checkpoint, or a trial)."""
    out = unit.outputs[index]
    manifest = _manifest(sweep, unit, out)
    metrics = _read_json(sweep.path / out / "metrics.json")
    config = manifest.get("config", {})
    labels = unit.labels
    if unit.kind == "chain":
        step, target = index, float(unit.params["steps"][index])
    else:
        step, target = labels.get("step"), float(labels.get("sparsity", config.get("sparsity", 0.0)))
    bits = int(labels.get("bits", config.get("bits")))
    test = metrics.get("test", {})
    row = {
        "key": unit.key, "stage": "model", "method": labels.get("method"),
        "family": family(unit.kind, bits, target), "bits": bits,
        "seed": labels.get("seed", config.get("seed")),
        "randomized_labels": float(labels.get("randomized_labels", config.get("randomized_labels", 0.0))),
        "step": step, "trial": labels.get("trial"), "sparsity_target": target,
        "sparsity": _dig(metrics, "sparsity", "total"),
        "widths": "-".join(str(w) for w in config.get("widths", labels.get("widths", ()))),
        "accuracy": test.get("accuracy"), "auc_macro": test.get("auc_macro"),
        "bops": _dig(metrics, "bops", "total"), "eta_n": _dig(metrics, "efficiency", "eta_n"),
        "aiq": _dig(metrics, "efficiency", "aiq"), "data_source": _dig(manifest, "data", "source"),
        "path": out, "model_path": out,
    }
    for name, value in (test.get("auc") or {}).items():
        row[f"auc_{name}"] = value
    for name, value in (test.get("rejection_at_50pct_signal_eff") or {}).items():
        row[f"rejection_{name}"] = value
    return row


def _per_second(ii_cycles, clock_ns):
    if ii_cycles is None or clock_ns is None or ii_cycles <= 0:
        return None
    return 1e9 / (ii_cycles * clock_ns)


def _convert_figures(sweep: SweepDir, out: str, manifest: dict) -> dict:
    """psqs.hls: verification, and the HLS synthesis report when one ran (report.json)."""
    report = _read_json(sweep.path / out / "report.json")
    row = {"exact": _dig(manifest, "verification", "success")}
    if report.get("synthesized"):
        clock = _dig(report, "clock_ns", "target") or _dig(manifest, "hls", "clock_period_ns")
        latency, ii = _dig(report, "latency_cycles", "max"), _dig(report, "interval_cycles", "max")
        resources = report.get("resources") or {}
        row.update(latency_cycles=latency, ii_cycles=ii, latency_source="hls-report",
                   latency_ns=latency * clock if latency is not None and clock else None,
                   lut=resources.get("LUT"), ff=resources.get("FF"), dsp=resources.get("DSP"),
                   resources_source="hls-report",
                   throughput_jets_per_s=_per_second(ii, clock), throughput_source="hls-report (1 / (II x clock))")
    return row


def _rtl_figures(manifest: dict) -> dict:
    """psqs.rtl: Verilator-measured latency/II, yosys resources (when synthesized)."""
    clock = _dig(manifest, "ip", "clock_period_ns")
    latency, ii = _dig(manifest, "timing", "latency_cycles"), _dig(manifest, "timing", "ii_cycles")
    row = {"exact": _dig(manifest, "verification", "success"),
           "latency_cycles": latency, "ii_cycles": ii, "latency_source": "rtl-sim",
           "latency_ns": latency * clock if latency is not None and clock else None,
           "throughput_jets_per_s": _per_second(ii, clock), "throughput_source": "rtl-sim (1 / (II x clock))"}
    if _dig(manifest, "resources", "synthesized"):
        used = _dig(manifest, "resources", "resources") or {}
        row.update(lut=used.get("LUT"), ff=used.get("FF"), dsp=used.get("DSP"), resources_source="estimate (yosys)")
    return row


def _build_figures(sweep: SweepDir, out: str, manifest: dict) -> dict:
    """psqs.overlay: the timing model the package carries (labelled by its source), and Vivado's
    utilization when the build was implemented."""
    report = _read_json(sweep.path / out / "report.json")
    timing = manifest.get("timing") or {}
    fclk = timing.get("fclk_mhz")
    clock = 1000.0 / fclk if fclk else None
    latency, ii = timing.get("latency_cycles"), timing.get("ii_cycles")
    source = _PACKAGE_TIMING.get(timing.get("source"), timing.get("source"))
    row = {"exact": _dig(report, "checks", "emulation", "exact"),
           "latency_cycles": latency, "ii_cycles": ii, "latency_source": source,
           "latency_ns": latency * clock if latency is not None and clock else None,
           "throughput_jets_per_s": _per_second(ii, clock),
           "throughput_source": f"{source} (1 / (II x clock))" if source else None}
    if report.get("implemented"):
        used = _dig(report, "utilization", "resources") or {}
        row.update({col: _dig(used, name, "used") for col, name in (("lut", "LUT"), ("ff", "FF"), ("dsp", "DSP"))},
                   resources_source="vivado (implemented)")
    return row


def _bench_figures(sweep: SweepDir, out: str, manifest: dict) -> dict:
    """psqs.sweep.bench: the run report ``psqs bench --json`` wrote. Accuracy and exactness on the
    package's test vectors; latency from the stream probe at the smallest batch; throughput the
    host's best over the batch sizes. Labelled ``measured`` on a board, ``emulated (<probe's
    source>)`` on an emulated one, as the run report says."""
    report = _read_json(sweep.path / out / manifest.get("run_report", "run_report.json"))
    emulated = bool(_dig(report, "package", "emulation"))
    fabric = _dig(report, "fabric_source", "label")
    batches = sorted(report.get("batches") or [], key=lambda b: b["batch_size"])
    probes = [b["fabric_last_transfer"] for b in batches if _dig(b, "fabric_last_transfer", "available")]
    row = {"stage_accuracy": _dig(report, "accuracy", "top1"),
           "exact": _dig(report, "accuracy", "vs_csim", "success")}
    if probes:
        row.update(latency_cycles=probes[0].get("latency_cycles"), latency_ns=probes[0].get("latency_ns"),
                   ii_cycles=probes[-1].get("effective_ii_cycles"),
                   latency_source=f"emulated ({fabric})" if emulated else "measured")
    best = max(batches, key=lambda b: b.get("throughput_per_s") or 0.0, default=None)
    if best is not None and best.get("throughput_per_s"):
        where = "emulated" if emulated else "measured"
        row.update(throughput_jets_per_s=best["throughput_per_s"],
                   throughput_source=f"{where} (host wall clock, batch {best['batch_size']})")
    return row


def stage_row(sweep: SweepDir, unit: Unit, model: dict) -> dict:
    """The row of one stage artifact: its checkpoint's ``model`` row, then the stage's figures."""
    out = unit.outputs[0]
    manifest = _manifest(sweep, unit, out)
    figures = {"convert": lambda: _convert_figures(sweep, out, manifest),
               "rtl": lambda: _rtl_figures(manifest),
               "build": lambda: _build_figures(sweep, out, manifest),
               "bench": lambda: _bench_figures(sweep, out, manifest)}[unit.kind]()
    return {**model, **dict.fromkeys(STAGE_COLUMNS), "key": unit.key, "stage": unit.kind, "path": out, **figures}


def _checkpoint_of(unit: Unit, producers: dict) -> str | None:
    """The model artifact a stage unit descends from, following each ``params["source"]`` up."""
    source = unit.params.get("source")
    seen = set()
    while source is not None and source not in seen:
        seen.add(source)
        parent = producers.get(source)
        if parent is None:
            return None
        if parent.kind in MODEL_UNITS:
            return source
        source = parent.params.get("source")
    return None


def load_units(sweep_dir) -> tuple[SweepDir, list[Unit]]:
    """The sweep and its plan, or ResultsError naming the directory."""
    sweep = SweepDir(sweep_dir)
    if not sweep.path.is_dir():
        why = "not a directory" if sweep.path.exists() else "no such directory"
        raise ResultsError(f"{sweep.path}: {why}")
    try:
        units = sweep.units()
    except (KeyError, TypeError) as exc:
        raise ResultsError(f"{sweep.plan_file}: malformed plan ({type(exc).__name__}: {exc})") from None
    if not units:
        raise ResultsError(f"{sweep.plan_file}: the plan has no units")
    return sweep, units


def collect(sweep_dir) -> pd.DataFrame:
    """The results table of ``sweep_dir`` (columns :data:`COLUMNS`, plus ``auc_<c>``/``rejection_<c>``).

    Model rows come first (plan order), then stage rows. A unit output without its manifest (not
    written yet, or failed) has no row; :func:`failures` lists the failed units.
    """
    sweep, units = load_units(sweep_dir)
    producers = {out: u for u in units for out in u.outputs}
    models, stages = {}, []
    for unit in units:
        if unit.kind in MODEL_UNITS:
            for index, out in enumerate(unit.outputs):
                if (sweep.path / out / MANIFEST).is_file():
                    models[out] = model_row(sweep, unit, index)
    for unit in units:
        if unit.kind in MODEL_UNITS or not sweep.done(unit):
            continue
        checkpoint = _checkpoint_of(unit, producers)
        if checkpoint not in models:
            raise ResultsError(f"unit {unit.key} ({unit.describe()}): its checkpoint "
                               f"{checkpoint or unit.params.get('source')} has no model artifact in {sweep.path}")
        stages.append(stage_row(sweep, unit, models[checkpoint]))
    rows = [*models.values(), *stages]
    seen = dict.fromkeys(c for r in rows for c in r if c not in COLUMNS)   # class order as in metrics.json
    extra = [c for c in seen if c.startswith("auc_")] + [c for c in seen if not c.startswith("auc_")]
    order = [*COLUMNS[:COLUMNS.index("auc_macro") + 1], *extra, *COLUMNS[COLUMNS.index("auc_macro") + 1:]]
    table = pd.DataFrame(rows, columns=order)
    numeric = [c for c in order if c not in ("key", "stage", "method", "family", "widths", "data_source", "path",
                                             "model_path", "exact") and not c.endswith("_source")]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")
    table["exact"] = table["exact"].astype("boolean")
    return table


def failures(sweep_dir) -> list[dict]:
    """The failed units (``state/<key>.failed.json``, not done since): key, unit, error, log."""
    sweep, units = load_units(sweep_dir)
    out = []
    for unit in units:
        if sweep.state(unit) == "failed":
            error = sweep.failure(unit) or {}
            out.append({"key": unit.key, "kind": unit.kind, "unit": unit.describe(),
                        "error": error.get("error", ""), "type": error.get("type", ""), "log": error.get("log")})
    return out


def states(sweep_dir) -> dict:
    """How many units are done, running, failed and still to do."""
    sweep, units = load_units(sweep_dir)
    counts = {"done": 0, "running": 0, "failed": 0, "todo": 0}
    for unit in units:
        counts[sweep.state(unit)] += 1
    return counts


# -- figures derived from the table ----------------------------------------------------------------

#: What identifies one point of the figures: a checkpoint of one configuration, over its seeds.
POINT_KEYS = ("family", "method", "bits", "randomized_labels", "step", "trial", "widths", "sparsity_target")

#: Accuracy a pruned point may lose against the dense one and still count as "equal accuracy" in
#: the headline (absolute, as a fraction: 0.01 = one percentage point).
HEADLINE_TOLERANCE = 0.01
HEADLINE_BITS = 6


def figure_columns(table: pd.DataFrame) -> list[str]:
    """The model figures averaged over seeds: accuracy, AUCs, rejections, BOPs, η_N, aIQ, sparsity."""
    fixed = ["accuracy", "auc_macro", "bops", "eta_n", "aiq", "sparsity"]
    per_class = [c for c in table.columns if c.startswith(("auc_", "rejection_")) and c != "auc_macro"]
    return fixed + per_class


def aggregate(table: pd.DataFrame) -> pd.DataFrame:
    """One row per point (:data:`POINT_KEYS`) over the model rows: ``<figure>_mean`` and ``<figure>_std``
    (sample standard deviation over seeds, NaN for a single seed), ``n_seeds``, ``seeds``, and
    ``pareto`` (on the front of :func:`pareto_mask` among the points trained on clean labels)."""
    models = table[table["stage"] == "model"]
    columns = figure_columns(table)
    if models.empty:
        return pd.DataFrame(columns=[*POINT_KEYS, "n_seeds", "seeds", *(f"{c}_{s}" for c in columns
                                                                         for s in ("mean", "std")), "pareto"])
    grouped = models.groupby(list(POINT_KEYS), dropna=False, sort=True)
    stats = grouped[columns].agg(["mean", "std"])
    stats.columns = [f"{c}_{s}" for c, s in stats.columns]
    stats["n_seeds"] = grouped["seed"].nunique()
    stats["seeds"] = grouped["seed"].agg(lambda s: ",".join(str(int(v)) for v in sorted(s.unique())))
    points = stats.reset_index()
    clean = (points["randomized_labels"] == 0).to_numpy()
    front = pareto_mask(points.loc[clean, "bops_mean"].to_numpy(), points.loc[clean, "accuracy_mean"].to_numpy())
    points["pareto"] = False
    points.loc[clean, "pareto"] = front
    return points


def pareto_mask(bops, accuracy):
    """Which points no other point dominates (at most the BOPs and at least the accuracy, one of
    them strictly). Points with a missing figure are never on the front; equal points both are."""
    bops, accuracy = np.asarray(bops, dtype=float), np.asarray(accuracy, dtype=float)
    valid = ~(np.isnan(bops) | np.isnan(accuracy))
    mask = np.zeros(bops.shape, dtype=bool)
    best_below = -np.inf            # best accuracy of all points with strictly fewer BOPs
    for b in np.unique(bops[valid]):
        same = valid & (bops == b)
        top = accuracy[same].max()
        if top > best_below:
            mask |= same & (accuracy == top)
        best_below = max(best_below, top)
    return mask


def headline(points: pd.DataFrame, tolerance: float = HEADLINE_TOLERANCE) -> dict:
    """The paper's headline from the sweep: BOPs of the 32-bit dense model over those of the best
    6-bit pruned point at equal accuracy.

    Dense: the ``float`` point of method ``qat`` (32 bits, no pruning) on clean labels (the best
    by mean accuracy if several). Best 6-bit pruned: among the 6-bit ``QAP`` points on clean labels
    whose mean accuracy is at least the dense one's minus ``tolerance``, the one with the fewest
    mean BOPs. ``ratio`` is None (and ``text`` says why) when either is absent.
    """
    clean = points[points["randomized_labels"] == 0]
    dense = clean[(clean["family"] == "float") & (clean["method"] == "qat")].dropna(subset=["accuracy_mean",
                                                                                           "bops_mean"])
    out = {"tolerance": tolerance, "bits": HEADLINE_BITS, "ratio": None, "dense": None, "pruned": None,
           "rule": f"BOPs(32-bit dense qat) / BOPs(fewest-BOPs {HEADLINE_BITS}-bit QAP point with mean accuracy >= "
                   f"dense mean accuracy - {tolerance:g}), clean labels, means over seeds"}
    if dense.empty:
        return {**out, "text": "headline: not computed: the sweep has no 32-bit dense (qat at 32 bits) checkpoint "
                               "on clean labels"}
    ref = dense.loc[dense["accuracy_mean"].idxmax()]
    out["dense"] = _point_summary(ref)
    pruned = clean[(clean["family"] == "QAP") & (clean["bits"] == HEADLINE_BITS)].dropna(subset=["accuracy_mean",
                                                                                               "bops_mean"])
    if pruned.empty:
        return {**out, "text": f"headline: not computed: the sweep has no {HEADLINE_BITS}-bit pruned (QAP) "
                               "checkpoint on clean labels"}
    equal = pruned[pruned["accuracy_mean"] >= ref["accuracy_mean"] - tolerance]
    if equal.empty:
        return {**out, "text": f"headline: not computed: no {HEADLINE_BITS}-bit pruned point reaches the 32-bit "
                               f"dense accuracy {ref['accuracy_mean']:.4f} within {tolerance:g} (best "
                               f"{pruned['accuracy_mean'].max():.4f})"}
    best = equal.loc[equal["bops_mean"].idxmin()]
    ratio = float(ref["bops_mean"] / best["bops_mean"])
    out.update(ratio=ratio, pruned=_point_summary(best))
    return {**out, "text": (
        f"headline: 32-bit dense / best {HEADLINE_BITS}-bit pruned BOPs = {ratio:.1f}x at equal accuracy "
        f"(within {tolerance:g}): {best['method']} at {100 * best['sparsity_target']:.1f} % target sparsity, "
        f"accuracy {best['accuracy_mean']:.4f}, {best['bops_mean']:.4g} BOPs vs dense {ref['accuracy_mean']:.4f}, "
        f"{ref['bops_mean']:.4g} BOPs (paper: ~50x)")}


def _point_summary(point: pd.Series) -> dict:
    return {"method": point["method"], "bits": int(point["bits"]), "sparsity_target": float(point["sparsity_target"]),
            "step": None if pd.isna(point["step"]) else int(point["step"]), "n_seeds": int(point["n_seeds"]),
            "accuracy_mean": float(point["accuracy_mean"]), "bops_mean": float(point["bops_mean"])}
