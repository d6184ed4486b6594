"""Sweep specs and plans: errors that name the key, and content keys that change exactly when
what determines a unit's output changes."""
from __future__ import annotations

import json

import pytest

from psqs.deploy.sweep import plan, spec
from psqs.deploy.sweep.layout import SweepDir, Unit
from psqs.deploy.sweep.spec import Spec, SpecError

BASE = {"bits": [6, 32], "methods": ["qap-imp-ft", "qat"], "sparsity_steps": [0.5, 0.8], "seeds": [0],
        "stages": {"convert": {"checkpoints": "all"}, "rtl": {"checkpoints": "last", "solver": "adder-tree"}}}


def units(d: dict, data_sha: str = "d0") -> dict[str, Unit]:
    return {u.key: u for u in plan.build(Spec.from_dict(d), "/data.npz", data_sha)}


def by_labels(us, kind: str) -> dict:
    return {(u.labels["method"], u.labels["bits"], u.labels.get("step")): u for u in us.values() if u.kind == kind}


@pytest.mark.parametrize("change, message", [
    ({"methods": ["qap-imp"]}, r"x\.yaml: methods\[0\]: 'qap-imp' is not one of"),
    ({"bits": [5, 3]}, r"x\.yaml: bits\[1\]: 3 is not one of"),
    ({"sparsity_steps": [0.5, 0.3]}, r"x\.yaml: sparsity_steps: must increase"),
    ({"sparsity_steps": [0.5, 1.0]}, r"x\.yaml: sparsity_steps\[1\]: 1\.0 is greater than or equal to"),
    ({"training": {"epochz": 3}}, r"x\.yaml: training: Additional properties .*'epochz'"),
    ({"training": {"relu_integer": 6}}, r"x\.yaml: training\.relu_integer: must be below the smallest bit width \(6\)"),
    ({"stages": {"rtl": {"solver": "adder"}}}, r"x\.yaml: stages\.rtl\.solver: 'adder' is not one of"),
    ({"stages": {"bench": {"checkpoints": "first"}}}, r"x\.yaml: stages\.bench\.checkpoints: 'first' is not valid"),
    ({"search": {"trials": 3}}, r"x\.yaml: search: 'bops_budget' is a required property"),
    ({"seeds": [-1]}, r"x\.yaml: seeds\[0\]: -1 is less than the minimum of 0"),
    ({"colour": "red"}, r"x\.yaml: top level: Additional properties .*'colour'"),
])
def test_spec_errors_name_the_key(change, message):
    with pytest.raises(SpecError, match=message):
        Spec.from_dict({**BASE, **change}, "x.yaml")


def test_spec_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text("bits: [6\n")
    with pytest.raises(SpecError, match=rf"{bad}: not valid YAML"):
        spec.load(bad)
    with pytest.raises(SpecError, match=r"nope\.yaml: cannot read the sweep spec"):
        spec.load(tmp_path / "nope.yaml")
    bad.write_text("- 6\n")
    with pytest.raises(SpecError, match=rf"{bad}: must be a mapping"):
        spec.load(bad)


def test_paper_schedule_is_the_pruning_rounds_cumulated():
    from psqs.qap.pruning import imp_targets

    steps = spec.paper_steps()
    assert steps[:9] == pytest.approx([0.1 * k for k in range(1, 10)])
    assert steps[-2:] == pytest.approx([0.9667, 0.9889], abs=1e-4)
    assert imp_targets(steps[-1]) == pytest.approx(steps)      # the trainer's own schedule, to its end


def test_the_plan_covers_the_spec():
    us = units(BASE)
    chains = by_labels(us, "chain")
    # 2 methods x 2 bit widths x 1 seed; IMP chains have one checkpoint per step, dense ones one
    assert set(chains) == {("qap-imp-ft", 6, None), ("qap-imp-ft", 32, None), ("qat", 6, None), ("qat", 32, None)}
    assert len(chains[("qap-imp-ft", 6, None)].outputs) == 2 and len(chains[("qat", 6, None)].outputs) == 1
    # later stages only for fixed-point chains; convert at every checkpoint, rtl at the last
    converts, rtls = by_labels(us, "convert"), by_labels(us, "rtl")
    assert set(converts) == {("qap-imp-ft", 6, 0), ("qap-imp-ft", 6, 1), ("qat", 6, 0)}
    assert set(rtls) == {("qap-imp-ft", 6, 1), ("qat", 6, 0)}
    for unit in [*converts.values(), *rtls.values()]:
        (dep,) = unit.deps
        assert unit.params["source"] in us[dep].outputs        # reads what its input writes
    order = list(us)
    assert all(order.index(d) < order.index(u.key) for u in us.values() for d in u.deps)


