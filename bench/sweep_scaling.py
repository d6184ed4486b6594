"""Benchmark: the smoke sweep on 1, 2 and 4 Dask workers vs a plain serial loop, and the full study projected.

Part 1, scaling (measured, one run). The units of ``examples/sweeps/smoke.yaml`` are planned by the
sweep's own planner *without* its ``search`` block (the Bayesian-optimization search is ask/tell:
its trials depend on earlier results, so it is no fixed list of units to time). Then the same units
run once per configuration, each in a fresh sweep directory and with a fresh ``$PSQS_CACHE`` (the
RTL stage caches Verilator and yosys builds there: a warm cache would favour the later runs):

- ``serial``: one fresh Python process (this file, re-invoked) calls
  ``psqs.deploy.sweep.units.execute`` on each unit in plan order, with the TensorFlow threads
  one Dask worker gets on this machine (``clusters.size_workers(..., 1)``): the like-for-like
  baseline of ``dask-1``;
- ``dask-N``: a local cluster of N workers sized and set up as ``psqs sweep --workers N`` does
  (``clusters.connect``), running ``engine.run``; wall time includes starting and closing it.

It prints wall time, speed-up over serial and the Dask overhead at one worker,
``(T_dask1 - T_serial) / T_serial`` (target <= 10 %), checks that every unit ended done in every
configuration, and that each model artifact's test accuracy is the same in all of them.

Part 2, projection of ``examples/sweeps/paper.yaml`` (``--calibrate``, on by default). One unit of
each kind is *measured* at paper size: a 6-bit dense (qat) chain of the paper network with the
paper's training options for one short round of ``--calibrate-epochs`` epochs on
``--calibrate-train`` jets (-> seconds per epoch per training jet), and its checkpoint's convert,
RTL (the paper's cmvm solver), build and bench units; all with the TensorFlow threads of one
worker of a machine full of workers (``size_workers``; one on 2 cores). The planner counts the study's units;
chain times are an *estimate*: rounds (with batch normalization, one more per checkpoint) x epochs
x training jets x the measured rate, plus the chain's measured time besides training per
checkpoint; the 32-bit chains are taken at the 6-bit rate, the stage units at the dense
checkpoint's times (pruned ones are smaller: upper bounds); for every round running its
250 epochs (upper bound) and for early stopping after ``--assume-epochs`` (early stopping makes
the real count unknown in advance). CPU-hours and wall hours on N workers assume perfect packing,
bounded below by the longest chain and its stages; the search runs after the units (``psqs
sweep`` does so), ``parallel`` trials at a time.

    python bench/sweep_scaling.py [--spec examples/sweeps/smoke.yaml] [--workers 1,2,4]
        [--out runs/bench-sweep-scaling] [--no-calibrate] [--calibrate-epochs 3]
        [--calibrate-train 20000] [--paper examples/sweeps/paper.yaml] [--assume-epochs 50]
        [--projection-workers 2,16,64,256] [--calibration FILE] [--timeout 7200] [--json FILE]

``--calibration FILE`` takes the calibration of an earlier ``--json`` instead of measuring again
(its figures stay "measured", in that run).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import yaml
from psqs.common.cli_types import integer, integer_list, real
from psqs.common.errors import PsqsError, RunFailed
from psqs.deploy.sweep import plan
from psqs.deploy.sweep.clusters import size_workers, this_machine, worker_env
from psqs.deploy.sweep.layout import SweepDir, Unit
from psqs.deploy.sweep.spec import Spec, SpecError
from psqs.host import cli_common

ROOT = Path(__file__).resolve().parent.parent
METHODS_SHARED = "no chain of its own: the planner found each of its chains under another method (same key)"
MARKER = ".bench-sweep-scaling"       # a directory this bench made, and may therefore replace


# -- planning ----------------------------------------------------------------------------------
def read_spec(path: Path) -> dict:
    """The spec file as a mapping, validated as ``psqs sweep`` validates it."""
    try:
        d = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the sweep spec ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    Spec.from_dict(d, str(path))
    return d


def without_search(d: dict) -> dict:
    """The spec minus its ``search`` block: the search is ask/tell, not a fixed list of units."""
    return {k: v for k, v in d.items() if k != "search"}


def fresh_dir(path: Path) -> Path:
    """An empty directory at ``path``, replacing only one this bench made before."""
    if path.exists():
        if not (path / MARKER).is_file() and any(path.iterdir()):
            raise PsqsError(f"--out {path}: exists and was not made by this bench (no {MARKER}); "
                            f"remove it or choose another --out")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).write_text("made by bench/sweep_scaling.py; replaced on its next run\n")
    return path


class Planned:
    """``d`` planned once by the sweep's planner: every configuration runs these very units."""

    def __init__(self, d: dict, where: str):
        self.d, self.where = d, where
        self.spec = Spec.from_dict(d, where)
        self.data, self.sha = plan.data_identity(self.spec)
        self.units = plan.build(self.spec, self.data, self.sha)

    def write(self, sweep_path: Path) -> SweepDir:
        """The plan's ``sweep.json`` in a fresh sweep directory."""
        sweep = SweepDir(sweep_path)
        plan.write(sweep, self.spec, f"# {self.where}, as planned by bench/sweep_scaling.py\n"
                   + yaml.safe_dump(self.d, sort_keys=False), self.units, self.data, self.sha)
        return sweep


