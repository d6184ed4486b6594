"""The Bayesian-optimization baseline: hidden widths (and bits) for accuracy at a BOPs budget.

Ps and Qs compares QAP with a network whose *size* was optimized instead of pruned (Ax/BoTorch
there, 20 trials x 25 epochs). Here Optuna's TPE sampler proposes trials; each trial trains one
dense model as a task on the sweep's own cluster (a ``trial`` unit, an ordinary model artifact).
The objective is validation accuracy (the test split stays for the report); a trial's BOPs is
known before training (dense network, :func:`dense_bops`), so a proposal over the budget is told
infeasible without training. The study lives in ``search/journal.log`` (Optuna's journal
storage): a rerun loads it, completes trials whose model was written before the interruption,
fails the others, and asks only for what is missing.
"""
from __future__ import annotations

import json
import logging
import time

from psqs.common.fixed_point import FixedFormat
from psqs.qap import metrics as metrics_lib
from psqs.qap import model as model_lib
from psqs.qap.config import FLOAT_BITS, TrainConfig
from psqs.qap.reference import deployed_config

from .layout import SweepDir, Unit, _write_json
from .plan import _key_config, code_digest, digest
from .spec import Spec

log = logging.getLogger(__name__)

DEFAULTS = {"trials": 20, "epochs": 25, "layers": 3, "min_width": 4, "max_width": 64, "bits": None, "seed": 0,
            "parallel": None}
CONSTRAINT = "bops_over_budget"
MAX_PROPOSALS = 10      # per trial asked for: proposals over the budget cost nothing but are not endless


def settings(spec: Spec) -> dict:
    """The search block with its defaults (bits: the spec's smallest quantized width, else 32)."""
    s = {**DEFAULTS, **(spec.search or {})}
    if s["bits"] is None:
        quantized = [b for b in spec.bits if b != FLOAT_BITS]
        s["bits"] = [min(quantized)] if quantized else [FLOAT_BITS]
    return s


def dense_bops(config: TrainConfig) -> float:
    """BOPs of ``config``'s network unpruned, by the same rule and conventions as the model's metrics."""
    input_format = FixedFormat(width=config.input_width, integer=1, signed=True)
    rows = [{"n_in": r["n_in"], "n_out": r["n_out"], "b_w": config.bits, "pruned_fraction": 0.0,
             "b_a": r["input_format"]["width"] if r["input_format"] else FLOAT_BITS}
            for r in model_lib.layer_table(deployed_config(config), input_format)]
    return metrics_lib.bops(rows)["total"]


def _storage(sweep: SweepDir):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    sweep.search_dir.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(sweep.search_dir / "journal.log")))


def study_name(s: dict, data_sha: str) -> str:
    """One study per search setting: a changed search block (or data, or training code) starts a
    new study instead of mixing trials of another search space into this one."""
    return "psqs-bo-" + digest({"search": s, "data": data_sha, "code": code_digest("trial")})


