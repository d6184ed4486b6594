"""Pruning schedules and masks for quantization-aware pruning (QAP).

Iterative magnitude pruning (IMP) as in Ps and Qs: the mask is chosen globally across all dense
layers by weight magnitude; each round removes a fraction of the *remaining* weights, and the
network is then either fine-tuned (``imp-ft``) or rewound to its initial weights (``imp-lt``,
lottery ticket) and retrained. Masks are held during training by tfmot's pruning wrapper with a
schedule that never recomputes them (:func:`fixed_mask_schedule`); this module chooses them.
"""
from __future__ import annotations

import numpy as np

#: Fraction of the remaining weights pruned in each round (Ps and Qs lists 0.10, 0.111, ..., 0.666):
#: cumulative sparsity 10, 20, ..., 90, 96.7, 98.9 %.
PAPER_ROUND_FRACTIONS = (1 / 10, 1 / 9, 1 / 8, 1 / 7, 1 / 6, 1 / 5, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 2 / 3)


def imp_targets(sparsity: float) -> list[float]:
    """Cumulative sparsity after each round, following the paper's schedule up to ``sparsity``.

    The last round lands exactly on the requested sparsity, which need not be on the schedule.
    """
    targets, remaining = [], 1.0
    for fraction in PAPER_ROUND_FRACTIONS:
        remaining *= 1.0 - fraction
        cumulative = 1.0 - remaining
        if cumulative >= sparsity - 1e-3:
            break
        targets.append(round(cumulative, 6))
    return targets + [sparsity]


def global_masks(kernels: list[np.ndarray], masks: list[np.ndarray], target: float) -> list[np.ndarray]:
    """Masks with ``round(target * N)`` zeros over all kernels together (N = all weights).

    Already-pruned weights stay pruned; the additional weights pruned are the surviving ones of
    smallest magnitude, across layers (ties broken by position, so the result is deterministic).
    """
    sizes = [k.size for k in kernels]
    magnitude = np.concatenate([np.abs(k).ravel() for k in kernels]).astype(np.float64)
    alive = np.concatenate([m.ravel() for m in masks]).astype(bool)
    n_prune = int(round(target * magnitude.size)) - int((~alive).sum())
    if n_prune < 0:
        raise ValueError(f"target sparsity {target} is below the current sparsity {1 - alive.mean():.4f}")
    candidates = np.flatnonzero(alive)
    order = candidates[np.argsort(magnitude[candidates], kind="stable")]
    alive[order[:n_prune]] = False
    out, start = [], 0
    for kernel, size in zip(kernels, sizes):
        out.append(alive[start:start + size].reshape(kernel.shape).astype(np.float32))
        start += size
    return out


def sparsity(arrays: list[np.ndarray]) -> float:
    total = sum(a.size for a in arrays)
    return float(sum(int((a == 0).sum()) for a in arrays) / total)


def fixed_mask_schedule():
    """A tfmot pruning schedule that never updates masks: the trainer sets them explicitly.

    tfmot's wrapper still multiplies the weights by the mask on every training step, which is
    what keeps pruned weights at zero; only the choice of mask is ours (global, and for lottery
    tickets chosen from trained weights but applied to rewound ones).
    """
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot

    class FixedMask(tfmot.sparsity.keras.PruningSchedule):
        def __call__(self, step):
            return tf.constant(False), tf.constant(0.0)

        def get_config(self):
            return {"class_name": "FixedMask", "config": {}}

    return FixedMask()
