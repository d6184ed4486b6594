"""Stage 1: data set -> trained QAP model directory (see :mod:`psqs.qap.artifact` for the layout)."""
from __future__ import annotations

import dataclasses
import json
import logging
import platform
from importlib import metadata
from pathlib import Path

import numpy as np

from psqs.common import classification
from psqs.common.artifact import MANIFEST, staged_directory, write_manifest

from . import data as data_lib
from . import metrics as metrics_lib
from . import model as model_lib
from . import pruning
from . import train as train_lib
from .artifact import FORMAT_VERSION, KIND, MODEL_FILE, ModelDir
from .config import TrainConfig
from .reference import ExactModel, deployed_config
from .split import Standardizer, split
from .train import TrainResult, fit

log = logging.getLogger(__name__)

VERSIONED_PACKAGES = ("psqs", "tensorflow", "qkeras", "tensorflow-model-optimization",
                      "numpy", "scikit-learn")


def library_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _layer_costs(config: TrainConfig, input_format, masks: dict, model) -> list[dict]:
    """Rows for BOPs and the sparsity report, one per dense layer."""
    rows = []
    for row in model_lib.layer_table(deployed_config(config), input_format):
        mask = masks[row["name"]]
        kernel = model.get_layer(row["name"]).kernel.numpy()
        b_a = row["input_format"]["width"] if row["input_format"] else 32
        rows.append({
            "name": row["name"], "n_in": row["n_in"], "n_out": row["n_out"], "b_a": b_a,
            "b_w": config.bits,
            "pruned_fraction": float(1.0 - mask.mean()),
            "zero_fraction": float((kernel == 0).mean()),
        })
    return rows


def evaluate(result: TrainResult, config: TrainConfig, input_format, X_test_std, y_test,
             class_names, X_train_std) -> tuple[dict, np.ndarray]:
    """metrics.json content and the exact test logits."""
    logits, hidden = ExactModel(result.model, config, input_format)(X_test_std)
    float32_logits = result.model.predict(X_test_std, batch_size=16384, verbose=0)
    quality = metrics_lib.classification(logits, y_test, class_names)
    costs = _layer_costs(config, input_format, result.masks, result.model)
    sat_train = input_format.saturates(X_train_std)
    sat_test = input_format.saturates(X_test_std)
    metrics = {
        "test": quality,
        "float32_model": {
            "accuracy": float((np.argmax(float32_logits, 1) == y_test).mean()),
            "argmax_agreement_with_exact": float((np.argmax(float32_logits, 1) == np.argmax(logits, 1)).mean()),
            "max_abs_logit_diff": float(np.abs(float32_logits - logits).max()),
        },
        "sparsity": {
            "total": pruning.sparsity([result.masks[r["name"]] for r in costs]),
            "per_layer": {r["name"]: r["pruned_fraction"] for r in costs},
            "zero_weights_per_layer": {r["name"]: r["zero_fraction"] for r in costs},
        },
        "bops": {**metrics_lib.bops(costs), "layers": [r["name"] for r in costs],
                 "convention": "first layer b_a = input word width; f_p = mask-pruned fraction"},
        "efficiency": metrics_lib.net_efficiency(hidden, accuracy=quality["accuracy"]),
        "input_saturation": {
            "format": input_format.hls_type(),
            "train_values": int(sat_train.sum()), "train_fraction": float(sat_train.mean()),
            "test_values": int(sat_test.sum()), "test_fraction": float(sat_test.mean()),
        },
        "training": {
            "seconds": result.seconds,
            "rounds": [vars(r) for r in result.rounds],
        },
    }
    return metrics, logits


@dataclasses.dataclass
class Prepared:
    """The data as training sees it: split, standardized, with the input format fixed."""

    data: data_lib.JetData
    parts: object                     # split.Split
    scaler: Standardizer
    input_format: object              # FixedFormat
    train: tuple                      # (X standardized float32, y), labels randomized per the config
    val: tuple
    X_train: np.ndarray               # standardized, float64 (for saturation counts)
    X_test: np.ndarray
    y_test: np.ndarray


def randomize_labels(y: np.ndarray, fraction: float, n_classes: int, seed: int) -> np.ndarray:
    """``y`` with ``round(fraction * len(y))`` labels, chosen at random, replaced by random classes.

    Ps and Qs' generalization test: a network that memorizes noise shows it in its efficiency.
    A replaced label may by chance equal the true one, as in the paper's test; the seed is the
    run's, so a rerun replaces the same labels.
    """
    if fraction == 0:
        return y
    rng = np.random.default_rng([seed, 0x5EED])
    out = y.copy()
    chosen = rng.choice(len(y), size=int(round(fraction * len(y))), replace=False)
    out[chosen] = rng.integers(0, n_classes, size=chosen.size)
    return out


