"""``psqs sweep`` end to end on real Dask clusters: the smoke study killed mid-run and resumed,
a separately started ``dask scheduler`` + ``dask worker``, and a unit run from an emitted batch
script. Each run trains real models and converts them; the checks compare what the command says
with what is on disk, and what was done before an interruption with what is there after."""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from psqs.deploy.sweep.layout import SweepDir

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "examples" / "sweeps" / "smoke.yaml"
PSQS = [sys.executable, "-m", "psqs.deploy.cli"]
TINY = """\
name: tiny
bits: [6]
methods: [qat]
seeds: [0]
widths: [8]
training: {max_train: 1500, epochs: 2, patience: 2, test_vectors: 300}
stages:
  convert: {checkpoints: last}
"""


def env(data: Path) -> dict:
    return {**os.environ, "PSQS_DATA": str(data), "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def data(synthetic_npz) -> Path:
    return synthetic_npz


def done_manifests(sweep: Path) -> dict[str, str]:
    """sha256 of every finished artifact's manifest, by relative path (read straight off the disk)."""
    return {str(p.parent.relative_to(sweep)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((sweep / "artifacts").glob("*/*/manifest.json"))}


def status(sweep: Path, data: Path) -> dict:
    out = subprocess.run([*PSQS, "sweep", "status", str(sweep), "--json"], env=env(data), capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def test_smoke_sweep_killed_mid_run_resumes_to_the_same_results(tmp_path, data):
    """SIGINT while units run: the command ends, what was done stays byte for byte, the rerun
    runs only what was not done and the sweep completes; then the report is written from it."""
    sweep = tmp_path / "smoke"
    command = [*PSQS, "sweep", str(SMOKE), "--out", str(sweep), "--workers", "2", "--no-dashboard", "-q"]
    proc = subprocess.Popen(command, env=env(data), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 900
    try:
        while len(done_manifests(sweep)) < 5:           # a few checkpoints written, more units running
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "no checkpoint within 15 min"
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, output
    before = done_manifests(sweep)
    units = SweepDir(sweep).units()
    done_before = sum(SweepDir(sweep).done(u) for u in units)
    interrupted = status(sweep, data)
    assert interrupted["totals"]["done"] == done_before and interrupted["totals"]["running"] == 0
    assert 0 < done_before < len(units)
    # a unit killed mid-write leaves only hidden scratch beside its outputs, never a partial artifact
    outputs = {out: u for u in units for out in u.outputs}
    for scratch in sweep.glob("artifacts/*/.*"):
        owner = outputs[f"artifacts/{scratch.parent.name}/{scratch.name.split('.')[1]}"]
        assert not SweepDir(sweep).done(owner)

    rerun = subprocess.run(command, env=env(data), capture_output=True, text=True, timeout=1500)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{len(units) - done_before} run, {done_before} already done, 0 failed now" in rerun.stdout
    after = done_manifests(sweep)
    assert {k: after[k] for k in before} == before          # nothing done before was redone
    assert not list(sweep.glob("artifacts/*/.*")), "the rerun left the killed units' scratch behind"
    final = status(sweep, data)
    everything = SweepDir(sweep).units()           # the plan's units and the search's trials
    assert len(everything) == len(units) + 4
    assert final["totals"] == {"done": len(everything), "running": 0, "failed": 0, "todo": 0}
    assert final["search"]["complete"] == 4
    # the search's trials: trained within the budget, their BOPs known before training
    from psqs.deploy.sweep.search import dense_bops
    from psqs.qap.config import TrainConfig

    trials = [u for u in SweepDir(sweep).units() if u.kind == "trial"]
    assert len(trials) == 4 and all(SweepDir(sweep).done(u) for u in trials)
    for trial in trials:
        trained = json.loads((sweep / trial.outputs[0] / "metrics.json").read_text())["bops"]["total"]
        assert trained == dense_bops(TrainConfig.from_dict(trial.params["config"])) <= 30000

    again = subprocess.run(command, env=env(data), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and f"0 run, {len(units)} already done" in again.stdout
    assert done_manifests(sweep) == after
    assert status(sweep, data)["search"]["asked"] == final["search"]["asked"]   # the study resumed, asked nothing

    report = subprocess.run([*PSQS, "report", str(sweep)], env=env(data), capture_output=True, text=True,
                            timeout=600)
    assert report.returncode == 0, report.stdout + report.stderr
    for name in ("results.csv", "results.parquet", "index.html"):
        assert (sweep / "report" / name).is_file()


@pytest.fixture
def dask_cluster(tmp_path):
    """A Dask scheduler and one worker, each its own process, started as a user would."""
    scheduler_file = tmp_path / "scheduler.json"
    dask = str(Path(sys.executable).with_name("dask"))
    procs = [subprocess.Popen([dask, "scheduler", "--scheduler-file", str(scheduler_file), "--port", "0",
                               "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.is_file():
            assert time.monotonic() < deadline, "dask scheduler did not start"
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        procs.append(subprocess.Popen([dask, "worker", address, "--nworkers", "1", "--nthreads", "1",
                                       "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, start_new_session=True))
        yield address, procs
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def test_sweep_joins_a_separately_started_scheduler(tmp_path, data, dask_cluster):
    """``--scheduler ADDRESS``: the units run in the worker's process, not in the sweep's."""
    address, (scheduler, worker) = dask_cluster
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    sweep = tmp_path / "sweep"
    result = subprocess.run([*PSQS, "sweep", str(spec), "--out", str(sweep), "--scheduler", address, "-q"],
                            env=env(data), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"scheduler {address}: 1 workers" in result.stdout
    units = SweepDir(sweep).units()
    assert [u.kind for u in units] == ["chain", "convert"] and all(SweepDir(sweep).done(u) for u in units)
    for unit in units:                       # "unit KEY (...) on HOST, pid N": N is the worker's child
        first = SweepDir(sweep).log_file(unit.key).read_text().splitlines()[0]
        pid = int(first.rsplit("pid ", 1)[1])
        assert pid != os.getpid()
        parent = int(Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[1])
        assert parent == worker.pid           # the process the worker's nanny runs tasks in, still alive


def test_a_unit_runs_from_the_emitted_slurm_script(tmp_path, data):
    """``--emit slurm`` writes scripts that pass ``bash -n``; running one array element as Slurm
    would (SLURM_ARRAY_TASK_ID set) trains the chain it names, and only that."""
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    sweep = tmp_path / "sweep"
    result = subprocess.run([*PSQS, "sweep", str(spec), "--out", str(sweep), "--emit", "slurm", "--cores", "2"],
                            env=env(data), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    scripts = sorted((sweep / "jobs" / "slurm").glob("*.sh"))
    for script in scripts:
        subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
    chain_script = next(s for s in scripts if "chain" in s.name)
    run = subprocess.run(["bash", str(chain_script)], env={**env(data), "SLURM_ARRAY_TASK_ID": "1"},
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    state = status(sweep, data)
    assert state["kinds"]["chain"]["done"] == 1 and state["kinds"]["convert"]["todo"] == 1
    convert_script = next(s for s in scripts if "convert" in s.name)
    run = subprocess.run(["bash", str(convert_script)], env={**env(data), "SLURM_ARRAY_TASK_ID": "1"},
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert status(sweep, data)["totals"]["done"] == 2


TWO_SEEDS = TINY.replace("seeds: [0]", "seeds: [0, 1]")


def test_a_failed_point_is_recorded_the_sweep_goes_on_and_retry_reruns_only_it(tmp_path, data):
    """A tampered checkpoint makes its conversion fail: the error and log are recorded, the other
    seed's conversion still runs, a plain rerun leaves the failure alone, ``--retry-failed`` runs
    only it once the checkpoint is whole again."""
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TWO_SEEDS)
    sweep = tmp_path / "sweep"
    command = [*PSQS, "sweep", str(spec), "--out", str(sweep), "--workers", "2", "--no-dashboard", "-q"]
    subprocess.run([*command, "--emit", "slurm"], env=env(data), check=True, capture_output=True, timeout=300)
    sd = SweepDir(sweep)
    chains = [u for u in sd.units() if u.kind == "chain"]
    for chain in chains:                                  # the two chains, one at a time
        subprocess.run([*PSQS, "sweep", "unit", str(sweep), chain.key], env=env(data), check=True,
                       capture_output=True, timeout=600)
    model_file = sweep / chains[0].outputs[0] / "model.h5"
    original = model_file.read_bytes()
    model_file.write_bytes(original + b"\0")

    first = subprocess.run(command, env=env(data), capture_output=True, text=True, timeout=600)
    assert first.returncode == 1, first.stdout + first.stderr
    failed = status(sweep, data)["failed"]
    assert len(failed) == 1 and "model.h5" in failed[0]["error"] and "sha256" in failed[0]["error"]
    assert (sweep / failed[0]["log"]).read_text().count("Traceback") == 1
    assert status(sweep, data)["totals"] == {"done": 3, "running": 0, "failed": 1, "todo": 0}

    plain = subprocess.run(command, env=env(data), capture_output=True, text=True, timeout=600)
    assert plain.returncode == 1 and "0 run, 3 already done, 0 failed now, 1 failed before" in plain.stdout
    model_file.write_bytes(original)
    retried = subprocess.run([*command, "--retry-failed"], env=env(data), capture_output=True, text=True, timeout=600)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "1 run, 3 already done, 0 failed now" in retried.stdout
    assert status(sweep, data)["totals"]["done"] == 4


def test_a_killed_worker_loses_only_its_unit(tmp_path, data):
    """SIGKILL the worker process running a chain: Dask's nanny restarts the worker, the unit runs
    again from the start (its half-written scratch removed) and the sweep completes."""
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TWO_SEEDS)
    sweep = tmp_path / "sweep"
    proc = subprocess.Popen([*PSQS, "sweep", str(spec), "--out", str(sweep), "--workers", "2", "--no-dashboard",
                             "-q"], env=env(data), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        killed = None
        while killed is None:
            assert proc.poll() is None and time.monotonic() < deadline, "no chain started"
            for marker in (sweep / "state").glob("*.running") if (sweep / "state").is_dir() else ():
                try:
                    pid = json.loads(marker.read_text())["pid"]
                    logged = SweepDir(sweep).log_file(marker.name.split(".")[0]).read_text()
                except (json.JSONDecodeError, FileNotFoundError):
                    continue
                if f"pid {pid}" not in logged:
                    continue                  # kill it once its first run is on record, not before
                os.kill(pid, signal.SIGKILL)
                killed = (marker.name.split(".")[0], pid)
                break
            time.sleep(0.2)
        output, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output
    key, pid = killed
    log = SweepDir(sweep).log_file(key).read_text()
    pids = [int(m) for m in re.findall(r"units: unit \S+ .* pid (\d+)$", log, re.M)]
    assert pids[0] == pid and len(pids) == 2 and pids[1] != pid      # ran twice: killed, then on a new process
    assert status(sweep, data)["totals"] == {"done": 4, "running": 0, "failed": 0, "todo": 0}
    assert not list(sweep.glob("artifacts/*/.*"))
