"""QAP training end to end on small synthetic data: sparsity, masks, exactness, round trip."""
from __future__ import annotations

import json

import numpy as np
import pytest

from psqs.qap import ModelDir, load_model
from psqs.qap import model as model_lib
from psqs.qap import stage
from psqs.qap.config import TrainConfig
from psqs.qap.reference import ExactModel

pytestmark = pytest.mark.slow


def train(tmp_path, synthetic_npz, name, **overrides) -> ModelDir:
    options = dict(data=str(synthetic_npz), epochs=3, patience=2, batch_size=256,
                   max_train=2000, test_vectors=500, widths=(32, 16, 16))
    options.update(overrides)
    return stage.run(TrainConfig(**options), tmp_path / name)


def kernels(model, config):
    return {n: model.get_layer(n).kernel.numpy() for n in model_lib.dense_names(config)}


@pytest.fixture(scope="module")
def imp_ft(tmp_path_factory, synthetic_npz):
    return train(tmp_path_factory.mktemp("imp_ft"), synthetic_npz, "model", bits=6,
                 pruning="imp-ft", sparsity=0.5)


def test_imp_reaches_sparsity_with_masks_intact(imp_ft):
    model, masks = imp_ft.keras_model(), imp_ft.masks()
    assert abs(imp_ft.metrics["sparsity"]["total"] - 0.5) <= 0.01
    total = sum(m.size for m in masks.values())
    assert abs(sum((m == 0).sum() for m in masks.values()) / total - 0.5) <= 0.01
    for name, kernel in kernels(model, imp_ft.config).items():
        assert np.all(kernel[masks[name] == 0] == 0), f"{name}: pruned weights came back"
        assert np.count_nonzero(kernel[masks[name] == 1]) > 0
    rounds = imp_ft.metrics["training"]["rounds"]
    assert [r["target_sparsity"] for r in rounds] == pytest.approx([0, 0.1, 0.2, 0.3, 0.4, 0.5])


def test_weights_sit_on_their_grid(imp_ft):
    fmt = model_lib.weight_format(6)
    for layer in (imp_ft.keras_model().get_layer(n) for n in model_lib.dense_names(imp_ft.config)):
        for w in (layer.kernel.numpy(), layer.bias.numpy()):
            np.testing.assert_array_equal(fmt.quantize(w), w)


def test_artifact_round_trip_reproduces_the_stored_logits(imp_ft):
    vectors = imp_ft.test_vectors()
    assert vectors["X"].shape == (500, 16) and vectors["logits"].shape == (500, 5)
    model = load_model(imp_ft.path)
    logits, _ = ExactModel(model, imp_ft.config, imp_ft.input_format)(imp_ft.scaler.transform(vectors["X"]))
    np.testing.assert_array_equal(logits, vectors["logits"])
    manifest = imp_ft.manifest
    assert manifest["classes"] == ["t", "w", "z", "q", "g"]      # the file's own class order
    assert manifest["config"]["pruning"] == "imp-ft"
    assert manifest["versions"]["qkeras"] == "0.9.0"
    assert set(manifest["files"]) == {"model.h5", "masks.npz", "metrics.json", "test_vectors.npz",
                                      "plots/roc_curves.png", "plots/confusion_matrix.png"}
    metrics = imp_ft.metrics
    # --max-train 2000 of the 2400 training jets: validation capped to 667 of 800, test whole
    assert metrics["split"] == {"train": 2000, "val": 667, "test": 800, "max_train": 2000}
    assert metrics["split"]["test"] == metrics["test"]["n_jets"]
    assert manifest["data"]["split"] == {"seed": 0, "train": 2000, "val": 667, "test": 800}
    assert metrics["test"]["accuracy"] > 0.6   # separable synthetic classes: learning happened
    assert set(metrics["test"]["rejection_at_50pct_signal_eff"]) == {"t", "w", "z", "q", "g"}
    assert 0 < metrics["efficiency"]["eta_n"] <= 1
    assert json.loads((imp_ft.path / "metrics.json").read_text()) == metrics


