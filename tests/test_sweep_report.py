"""psqs report: the sweep's table, points, headline, figures and page, checked against the artifacts.

A small real sweep directory is built once: tiny pruning chains trained by psqs.qap.stage.run_chain
as a sweep's chain unit trains them (a 32-bit dense pair of seeds, a 6-bit IMP chain of two steps
over two seeds, a 6-bit dense pair with and without randomized labels) and one search trial
(psqs.qap.stage.run), plus a failed and a never-run unit. The slow hardware test
adds convert, rtl, build and bench units of one checkpoint, run by the sweep's own unit runner.
Every figure the report shows is compared with the same figure read straight from the artifact's
JSON, or with a hand computation.
"""
from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from psqs.deploy.sweep import figures, published, report, results
from psqs.deploy.sweep.layout import SweepDir, Unit
from psqs.qap import stage as qap_stage
from psqs.qap.config import TrainConfig

TINY = dict(widths=(8,), epochs=1, patience=1, batch_size=256, max_train=2000, test_vectors=300)
CLASSES = ("t", "w", "z", "q", "g")      # the synthetic file's class order (conftest.synthetic_jets)

#: (key, method, bits, seed, randomized labels, chain steps, family each checkpoint must get)
CHAINS = [
    ("qat32s0", "qat", 32, 0, 0.0, [0.0], "float"),
    ("qat32s1", "qat", 32, 1, 0.0, [0.0], "float"),
    ("ft6s0", "qap-imp-ft", 6, 0, 0.0, [0.5, 0.75], "QAP"),
    ("ft6s1", "qap-imp-ft", 6, 1, 0.0, [0.5, 0.75], "QAP"),
    ("qat6r0", "qat", 6, 0, 0.0, [0.0], "QAT"),
    ("qat6r5", "qat", 6, 0, 0.5, [0.0], "QAT"),
]
PRUNING = {"qat": "none", "qap-imp-ft": "imp-ft"}


def _write_plan(path: Path, units: list[Unit]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "sweep.json").write_text(json.dumps({"kind": "psqs.sweep", "format_version": 1, "spec": {},
                                                 "units": [u.to_dict() for u in units]}))


@pytest.fixture(scope="session")
def sweep(tmp_path_factory, synthetic_npz) -> Path:
    root = tmp_path_factory.mktemp("sweep") / "s"
    units = []
    for key, method, bits, seed, randomized, steps, _ in CHAINS:
        labels = {"method": method, "bits": bits, "seed": seed, "randomized_labels": randomized}
        outputs = tuple(SweepDir.artifact("model", f"{key}-{k}") for k in range(len(steps)))
        units.append(Unit(key, "chain", {"config": {}, "steps": steps}, outputs, labels=labels))
        config = TrainConfig(bits=bits, pruning=PRUNING[method], sparsity=steps[-1], seed=seed,
                             randomized_labels=randomized, data=str(synthetic_npz), **TINY)
        qap_stage.run_chain(config, steps, [root / out for out in outputs], extra={"sweep_unit": key})
    trial = Unit("bo0", "trial", {"config": {}}, (SweepDir.artifact("model", "bo0"),),
                 labels={"method": "bo", "bits": 6, "seed": 0, "trial": 0, "widths": [4]})
    qap_stage.run(TrainConfig(bits=6, data=str(synthetic_npz), **{**TINY, "widths": (4,)}), root / trial.outputs[0])
    failed = Unit("broken", "chain", {"config": {}, "steps": [0.5]}, (SweepDir.artifact("model", "broken-0"),),
                  labels={"method": "qap-imp-lt", "bits": 4, "seed": 0, "randomized_labels": 0.0})
    todo = Unit("later", "chain", {"config": {}, "steps": [0.5]}, (SweepDir.artifact("model", "later-0"),),
                labels={"method": "qap-imp-lt", "bits": 8, "seed": 0, "randomized_labels": 0.0})
    _write_plan(root, [*units, trial, failed, todo])
    sweep_dir = SweepDir(root)
    sweep_dir.state_dir.mkdir()
    sweep_dir.mark_finished(failed, {"error": "training diverged (loss nan)", "type": "RunFailed",
                                     "unit": failed.describe(), "log": "logs/broken.log"})
    return root


@pytest.fixture(scope="session")
def written(sweep) -> dict:
    return report.write(sweep)


