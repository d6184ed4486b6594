"""The report's figures, drawn with matplotlib (Agg) from the results table and its points.

Each figure is drawn only when the sweep has what it shows (a figure of LUTs needs a stage that
counted them); otherwise the report says why it is missing. Every axis that shows a hardware
figure names where it came from (the table's ``*_source`` columns), and published anchors carry
:data:`psqs.deploy.sweep.published.LABEL` and their split.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import pandas as pd  # noqa: E402

from . import published  # noqa: E402
from .results import FAMILIES  # noqa: E402

MARKERS = {"qap-imp-ft": "o", "qap-imp-lt": "s", "qat": "D", "prune-float": "^", "gradual": "v", "bo": "x"}
FAMILY_COLOURS = {"QAP": "tab:blue", "QAT": "tab:orange", "prune-float": "tab:green", "float": "tab:red",
                  "BO": "tab:purple"}
STAGE_MARKERS = {"convert": "o", "rtl": "s", "build": "D", "bench": "*"}
BOPS_LABEL = "BOPs (Ps and Qs formula, metrics.json; log scale)"
ERRORS = "error bars: standard deviation over seeds"


@dataclass
class Figure:
    """A drawn figure (``file`` set) or one that was not drawn (``skipped`` says why)."""

    name: str
    title: str
    caption: str = ""
    file: str | None = None
    skipped: str | None = None


def _bits_colour(bits_values):
    order = sorted(set(int(b) for b in bits_values))
    cmap = plt.get_cmap("viridis")
    return {b: cmap(i / max(len(order) - 1, 1)) for i, b in enumerate(order)}


def _clean(points: pd.DataFrame) -> pd.DataFrame:
    return points[points["randomized_labels"] == 0]


def _series(ax, points: pd.DataFrame, y: str, logy: bool = False) -> None:
    """One errorbar series per (method, bits), sorted by BOPs."""
    colours = _bits_colour(points["bits"])
    for (method, bits), group in points.groupby(["method", "bits"], sort=True):
        group = group.sort_values("bops_mean")
        yerr = group[f"{y}_std"].fillna(0).to_numpy()
        ax.errorbar(group["bops_mean"], group[f"{y}_mean"], yerr=yerr, xerr=group["bops_std"].fillna(0).to_numpy(),
                    marker=MARKERS.get(method, "o"), color=colours[int(bits)], linestyle="-" if method != "bo" else "",
                    markersize=5, capsize=2, label=f"{method} {int(bits)}b")
    ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")


def _anchors(ax, anchors, points: bool) -> None:
    """Published results, each in the legend with its split and :data:`published.LABEL`: a star at
    (LUT, accuracy) when ``points`` and the source gives a LUT count, else a horizontal line."""
    cmap = plt.get_cmap("tab10")
    for i, anchor in enumerate(anchors):
        colour = cmap(i % 10)
        if points and anchor.lut is not None:
            ax.scatter([anchor.lut], [anchor.accuracy], marker="*", s=110, color=colour, edgecolors="black",
                       linewidths=0.4, label=anchor.label(with_lut=True))
        else:
            ax.axhline(anchor.accuracy, color=colour, linestyle=":", linewidth=1.2, label=anchor.label())


def _legend_outside(ax) -> None:
    """The legend right of the axes: out of tight_layout (the axes keep their size), back in for the
    saved PNG's bounding box (:func:`draw_all`), which grows to hold it."""
    ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0).set_in_layout(False)


def accuracy_vs_bops(table, points):
    clean = _clean(points).dropna(subset=["bops_mean", "accuracy_mean"])
    if clean.empty:
        return None, "no model checkpoint with accuracy and BOPs on clean labels"
    fig, ax = plt.subplots(figsize=(9, 6))
    _series(ax, clean, "accuracy")
    front = clean[clean["pareto"]].sort_values("bops_mean")
    ax.step(front["bops_mean"], front["accuracy_mean"], where="post", color="black", linewidth=1.2,
            label="Pareto front (fewer BOPs, higher accuracy)")
    ax.scatter(front["bops_mean"], front["accuracy_mean"], s=90, facecolors="none", edgecolors="black")
    _anchors(ax, published.ANCHORS, points=False)
    ax.set(xlabel=BOPS_LABEL, ylabel="test accuracy (mean over seeds)",
           title=f"accuracy vs BOPs per method and bit width; {ERRORS}\n"
                 f"dotted: published accuracies ({published.LABEL}; none publishes BOPs)")
    _legend_outside(ax)
    return fig, ("Accuracy of every checkpoint against its BOPs; the black step line is the Pareto front. "
                 "Dotted lines: published accuracies, " + published.LABEL + ", each with its split.")