def _integer_forward(model, config, input_format, X_std):
    """Independent oracle: the network in integer arithmetic (codes), round half to even."""
    a = input_format.to_codes(X_std)
    frac_a = input_format.frac
    frac_w = model_lib.weight_format(config.bits).frac
    frac_r = model_lib.relu_format(config.bits, config.relu_integer).frac
    names = model_lib.dense_names(config)
    for name in names:
        layer = model.get_layer(name)
        w = (layer.kernel.numpy().astype(np.float64) * 2 ** frac_w).astype(np.int64)
        b = (layer.bias.numpy().astype(np.float64) * 2 ** frac_w).astype(np.int64)
        acc = a @ w + (b << frac_a)                       # fraction bits: frac_a + frac_w
        if name == names[-1]:
            return acc / 2.0 ** (frac_a + frac_w)
        s = frac_a + frac_w - frac_r
        q = (acc + (1 << (s - 1)) - 1 + ((acc >> s) & 1)) >> s
        a, frac_a = np.clip(q, 0, 2 ** config.bits - 1), frac_r


@pytest.mark.parametrize("bits, bn", [(16, False), (8, True)])
def test_reference_is_exact_fixed_point(tmp_path, synthetic_npz, bits, bn):
    """16 bits overflows float32 sums; BN is folded before export: the reference stays exact."""
    md = train(tmp_path, synthetic_npz, "m", bits=bits, bn=bn, epochs=2, relu_integer=2)
    model = md.keras_model()
    assert not [l for l in model.layers if "batch_normalization" in type(l).__name__.lower()]
    vectors = md.test_vectors()
    X_std = md.scaler.transform(vectors["X"])
    expected = _integer_forward(model, md.config, md.input_format, X_std)
    np.testing.assert_array_equal(vectors["logits"], expected)


def test_gradual_pruning_reaches_its_sparsity(tmp_path, synthetic_npz):
    md = train(tmp_path, synthetic_npz, "m", bits=8, pruning="gradual", sparsity=0.7, epochs=4)
    assert abs(md.metrics["sparsity"]["total"] - 0.7) <= 0.01
    for name, kernel in kernels(md.keras_model(), md.config).items():
        assert np.all(kernel[md.masks()[name] == 0] == 0)


def test_lottery_ticket_rewinds_survivors(synthetic_npz):
    """imp-lt: the mask comes from trained weights, the survivors restart from initialization."""
    import tensorflow_model_optimization as tfmot

    from psqs.qap.pruning import fixed_mask_schedule
    from psqs.qap.train import _dense, prune_step

    config = TrainConfig(bits=6, widths=(8,), pruning="imp-lt", sparsity=0.5)
    wrap = lambda layer: tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=fixed_mask_schedule())
    model = model_lib.build(config, model_lib.input_format_for(np.ones(4), 16, 1.0), wrap_dense=wrap)
    names = model_lib.dense_names(config)
    initial = model.get_weights()
    initial_kernels = {n: _dense(model, n).kernel.numpy().copy() for n in names}
    rng = np.random.default_rng(0)
    trained = {n: rng.normal(size=k.shape).astype(np.float32) for n, k in initial_kernels.items()}
    for n in names:
        _dense(model, n).kernel.assign(trained[n])
    masks = {n: np.ones(k.shape, np.float32) for n, k in initial_kernels.items()}
    masks = prune_step(model, names, masks, 0.5, rewind_to=initial)
    magnitude = np.concatenate([np.abs(trained[n]).ravel() for n in names])
    kept = np.concatenate([masks[n].ravel() for n in names]) == 1
    assert magnitude[kept].min() >= magnitude[~kept].max()       # chosen by trained magnitude
    for n in names:
        np.testing.assert_array_equal(_dense(model, n).kernel.numpy(), initial_kernels[n] * masks[n])


def test_same_seed_same_model(tmp_path, synthetic_npz):
    a = train(tmp_path, synthetic_npz, "a", bits=6, epochs=2, seed=5)
    b = train(tmp_path, synthetic_npz, "b", bits=6, epochs=2, seed=5)
    for wa, wb in zip(a.keras_model().get_weights(), b.keras_model().get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert a.manifest["data"]["fingerprint"] == b.manifest["data"]["fingerprint"]
