"""Training configuration: one object, validated once, stored verbatim in the model's manifest."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from psqs.common.errors import PsqsError

PRUNING_METHODS = ("none", "imp-ft", "imp-lt", "gradual")
FLOAT_BITS = 32
QUANT_BITS = tuple(range(4, 17))


class ConfigError(PsqsError, ValueError):
    """A configuration value is invalid; the message names the field."""


@dataclass(frozen=True)
class TrainConfig:
    bits: int = 6                   # weights, biases and ReLU outputs; 32 means float (no quantizers)
    relu_integer: int = 0           # integer bits of quantized_relu (its range is [0, 2**relu_integer))
    input_width: int = 16           # hardware input word width; integer bits sized from the data
    input_coverage: float = 0.9999  # fraction of standardized training values the input format must hold
    widths: tuple[int, ...] = (64, 32, 32)
    bn: bool = False
    l1: float = 1e-4
    pruning: str = "none"
    sparsity: float = 0.0
    epochs: int = 100               # per training round (early stopping usually ends a round sooner)
    patience: int = 10
    batch_size: int = 1024
    learning_rate: float = 1e-3
    max_train: int | None = None
    seed: int = 0
    randomized_labels: float = 0.0  # fraction of training/validation labels replaced at random (test set clean)
    test_vectors: int = 10000
    data: str | None = None         # None: $PSQS_DATA, else OpenML 42468

    def __post_init__(self):
        def bad(name, why):
            raise ConfigError(f"{name}={getattr(self, name)!r}: {why}")

        if self.bits != FLOAT_BITS and self.bits not in QUANT_BITS:
            bad("bits", f"must be in {QUANT_BITS[0]}..{QUANT_BITS[-1]} or {FLOAT_BITS} (float)")
        if self.quantized and not 0 <= self.relu_integer < self.bits:
            bad("relu_integer", f"must be in 0..{self.bits - 1}")
        if not 4 <= self.input_width <= 32:
            bad("input_width", "must be in 4..32")
        if not 0.5 < self.input_coverage <= 1.0:
            bad("input_coverage", "must be in (0.5, 1]")
        if not self.widths or any(not isinstance(w, int) or w < 1 for w in self.widths):
            bad("widths", "must be positive integers, e.g. 64,32,32")
        if not (math.isfinite(self.l1) and self.l1 >= 0):
            bad("l1", "must be a finite number >= 0")
        if self.pruning not in PRUNING_METHODS:
            bad("pruning", f"must be one of {PRUNING_METHODS}")
        if not 0.0 <= self.sparsity < 1.0:
            bad("sparsity", "must be in [0, 1)")
        if self.pruning == "none" and self.sparsity > 0:
            bad("sparsity", "needs a pruning method (--pruning imp-ft|imp-lt|gradual)")
        if self.pruning != "none" and self.sparsity == 0:
            bad("sparsity", f"pruning {self.pruning!r} needs a target sparsity > 0")
        for name in ("epochs", "patience", "batch_size", "test_vectors"):
            if getattr(self, name) < 1:
                bad(name, "must be >= 1")
        if self.max_train is not None and self.max_train < 5:
            bad("max_train", "must be >= 5")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            bad("learning_rate", "must be a finite number > 0")
        if not 0.0 <= self.randomized_labels < 1.0:
            bad("randomized_labels", "must be a fraction in [0, 1)")
        if not 0 <= self.seed < 2**32:
            bad("seed", "must be in 0..2**32-1 (numpy and scikit-learn seeds)")

    @property
    def quantized(self) -> bool:
        return self.bits != FLOAT_BITS

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s) {unknown}")
        d = dict(d)
        if "widths" in d:
            d["widths"] = tuple(d["widths"])
        return cls(**d)