def test_prune_float_is_imp_at_32_bits_and_runs_once():
    us = units({**BASE, "methods": ["qap-imp-ft", "prune-float"]})
    assert [u.labels for u in us.values() if u.kind == "chain" and u.labels["bits"] == 32] == [
        {"method": "qap-imp-ft", "bits": 32, "seed": 0, "randomized_labels": 0.0}]
    only = units({**BASE, "methods": ["prune-float"], "bits": [6]})
    assert [u.params["config"]["bits"] for u in only.values()] == [32]


def test_keys_change_exactly_with_what_determines_the_output():
    base = units(BASE)
    assert units(BASE).keys() == base.keys()                          # deterministic
    # a longer schedule keeps every existing checkpoint (a checkpoint depends on the steps up to it)
    longer = units({**BASE, "sparsity_steps": [0.5, 0.8, 0.9]})
    old = by_labels(base, "chain")[("qap-imp-ft", 6, None)].outputs
    new = by_labels(longer, "chain")[("qap-imp-ft", 6, None)].outputs
    assert new[:2] == old and len(new) == 3
    # another RTL solver: only the RTL units change
    other = units({**BASE, "stages": {**BASE["stages"], "rtl": {"solver": "cmvm"}}})
    changed = {u.kind for u in other.values() if u.key not in base}
    assert changed == {"rtl"} and len(other) == len(base)
    # other data: everything changes
    assert not set(units(BASE, data_sha="d1")) & set(base)
    # the data path is not part of a key, its content is
    moved = {u.key for u in plan.build(Spec.from_dict(BASE), "/elsewhere/data.npz", "d0")}
    assert moved == set(base)


def test_a_code_change_changes_the_keys_of_the_stages_that_run_it(monkeypatch):
    base = units(BASE)
    real = plan.code_digest
    monkeypatch.setattr(plan, "code_digest", lambda kind: "changed" if kind == "rtl" else real(kind))
    changed = {u.kind for u in units(BASE).values() if u.key not in base}
    assert changed == {"rtl"}


def test_plan_file_round_trips(tmp_path):
    s = Spec.from_dict(BASE)
    us = plan.build(s, "/data.npz", "d0")
    sweep = SweepDir(tmp_path / "sweep")
    plan.write(sweep, s, "bits: [6, 32]\n", us, "/data.npz", "d0")
    assert sweep.units() == us
    assert json.loads(sweep.plan_file.read_text())["spec"]["sparsity_steps"] == [0.5, 0.8]
    assert (sweep.path / "spec.yaml").read_text() == "bits: [6, 32]\n"
    with pytest.raises(SpecError, match=rf"{tmp_path}: not a sweep directory"):
        SweepDir(tmp_path).units()


def test_unit_state_from_the_directory_alone(tmp_path):
    import os

    sweep = SweepDir(tmp_path)
    unit = Unit("k1", "convert", {}, ("artifacts/hls/k1",), labels={"method": "qat", "bits": 6, "seed": 0})
    assert sweep.state(unit) == "todo"
    sweep.mark_running(unit)
    assert sweep.state(unit) == "running"
    marker = json.loads(sweep.running_file("k1").read_text())
    assert marker["pid"] == os.getpid()
    marker["pid"] = 2**22 + 12345                 # a process that is gone (killed with its sweep)
    sweep.running_file("k1").write_text(json.dumps(marker))
    assert sweep.state(unit) == "todo"
    sweep.mark_finished(unit, {"error": "boom"})
    assert sweep.state(unit) == "failed" and not sweep.running_file("k1").exists()
    (tmp_path / "artifacts/hls/k1").mkdir(parents=True)
    (tmp_path / "artifacts/hls/k1/manifest.json").write_text("{}")
    assert sweep.state(unit) == "done"
