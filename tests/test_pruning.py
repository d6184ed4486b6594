"""Global magnitude masks and the IMP schedule."""
from __future__ import annotations

import numpy as np
import pytest

from psqs.qap import pruning


def test_paper_schedule():
    assert pruning.imp_targets(0.8) == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    assert pruning.imp_targets(0.99)[-3:] == pytest.approx([0.966667, 0.988889, 0.99])
    assert pruning.imp_targets(0.85)[-2:] == pytest.approx([0.8, 0.85])   # ends on the request
    assert pruning.imp_targets(0.05) == [0.05]


def test_masks_are_global_not_per_layer():
    small = np.full((4, 4), 0.01)                 # a layer of tiny weights ...
    large = np.arange(1, 17, dtype=float).reshape(4, 4)
    masks = pruning.global_masks([small, large], [np.ones((4, 4))] * 2, 0.5)
    assert masks[0].sum() == 0                    # ... is removed entirely,
    assert masks[1].sum() == 16                   # the large one untouched
    assert pruning.sparsity(masks) == 0.5


def test_pruned_weights_stay_pruned_and_count_toward_target():
    rng = np.random.default_rng(0)
    kernels = [rng.normal(size=(16, 64)), rng.normal(size=(64, 5))]
    first = pruning.global_masks(kernels, [np.ones(k.shape) for k in kernels], 0.3)
    # make previously pruned weights large: they must stay pruned anyway
    regrown = [np.where(m == 0, 100.0, k) for k, m in zip(kernels, first)]
    second = pruning.global_masks(regrown, first, 0.6)
    for a, b in zip(first, second):
        assert np.all(b[a == 0] == 0)
    total = sum(k.size for k in kernels)
    assert pruning.sparsity(second) == round(0.6 * total) / total


def test_target_below_current_sparsity_is_an_error():
    k = [np.ones((2, 2))]
    with pytest.raises(ValueError, match="below the current sparsity"):
        pruning.global_masks(k, [np.zeros((2, 2))], 0.5)