def _study(sweep: SweepDir, s: dict, name: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=s["seed"], n_startup_trials=max(2, s["trials"] // 4),
                                         constraints_func=lambda t: (t.user_attrs.get(CONSTRAINT, 0.0),))
    return optuna.create_study(study_name=name, storage=_storage(sweep), direction="maximize",
                               sampler=sampler, load_if_exists=True)


def _trial_unit(spec: Spec, s: dict, trial, data: str | None, data_sha: str) -> Unit:
    widths = tuple(trial.suggest_int(f"width{i + 1}", s["min_width"], s["max_width"], log=True)
                   for i in range(s["layers"]))
    bits = trial.suggest_categorical("bits", s["bits"]) if len(s["bits"]) > 1 else s["bits"][0]
    training = {"patience": 10, **spec.training, "epochs": s["epochs"]}
    config = TrainConfig(bits=bits, widths=widths, seed=s["seed"], data=data, **training)
    key = digest({"kind": "trial", "config": _key_config(config), "data": data_sha, "code": code_digest("trial")})
    return Unit(key, "trial", {"config": config.to_dict(), "trial": trial.number},
                (SweepDir.artifact("model", key),),
                labels={"method": "bo", "bits": bits, "seed": s["seed"], "randomized_labels": 0.0, "trial": trial.number,
                        "widths": list(widths), "step": 0, "sparsity": 0.0, "stage": "model"})


def _value(sweep: SweepDir, unit: Unit) -> float:
    """The objective of a finished trial: the best validation accuracy of its training round."""
    metrics = json.loads((sweep.path / unit.outputs[0] / "metrics.json").read_text())
    return float(metrics["training"]["rounds"][-1]["val_accuracy"])


def _save_trials(sweep: SweepDir, name: str, trials: dict[int, Unit]) -> None:
    """``search/trials.json``: the study's name and its trained trials as units (see SweepDir.units)."""
    _write_json(sweep.trials_file, {"study": name, "units": [trials[n].to_dict() for n in sorted(trials)]})


def _load_trials(sweep: SweepDir, name: str) -> dict[int, Unit]:
    try:
        saved = json.loads(sweep.trials_file.read_text())
    except FileNotFoundError:
        return {}
    if saved.get("study") != name:
        return {}                 # another search's trials: their artifacts stay, they are not this study's
    return {u["params"]["trial"]: Unit.from_dict(u) for u in saved["units"]}


def run(sweep: SweepDir, spec: Spec, client, data: str | None, data_sha: str, parallel: int,
        say=print) -> dict:
    """Run the search until ``trials`` trials within the BOPs budget are complete, ``parallel`` at a
    time, on ``client``'s cluster."""
    import optuna
    from distributed import wait

    from .units import execute

    s = settings(spec)
    parallel = s["parallel"] or parallel
    name = study_name(s, data_sha)
    study = _study(sweep, s, name)
    trials = _load_trials(sweep, name)
    for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        unit = trials.get(frozen.number)           # interrupted: finished on disk, or lost
        if unit is not None and sweep.done(unit):
            study.tell(frozen.number, _value(sweep, unit))
        else:
            study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
            trials.pop(frozen.number, None)         # lost with its worker: not a unit to do
    _save_trials(sweep, name, trials)

    def trained() -> int:
        """Complete trials within the budget: the ones that count towards ``trials``."""
        return len(_feasible(study))

    running: dict = {}
    proposals = len(study.trials)
    t0 = time.perf_counter()
    while trained() < s["trials"] or running:
        while (len(running) < parallel and trained() + len(running) < s["trials"]
               and proposals < MAX_PROPOSALS * s["trials"]):
            trial = study.ask()
            proposals += 1
            unit = _trial_unit(spec, s, trial, data, data_sha)
            bops = dense_bops(TrainConfig.from_dict(unit.params["config"]))
            trial.set_user_attr("bops", bops)
            trial.set_user_attr(CONSTRAINT, bops - s["bops_budget"])
            if bops > s["bops_budget"]:
                study.tell(trial, 0.0)        # infeasible: the constraint tells TPE; nothing trained
                continue
            trials[trial.number] = unit
            _save_trials(sweep, name, trials)
            say(f"  trial   #{trial.number} widths {unit.labels['widths']} {unit.labels['bits']}b ({bops:.3g} BOPs)")
            running[client.submit(execute, str(sweep.path), unit.to_dict(),
                                  key=f"psqs-trial-{unit.key}-{trial.number}")] = trial
        if not running:
            break
        try:
            finished, _ = wait(list(running), timeout=1.0, return_when="FIRST_COMPLETED")
        except TimeoutError:
            continue
        for future in finished:
            trial = running.pop(future)
            unit = trials[trial.number]
            result = future.result(timeout=60) if future.status == "finished" else {"status": "failed"}
            if result["status"] in ("done", "skipped"):
                value = _value(sweep, unit)
                study.tell(trial, value)
                say(f"  done    trial #{trial.number}: validation accuracy {value:.4f}")
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                say(f"  failed  trial #{trial.number}: {result.get('error', 'task lost')}")
    if trained() < s["trials"]:
        say(f"  search  stopped after {proposals} proposals: {trained()} of {s['trials']} trials fit "
            f"the budget of {s['bops_budget']:.4g} BOPs (raise search.bops_budget or lower search.min_width)")
    return {**status(sweep), "seconds": time.perf_counter() - t0}


def _feasible(study) -> list:
    import optuna

    return [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.user_attrs.get(CONSTRAINT, 0.0) <= 0]


def status(sweep: SweepDir) -> dict | None:
    """Trials complete / asked and the best feasible one, from the study on disk (None: no search)."""
    try:
        name = json.loads(sweep.trials_file.read_text())["study"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        return None
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=name, storage=_storage(sweep))
    except KeyError:
        return None
    plan_trials = ((sweep.read_plan().get("spec") or {}).get("search") or {}).get("trials", DEFAULTS["trials"])
    done = _feasible(study)
    best = max(done, key=lambda t: t.value, default=None)
    return {"trials": plan_trials, "complete": len(done), "asked": len(study.trials),
            "best_accuracy": best.value if best else None, "best_bops": best.user_attrs["bops"] if best else None,
            "best_params": best.params if best else None, "objective": "validation accuracy"}