def _artifact(root: Path, out: str) -> tuple[dict, dict]:
    return (json.loads((root / out / "manifest.json").read_text()),
            json.loads((root / out / "metrics.json").read_text()))


# -- the table against the artifacts ---------------------------------------------------------------

@pytest.mark.slow
def test_model_rows_hold_the_figures_of_each_artifact(sweep):
    table = results.collect(sweep)
    models = table[table["stage"] == "model"].set_index("path")
    on_disk = sorted(str(p.relative_to(sweep)) for p in (sweep / "artifacts" / "model").iterdir())
    assert sorted(models.index) == on_disk                  # one row per artifact, none for failed/todo units
    assert not {"broken", "later"} & set(table["key"])
    for out, row in models.iterrows():
        manifest, metrics = _artifact(sweep, out)
        test = metrics["test"]
        assert row["accuracy"] == test["accuracy"] and row["auc_macro"] == test["auc_macro"]
        for c in CLASSES:
            assert row[f"auc_{c}"] == test["auc"][c]
            want = test["rejection_at_50pct_signal_eff"][c]
            assert (np.isnan(row[f"rejection_{c}"]) if want is None else row[f"rejection_{c}"] == want)
        assert row["bops"] == metrics["bops"]["total"] and row["sparsity"] == metrics["sparsity"]["total"]
        assert row["eta_n"] == metrics["efficiency"]["eta_n"] and row["aiq"] == metrics["efficiency"]["aiq"]
        assert row["bits"] == manifest["config"]["bits"] and row["seed"] == manifest["config"]["seed"]
        assert row["randomized_labels"] == manifest["config"]["randomized_labels"]
        assert row["widths"] == "-".join(map(str, manifest["config"]["widths"]))
        assert row["data_source"] == manifest["data"]["source"]
        assert row["sparsity_target"] == manifest["config"]["sparsity"]


@pytest.mark.slow
def test_each_checkpoint_gets_its_family_step_and_method(sweep):
    table = results.collect(sweep).set_index("path")
    for key, method, bits, seed, randomized, steps, fam in CHAINS:
        for k in range(len(steps)):
            row = table.loc[f"artifacts/model/{key}-{k}"]
            assert (row["family"], row["method"], row["step"], row["key"]) == (fam, method, k, key)
    trial = table.loc["artifacts/model/bo0"]
    assert (trial["family"], trial["method"], trial["trial"], trial["widths"]) == ("BO", "bo", 0, "4")
    assert np.isnan(trial["step"])


@pytest.mark.slow
def test_points_average_the_seeds_read_from_metrics(sweep):
    points = results.aggregate(results.collect(sweep))
    for step in (0, 1):
        acc = [_artifact(sweep, f"artifacts/model/ft6s{s}-{step}")[1]["test"]["accuracy"] for s in (0, 1)]
        bops = [_artifact(sweep, f"artifacts/model/ft6s{s}-{step}")[1]["bops"]["total"] for s in (0, 1)]
        point = points[(points["method"] == "qap-imp-ft") & (points["step"] == step)]
        assert len(point) == 1
        point = point.iloc[0]
        assert point["n_seeds"] == 2 and point["seeds"] == "0,1"
        assert point["accuracy_mean"] == pytest.approx(np.mean(acc), abs=1e-15)
        assert point["accuracy_std"] == pytest.approx(np.std(acc, ddof=1), abs=1e-15)
        assert point["bops_mean"] == pytest.approx(np.mean(bops), rel=1e-15)
    single = points[(points["method"] == "qat") & (points["bits"] == 6)]
    assert sorted(single["randomized_labels"]) == [0.0, 0.5]
    assert single["n_seeds"].tolist() == [1, 1] and single["accuracy_std"].isna().all()