def plan_sweep(d: dict, where: str, sweep_path: Path) -> tuple[SweepDir, list[Unit], Spec]:
    """Plan ``d`` with the sweep's planner and write ``sweep.json`` into ``sweep_path``."""
    planned = Planned(d, where)
    return planned.write(sweep_path), planned.units, planned.spec


def count(units: list[Unit]) -> dict:
    return dict(Counter(u.kind for u in units))


# -- running -----------------------------------------------------------------------------------
@contextmanager
def deadline(seconds: float, what: str):
    """Raise RunFailed in this (main) thread when ``what`` takes longer than ``seconds``."""
    def expired(signum, frame):
        raise RunFailed(f"{what}: not finished within --timeout {seconds:g} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextmanager
def environment(**values: str):
    """``os.environ`` with ``values`` set while the block runs: a local cluster's Nanny starts its
    worker processes (spawn) with this process's environment, so they see it too."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def serial_child(sweep_path: str, result_path: str) -> None:
    """The serial baseline (hidden ``--serial-child``): a plain loop over the plan's units."""
    from psqs.deploy.sweep.units import execute

    t0 = time.perf_counter()
    results = [execute(sweep_path, unit.to_dict()) for unit in SweepDir(sweep_path).units()]
    Path(result_path).write_text(json.dumps({"loop_s": time.perf_counter() - t0, "results": results}, indent=2))


def run_serial(sweep: SweepDir, cache: Path, tf_threads: int, timeout: float) -> dict:
    """Run every unit of ``sweep`` in order in one fresh process; wall time from its start to its exit."""
    result_file = sweep.path.parent / "serial-results.json"
    log_file = sweep.path.parent / "serial.log"
    env = {**os.environ, **worker_env(tf_threads), "PSQS_CACHE": str(cache)}
    t0 = time.perf_counter()
    with log_file.open("w") as log:
        try:
            proc = subprocess.run([sys.executable, __file__, "--serial-child", str(sweep.path), str(result_file)],
                                  env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise RunFailed(f"serial run of {sweep.path}: not finished within --timeout {timeout:g} s "
                            f"(its output: {log_file})") from None
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RunFailed(f"serial run of {sweep.path} exited with status {proc.returncode} (its output: {log_file})")
    child = json.loads(result_file.read_text())
    return {"wall_s": wall, "loop_s": child["loop_s"], "results": child["results"], "tf_threads": tf_threads}


def run_dask(sweep: SweepDir, units: list[Unit], cache: Path, workers: int, timeout: float) -> dict:
    """``engine.run`` on a fresh local cluster of ``workers``; wall time from its start to its close."""
    from psqs.deploy.sweep import engine
    from psqs.deploy.sweep.clusters import ClusterOptions, connect

    t0 = time.perf_counter()
    with environment(PSQS_CACHE=str(cache)), deadline(timeout, f"dask-{workers} run of {sweep.path}"):
        with connect(ClusterOptions(workers=workers, dashboard=False)) as (client, where):
            started = time.perf_counter() - t0
            outcome = engine.run(sweep, units, client, quiet=True)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "cluster_start_s": started, "engine_s": outcome.seconds, "cluster": where,
            "results": outcome.done + outcome.failed, "tf_threads": size_workers(*this_machine(), workers).tf_threads}


def check_done(name: str, sweep: SweepDir, units: list[Unit], results: list[dict]) -> None:
    """Every unit done, from the directory itself; else stop naming the first failures."""
    states = {u.key: sweep.state(u) for u in units}
    bad = [u for u in units if states[u.key] != "done"]
    if bad:
        errors = {r["key"]: r.get("error", "") for r in results}
        lines = "; ".join(f"{u.describe()}: {states[u.key]} {errors.get(u.key, '')}".strip() for u in bad[:5])
        raise RunFailed(f"{name}: {len(bad)} of {len(units)} units not done ({lines}); see {sweep.logs_dir}")


def model_accuracies(sweep: SweepDir, units: list[Unit]) -> dict:
    """Test accuracy of every model artifact (chain checkpoints), by artifact path."""
    return {out: json.loads((sweep.path / out / "metrics.json").read_text())["test"]["accuracy"]
            for u in units if u.kind == "chain" for out in u.outputs}


def mismatches(accuracies: dict) -> list[dict]:
    """Artifacts whose test accuracy differs between configurations."""
    names = list(accuracies)
    out = []
    for artifact in accuracies[names[0]]:
        values = {name: accuracies[name][artifact] for name in names}
        if len(set(values.values())) > 1:
            out.append({"artifact": artifact, "accuracy": values})
    return out


def scaling(spec_path: Path, workers: list[int], out: Path, timeout: float) -> dict:
    d = without_search(read_spec(spec_path))
    cpus, memory = this_machine()
    serial_threads = size_workers(cpus, memory, 1).tf_threads
    configs = [("serial", None)] + [(f"dask-{n}", n) for n in workers]
    rows, accuracies = {}, {}
    planned = Planned(d, f"{spec_path} (without search)")
    units = units_of = planned.units
    for name, n in configs:
        base = fresh_dir(out / name)
        sweep = planned.write(base / "sweep")
        cache = base / "cache"
        print(f"running    {name}: {len(units)} units in {sweep.path} (PSQS_CACHE={cache})", flush=True)
        row = (run_serial(sweep, cache, serial_threads, timeout) if n is None
               else run_dask(sweep, units, cache, n, timeout))
        check_done(name, sweep, units, row["results"])
        row.update(workers=n or 1, unit_s={r["key"]: r["seconds"] for r in row["results"]})
        row["units_sum_s"] = sum(row["unit_s"].values())
        rows[name] = row
        accuracies[name] = model_accuracies(sweep, units)
        print(f"           {row['wall_s']:.1f} s wall", flush=True)
    serial = rows["serial"]["wall_s"]
    for row in rows.values():
        row["speedup"] = serial / row["wall_s"]
    overhead = (rows["dask-1"]["wall_s"] - serial) / serial if "dask-1" in rows else None
    return {"spec": str(spec_path), "search": "left out: ask/tell, not a fixed unit list", "units": count(units_of),
            "unit_labels": {u.key: u.describe() for u in units_of}, "machine": {"cpus": cpus, "memory": memory},
            "configs": rows, "dask_overhead_1_worker": overhead, "models_compared": len(accuracies["serial"]),
            "accuracy_mismatches": mismatches(accuracies)}


def scaling_table(s: dict) -> str:
    m = s["machine"]
    lines = [f"units {s['units']} of {s['spec']} (search {s['search']}); "
             f"machine: {m['cpus']} CPUs, {m['memory'] / 2**30:.1f} GiB (shared with other work)",
             f"{'config':<8} {'workers':>7} {'TF thr':>6} {'wall s':>8} {'start s':>7} {'speed-up':>8} "
             f"{'unit s sum':>10}  source"]
    for name, r in s["configs"].items():
        over = "  (oversubscribed: workers > CPUs)" if r["workers"] > m["cpus"] else ""
        start = f"{r['cluster_start_s']:>7.1f}" if "cluster_start_s" in r else f"{'-':>7}"
        lines.append(f"{name:<8} {r['workers']:>7} {r['tf_threads']:>6} {r['wall_s']:>8.1f} {start} {r['speedup']:>7.2f}x "
                     f"{r['units_sum_s']:>10.1f}  measured{over}")
    lines.append("wall: from starting the process / cluster to its exit / close; start: the cluster's start; "
                 "unit s sum: the units' own times added up")
    if s["dask_overhead_1_worker"] is not None:
        o = s["dask_overhead_1_worker"]
        lines.append(f"Dask overhead at 1 worker: {o:+.1%} of serial wall time (target <= 10 %: "
                     f"{'met' if o <= 0.10 else 'MISSED'}), measured")
    if s["accuracy_mismatches"]:
        lines.append(f"MISMATCH: {len(s['accuracy_mismatches'])} model artifact(s) differ in test accuracy "
                     f"between configurations:")
        lines += [f"  {x['artifact']}: {x['accuracy']}" for x in s["accuracy_mismatches"]]
    else:
        lines.append(f"test accuracy of each of the {s['models_compared']} model artifacts identical in all "
                     f"{len(s['configs'])} configurations")
    return "\n".join(lines)


# -- calibration at paper size -----------------------------------------------------------------
def calibration_spec(paper: dict, epochs: int, max_train: int) -> dict:
    """One 6-bit dense chain of the paper's network and training options, short, and its stages."""
    return {**without_search(paper), "name": f"{paper.get('name', 'paper')}-calibration", "bits": [6],
            "methods": ["qat"], "seeds": [paper.get("seeds", [0])[0]], "randomized_labels": [0.0],
            "training": {**paper.get("training", {}), "epochs": epochs, "max_train": max_train}}


def calibrate(paper_path: Path, out: Path, epochs: int, max_train: int, timeout: float) -> dict:
    """Measure one unit of each kind at paper size, as one worker of a full machine runs it."""
    base = fresh_dir(out / "calibration")
    sweep, units, spec = plan_sweep(calibration_spec(read_spec(paper_path), epochs, max_train),
                                    f"{paper_path} (calibration)", base / "sweep")
    threads = size_workers(*this_machine()).tf_threads
    print(f"calibrate  {len(units)} units {count(units)} at paper size in {sweep.path}, "
          f"{threads} TensorFlow thread(s)", flush=True)
    measured = run_serial(sweep, base / "cache", threads, timeout)
    check_done("calibration", sweep, units, measured["results"])
    by_key = {r["key"]: r["seconds"] for r in measured["results"]}
    seconds = {u.kind: by_key[u.key] for u in units}
    chain = next(u for u in units if u.kind == "chain")
    metrics = json.loads((sweep.path / chain.outputs[0] / "metrics.json").read_text())
    rounds = metrics["training"]["rounds"]
    train_jets = metrics["split"]["train"]
    round_s, round_epochs = sum(r["seconds"] for r in rounds), sum(r["epochs"] for r in rounds)
    rtl = json.loads((sweep.path / next(u for u in units if u.kind == "rtl").outputs[0] / "manifest.json").read_text())
    return {"units": {u.kind: u.describe() for u in units}, "unit_s": seconds, "tf_threads": threads,
            "train_jets": train_jets, "rounds": rounds,
            "s_per_epoch_per_train_jet": round_s / round_epochs / train_jets,
            "chain_other_s": seconds["chain"] - round_s,
            "rtl_solver": spec.stages["rtl"].get("solver"), "rtl_cached": rtl.get("emulation", {}).get("cached"),
            "test_accuracy": metrics["test"]["accuracy"], "sweep": str(sweep.path)}


def earlier_calibration(path: Path) -> dict:
    try:
        return json.loads(path.read_text())["calibration"]
    except (OSError, ValueError, KeyError, TypeError):
        raise PsqsError(f"--calibration {path}: not a --json file of this bench with a calibration") from None


# -- projection --------------------------------------------------------------------------------
def training_rounds(config: dict, steps: list) -> list[str]:
    """The training rounds of one chain, as ``psqs.qap.train.chain`` runs them with every step
    finished: IMP a dense round then one per step, ``gradual`` one per step, dense one; with
    batch normalization one more (``bn-folded``) round per finished checkpoint."""
    pruning = config["pruning"]
    rounds = (["fit"] + ["fit"] * len(steps) if pruning in ("imp-ft", "imp-lt")
              else ["gradual"] * len(steps) if pruning == "gradual" else ["fit"])
    return rounds + ["bn-folded"] * (len(steps) if config["bn"] else 0)


def round_epochs(kind: str, config: dict, assumed: int | None) -> int:
    """Epochs of one round: all of them (``assumed`` None), else early stopping after ``assumed``;
    a gradual round cannot stop before its pruning schedule ends (half its epochs) + patience."""
    if assumed is None:
        return config["epochs"]
    floor = config["epochs"] // 2 + config["patience"] if kind == "gradual" else 0
    return min(config["epochs"], max(assumed, floor))


def full_train_jets(spec: Spec) -> int:
    """Training jets of the study's split (its ``max_train``, else all of the training split)."""
    from psqs.qap import data as data_lib
    from psqs.qap.split import split

    data = data_lib.load(plan.data_identity(spec)[0])
    return split(data, spec.seeds[0], max_train=spec.training.get("max_train")).sizes()["train"]


def projection(paper_path: Path, cal: dict, assumed: int, workers: list[int]) -> dict:
    from psqs.deploy.sweep import search
    from psqs.qap.config import TrainConfig

    d = read_spec(paper_path)
    spec = Spec.from_dict(without_search(d), str(paper_path))
    data, sha = plan.data_identity(spec)
    units = plan.build(spec, data, sha)
    jets = full_train_jets(spec)
    rate = cal["s_per_epoch_per_train_jet"]
    stage_s = {k: cal["unit_s"][k] for k in ("convert", "rtl", "build", "bench")}
    scenarios = {"all epochs (upper bound)": None, f"early stop at {assumed} epochs": assumed}
    full = Spec.from_dict(d, str(paper_path))
    s = search.settings(full) if full.search else None
    out = {"spec": str(paper_path), "units": count(units), "train_jets": jets, "scenarios": {},
           "search": None if s is None else {"trials": s["trials"], "epochs": s["epochs"], "parallel": s["parallel"]}}
    by_method: dict = {}
    for u in units:
        if u.kind == "chain":
            by_method.setdefault(u.labels["method"], []).append(u)
    for label, epochs in scenarios.items():
        chain_s, methods = {}, {}
        for method, chains in by_method.items():
            config, steps = chains[0].params["config"], chains[0].params["steps"]
            rounds = training_rounds(config, steps)
            n_epochs = sum(round_epochs(k, config, epochs) for k in rounds)
            seconds = n_epochs * jets * rate + len(steps) * cal["chain_other_s"]
            methods[method] = {"chains": len(chains), "rounds": len(rounds), "epochs": n_epochs, "hours": seconds / 3600}
            for c in chains:
                chain_s[c.key] = seconds
        cpu_units = sum(chain_s.values()) + sum(stage_s[u.kind] for u in units if u.kind != "chain")
        # stage units start when their whole chain is written: the longest path is a chain, then its stages
        tail = stage_s["convert"] + max(stage_s["rtl"], stage_s["build"] + stage_s["bench"])
        critical = max(chain_s.values()) + tail
        row = {"methods": methods, "cpu_hours_units": cpu_units / 3600, "critical_path_hours": critical / 3600}
        trial_s = 0.0
        if s is not None:
            trial_config = TrainConfig(**{"patience": 10, **spec.training, "epochs": s["epochs"]}).to_dict()
            trial_rounds = training_rounds(trial_config, [0.0])
            trial_epochs = sum(round_epochs(k, trial_config, epochs) for k in trial_rounds)
            trial_s = trial_epochs * jets * rate + cal["chain_other_s"]
            row["trial"] = {"rounds": len(trial_rounds), "epochs": trial_epochs, "hours": trial_s / 3600}
        row["cpu_hours"] = (cpu_units + (s["trials"] * trial_s if s else 0)) / 3600
        row["wall_hours"] = {}
        for n in workers:
            search_wall = math.ceil(s["trials"] / min(n, s["parallel"] or n)) * trial_s if s else 0.0
            row["wall_hours"][n] = (max(cpu_units / n, critical) + search_wall) / 3600
        out["scenarios"][label] = row
    out["planned_with"] = {m: METHODS_SHARED for m in spec.methods if m not in by_method}
    return out


def projection_table(p: dict, cal: dict) -> str:
    u = p["units"]
    lines = [f"{p['spec']}: {sum(u.values())} units ({', '.join(f'{n} {k}' for k, n in u.items())})"
             + (f" + {p['search']['trials']} search trials of <= {p['search']['epochs']} epochs "
                f"(ask/tell, after the units)" if p["search"] else ""),
             f"{'figure':<46} {'value':>12}  source",
             f"{'training s per epoch per training jet':<46} {cal['s_per_epoch_per_train_jet']:>12.3e}  measured "
             f"(calibration: 6-bit 64-32-32 bn, {cal['train_jets']} jets, "
             f"{'+'.join(str(r['epochs']) for r in cal['rounds'])} epochs, {cal['tf_threads']} TF thread)",
             f"{'chain time besides training, per checkpoint':<46} {cal['chain_other_s']:>12.1f}  measured "
             f"(data, evaluation, writing)",
             f"{'training jets of the study':<46} {p['train_jets']:>12d}  configured data, full training split"]
    for kind in ("convert", "rtl", "build", "bench"):
        note = {"convert": "dense checkpoint (pruned ones: less)",
                "rtl": f"solver {cal['rtl_solver']}, cold cache, dense checkpoint",
                "build": "emulation overlay", "bench": "emulated board"}[kind]
        lines.append(f"{kind + ' unit s':<46} {cal['unit_s'][kind]:>12.1f}  measured ({note})")
    workers = list(next(iter(p["scenarios"].values()))["wall_hours"])
    lines.append(f"{'scenario':<30} {'method':<12} {'chains':>6} {'rounds':>6} {'epochs':>6} {'h/chain':>8}  source "
                 f"(32-bit chains at the 6-bit rate)")
    for label, row in p["scenarios"].items():
        for method, m in row["methods"].items():
            lines.append(f"{label:<30} {method:<12} {m['chains']:>6} {m['rounds']:>6} {m['epochs']:>6} "
                         f"{m['hours']:>8.2f}  estimate")
        if "trial" in row:
            t = row["trial"]
            lines.append(f"{label:<30} {'bo trial':<12} {p['search']['trials']:>6} {t['rounds']:>6} {t['epochs']:>6} "
                         f"{t['hours']:>8.2f}  estimate (at the 64-32-32 rate: trials within the BOPs budget are smaller)")
    lines += [f"{method}: {why}" for method, why in p["planned_with"].items()]
    lines.append(f"{'scenario':<30} {'CPU-h':>9} " + " ".join(f"{f'wall h @{n}':>11}" for n in workers)
                 + "  source")
    for label, row in p["scenarios"].items():
        lines.append(f"{label:<30} {row['cpu_hours']:>9.0f} " + " ".join(f"{row['wall_hours'][n]:>11.1f}" for n in workers)
                     + "  estimate (perfect packing, 1 core per worker)")
    lines.append("wall h = max(unit CPU-h / N, longest chain + its stages) + search trials, "
                 "parallel at a time, after the units")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "examples/sweeps/smoke.yaml")
    parser.add_argument("--workers", type=integer_list(1, "1,2,4"), default=(1, 2, 4), help="Dask worker counts (default 1,2,4)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-sweep-scaling"))
    parser.add_argument("--calibrate", action=argparse.BooleanOptionalAction, default=True,
                        help="measure paper-size unit times and project paper.yaml (default on)")
    parser.add_argument("--calibrate-epochs", type=integer(1), default=3)
    parser.add_argument("--calibrate-train", type=integer(5), default=20000, help="training jets of the calibration chain")
    parser.add_argument("--paper", type=Path, default=ROOT / "examples/sweeps/paper.yaml")
    parser.add_argument("--assume-epochs", type=integer(1), default=50, help="epochs per round if early stopping ends it")
    parser.add_argument("--projection-workers", type=integer_list(1, "2,16,64,256"), default=(2, 16, 64, 256))
    parser.add_argument("--calibration", type=Path, default=None,
                        help="reuse the calibration of an earlier --json file instead of measuring it")
    parser.add_argument("--timeout", type=real(0, low_open=True), default=7200.0, help="seconds per configuration (default 7200)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--serial-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serial_child:
        return serial_child(*args.serial_child)
    cli_common.quiet_native_logs()        # before any worker or child starts TensorFlow
    logging.getLogger("distributed").setLevel(logging.WARNING)
    try:
        earlier = earlier_calibration(args.calibration) if args.calibration else None   # checked before the runs
        out = args.out.resolve()          # $PSQS_CACHE under it is read from other working directories
        report = {"scaling": scaling(args.spec, args.workers, out, args.timeout)}
        print("\n" + scaling_table(report["scaling"]), flush=True)
        if args.calibrate:
            cal = earlier or calibrate(args.paper, out, args.calibrate_epochs, args.calibrate_train, args.timeout)
            report.update(calibration=cal, projection=projection(args.paper, cal, args.assume_epochs,
                                                                 args.projection_workers))
            print("\n" + projection_table(report["projection"], cal))
    except PsqsError as exc:          # bad input exits 2, a run that failed 1 (psqs's convention)
        print(f"sweep_scaling: error: {exc}", file=sys.stderr)
        raise SystemExit(1 if isinstance(exc, RunFailed) else 2) from None
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if report["scaling"]["accuracy_mismatches"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
