"""The sweep spec: one YAML file, validated once against a JSON schema, then read as data.

Errors name the key (``methods[2]: 'qap-imp' is not one of ...``), never a traceback, because
a study is set up by editing this file and rerunning.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from psqs.common.errors import PsqsError
from psqs.hls.rtl.trace import SOLVERS
from psqs.qap.config import FLOAT_BITS, QUANT_BITS
from psqs.qap.pruning import PAPER_ROUND_FRACTIONS


class SpecError(PsqsError, ValueError):
    """A sweep spec or sweep directory is unusable; the message names the file and key."""


#: method -> (pruning, bits override): prune-float is IMP with fine-tuning on the float network.
METHODS = {
    "qap-imp-ft": ("imp-ft", None),
    "qap-imp-lt": ("imp-lt", None),
    "qat": ("none", None),
    "prune-float": ("imp-ft", FLOAT_BITS),
    "gradual": ("gradual", None),
}
STAGES = ("convert", "rtl", "build", "bench")


def paper_steps() -> list[float]:
    """The paper's cumulative sparsities: 10, 20, ..., 90, 96.7, 98.9 %."""
    steps, remaining = [], 1.0
    for fraction in PAPER_ROUND_FRACTIONS:
        remaining *= 1.0 - fraction
        steps.append(round(1.0 - remaining, 6))
    return steps


_CHECKPOINTS = {"oneOf": [{"enum": ["all", "last"]},
                          {"type": "array", "items": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
                           "minItems": 1}]}
_TRAINING = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "epochs": {"type": "integer", "minimum": 1}, "patience": {"type": "integer", "minimum": 1},
        "batch_size": {"type": "integer", "minimum": 1}, "learning_rate": {"type": "number", "exclusiveMinimum": 0},
        "max_train": {"type": ["integer", "null"], "minimum": 5}, "l1": {"type": "number", "minimum": 0},
        "bn": {"type": "boolean"}, "input_width": {"type": "integer", "minimum": 4, "maximum": 32},
        "relu_integer": {"type": "integer", "minimum": 0}, "test_vectors": {"type": "integer", "minimum": 1},
        "input_coverage": {"type": "number", "exclusiveMinimum": 0.5, "maximum": 1},
    },
}
SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "data": {"type": ["string", "null"]},
        "bits": {"type": "array", "minItems": 1, "uniqueItems": True,
                 "items": {"type": "integer", "enum": [*QUANT_BITS, FLOAT_BITS]}},
        "methods": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": list(METHODS)}},
        "sparsity_steps": {"type": "array", "minItems": 1,
                           "items": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}},
        "seeds": {"type": "array", "minItems": 1, "uniqueItems": True,
                  "items": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}},
        "randomized_labels": {"type": "array", "minItems": 1, "uniqueItems": True,
                              "items": {"type": "number", "minimum": 0, "exclusiveMaximum": 1}},
        "widths": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1}},
        "training": _TRAINING,
        "stages": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "convert": {"type": "object", "additionalProperties": False, "properties": {
                    "checkpoints": _CHECKPOINTS, "board": {"type": "string"},
                    "strategy": {"enum": ["latency", "resource"]}, "reuse": {"type": "integer", "minimum": 1},
                    "io": {"enum": ["parallel", "stream"]}}},
                "rtl": {"type": "object", "additionalProperties": False, "properties": {
                    "checkpoints": _CHECKPOINTS, "solver": {"enum": list(SOLVERS)},
                    "stage_depth": {"type": "integer", "minimum": 1, "maximum": 64}, "synth": {"type": "boolean"}}},
                "build": {"type": "object", "additionalProperties": False, "properties": {
                    "checkpoints": _CHECKPOINTS, "vivado": {"type": "boolean"}}},
                "bench": {"type": "object", "additionalProperties": False, "properties": {
                    "checkpoints": _CHECKPOINTS, "batch_sizes": {"type": "array", "minItems": 1,
                                                                   "items": {"type": "integer", "minimum": 1}},
                    "repeats": {"type": "integer", "minimum": 1}}},
            },
        },
        "search": {
            "type": "object", "additionalProperties": False, "required": ["bops_budget"],
            "properties": {
                "trials": {"type": "integer", "minimum": 1}, "epochs": {"type": "integer", "minimum": 1},
                "bops_budget": {"type": "number", "exclusiveMinimum": 0},
                "layers": {"type": "integer", "minimum": 1, "maximum": 8},
                "min_width": {"type": "integer", "minimum": 1}, "max_width": {"type": "integer", "minimum": 1},
                "bits": {"type": "array", "minItems": 1, "uniqueItems": True,
                         "items": {"type": "integer", "enum": [*QUANT_BITS, FLOAT_BITS]}},
                "seed": {"type": "integer", "minimum": 0}, "parallel": {"type": "integer", "minimum": 1},
            },
        },
    },
    "required": ["bits", "methods"],
}


@dataclass(frozen=True)
class Spec:
    """A validated spec with its defaults filled in (what ``sweep.json`` stores as ``spec``)."""

    bits: tuple[int, ...]
    methods: tuple[str, ...]
    name: str = "sweep"
    data: str | None = None
    sparsity_steps: tuple[float, ...] = field(default_factory=lambda: tuple(paper_steps()))
    seeds: tuple[int, ...] = (0,)
    randomized_labels: tuple[float, ...] = (0.0,)
    widths: tuple[int, ...] = (64, 32, 32)
    training: dict = field(default_factory=dict)
    stages: dict = field(default_factory=dict)
    search: dict | None = None

    def to_dict(self) -> dict:
        return json.loads(json.dumps(self.__dict__))

    @classmethod
    def from_dict(cls, d: dict, where: str = "spec") -> "Spec":
        validate(d, where)
        d = dict(d)
        steps = d.get("sparsity_steps")
        if steps is not None and any(b <= a for a, b in zip(steps, steps[1:])):
            raise SpecError(f"{where}: sparsity_steps: must increase, got {steps}")
        if "relu_integer" in d.get("training", {}):
            low = min([b for b in d["bits"] if b != FLOAT_BITS] or [FLOAT_BITS])
            if d["training"]["relu_integer"] >= low:
                raise SpecError(f"{where}: training.relu_integer: must be below the smallest bit width ({low})")
        search = d.get("search")
        if search and search.get("min_width", 1) > search.get("max_width", 64):
            raise SpecError(f"{where}: search.min_width: above search.max_width")
        for key in ("bits", "methods", "sparsity_steps", "seeds", "randomized_labels", "widths"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


def validate(d, where: str) -> None:
    """Check ``d`` against :data:`SCHEMA`; the first error names its key path."""
    import jsonschema

    if not isinstance(d, dict):
        raise SpecError(f"{where}: must be a mapping of keys (bits, methods, ...), got {type(d).__name__}")
    errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(d), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path).lstrip(".")
        raise SpecError(f"{where}: {path or 'top level'}: {e.message}")


def load(path) -> Spec:
    """Read and validate a spec file."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the sweep spec ({exc.strerror})") from None
    try:
        d = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return Spec.from_dict(d, str(path))