def _panels(n: int, cols: int = 3):
    """A figure of ``n`` panels, ``cols`` to a row (the unused ones blank): one per class."""
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(13, 3.8 * rows), squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, list(axes.flat)[:n]

def auc_vs_bops(table, points):
    clean = _clean(points).dropna(subset=["bops_mean", "auc_macro_mean"])
    if clean.empty:
        return None, "no model checkpoint with AUC and BOPs on clean labels"
    classes = [c[len("auc_"):-len("_mean")] for c in points.columns
               if c.startswith("auc_") and c.endswith("_mean") and c != "auc_macro_mean"]
    panels = ["auc_macro", *(f"auc_{c}" for c in classes)]
    fig, axes = _panels(len(panels))
    for ax, panel in zip(axes, panels):
        _series(ax, clean, panel)
        ax.set(xlabel=BOPS_LABEL, ylabel=panel.replace("auc_", "AUC ").replace("macro", "(macro)"))
    axes[0].legend(fontsize=6)
    fig.suptitle(f"ROC AUC (one class vs the rest) vs BOPs; {ERRORS}")
    return fig, "Macro and per-class ROC AUC of every checkpoint against its BOPs."


def rejection_vs_bops(table, points):
    clean = _clean(points)
    classes = [c[len("rejection_"):-len("_mean")] for c in points.columns
               if c.startswith("rejection_") and c.endswith("_mean")]
    if clean.empty or not classes or clean[[f"rejection_{c}_mean" for c in classes]].isna().all().all():
        return None, "no model checkpoint with background rejection on clean labels"
    fig, axes = _panels(len(classes))
    for ax, name in zip(axes, classes):
        _series(ax, clean.dropna(subset=[f"rejection_{name}_mean"]), f"rejection_{name}", logy=True)
        ax.set(xlabel=BOPS_LABEL, ylabel=f"rejection of non-{name} at 50 % {name} efficiency")
    axes[0].legend(fontsize=6)
    fig.suptitle(f"background rejection (1/FPR at 50 % signal efficiency) vs BOPs; {ERRORS}")
    return fig, "Background rejection per class against BOPs (log scales)."


def eta_vs_bops(table, points):
    clean = _clean(points).dropna(subset=["bops_mean", "eta_n_mean"])
    if clean.empty:
        return None, "no model checkpoint with η_N on clean labels"
    fig, ax = plt.subplots(figsize=(9, 6))
    _series(ax, clean, "eta_n")
    ax.set(xlabel=BOPS_LABEL, ylabel="neural efficiency η_N (geometric mean over hidden layers)",
           title=f"η_N vs BOPs; {ERRORS}")
    ax.legend(fontsize=7)
    return fig, "Neural efficiency η_N (Schaub & Hotaling) of every checkpoint against its BOPs."


def families_vs_bops(table, points):
    clean = _clean(points).dropna(subset=["bops_mean", "accuracy_mean"])
    if clean["family"].nunique() < 2:
        return None, "fewer than two families (QAP, QAT, prune-float, float, BO) on clean labels"
    fig, ax = plt.subplots(figsize=(9, 6))
    for name in FAMILIES:
        group = clean[clean["family"] == name]
        if group.empty:
            continue
        ax.errorbar(group["bops_mean"], group["accuracy_mean"], yerr=group["accuracy_std"].fillna(0).to_numpy(),
                    linestyle="", marker="o" if name != "BO" else "x", color=FAMILY_COLOURS[name], capsize=2,
                    label=f"{name} ({len(group)} points)")
    ax.set_xscale("log")
    ax.set(xlabel=BOPS_LABEL, ylabel="test accuracy (mean over seeds)",
           title="QAP (quantized + pruned) vs QAT only vs prune only (float) vs float dense vs BO at equal BOPs")
    ax.legend(fontsize=8)
    return fig, ("The same checkpoints by family: read across at one BOPs value to compare QAP, QAT-only, "
                 "prune-only and Bayesian-optimization points.")


def accuracy_vs_randomized(table, points):
    if points["randomized_labels"].nunique() < 2:
        return None, "the sweep has a single randomized-label fraction"
    fig, ax = plt.subplots(figsize=(9, 6))
    colours = _bits_colour(points["bits"])
    for (method, bits, step), group in points.groupby(["method", "bits", "step"], sort=True):
        if group["randomized_labels"].nunique() < 2:
            continue
        group = group.sort_values("randomized_labels")
        target = group["sparsity_target"].iloc[0]
        ax.errorbar(group["randomized_labels"], group["accuracy_mean"], yerr=group["accuracy_std"].fillna(0).to_numpy(),
                    marker=MARKERS.get(method, "o"), color=colours[int(bits)], capsize=2, linewidth=0.8,
                    label=f"{method} {int(bits)}b @{100 * target:.0f} %")
    ax.set(xlabel="fraction of training labels randomized (test labels clean)",
           ylabel="test accuracy (mean over seeds)",
           title=f"generalization: accuracy vs randomized-label fraction; {ERRORS}")
    ax.legend(fontsize=6, ncol=2)
    return fig, "Accuracy on the clean test split of models trained with a fraction of their labels randomized."


