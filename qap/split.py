"""Deterministic train/validation/test split and the standardization that travels with a model.

The scaler is fitted on the training split only and its mean/scale are stored in the model's
manifest: the board standardizes raw features with exactly the same float64 formula
(:meth:`Standardizer.transform`), so that its fixed-point inputs equal the reference's.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import DataError, JetData


@dataclass(frozen=True)
class Split:
    train: np.ndarray   # row indices into the data set
    val: np.ndarray
    test: np.ndarray
    seed: int

    def sizes(self) -> dict:
        return {"train": int(self.train.size), "val": int(self.val.size), "test": int(self.test.size)}


def split(data: JetData, seed: int, val_fraction: float = 0.2, test_fraction: float = 0.2,
          max_train: int | None = None) -> Split:
    """Stratified split by ``seed``; ``max_train`` caps the training and the validation rows.

    The cap keeps a stratified subset of ``max_train`` training rows and, in the split's own
    train:validation proportion, of ``round(max_train * val_fraction / train_fraction)`` validation
    rows (``max_train / 3`` with the default 60/20/20 split; at least one per class): a smaller run
    validates on proportionally less, as it trains on less. The test split does not depend on
    ``max_train``, so models trained on different amounts of data are compared on the same jets.
    """
    from sklearn.model_selection import train_test_split

    counts = np.bincount(data.y, minlength=len(data.class_names))
    if counts.min() < 5:
        raise DataError(f"{data.source}: too few jets for a stratified split "
                        f"(per class: {dict(zip(data.class_names, counts.tolist()))}; need at least 5 each)")
    rows = np.arange(data.y.size)
    rest, test = train_test_split(rows, test_size=test_fraction, random_state=seed, stratify=data.y)
    train, val = train_test_split(rest, test_size=val_fraction / (1 - test_fraction),
                                  random_state=seed + 1, stratify=data.y[rest])
    if max_train is not None and max_train < train.size:
        n_classes = len(data.class_names)
        if max_train < n_classes:
            raise DataError(f"max_train={max_train}: need at least one jet per class")
        max_val = max(n_classes, round(max_train * val_fraction / (1 - val_fraction - test_fraction)))

        def subset(part, n, offset):
            return part if n >= part.size else train_test_split(
                part, train_size=n, random_state=seed + offset, stratify=data.y[part])[0]

        train, val = subset(train, max_train, 2), subset(val, max_val, 3)
    return Split(np.sort(train), np.sort(val), np.sort(test), seed)


@dataclass(frozen=True)
class Standardizer:
    mean: np.ndarray    # float64 per feature
    scale: np.ndarray   # float64 per feature, never zero

    @classmethod
    def fit(cls, X: np.ndarray) -> "Standardizer":
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(np.asarray(X, dtype=np.float64))
        return cls(scaler.mean_.astype(np.float64), scaler.scale_.astype(np.float64))

    def transform(self, X: np.ndarray) -> np.ndarray:
        """``(float64(x) - mean) / scale``: the contract the board reproduces bit for bit."""
        return (np.asarray(X, dtype=np.float64) - self.mean) / self.scale

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "formula": "(float64(x) - mean) / scale"}

    @classmethod
    def from_dict(cls, d: dict) -> "Standardizer":
        return cls(np.asarray(d["mean"], dtype=np.float64), np.asarray(d["scale"], dtype=np.float64))