@pytest.mark.slow
def test_the_headline_follows_its_rule_on_the_artifacts(sweep, written):
    """The rule, redone by hand from metrics.json: dense = mean of the qat 32-bit seeds; candidates =
    the 6-bit pruned steps whose seed-mean accuracy is within the tolerance; ratio of mean BOPs."""
    def mean(outs, *keys):
        values = []
        for out in outs:
            d = _artifact(sweep, out)[1]
            for k in keys:
                d = d[k]
            values.append(d)
        return float(np.mean(values))

    dense = [f"artifacts/model/qat32s{s}-0" for s in (0, 1)]
    dense_acc, dense_bops = mean(dense, "test", "accuracy"), mean(dense, "bops", "total")
    candidates = []
    for step in (0, 1):
        outs = [f"artifacts/model/ft6s{s}-{step}" for s in (0, 1)]
        if mean(outs, "test", "accuracy") >= dense_acc - results.HEADLINE_TOLERANCE:
            candidates.append(mean(outs, "bops", "total"))
    summary = json.loads((sweep / "report" / "summary.json").read_text())
    assert summary["headline"]["tolerance"] == results.HEADLINE_TOLERANCE
    if candidates:
        assert summary["headline"]["ratio"] == pytest.approx(dense_bops / min(candidates), rel=1e-12)
        assert f"{dense_bops / min(candidates):.1f}x" in summary["headline"]["text"]
    else:
        assert summary["headline"]["ratio"] is None and "not computed" in summary["headline"]["text"]
    assert summary["headline"] == written["headline"]


# -- the rules, on hand-made rows ------------------------------------------------------------------

def _row(method, family, bits, seed, step, sparsity, accuracy, bops, randomized=0.0):
    return {"key": f"{method}{bits}", "stage": "model", "method": method, "family": family, "bits": bits,
            "seed": seed, "randomized_labels": randomized, "step": step, "trial": np.nan,
            "sparsity_target": sparsity, "sparsity": sparsity, "widths": "64-32-32", "accuracy": accuracy,
            "auc_macro": accuracy, "bops": bops, "eta_n": 0.3, "aiq": 0.5}


def _hand_rows() -> pd.DataFrame:
    rows = [
        _row("qat", "float", 32, 0, 0, 0.0, 0.75, 1.0e6), _row("qat", "float", 32, 1, 0, 0.0, 0.77, 1.0e6),
        # 6-bit QAP: step 0 (mean .760, 41k BOPs), step 1 (mean .751 >= .76 - .01, 20k), step 2 (.70: too low)
        _row("qap-imp-lt", "QAP", 6, 0, 0, 0.5, 0.765, 4.0e4), _row("qap-imp-lt", "QAP", 6, 1, 0, 0.5, 0.755, 4.2e4),
        _row("qap-imp-lt", "QAP", 6, 0, 1, 0.8, 0.752, 2.0e4), _row("qap-imp-lt", "QAP", 6, 1, 1, 0.8, 0.750, 2.0e4),
        _row("qap-imp-lt", "QAP", 6, 0, 2, 0.9, 0.700, 1.0e4), _row("qap-imp-lt", "QAP", 6, 1, 2, 0.9, 0.700, 1.0e4),
        # not candidates: 4 bits, randomized labels, 6-bit dense (QAT)
        _row("qap-imp-lt", "QAP", 4, 0, 1, 0.8, 0.76, 5.0e3),
        _row("qap-imp-lt", "QAP", 6, 0, 1, 0.8, 0.76, 1.0e3, randomized=0.5),
        _row("qat", "QAT", 6, 0, 0, 0.0, 0.76, 9.0e3),
    ]
    return pd.DataFrame(rows)


def test_headline_by_hand():
    head = results.headline(results.aggregate(_hand_rows()))
    assert head["ratio"] == pytest.approx(1.0e6 / 2.0e4)          # 50x: step 1, not step 0 nor step 2
    assert head["pruned"]["step"] == 1 and head["pruned"]["accuracy_mean"] == pytest.approx(0.751)
    assert head["dense"]["accuracy_mean"] == pytest.approx(0.76) and "50.0x" in head["text"]
    strict = results.headline(results.aggregate(_hand_rows()), tolerance=0.005)
    assert strict["ratio"] == pytest.approx(1.0e6 / 4.1e4)         # only step 0 (.760) is within .005


def test_headline_says_why_when_a_side_is_missing():
    rows = _hand_rows()
    no_dense = results.headline(results.aggregate(rows[rows["family"] != "float"]))
    assert no_dense["ratio"] is None and "no 32-bit dense" in no_dense["text"]
    no_pruned = results.headline(results.aggregate(rows[(rows["family"] != "QAP") | (rows["bits"] != 6)]))
    assert no_pruned["ratio"] is None and "no 6-bit pruned" in no_pruned["text"]
    worse = rows.copy()
    worse.loc[(worse["family"] == "QAP") & (worse["bits"] == 6), "accuracy"] -= 0.1
    too_low = results.headline(results.aggregate(worse))
    assert too_low["ratio"] is None and "reaches" in too_low["text"] and re.search(r"\d", too_low["text"])


