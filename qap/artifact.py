"""The model directory: stage 1's artifact, read by the HLS conversion and by tests.

Layout::

    model.h5           the QKeras model (plain layers, weights exactly on their grids)
    masks.npz          pruning mask per dense layer (1 = kept)
    metrics.json       accuracy, AUC, rejection, sparsity, BOPs, net efficiency, timings
    test_vectors.npz   X (raw features), y, logits (exact reference), index (row in data set)
    manifest.json      config, data fingerprint, scaler, formats, versions, sha256 of each file
"""
from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np

from psqs.common import npz
from psqs.common.artifact import MANIFEST, ArtifactError, read_manifest, sha256_file
from psqs.common.fixed_point import FixedFormat

from .config import TrainConfig
from .split import Standardizer

KIND = "psqs.model"
FORMAT_VERSION = 1
MODEL_FILE = "model.h5"


# What psqs' QAP models are made of (qap/model.py; tfmot's pruning wrappers are stripped before
# saving) and nothing else. A model file is foreign input: rebuilding it runs code the file carries
# (a Lambda's marshalled bytecode) or that its class names select, so each name is checked first.
MODEL_CLASSES = frozenset({"Functional"})
LAYER_CLASSES = frozenset({"InputLayer", "QActivation", "QDense", "Dense", "Activation", "BatchNormalization"})
OBJECT_CLASSES = frozenset({"quantized_bits", "quantized_relu", "QInitializer", "Clip", "HeNormal",
                            "GlorotUniform", "Zeros", "Ones", "L1"})
# Config values that Keras/QKeras turn into callables by name ("relu", "quantized_bits(6,0)").
FUNCTION_KEYS = frozenset({"activation", "kernel_quantizer", "bias_quantizer"})
FUNCTION_NAMES = frozenset({"linear", "relu", "quantized_bits", "quantized_relu"})


def _foreign_objects(value, key: str = "") -> list[str]:
    """Nested class names and function names in a layer's entry that are not psqs' own."""
    if isinstance(value, dict):
        found = []
        if "class_name" in value and value["class_name"] not in OBJECT_CLASSES:
            found.append(f"object of class {value['class_name']!r}")
        for k, v in value.items():
            found += _foreign_objects(v, k)
        return found
    if isinstance(value, list):
        return [f for v in value for f in _foreign_objects(v, key)]
    if key in FUNCTION_KEYS and isinstance(value, str) and value.split("(")[0] not in FUNCTION_NAMES:
        return [f"{key} {value!r}"]
    return []


def refused_layers(model_config) -> list[str]:
    """What in a saved model's JSON config psqs will not deserialize, each named; [] if all is known."""
    cls = model_config.get("class_name") if isinstance(model_config, dict) else None
    body = model_config.get("config") if cls in MODEL_CLASSES else None
    if not isinstance(body, dict) or not isinstance(body.get("layers"), list):
        return [f"model class {cls!r} (psqs saves {', '.join(sorted(MODEL_CLASSES))} models with a layer list)"]
    refused = [f"model holds {f}" for f in _foreign_objects({k: v for k, v in body.items() if k != "layers"})]
    for layer in body["layers"]:
        layer = layer if isinstance(layer, dict) else {"class_name": repr(layer)}
        cls, name = layer.get("class_name"), layer.get("name")
        if cls not in LAYER_CLASSES:
            why = "runs Python code stored in the file" if cls == "Lambda" else "not a psqs layer class"
            refused.append(f"layer {name!r} is a {cls} ({why})")
        else:
            refused += [f"layer {name!r} ({cls}) holds {f}"
                        for f in _foreign_objects({k: v for k, v in layer.items() if k != "class_name"})]
    return refused


def check_model_file(path: Path) -> None:
    """Read a Keras HDF5 file's ``model_config`` with h5py alone and refuse anything unknown.

    Nothing in the file is deserialized or run here; the refusal names every layer (name and
    class) that is not one of :data:`LAYER_CLASSES`, and every nested object or function name
    that is not psqs' own.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except OSError as exc:
        raise ArtifactError(f"{path}: not a readable HDF5 model file ({exc})") from None
    if raw is None:
        raise ArtifactError(f"{path}: holds no model_config (not a Keras model file)")
    try:
        config = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: model_config is not JSON ({exc})") from None
    refused = refused_layers(config)
    if refused:
        raise ArtifactError(f"{path}: refused before loading, nothing in it was run: {'; '.join(refused)} "
                            f"(psqs model files hold only {', '.join(sorted(LAYER_CLASSES))})")


def _load_in_safe_mode(path: Path):
    """QKeras' loader with Keras' safe mode on.

    TF 2.14's Keras honours ``load_model(safe_mode=True)`` only for the native ``.keras`` format;
    its legacy HDF5 loader ignores the argument, while its Lambda layer still consults the
    (non-public) safe-mode scope. Entering that scope makes a Lambda that got past
    :func:`check_model_file` fail instead of running.
    """
    from keras.src.saving.serialization_lib import SafeModeScope
    from qkeras.utils import load_qmodel

    with SafeModeScope(True):
        return load_qmodel(str(path), compile=False)


def keras_load(path: Path):
    """Load a QKeras .h5 model: its config checked first (:func:`check_model_file`), then rebuilt
    with QKeras' layers and quantizers registered and Keras' safe mode on."""
    check_model_file(path)
    return _load_in_safe_mode(path)


class ModelDir:
    """A verified model directory (sha256 of every file checked on open)."""

    def __init__(self, path):
        self.path = Path(path)
        self.manifest = read_manifest(self.path, KIND, FORMAT_VERSION)

    @cached_property
    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.manifest["config"])

    @cached_property
    def input_format(self) -> FixedFormat:
        return FixedFormat.from_dict(self.manifest["input_format"], "manifest input_format")

    @cached_property
    def scaler(self) -> Standardizer:
        return Standardizer.from_dict(self.manifest["scaler"])

    @cached_property
    def metrics(self) -> dict:
        return json.loads((self.path / "metrics.json").read_text())

    def test_vectors(self) -> dict[str, np.ndarray]:
        return npz.load(self.path / "test_vectors.npz", ArtifactError)

    def masks(self) -> dict[str, np.ndarray]:
        return npz.load(self.path / "masks.npz", ArtifactError)

    def keras_model(self):
        return keras_load(self.path / MODEL_FILE)

    @property
    def model_sha256(self) -> str:
        """The model file's sha256, as the manifest lists it (checked when the directory was opened)."""
        return self.manifest["files"][MODEL_FILE]

    def provenance(self) -> dict:
        """What a later stage's manifest records of the model it was made from."""
        return {"path": str(self.path.resolve()), "model_sha256": self.model_sha256,
                "manifest_sha256": sha256_file(self.path / MANIFEST),
                "config": self.manifest["config"], "features": self.manifest["features"],
                "classes": self.manifest["classes"], "scaler": self.manifest["scaler"], "metrics": self.metrics}


def load_model(path):
    """The QKeras model of a model directory, after verifying the directory's checksums."""
    return ModelDir(path).keras_model()
