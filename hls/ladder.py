"""The verification ladder (FINN-style): every rung is one computation compared with another.

The reference on every rung is the QKeras network evaluated exactly, in float64
(:mod:`psqs.qap.reference`), on the inputs the IP itself computes with: the values its ``input_t``
holds after the top converted the element the host sent. For psqs's packed codes these are the
model directory's own test vectors; for a float32 interface the host's float64 -> float32 cast and
the top's float32 -> ``input_t`` conversion round twice, which moves a few values (a float32 that
lands on a rounding boundary of ``input_t``), so the reference is recomputed on them
(:func:`psqs.hls.stage.quantized_inputs`). Against it:

1. the trained QKeras model as Keras runs it, float32 ``predict``. Informational, not a gate:
   float32 holds a sum exactly only up to 24 bits, so 16-bit networks (and wide first layers)
   round some sums; the line reports how many samples differ and by how much.
2. hls4ml's C simulation of the network - a bit-exact gate;
3. the AXI-stream top fed the words a DMA would send - a bit-exact gate against the reference as
   the output element carries it (the float32 cast of each value for a float interface).

Each comparison is printed as a line (SUCCESS/FAIL for a gate, INFO otherwise), saved as ``.npy``
and summarized in ``verify.json``, whose ``success`` is that of the gates alone; later stages (RTL,
the emulated board) append their own gates with :func:`compare`.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from psqs.common.agreement import compare

__all__ = ["compare", "gate_failures", "qkeras_rung", "report_line", "save"]

log = logging.getLogger(__name__)


def tlast_ends_one_transfer(last: np.ndarray) -> bool:
    """The TLAST flags of one transfer's output beats: set on the last beat and nowhere else."""
    return bool(last.size > 0 and last[-1] == 1 and last[:-1].sum() == 0)


QKERAS_RUNG = "1 QKeras float32 predict"


def qkeras_rung(keras_model, x_q: np.ndarray, reference: np.ndarray) -> tuple[dict, np.ndarray]:
    """Rung 1 and its outputs: the QKeras model's own float32 ``predict`` on the quantized inputs vs
    the float64 reference, marked ``gate: False`` (see the module docstring), differing samples counted."""
    outputs = np.asarray(keras_model.predict(np.asarray(x_q, np.float32), batch_size=16384, verbose=0), np.float64)
    row = compare(QKERAS_RUNG, reference, outputs)
    if "error" not in row:
        row["differing_samples"] = int((outputs != reference).any(axis=1).sum())
    row["gate"] = False
    return row, outputs


def gate_failures(rungs: list[dict]) -> list[dict]:
    """The rungs that must be exact and are not (an informational rung never fails the ladder)."""
    return [r for r in rungs if r.get("gate", True) and not r["success"]]


def report_line(row: dict) -> str:
    if not row.get("gate", True):
        head = f"INFO {row['rung']} vs the float64 reference"
        if "error" in row:
            return f"{head}: {row['error']} (informational, not a gate)"
        return (f"{head}: {row['differing_samples']} of {row['n_samples']} samples differ "
                f"({1 - row['exact_samples']:.2%}), max |diff| {row['max_abs_diff']:.3g}, argmax agreement "
                f"{row['argmax_agreement']:.2%} (informational, not a gate: float32 rounds sums wider than 24 bits)")
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
    summary = {"success": not gate_failures(rungs), "rungs": rungs, **extra}
    (directory / "verify.json").write_text(json.dumps(summary, indent=2) + "\n")
    for row in rungs:
        (log.error if gate_failures([row]) else log.info)(report_line(row))
    return summary