def _dominated_brute_force(bops, acc) -> np.ndarray:
    front = np.zeros(len(bops), dtype=bool)
    for i in range(len(bops)):
        if np.isnan(bops[i]) or np.isnan(acc[i]):
            continue
        front[i] = not any(bops[j] <= bops[i] and acc[j] >= acc[i] and (bops[j] < bops[i] or acc[j] > acc[i])
                           for j in range(len(bops)) if not (np.isnan(bops[j]) or np.isnan(acc[j])))
    return front


def test_pareto_front_matches_brute_force():
    rng = np.random.default_rng(7)
    for trial in range(300):
        n = int(rng.integers(1, 25))
        bops = rng.integers(1, 8, size=n).astype(float)        # few distinct values: ties in both figures
        acc = rng.integers(0, 6, size=n).astype(float) / 10
        if trial % 3 == 0:
            bops[rng.integers(0, n)] = np.nan
        np.testing.assert_array_equal(results.pareto_mask(bops, acc), _dominated_brute_force(bops, acc))


@pytest.mark.slow
def test_pareto_column_of_the_sweep_matches_brute_force(sweep):
    points = results.aggregate(results.collect(sweep))
    clean = points[points["randomized_labels"] == 0]
    expected = _dominated_brute_force(clean["bops_mean"].to_numpy(), clean["accuracy_mean"].to_numpy())
    np.testing.assert_array_equal(clean["pareto"].to_numpy(), expected)
    assert not points.loc[points["randomized_labels"] > 0, "pareto"].any()


# -- the files and the page ------------------------------------------------------------------------

