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

from psqs.host.artifact import MANIFEST, read_manifest, sha256_file
from psqs.host.fixed_point import FixedFormat

from .config import TrainConfig
from .split import Standardizer

KIND = "psqs.model"
FORMAT_VERSION = 1
MODEL_FILE = "model.h5"


def keras_load(path: Path):
    """Load a QKeras .h5 model (custom layers and quantizers registered)."""
    from qkeras.utils import load_qmodel

    return load_qmodel(str(path), compile=False)


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
        with np.load(self.path / "test_vectors.npz", allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}

    def masks(self) -> dict[str, np.ndarray]:
        with np.load(self.path / "masks.npz", allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}

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
