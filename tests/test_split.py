"""Deterministic splits and a training-only scaler."""
from __future__ import annotations

import numpy as np
import pytest

from psqs.qap import data
from psqs.qap.split import Standardizer, split


@pytest.fixture(scope="module")
def jets(synthetic_npz):
    return data.load_file(synthetic_npz)


def test_same_seed_same_split_other_seed_other_split(jets):
    a, b, c = split(jets, 3), split(jets, 3), split(jets, 4)
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
    assert not np.array_equal(a.test, c.test)


def test_split_is_a_stratified_partition(jets):
    s = split(jets, 0)
    rows = np.concatenate([s.train, s.val, s.test])
    assert np.array_equal(np.sort(rows), np.arange(jets.y.size))
    assert s.sizes() == {"train": 2400, "val": 800, "test": 800}
    share = np.bincount(jets.y) / jets.y.size
    np.testing.assert_allclose(np.bincount(jets.y[s.test]) / s.test.size, share, atol=0.01)


def test_max_train_caps_validation_in_proportion_and_keeps_the_test_split(jets):
    full, small = split(jets, 0), split(jets, 0, max_train=600)
    assert small.sizes() == {"train": 600, "val": 200, "test": 800}     # 3:1, as the 60/20 split
    assert set(small.train) <= set(full.train) and set(small.val) <= set(full.val)
    np.testing.assert_array_equal(full.test, small.test)
    share = np.bincount(jets.y) / jets.y.size
    np.testing.assert_allclose(np.bincount(jets.y[small.val], minlength=5) / small.val.size, share, atol=0.02)
    assert split(jets, 0, max_train=5).sizes()["val"] == 5               # still one jet per class
    assert split(jets, 0, max_train=10_000).sizes() == full.sizes()       # a cap above the split: no change


def test_scaler_sees_training_rows_only(jets):
    s = split(jets, 0)
    scaler = Standardizer.fit(jets.X[s.train])
    X = jets.X[s.train].astype(np.float64)
    np.testing.assert_allclose(scaler.mean, X.mean(axis=0), rtol=1e-12)
    assert not np.allclose(scaler.mean, jets.X.astype(np.float64).mean(axis=0), rtol=1e-6)
    z = scaler.transform(jets.X[s.train])
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(z.std(axis=0), 1, rtol=1e-9)
    again = Standardizer.from_dict(scaler.to_dict())
    np.testing.assert_array_equal(again.transform(jets.X), scaler.transform(jets.X))


def test_too_few_jets_per_class(shared_jets):
    jets = data.load_file(shared_jets / "hls4ml_jets_openml_first8_raw.npz")
    with pytest.raises(data.DataError, match="too few jets for a stratified split"):
        split(jets, 0)