def prepare(config: TrainConfig) -> Prepared:
    """Load, split and standardize the data; randomize training and validation labels if asked
    (the test split stays clean: it measures what was learnt, not what was memorized)."""
    data = data_lib.load(config.data)
    parts = split(data, config.seed, max_train=config.max_train)
    log.info("split: %(train)d train, %(val)d validation, %(test)d test jets", parts.sizes())
    scaler = Standardizer.fit(data.X[parts.train])
    X_train, X_val, X_test = (scaler.transform(data.X[i]) for i in (parts.train, parts.val, parts.test))
    y_train, y_val, y_test = (data.y[i] for i in (parts.train, parts.val, parts.test))
    n_classes = len(data.class_names)
    y_train = randomize_labels(y_train, config.randomized_labels, n_classes, config.seed)
    y_val = randomize_labels(y_val, config.randomized_labels, n_classes, config.seed + 1)
    input_format = model_lib.input_format_for(X_train, config.input_width, config.input_coverage)
    log.info("input format %s (%.2e of training values saturate)", input_format.hls_type(),
             input_format.saturates(X_train).mean())
    return Prepared(data, parts, scaler, input_format, (X_train.astype(np.float32), y_train),
                    (X_val.astype(np.float32), y_val), X_train, X_test, y_test)


def write(prep: Prepared, config: TrainConfig, result: TrainResult, out: Path, force: bool = False,
          extra: dict | None = None) -> ModelDir:
    """Evaluate ``result`` on the test split and write the model directory ``out`` atomically;
    ``extra`` adds manifest fields (a chain's position)."""
    data, parts, y_test = prep.data, prep.parts, prep.y_test
    metrics, logits = evaluate(result, config, prep.input_format, prep.X_test, y_test, data.class_names, prep.X_train)
    metrics["split"] = {**parts.sizes(), "max_train": config.max_train}   # jets used (see split())
    # the board's own computation (psqs bench draws the same plots), on the whole test split
    test_split = classification.evaluate(logits, y_test, data.class_names, "test split")
    metrics["test"].update(sample_set="test split", confusion_matrix=test_split["confusion_matrix"])
    log.info("test accuracy %.4f, AUC %.4f, sparsity %.3f, BOPs %.4g",
             metrics["test"]["accuracy"], metrics["test"]["auc_macro"], metrics["sparsity"]["total"],
             metrics["bops"]["total"])

    n_vectors = min(config.test_vectors, parts.test.size)
    with staged_directory(Path(out), force=force) as tmp:
        result.model.save(tmp / MODEL_FILE, save_format="h5")
        np.savez(tmp / "masks.npz", **result.masks)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        classification.write_plots(test_split, tmp / "plots", f"{Path(out).name}: trained model")
        np.savez(tmp / "test_vectors.npz", X=data.X[parts.test[:n_vectors]],
                 y=y_test[:n_vectors], logits=logits[:n_vectors], index=parts.test[:n_vectors])
        write_manifest(tmp, KIND, FORMAT_VERSION, {
            "config": config.to_dict(),
            "features": list(data_lib.FEATURES),
            "classes": list(data.class_names),
            "data": {"source": data.source, "fingerprint": data.fingerprint, "n_jets": int(data.y.size),
                     "split": {"seed": parts.seed, **parts.sizes()}},
            "scaler": prep.scaler.to_dict(),
            "input_format": prep.input_format.to_dict(),
            "layers": model_lib.layer_table(deployed_config(config), prep.input_format),
            "model_file": MODEL_FILE,
            "versions": library_versions(),
            **(extra or {}),
        })
    log.info("wrote %s", out)
    return ModelDir(out)


def run(config: TrainConfig, out: Path, force: bool = False, progress_factory=None) -> ModelDir:
    """Train per ``config`` and write the model directory ``out`` atomically."""
    prep = prepare(config)
    result = fit(config, prep.input_format, prep.train, prep.val, progress_factory)
    return write(prep, config, result, out, force=force)


def run_chain(config: TrainConfig, steps: list[float], outs: list[Path], progress_factory=None,
              extra: dict | None = None) -> list[ModelDir]:
    """Train one pruning chain and write one model directory per step (``outs[k]`` for ``steps[k]``).

    Each directory is an ordinary model directory whose config says its own sparsity, plus a
    ``chain`` block (method, steps, index). Directories that already exist are kept as they are
    (a rerun after an interruption trains the chain again, deterministically, and writes only
    the missing ones); when all exist nothing is trained.
    """
    if len(outs) != len(steps):
        raise ValueError(f"{len(steps)} steps but {len(outs)} output directories")
    missing = [k for k, out in enumerate(outs) if not (Path(out) / MANIFEST).is_file()]
    if missing:
        prep = prepare(config)
        chain = train_lib.chain(config, prep.input_format, prep.train, prep.val, list(steps), progress_factory,
                                wanted=lambda k: k in missing)
        for k, (target, result) in enumerate(chain):
            if result is not None:
                at = dataclasses.replace(config, sparsity=target) if config.pruning != "none" else config
                write(prep, at, result, Path(outs[k]), extra={
                    "chain": {"pruning": config.pruning, "steps": list(steps), "index": k, **(extra or {})}})
            if k >= max(missing):
                break                       # later steps already exist: no need to train them
    return [ModelDir(out) for out in outs]