def _hardware(table, columns):
    rows = table[table["stage"] != "model"]
    return rows.dropna(subset=columns)


def _by_source(ax, rows, x, y, source_columns, label_of) -> None:
    for keys, group in rows.groupby(source_columns, sort=True, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        for stage, part in group.groupby("stage", sort=True):
            ax.scatter(part[x], part[y], marker=STAGE_MARKERS.get(stage, "o"), s=30,
                       label=f"{stage}: {label_of(*keys)}")


def accuracy_vs_lut(table, points):
    rows = _hardware(table, ["lut", "accuracy"])
    if rows.empty:
        return None, "no stage counted LUTs (convert with synthesis, rtl with yosys, or an implemented build)"
    fig, ax = plt.subplots(figsize=(9, 6))
    _by_source(ax, rows, "lut", "accuracy", ["resources_source"], lambda s: f"LUT: {s}")
    _anchors(ax, published.ANCHORS, points=True)
    ax.set_xscale("log")
    ax.set(xlabel="LUTs (log scale; source in the legend)", ylabel="test accuracy of the checkpoint",
           title="accuracy vs LUTs; stars and dotted lines: " + published.LABEL)
    _legend_outside(ax)
    return fig, ("Accuracy of each converted checkpoint against its LUT count, labelled by where the count came "
                 "from; stars and dotted lines: published results (" + published.LABEL + "), with their splits.")


def latency_vs_lut(table, points):
    rows = _hardware(table, ["lut", "latency_ns"])
    if rows.empty:
        return None, "no stage has both a LUT count and a latency"
    fig, ax = plt.subplots(figsize=(9, 6))
    _by_source(ax, rows, "lut", "latency_ns", ["resources_source", "latency_source"],
               lambda r, t: f"LUT: {r}, latency: {t}")
    ax.set_xscale("log")
    ax.set(xlabel="LUTs (log scale; source in the legend)",
           ylabel="latency [ns] (source in the legend)",
           title="latency vs LUTs")
    ax.legend(fontsize=7)
    return fig, "Latency against LUTs of each stage that has both, each labelled with its sources."


def throughput_vs_bops(table, points):
    rows = _hardware(table, ["throughput_jets_per_s", "bops"])
    if rows.empty:
        return None, "no stage has a throughput (rtl, an HLS report, a build or a bench)"
    fig, ax = plt.subplots(figsize=(9, 6))
    _by_source(ax, rows, "bops", "throughput_jets_per_s", ["throughput_source"], lambda s: s)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(xlabel=BOPS_LABEL, ylabel="throughput [jets/s] (source in the legend)", title="throughput vs BOPs")
    ax.legend(fontsize=7)
    return fig, ("Throughput of each stage that has one: 1/(II x clock) from the RTL simulation or the HLS report, "
                 "the host's wall clock on the (emulated or real) board.")


#: The report's figures, in page order: name -> (title, drawing function).
FIGURES = {
    "accuracy_vs_bops": ("Accuracy vs BOPs", accuracy_vs_bops),
    "auc_vs_bops": ("AUC vs BOPs", auc_vs_bops),
    "rejection_vs_bops": ("Background rejection vs BOPs", rejection_vs_bops),
    "eta_n_vs_bops": ("Neural efficiency vs BOPs", eta_vs_bops),
    "families_vs_bops": ("QAP vs QAT vs prune-only vs BO", families_vs_bops),
    "accuracy_vs_randomized_labels": ("Accuracy vs randomized labels", accuracy_vs_randomized),
    "accuracy_vs_lut": ("Accuracy vs LUTs", accuracy_vs_lut),
    "latency_vs_lut": ("Latency vs LUTs", latency_vs_lut),
    "throughput_vs_bops": ("Throughput", throughput_vs_bops),
}


def draw_all(table: pd.DataFrame, points: pd.DataFrame, directory: Path) -> list[Figure]:
    """Draw every figure the sweep supports into ``directory/<name>.png``."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for name, (title, draw) in FIGURES.items():
        fig, caption = draw(table, points)
        if fig is None:
            out.append(Figure(name, title, skipped=caption))
            continue
        fig.tight_layout()
        for ax in fig.axes:
            if ax.get_legend() is not None:
                ax.get_legend().set_in_layout(True)
        fig.savefig(directory / f"{name}.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        out.append(Figure(name, title, caption, file=f"{directory.name}/{name}.png"))
    return out

