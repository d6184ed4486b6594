"""Pruning chains (one model directory per sparsity step) and randomized training labels."""
from __future__ import annotations

import json

import numpy as np
import pytest

from psqs.qap import stage
from psqs.qap.config import TrainConfig
from psqs.qap.pruning import imp_targets


def config(synthetic_npz, **overrides) -> TrainConfig:
    options = dict(data=str(synthetic_npz), epochs=2, patience=2, batch_size=256, max_train=1500,
                   test_vectors=300, widths=(16, 8), bits=6)
    options.update(overrides)
    return TrainConfig(**options)


def weights(md):
    return md.keras_model().get_weights()


@pytest.mark.slow
@pytest.mark.parametrize("bn", [False, True])
def test_chain_checkpoint_is_the_single_run_to_that_sparsity(tmp_path, synthetic_npz, bn):
    """The chain's last checkpoint and `psqs train --sparsity 0.3` run the same rounds (the
    paper's schedule to 30 %): both must give the same model, bit for bit. With BN, each
    checkpoint is folded and fine-tuned on a copy, so the chain's later rounds are unaffected."""
    cfg = config(synthetic_npz, pruning="imp-lt", sparsity=0.3, bn=bn)
    steps = imp_targets(0.3)
    outs = [tmp_path / f"step{k}" for k in range(len(steps))]
    chain = stage.run_chain(cfg, steps, outs)
    single = stage.run(cfg, tmp_path / "single")
    for a, b in zip(weights(chain[-1]), weights(single)):
        np.testing.assert_array_equal(a, b)
    assert [md.config.sparsity for md in chain] == steps
    measured = [md.metrics["sparsity"]["total"] for md in chain]
    np.testing.assert_allclose(measured, steps, atol=0.01)
    assert [md.manifest["chain"]["index"] for md in chain] == list(range(len(steps)))
    # each checkpoint's masks contain the previous one's (IMP only ever removes more weights)
    for earlier, later in zip(chain, chain[1:]):
        for name, mask in later.masks().items():
            assert np.all(mask <= earlier.masks()[name])


@pytest.mark.slow
def test_chain_rerun_writes_only_what_is_missing(tmp_path, synthetic_npz):
    cfg = config(synthetic_npz, pruning="imp-ft", sparsity=0.6)
    steps = [0.3, 0.6]
    outs = [tmp_path / "a", tmp_path / "b"]
    first = stage.run_chain(cfg, steps, outs)
    manifest_b = (outs[1] / "manifest.json").read_bytes()
    kept = weights(first[0])
    import shutil

    shutil.rmtree(outs[0])
    again = stage.run_chain(cfg, steps, outs)           # trains again, writes step 0 only
    assert (outs[1] / "manifest.json").read_bytes() == manifest_b
    for a, b in zip(weights(again[0]), kept):
        np.testing.assert_array_equal(a, b)             # deterministic: the same checkpoint


@pytest.mark.slow
def test_gradual_chain_raises_sparsity_step_by_step(tmp_path, synthetic_npz):
    cfg = config(synthetic_npz, pruning="gradual", sparsity=0.7, epochs=4)
    chain = stage.run_chain(cfg, [0.4, 0.7], [tmp_path / "a", tmp_path / "b"])
    np.testing.assert_allclose([md.metrics["sparsity"]["total"] for md in chain], [0.4, 0.7], atol=0.01)
    for name, kernel in ((n, chain[1].keras_model().get_layer(n).kernel.numpy()) for n in chain[1].masks()):
        assert np.all(kernel[chain[1].masks()[name] == 0] == 0)


def test_randomized_labels_replace_the_asked_fraction():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, size=20000)
    out = stage.randomize_labels(y, 0.75, 5, seed=3)
    changed = (out != y).mean()
    # 75 % replaced by a uniform class, which is the old one 1 time in 5
    assert abs(changed - 0.75 * 4 / 5) < 0.01
    np.testing.assert_array_equal(out, stage.randomize_labels(y, 0.75, 5, seed=3))
    assert not np.array_equal(out, stage.randomize_labels(y, 0.75, 5, seed=4))
    assert stage.randomize_labels(y, 0.0, 5, seed=3) is y


@pytest.mark.slow
def test_randomized_labels_leave_the_test_split_clean(tmp_path, synthetic_npz):
    noisy = stage.run(config(synthetic_npz, randomized_labels=0.9, epochs=3), tmp_path / "noisy")
    clean = stage.run(config(synthetic_npz, epochs=3), tmp_path / "clean")
    np.testing.assert_array_equal(noisy.test_vectors()["y"], clean.test_vectors()["y"])
    assert noisy.manifest["config"]["randomized_labels"] == 0.9
    # what was learnt from 90 % noise is worse on clean test labels than what was learnt from none
    assert noisy.metrics["test"]["accuracy"] < clean.metrics["test"]["accuracy"]
    json.dumps(noisy.metrics)


@pytest.mark.slow
def test_gradual_pruning_in_a_single_epoch_keeps_its_last_epoch(tmp_path, synthetic_npz):
    """The polynomial schedule ends after the first half of the epochs; with one epoch there is no
    second half, and the round's result is its only epoch (it was an argmin of nothing)."""
    md = stage.run(config(synthetic_npz, pruning="gradual", sparsity=0.5, epochs=1), tmp_path / "m")
    (round_,) = md.metrics["training"]["rounds"]
    assert round_["epochs"] == 1
    assert abs(md.metrics["sparsity"]["total"] - 0.5) <= 0.01