@pytest.mark.slow
def test_report_files_are_the_table_and_self_contained(sweep, written):
    out = sweep / "report"
    table = results.collect(sweep)
    csv = pd.read_csv(out / "results.csv")
    parquet = pd.read_parquet(out / "results.parquet")
    assert list(csv.columns) == list(table.columns) == list(parquet.columns)
    for frame in (csv, parquet):
        assert frame["path"].tolist() == table["path"].tolist()
        np.testing.assert_array_equal(frame["accuracy"].to_numpy(float), table["accuracy"].to_numpy(float))
        np.testing.assert_array_equal(frame["bops"].to_numpy(float), table["bops"].to_numpy(float))
    pngs = sorted(p.relative_to(out).as_posix() for p in (out / "figures").glob("*.png"))
    assert pngs == sorted(written["figures"]) and len(pngs) + len(written["skipped_figures"]) == len(figures.FIGURES)
    page = (out / "index.html").read_text()
    sources = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", page, flags=re.I)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "url(" not in page and "@import" not in page
    embedded = sorted(base64.b64decode(s.split(",", 1)[1]) for s in sources)
    assert embedded == sorted((out / p).read_bytes() for p in pngs)     # each PNG, byte for byte
    assert "training diverged (loss nan)" in page and "broken" in page  # the failed unit's table
    assert written["failures"] == [{"key": "broken", "kind": "chain", "unit": "chain qap-imp-lt 4b seed 0",
                                    "error": "training diverged (loss nan)", "type": "RunFailed",
                                    "log": "logs/broken.log"}]
    assert written["units"] == {"done": 7, "running": 0, "failed": 1, "todo": 1}
    assert written["headline"]["text"] in page and published.SPLIT_NOTE in html.unescape(page)
    assert str(Path(written["data_sources"][0]).name) in page


@pytest.mark.slow
def test_anchors_are_labelled_with_their_split(sweep):
    table = results.collect(sweep)
    points = results.aggregate(table)
    fig, _ = figures.accuracy_vs_bops(table, points)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    for anchor in published.ANCHORS:
        assert sum(anchor.name in t and anchor.split in t and published.LABEL in t for t in legend) == 1
    page = html.unescape((sweep / "report" / "index.html").read_text())
    for anchor in published.ANCHORS:
        assert anchor.name in page and anchor.citation in page and anchor.split in page
    assert page.count(published.LABEL) >= len(published.ANCHORS)


# -- the command line ------------------------------------------------------------------------------

def _psqs(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "psqs.deploy.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def _one_error_line(result, *words):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("psqs: error: "), result.stderr
    for word in words:
        assert str(word) in lines[0]


def test_cli_refuses_what_is_not_a_sweep(tmp_path):
    _one_error_line(_psqs("report", tmp_path), tmp_path, "not a sweep directory")
    _one_error_line(_psqs("report", tmp_path / "missing"), tmp_path / "missing", "no such directory")
    _write_plan(tmp_path / "empty", [])
    _one_error_line(_psqs("report", tmp_path / "empty"), tmp_path / "empty" / "sweep.json", "no units")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "sweep.json").write_text(json.dumps({"kind": "psqs.model"}))
    _one_error_line(_psqs("report", tmp_path / "other"), tmp_path / "other" / "sweep.json", "not a psqs sweep plan")
    nothing = Unit("k", "chain", {"config": {}, "steps": [0.0]}, ("artifacts/model/k-0",),
                   labels={"method": "qat", "bits": 6, "seed": 0, "randomized_labels": 0.0})
    _write_plan(tmp_path / "fresh", [nothing])
    _one_error_line(_psqs("report", tmp_path / "fresh"), tmp_path / "fresh", "no checkpoint", "1 to do")
    assert not (tmp_path / "fresh" / "report").exists()


@pytest.mark.slow
def test_cli_writes_replaces_its_report_and_keeps_other_files(sweep, tmp_path):
    copy = tmp_path / "s"
    shutil.copytree(sweep, copy, ignore=shutil.ignore_patterns("report"))
    first = _psqs("report", copy)
    assert first.returncode == 0, first.stderr
    summary = json.loads((copy / "report" / "summary.json").read_text())
    assert first.stdout.splitlines()[0] == summary["headline"]["text"]
    assert f"{copy.resolve() / 'report'}/index.html" in first.stdout
    again = _psqs("report", copy)                       # an earlier report is replaced without --force
    assert again.returncode == 0, again.stderr
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    _one_error_line(_psqs("report", copy, "--out", mine), mine, "already exists")
    _one_error_line(_psqs("report", copy, "--out", mine, "--force"), mine, "notes.txt")
    assert (mine / "notes.txt").read_text() == "my notes" and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


# -- stages: convert, rtl, build, bench of one checkpoint, run by the sweep's unit runner -----------

@pytest.fixture(scope="module")
def hardware(sweep, tmp_path_factory) -> Path:
    from psqs.deploy.sweep import units as units_lib

    root = tmp_path_factory.mktemp("hw") / "s"
    shutil.copytree(sweep, root, ignore=shutil.ignore_patterns("report"))
    plan = json.loads((root / "sweep.json").read_text())
    chain = Unit.from_dict(next(u for u in plan["units"] if u["key"] == "ft6s0"))
    labels = {**chain.labels, "step": 1, "sparsity": 0.75}
    convert = Unit("cv", "convert", {"source": chain.outputs[1], "options": {"board": "pynq-z2"}},
                   (SweepDir.artifact("hls", "cv"),), ("ft6s0",), {**labels, "stage": "convert"})
    rtl = Unit("rt", "rtl", {"source": convert.outputs[0], "options": {"solver": "adder-tree"}},
               (SweepDir.artifact("rtl", "rt"),), ("cv",), {**labels, "stage": "rtl"})
    build = Unit("bd", "build", {"source": convert.outputs[0], "board": "pynq-z2", "vivado": False},
                 (SweepDir.artifact("overlay", "bd"),), ("cv",), {**labels, "stage": "build"})
    bench = Unit("bn", "bench", {"source": build.outputs[0],
                                 "options": {"batch_sizes": [1, 100], "repeats": 3, "warmup": 1}},
                 (SweepDir.artifact("bench", "bn"),), ("bd",), {**labels, "stage": "bench"})
    stages = [convert, rtl, build, bench]
    plan["units"] += [u.to_dict() for u in stages]
    (root / "sweep.json").write_text(json.dumps(plan))
    for unit in stages:
        result = units_lib.execute(str(root), unit.to_dict())
        assert result["status"] == "done", (result, (root / "logs" / f"{unit.key}.log").read_text()[-3000:])
    return root


@pytest.mark.slow
def test_stage_rows_carry_their_checkpoint_and_their_own_labelled_figures(hardware):
    table = results.collect(hardware).set_index("key")
    model = table[(table["stage"] == "model") & (table["path"] == "artifacts/model/ft6s0-1")].iloc[0]
    for key in ("cv", "rt", "bd", "bn"):
        row = table.loc[key]
        assert row["model_path"] == "artifacts/model/ft6s0-1"
        for column in ("accuracy", "bops", "auc_macro", "eta_n", "sparsity", "family", "method", "seed"):
            assert row[column] == model[column]
    convert = json.loads((hardware / "artifacts/hls/cv/manifest.json").read_text())
    hls_report = json.loads((hardware / "artifacts/hls/cv/report.json").read_text())
    assert table.loc["cv", "exact"] == convert["verification"]["success"] is True
    assert hls_report["synthesized"] is False and np.isnan(table.loc["cv", "lut"])
    assert pd.isna(table.loc["cv", "resources_source"])

    rtl = json.loads((hardware / "artifacts/rtl/rt/manifest.json").read_text())
    row = table.loc["rt"]
    assert row["exact"] == rtl["verification"]["success"] is True
    assert (row["latency_cycles"], row["ii_cycles"], row["latency_source"]) == (
        rtl["timing"]["latency_cycles"], rtl["timing"]["ii_cycles"], "rtl-sim")
    assert row["latency_ns"] == rtl["timing"]["latency_cycles"] * rtl["ip"]["clock_period_ns"]
    assert row["throughput_jets_per_s"] == pytest.approx(1e9 / (rtl["timing"]["ii_cycles"] *
                                                                rtl["ip"]["clock_period_ns"]))
    assert (row["lut"], row["ff"], row["dsp"], row["resources_source"]) == (
        rtl["resources"]["resources"]["LUT"], rtl["resources"]["resources"]["FF"],
        rtl["resources"]["resources"]["DSP"], "estimate (yosys)")

    run = json.loads((hardware / "artifacts/bench/bn/run_report.json").read_text())
    row = table.loc["bn"]
    assert row["stage_accuracy"] == run["accuracy"]["top1"] and row["exact"] == run["accuracy"]["vs_csim"]["success"]
    assert run["package"]["emulation"] is True
    assert row["latency_source"] == f"emulated ({run['fabric_source']['label']})"
    best = max(run["batches"], key=lambda b: b["throughput_per_s"])
    assert row["throughput_jets_per_s"] == best["throughput_per_s"]
    assert row["throughput_source"] == f"emulated (host wall clock, batch {best['batch_size']})"
    first = min(run["batches"], key=lambda b: b["batch_size"])["fabric_last_transfer"]
    assert (row["latency_cycles"], row["latency_ns"]) == (first["latency_cycles"], first["latency_ns"])

    package = json.loads((hardware / "artifacts/overlay/bd/manifest.json").read_text())
    row = table.loc["bd"]
    assert (row["latency_cycles"], row["ii_cycles"]) == (package["timing"]["latency_cycles"],
                                                         package["timing"]["ii_cycles"])
    assert row["latency_source"] == {"rtl": "rtl-sim", "hls_report": "hls-report",
                                     "estimate": "estimate (psqs formula)"}[package["timing"]["source"]]


@pytest.mark.slow
def test_hardware_figures_are_drawn_with_their_sources_and_anchors(hardware):
    summary = report.write(hardware)
    assert {"figures/accuracy_vs_lut.png", "figures/latency_vs_lut.png",
            "figures/throughput_vs_bops.png"} <= set(summary["figures"])
    table = results.collect(hardware)
    fig, _ = figures.accuracy_vs_lut(table, results.aggregate(table))
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "rtl: LUT: estimate (yosys)" in legend
    for anchor in published.ANCHORS:
        (text,) = [t for t in legend if t.startswith(anchor.name + ",")]
        assert anchor.split in text and published.LABEL in text
        assert (f"{anchor.lut:,} LUT, {anchor.lut_source}" in text) if anchor.lut is not None else "LUT, " not in text
    levels = sorted(line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == ":")
    assert levels == sorted(a.accuracy for a in published.ANCHORS if a.lut is None)   # NeuraLUT: levels only
    fig, _ = figures.throughput_vs_bops(table, results.aggregate(table))
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "rtl: rtl-sim (1 / (II x clock))" in legend and any(t.startswith("bench: emulated (host") for t in legend)
