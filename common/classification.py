"""Per-class ROC curves, AUC and the confusion matrix of a tagger's logits, with numpy alone.

The board computes these for ``psqs bench`` (board outputs against the labels of the package's
test vectors) and has no scikit-learn, so this is a small, independent implementation; the build
side tests it against scikit-learn's ``roc_auc_score`` / ``confusion_matrix``. ``psqs train`` uses
the same functions for its plots, so training's and the board's figures are drawn alike.

Scores follow the training metrics (:mod:`psqs.qap.metrics`): one-vs-rest, the score of class c is
its softmax probability, and a class without both signal and background has no curve (``None``).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: At most this many points of each exact ROC curve are kept in a report (for its plot); the AUC
#: is always computed on the full curve.
ROC_POINTS = 201


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def roc_curve(signal: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct score threshold, from (0, 0).

    Sorting by descending score and cutting only where the score changes puts tied samples on one
    diagonal step, so the trapezoid area below is the tie-corrected AUC (Mann-Whitney U / n_s n_b).
    """
    signal = np.asarray(signal, dtype=bool)
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    sorted_score, sorted_signal = np.asarray(score, dtype=np.float64)[order], signal[order]
    cuts = np.r_[np.flatnonzero(np.diff(sorted_score)), sorted_score.size - 1]
    tp = np.cumsum(sorted_signal)[cuts]
    fp = (cuts + 1) - tp
    return np.r_[0.0, fp / (signal.size - signal.sum())], np.r_[0.0, tp / signal.sum()]


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under a ROC curve by the trapezoid rule."""
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def confusion_matrix(y: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``[true class, predicted class]``."""
    y, predicted = np.asarray(y, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    return np.bincount(y * n_classes + predicted, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _thin(fpr: np.ndarray, tpr: np.ndarray) -> dict:
    keep = np.unique(np.linspace(0, fpr.size - 1, min(ROC_POINTS, fpr.size)).round().astype(int))
    return {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()}


def evaluate(logits: np.ndarray, y: np.ndarray, class_names, sample_set: str) -> dict:
    """Accuracy, per-class and macro AUC, confusion matrix and (thinned) ROC curves, JSON-ready.

    ``sample_set`` says which samples these are ("test vectors", "test split"): figures on
    different sets must not be compared as if they were one.
    """
    logits, y = np.asarray(logits), np.asarray(y)
    classes = [str(c) for c in class_names]
    probs = softmax(logits)
    aucs, curves = {}, {}
    for c, name in enumerate(classes):
        signal = y == c
        if signal.all() or not signal.any():
            aucs[name] = curves[name] = None
            continue
        fpr, tpr = roc_curve(signal, probs[:, c])
        aucs[name], curves[name] = auc(fpr, tpr), _thin(fpr, tpr)
    valid = [v for v in aucs.values() if v is not None]
    predicted = logits.argmax(axis=1)
    return {
        "sample_set": sample_set,
        "n": int(y.size),
        "top1": float((predicted == y).mean()),
        "auc": aucs,
        "auc_macro": float(np.mean(valid)) if valid else None,
        "confusion_matrix": {"classes": classes, "rows": "true class", "columns": "predicted class",
                             "counts": confusion_matrix(y, predicted, len(classes)).tolist()},
        "roc_curves": {"scores": "softmax probability, one class vs the rest",
                       "points": f"at most {ROC_POINTS} points of each exact curve; AUC from the full curve",
                       "curves": curves},
    }


def write_plots(result: dict, directory: Path, title: str) -> list[Path]:
    """``roc_curves.png`` and ``confusion_matrix.png`` from an :func:`evaluate` result, if
    matplotlib is importable (it is optional on a board)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib not importable: no ROC / confusion-matrix plots")
        return []
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    where = f"{result['sample_set']}, N={result['n']}"
    classes = result["confusion_matrix"]["classes"]
    written = []

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name in classes:
        curve = result["roc_curves"]["curves"][name]
        if curve is not None:
            ax.plot(curve["fpr"], curve["tpr"], label=f"{name} vs rest (AUC {result['auc'][name]:.4f})")
    ax.plot([0, 1], [0, 1], ":", color="grey", linewidth=0.8)
    ax.set(xlabel="false positive rate (background efficiency)", ylabel="true positive rate (signal efficiency)",
           xlim=(0, 1), ylim=(0, 1), title=f"{title}: ROC ({where})")
    ax.legend(fontsize="small", loc="lower right")
    written.append(directory / "roc_curves.png")
    fig.savefig(written[-1], dpi=120, bbox_inches="tight")
    plt.close(fig)

    counts = np.asarray(result["confusion_matrix"]["counts"], dtype=np.int64)
    rows = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(counts):
        ax.text(j, i, f"{count}\n{fractions[i, j]:.1%}", ha="center", va="center", fontsize="x-small",
                color="white" if fractions[i, j] > 0.5 else "black")
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes, yticklabels=classes,
           xlabel="predicted class", ylabel="true class", title=f"{title}: confusion matrix ({where})")
    written.append(directory / "confusion_matrix.png")
    fig.savefig(written[-1], dpi=120, bbox_inches="tight")
    plt.close(fig)
    return written
