"""The verification ladder (FINN-style): every rung's outputs compared with rung 1.

Rung 1 is the model directory's reference logits (the QKeras network evaluated exactly, see
:mod:`psqs.qap.reference`); later rungs are hls4ml's C simulation of the network and the
AXI-stream top fed the packed words a DMA would send. Each comparison is printed as a
SUCCESS/FAIL line, saved as ``.npy`` and summarized in ``verify.json``; later stages (RTL, the
emulated board) append their own rungs with :func:`compare`.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from psqs.host.agreement import compare

__all__ = ["compare", "report_line", "save"]

log = logging.getLogger(__name__)


def tlast_ends_one_transfer(last: np.ndarray) -> bool:
    """The TLAST flags of one transfer's output beats: set on the last beat and nowhere else."""
    return bool(last.size > 0 and last[-1] == 1 and last[:-1].sum() == 0)


def report_line(row: dict) -> str:
    status = "SUCCESS" if row["success"] else "FAIL"
    if "error" in row:
        return f"{status} {row['rung']}: {row['error']}"
    return (f"{status} {row['rung']}: {row['exact_samples']:.2%} samples / {row['exact_outputs']:.2%} outputs "
            f"exact, max |diff| {row['max_abs_diff']:.3g}, argmax agreement {row['argmax_agreement']:.2%} "
            f"on {row['n_samples']} samples")


def save(directory: Path, rungs: list[dict], arrays: dict[str, np.ndarray], extra: dict) -> dict:
    """Write ``verify.json`` into ``directory`` and the arrays into ``directory/verify/``."""
    (directory / "verify").mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        np.save(directory / "verify" / f"{name}.npy", array)
    summary = {"success": all(r["success"] for r in rungs), "rungs": rungs, **extra}
    (directory / "verify.json").write_text(json.dumps(summary, indent=2) + "\n")
    for row in rungs:
        (log.info if row["success"] else log.error)(report_line(row))
    return summary
