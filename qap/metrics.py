"""Model quality and cost figures of Ps and Qs, computed with numpy from outputs.

Everything here takes arrays (logits, labels, activations, layer shapes), never a model, so each
figure can be checked against values computed by hand.
"""
from __future__ import annotations

import math

import numpy as np

# the board's scores and ROC curves (numpy only), so training and the board compute them alike
from psqs.common.classification import auc as area_under
from psqs.common.classification import roc_curve, softmax


def classification(logits: np.ndarray, y: np.ndarray, class_names) -> dict:
    """Top-1 accuracy, one-vs-rest ROC AUC (per class and macro) and background rejection.

    Background rejection of class c at 50 % signal efficiency is 1/FPR at the score threshold
    that keeps half of the true-c jets (score = softmax probability of c), read off the ROC curve
    by linear interpolation; ``None`` when no background passes (rejection unbounded).
    """
    probs = softmax(logits)
    accuracy = float((np.argmax(logits, axis=1) == y).mean())
    auc, rejection = {}, {}
    for c, name in enumerate(class_names):
        signal = y == c
        if signal.all() or not signal.any():
            auc[name] = rejection[name] = None
            continue
        fpr, tpr = roc_curve(signal, probs[:, c])
        auc[name] = area_under(fpr, tpr)
        fpr_at_half = float(np.interp(0.5, tpr, fpr))
        rejection[name] = 1.0 / fpr_at_half if fpr_at_half > 0 else None
    valid = [v for v in auc.values() if v is not None]
    return {
        "accuracy": accuracy,
        "auc_macro": float(np.mean(valid)) if valid else None,
        "auc": auc,
        "rejection_at_50pct_signal_eff": rejection,
        "n_jets": int(y.size),
    }


def bops(layers: list[dict]) -> dict:
    """Bit operations of a fully connected network, the Ps and Qs formula summed over layers.

    Per layer with ``n`` inputs, ``m`` outputs, pruned fraction ``f_p``, input (activation)
    width ``b_a`` and weight width ``b_w``::

        BOPs = m * n * ((1 - f_p) * b_a * b_w + b_a + b_w + log2(n))

    Conventions: ``b_a`` is the width of the values the layer multiplies, so for the first layer
    it is the hardware input word (e.g. 16 bits), not the ReLU width; float layers count 32 bits;
    biases add no term beyond the formula's; ``f_p`` is the fraction of weights removed by the
    pruning mask (weights that merely quantize to zero are not counted as pruned).
    Each layer dict needs ``n_in``, ``n_out``, ``b_a``, ``b_w``, ``pruned_fraction``.
    """
    per_layer = []
    for layer in layers:
        n, m = layer["n_in"], layer["n_out"]
        b_a, b_w, f_p = layer["b_a"], layer["b_w"], layer["pruned_fraction"]
        per_layer.append(m * n * ((1.0 - f_p) * b_a * b_w + b_a + b_w + math.log2(n)))
    return {"total": float(sum(per_layer)), "per_layer": [float(v) for v in per_layer]}


def layer_entropy(active: np.ndarray) -> float:
    """Shannon entropy (bits) of the binary activation microstates of one layer over a data set."""
    states = np.ascontiguousarray(np.asarray(active, dtype=bool))
    packed = np.packbits(states, axis=1)
    _, counts = np.unique(packed, axis=0, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def net_efficiency(activations: list[np.ndarray], accuracy: float | None = None, beta: float = 2.0) -> dict:
    """Neural efficiency η_N (Schaub & Hotaling) and, given an accuracy, aIQ.

    For each hidden layer, each input's microstate is the binary vector [activation > 0] over the
    layer's N neurons; η_layer = H / N with H the entropy of the observed microstates.
    η_N is the geometric mean over layers, aIQ = (η_N · a^β)^(1/(β+1)).
    """
    per_layer = [layer_entropy(np.asarray(a) > 0) / np.asarray(a).shape[1] for a in activations]
    eta = float(np.prod(per_layer) ** (1.0 / len(per_layer))) if per_layer else None
    out = {"eta_n": eta, "eta_per_layer": per_layer}
    if accuracy is not None and eta is not None:
        out["aiq"] = float((eta * accuracy ** beta) ** (1.0 / (beta + 1.0)))
        out["aiq_beta"] = beta
    return out
