"""Running one unit of a sweep: what a Dask task, a batch job and ``psqs sweep unit`` all call.

A unit either finishes its artifacts (each written to a temp dir and renamed, so a killed unit
leaves nothing half-written) or records why not in ``state/<key>.failed.json`` with its log;
it never raises for a failure of its own, so one bad point does not stop the sweep.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import time
import traceback
from contextlib import ExitStack, contextmanager
from pathlib import Path

from psqs.common.artifact import staged_directory, write_manifest

from .layout import SweepDir, Unit

log = logging.getLogger(__name__)

BENCH_KIND = "psqs.sweep.bench"
BENCH_VERSION = 1


def _configure_tensorflow() -> None:
    """Size TensorFlow's thread pools from ``PSQS_TF_THREADS`` (set per worker by the cluster),
    before TensorFlow starts them; a process that already ran TensorFlow keeps its pools."""
    threads = os.environ.get("PSQS_TF_THREADS")
    if not threads:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass                                   # pools already running in this worker


def _chain(sweep: SweepDir, unit: Unit) -> None:
    from psqs.qap import stage
    from psqs.qap.config import TrainConfig

    _configure_tensorflow()
    stage.run_chain(TrainConfig.from_dict(unit.params["config"]), unit.params["steps"],
                    [sweep.path / o for o in unit.outputs], extra={"sweep_unit": unit.key})


def _trial(sweep: SweepDir, unit: Unit) -> None:
    from psqs.qap import stage
    from psqs.qap.config import TrainConfig

    _configure_tensorflow()
    stage.run(TrainConfig.from_dict(unit.params["config"]), sweep.path / unit.outputs[0])


def _convert(sweep: SweepDir, unit: Unit) -> None:
    from psqs.hls import stage as hls_stage

    _configure_tensorflow()
    options = dict(unit.params["options"])
    board = options.pop("board")
    hls_stage.run(sweep.path / unit.params["source"], sweep.path / unit.outputs[0],
                  hls_stage.options_for_board(board, **options))


def _rtl(sweep: SweepDir, unit: Unit) -> None:
    from psqs.hls.rtl import stage as rtl_stage

    _configure_tensorflow()
    rtl_stage.run(sweep.path / unit.params["source"], sweep.path / unit.outputs[0],
                  rtl_stage.RtlOptions(**unit.params["options"]))


def _build(sweep: SweepDir, unit: Unit) -> None:
    from psqs.overlays.build import build

    build(sweep.path / unit.params["source"], unit.params["board"], sweep.path / unit.outputs[0],
          emulation=not unit.params["vivado"])


def _bench(sweep: SweepDir, unit: Unit) -> None:
    """``psqs bench`` of the checkpoint's package on an emulation of its board, by the path its
    PYNQ image offers (as ``make demo`` runs it); the run report becomes the artifact."""
    from psqs.common.errors import RunFailed
    from psqs.deploy.demo import bench_on_emulator

    package = sweep.path / unit.params["source"]
    args = []
    for option, value in unit.params["options"].items():
        args += [f"--{option.replace('_', '-')}",
                 ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    with staged_directory(sweep.path / unit.outputs[0]) as tmp, sweep.log_file(unit.key).open("a") as out:
        status = bench_on_emulator(package, tmp, extra_args=args, output=out)
        if status != 0:
            raise RunFailed(f"psqs bench of {package} exited with status {status} (see its log)")
        write_manifest(tmp, BENCH_KIND, BENCH_VERSION, {
            "package": unit.params["source"], "run_report": "run_report.json", "options": unit.params["options"]})


RUNNERS = {"chain": _chain, "trial": _trial, "convert": _convert, "rtl": _rtl, "build": _build, "bench": _bench}


@contextmanager
def _logging_to(path: Path):
    """Everything psqs logs while the unit runs goes to its log file too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(min(old_level, logging.INFO) if old_level else logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


def execute(sweep_path: str, unit_dict: dict, *inputs: dict) -> dict:
    """Run one unit unless it is done; ``inputs`` are the results of the units it reads.

    Returns ``{"key", "status": done|skipped|failed|blocked, "seconds", "error"?}``; a unit whose
    input failed is ``blocked`` (recorded as failed, naming the input).
    """
    from psqs.deploy.cli import _quiet_libraries

    _quiet_libraries()          # a worker's stderr is the sweep's terminal
    sweep, unit = SweepDir(sweep_path), Unit.from_dict(unit_dict)
    result = {"key": unit.key, "unit": unit.describe(), "host": socket.gethostname(), "seconds": 0.0}
    if sweep.done(unit):
        return {**result, "status": "skipped"}
    missing = [d for d in inputs if d["status"] not in ("done", "skipped")]
    if missing or not all(sweep.done(u) for u in _input_units(sweep, unit, inputs)):
        why = f"its input {missing[0]['unit']} did not finish" if missing else "its input artifacts are missing"
        error = {"error": why, "type": "Blocked", "unit": unit.describe(), "finished": time.time()}
        sweep.state_dir.mkdir(parents=True, exist_ok=True)
        sweep.mark_finished(unit, error)
        return {**result, "status": "blocked", "error": why}
    if sweep.running(unit) is None:
        _remove_scratch(sweep, unit)
    sweep.mark_running(unit)
    t0 = time.perf_counter()
    error = None
    try:
        from .clusters import licence

        with _logging_to(sweep.log_file(unit.key)):
            log.info("unit %s (%s) on %s, pid %d", unit.key, unit.describe(), socket.gethostname(), os.getpid())
            with ExitStack() as held:
                for name in unit.licences:
                    held.enter_context(licence(name))
                RUNNERS[unit.kind](sweep, unit)
    except Exception as exc:      # a failed point is recorded and the sweep goes on (module docstring)
        line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        with sweep.log_file(unit.key).open("a") as f:
            traceback.print_exc(file=f)
        error = {"error": line, "type": type(exc).__name__, "unit": unit.describe(),
                 "log": str(sweep.log_file(unit.key).relative_to(sweep.path)), "finished": time.time(),
                 "host": socket.gethostname()}
    finally:
        sweep.mark_finished(unit, error)
    seconds = time.perf_counter() - t0
    if error:
        return {**result, "status": "failed", "error": error["error"], "seconds": seconds}
    return {**result, "status": "done", "seconds": seconds}


def _remove_scratch(sweep: SweepDir, unit: Unit) -> None:
    """Remove what a run of ``unit`` killed mid-write left: the temporary siblings of its outputs
    (``.<key>.<random>.tmp`` / ``.old``, see ``staged_directory``), which only this unit writes."""
    for out in unit.outputs:
        path = sweep.path / out
        for stale in path.parent.glob(f".{path.name}.*"):
            shutil.rmtree(stale, ignore_errors=True)


def _input_units(sweep: SweepDir, unit: Unit, inputs) -> list[Unit]:
    """The units ``unit`` reads, from the plan (a batch job has no results to pass in)."""
    if not unit.deps:
        return []
    by_key = {u.key: u for u in sweep.units()}
    return [by_key[d] for d in unit.deps if d in by_key]


def run_one(sweep_path: Path, key: str) -> int:
    """``psqs sweep unit DIR KEY``: exit status 0 done (or already done), 1 failed."""
    from .spec import SpecError

    sweep = SweepDir(sweep_path)
    units = {u.key: u for u in sweep.units()}
    if key not in units:
        raise SpecError(f"{sweep.plan_file}: no unit {key!r} in the plan")
    result = execute(str(sweep.path), units[key].to_dict())
    print(f"{result['status']:<8} {units[key].describe()}" + (f": {result['error']}" if "error" in result else ""),
          file=sys.stderr if result["status"] in ("failed", "blocked") else sys.stdout)
    return 0 if result["status"] in ("done", "skipped") else 1
