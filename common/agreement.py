"""How closely one set of model outputs matches a reference: the figures every rung reports.

Used by the HLS verification ladder on the build server and by the benchmark on the board, so it
lives in the board-side package (numpy only).
"""
from __future__ import annotations

import numpy as np


def compare(name: str, reference: np.ndarray, outputs: np.ndarray, extra: dict | None = None) -> dict:
    """Exact-match fractions (samples, outputs), max |diff| and argmax agreement vs the reference."""
    reference, outputs = np.asarray(reference, np.float64), np.asarray(outputs, np.float64)
    if outputs.shape != reference.shape:
        return {"rung": name, "success": False, "n_samples": int(outputs.shape[0]) if outputs.ndim else 0,
                "error": f"shape {outputs.shape} != reference {reference.shape}", **(extra or {})}
    equal = outputs == reference
    row = {
        "rung": name,
        "n_samples": int(reference.shape[0]),
        "exact_samples": float(equal.all(axis=1).mean()),
        "exact_outputs": float(equal.mean()),
        "max_abs_diff": float(np.abs(outputs - reference).max()) if reference.size else 0.0,
        "argmax_agreement": float((outputs.argmax(axis=1) == reference.argmax(axis=1)).mean()),
        **(extra or {}),
    }
    row["success"] = row["exact_outputs"] == 1.0
    return row
