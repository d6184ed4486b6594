"""Metrics against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from psqs.qap import metrics


def test_bops_by_hand():
    layers = [
        dict(n_in=16, n_out=64, b_a=16, b_w=6, pruned_fraction=0.75),
        dict(n_in=64, n_out=5, b_a=6, b_w=6, pruned_fraction=0.0),
    ]
    # 64*16*(0.25*16*6 + 16 + 6 + 4) = 1024*50 = 51200 ; 5*64*(36 + 12 + 6) = 320*54 = 17280
    out = metrics.bops(layers)
    assert out["per_layer"] == [51200.0, 17280.0]
    assert out["total"] == 68480.0


def test_bops_paper_scale_ratio():
    """Ps and Qs headline: 6-bit 80%-pruned has far fewer BOPs than 32-bit dense (~50x)."""
    sizes = [16, 64, 32, 32, 5]

    def net(bits, f_p, first_b_a):
        return metrics.bops([dict(n_in=sizes[i], n_out=sizes[i + 1], b_a=first_b_a if i == 0 else bits,
                                  b_w=bits, pruned_fraction=f_p) for i in range(4)])["total"]

    ratio = net(32, 0.0, 32) / net(6, 0.8, 6)
    assert 40 < ratio < 70


def test_net_efficiency_crafted():
    all_states = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)       # H = 2 bits over 2 neurons
    half = np.array([[1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], float)  # H = 1 bit, N = 4
    out = metrics.net_efficiency([all_states, half * 3.5], accuracy=0.8)
    assert out["eta_per_layer"] == [1.0, 0.25]
    assert out["eta_n"] == pytest.approx(0.5)          # sqrt(1 * 0.25)
    assert out["aiq"] == pytest.approx((0.5 * 0.8 ** 2) ** (1 / 3))
    dead = metrics.net_efficiency([np.zeros((10, 8))])
    assert dead["eta_n"] == 0.0


def test_layer_entropy_counts_microstates_not_neurons():
    # 3 distinct states with probabilities 1/2, 1/4, 1/4 -> 1.5 bits, for any width
    states = np.zeros((8, 40), bool)
    states[:2, 39] = True
    states[2:4, 0] = True
    assert metrics.layer_entropy(states) == pytest.approx(1.5)


def test_classification_perfect_and_rejection():
    y = np.array([0, 1, 2, 3, 4] * 20)
    logits = np.eye(5)[y] * 5.0
    out = metrics.classification(logits, y, ("g", "q", "w", "z", "t"))
    assert out["accuracy"] == 1.0 and out["auc_macro"] == 1.0
    assert all(v is None for v in out["rejection_at_50pct_signal_eff"].values())  # no background passes


def test_rejection_reads_the_roc_curve():
    # class 0 scores: signal uniform on 0.5..1.0; background: 10% above every signal score, rest 0
    rng = np.random.default_rng(0)
    n = 1000
    y = np.r_[np.zeros(n, int), np.ones(n, int)]
    score = np.r_[rng.uniform(0.5, 1.0, n), np.where(np.arange(n) < 100, 2.0, -2.0)]
    logits = np.c_[score, np.zeros(2 * n)]
    out = metrics.classification(logits, y, ("a", "b"))
    assert out["rejection_at_50pct_signal_eff"]["a"] == pytest.approx(10.0, rel=1e-6)
    assert out["accuracy"] == pytest.approx((n + 900) / (2 * n))
    assert math.isclose(out["auc"]["a"], 0.9, rel_tol=1e-9)
