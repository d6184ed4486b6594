"""``psqs sweep status DIR``: done / running / failed / to do, from the sweep directory alone.

Nothing here talks to a scheduler: the directory is the record (:mod:`.layout`), so the status
is the same whether the sweep runs on a laptop, a Dask cluster or as batch jobs.
"""
from __future__ import annotations

import time
from collections import Counter

from .layout import KINDS, SweepDir

STATES = ("done", "running", "failed", "todo")


def collect(sweep: SweepDir) -> dict:
    """Counts per kind and state, and the running and failed units with their details."""
    per_kind: dict[str, Counter] = {}
    running, failed = [], []
    units = sweep.units()
    for unit in units:
        state = sweep.state(unit)
        per_kind.setdefault(unit.kind, Counter())[state] += 1
        if state == "running":
            marker = sweep.running(unit)
            running.append({"key": unit.key, "unit": unit.describe(), "host": marker.get("host"),
                            "pid": marker.get("pid"), "seconds": time.time() - marker.get("started", time.time())})
        elif state == "failed":
            failed.append({"key": unit.key, **sweep.failure(unit)})
    totals = Counter()
    for counts in per_kind.values():
        totals.update(counts)
    status = {"sweep": str(sweep.path), "units": len(units), "totals": {s: totals[s] for s in STATES},
              "kinds": {k: {s: per_kind[k][s] for s in STATES} for k in KINDS if k in per_kind},
              "running": running, "failed": failed}
    from .search import status as search_status

    trials = search_status(sweep)
    if trials is not None:
        status["search"] = trials
    return status


def render(status: dict) -> str:
    t = status["totals"]
    lines = [f"sweep      {status['sweep']}: {status['units']} units - {t['done']} done, {t['running']} running, "
             f"{t['failed']} failed, {t['todo']} to do"]
    for kind, counts in status["kinds"].items():
        lines.append(f"  {kind:<8} " + ", ".join(f"{counts[s]} {s.replace('todo', 'to do')}" for s in STATES
                                                 if counts[s]))
    for r in status["running"]:
        lines.append(f"running    {r['unit']} on {r['host']} (pid {r['pid']}) for {r['seconds']:.0f} s")
    for f in status["failed"]:
        where = f" (log {f['log']})" if f.get("log") else ""
        lines.append(f"failed     {f.get('unit', f['key'])}: {f.get('error')}{where}")
    if "search" in status:
        s = status["search"]
        lines.append(f"search     {s['complete']} of {s['trials']} trials complete"
                     + (f", best accuracy {s['best_accuracy']:.4f} at {s['best_bops']:.4g} BOPs" if s.get("best_accuracy")
                        is not None else ""))
    if t["failed"]:
        lines.append("rerun with --retry-failed to run the failed units again")
    return "\n".join(lines)
