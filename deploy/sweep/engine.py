"""Running a plan on a Dask cluster: submit every unit not done, follow them, record the outcome.

Dask orders the work: a unit is submitted with the futures of the units it reads as arguments,
so a checkpoint's later stages start as soon as its chain has written it, on whatever worker is
free. psqs adds only what Dask does not know: which units are already done (skipped, so a rerun
resumes), which failed before (left alone unless ``--retry-failed``), and lines a person can
follow. Interrupting the sweep loses at most the units that were running: every artifact is
renamed into place only when whole.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field

from .layout import SweepDir, Unit

log = logging.getLogger(__name__)

POLL_S = 1.0          # how often the progress lines look at what the workers are running


@dataclass
class Outcome:
    """What one run of the engine did."""

    done: list[dict] = field(default_factory=list)       # results of units run to completion now
    skipped: int = 0                                     # already done before this run
    failed: list[dict] = field(default_factory=list)     # failed or blocked now
    left_failed: list[Unit] = field(default_factory=list)  # failed earlier, not retried
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.left_failed


def pending(sweep: SweepDir, units: list[Unit], retry_failed: bool) -> tuple[list[Unit], list[Unit], int]:
    """(units to run, units failed earlier that stay failed, number already done).

    Units reading a unit that stays failed are not run either (they would only be blocked).
    """
    to_run, left_failed, done, dropped = [], [], 0, set()
    for unit in units:
        state = sweep.state(unit)
        if state == "done":
            done += 1
        elif state == "failed" and not retry_failed:
            left_failed.append(unit)
            dropped.add(unit.key)
        elif any(d in dropped for d in unit.deps):
            dropped.add(unit.key)
        else:
            to_run.append(unit)
    return to_run, left_failed, done


def run(sweep: SweepDir, units: list[Unit], client, retry_failed: bool = False, quiet: bool = False) -> Outcome:
    """Run every pending unit of ``units`` (in plan order: inputs first) on ``client``'s cluster."""
    from distributed import wait
    from tqdm.auto import tqdm

    from .units import execute

    t0 = time.perf_counter()
    to_run, left_failed, n_done = pending(sweep, units, retry_failed)
    outcome = Outcome(skipped=n_done, left_failed=left_failed)
    run_id = uuid.uuid4().hex[:8]          # Dask keys of this run: a shared scheduler may hold older ones
    futures, unit_of = {}, {}
    for unit in to_run:
        inputs = [futures[d] for d in unit.deps if d in futures]
        future = client.submit(execute, str(sweep.path), unit.to_dict(), *inputs,
                               key=f"psqs-{unit.kind}-{unit.key}-{run_id}")
        futures[unit.key] = future
        unit_of[future.key] = unit

    bar = tqdm(total=len(units), initial=n_done + len(left_failed), desc="sweep", unit="unit", disable=quiet,
               dynamic_ncols=True)
    say = (lambda line: None) if quiet else bar.write
    started: dict[str, float] = {}
    remaining = set(futures.values())
    try:
        while remaining:
            try:
                finished, remaining = wait(remaining, timeout=POLL_S, return_when="FIRST_COMPLETED")
            except TimeoutError:
                finished = set()
            for keys in client.processing().values():   # assigned to a worker (maybe queued there) ...
                for key in keys:
                    unit = unit_of.get(key)
                    if unit and key not in started and sweep.running_file(unit.key).is_file():  # ... and started
                        started[key] = time.perf_counter()
                        say(f"  start   {unit.describe()}")
            for future in finished:
                unit = unit_of[future.key]
                result = _result(sweep, unit, future)
                (outcome.done if result["status"] in ("done", "skipped") else outcome.failed).append(result)
                if result["status"] in ("done", "skipped"):
                    say(f"  done    {unit.describe()}  ({result['seconds']:.1f} s)")
                else:
                    say(f"  {result['status']:<7} {unit.describe()}: {result.get('error', '')}")
                bar.update(1)
            running = [unit_of[k].describe() for k in started if futures[unit_of[k].key] in remaining]
            bar.set_postfix_str(f"{len(running)} running, {len(outcome.failed)} failed", refresh=False)
    finally:
        bar.close()
        for future in remaining:
            future.cancel()
    outcome.seconds = time.perf_counter() - t0
    return outcome


def _result(sweep: SweepDir, unit: Unit, future) -> dict:
    """The unit's own result, or a failure recorded for it when its task died with its worker."""
    try:
        return future.result(timeout=60)
    except Exception as exc:       # KilledWorker, a cancelled or lost task: the unit did not record it
        line = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no message'}"
        error = {"error": line, "type": type(exc).__name__, "unit": unit.describe(), "finished": time.time()}
        sweep.state_dir.mkdir(parents=True, exist_ok=True)
        sweep.mark_finished(unit, error)
        return {"key": unit.key, "unit": unit.describe(), "status": "failed", "error": line, "seconds": 0.0}
