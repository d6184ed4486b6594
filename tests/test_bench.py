"""The board-side benchmark's figures and report, without a board: classification figures against
scikit-learn, fabric figures' source labels and clock, plots that draw only what exists, output
paths refused before a run, and ``psqs.host`` importable without pynq.

The runs themselves (through pynq, against the emulator, with faults) are in test_host_e2e.py.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, roc_auc_score

from psqs.common import classification
from psqs.common.artifact import ArtifactError
from psqs.common.errors import PsqsError
from psqs.host import bench
from psqs.host.stream_probe import ProbeSnapshot

CLASSES = ["g", "q", "w", "z", "t"]


@pytest.mark.parametrize("seed", range(6))
def test_auc_and_confusion_matrix_agree_with_scikit_learn(seed):
    """numpy-only figures vs scikit-learn's, with ties (coarse logits), small sets and absent classes."""
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(3, 600)), int(rng.integers(2, 6))
    y = rng.integers(0, k - (seed % 2), n)                      # odd seeds: the last class never occurs
    logits = np.round(rng.normal(size=(n, k)) * 2 + 1.5 * np.eye(k)[y], int(rng.integers(0, 3)))
    result = classification.evaluate(logits, y, CLASSES[:k], "test vectors")
    # the same scores on both sides (a different softmax rounds near-ties differently); checked apart
    probs = classification.softmax(logits)
    np.testing.assert_allclose(probs, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), rtol=1e-12)
    for c, name in enumerate(CLASSES[:k]):
        signal = y == c
        if signal.any() and not signal.all():
            assert result["auc"][name] == pytest.approx(roc_auc_score(signal, probs[:, c]), abs=1e-12)
            curve = result["roc_curves"]["curves"][name]
            assert curve["fpr"][0] == curve["tpr"][0] == 0 and curve["fpr"][-1] == curve["tpr"][-1] == 1
            assert len(curve["fpr"]) <= classification.ROC_POINTS
        else:
            assert result["auc"][name] is None and result["roc_curves"]["curves"][name] is None
    expected = confusion_matrix(y, logits.argmax(axis=1), labels=range(k))
    assert result["confusion_matrix"]["counts"] == expected.tolist()
    assert result["top1"] == pytest.approx(np.trace(expected) / n)
    assert (result["sample_set"], result["n"]) == ("test vectors", n)
    json.dumps(result)                                           # JSON-ready


def _package(emulation: bool, source: str, probe=True):
    return SimpleNamespace(emulation=emulation, timing={"source": source}, path=Path("pkg"), probe=probe or None)


def test_fabric_figures_are_labelled_with_their_source():
    assert bench.fabric_source(_package(False, "estimate")) == "measured"      # a probe on hardware
    # no probe (an imported hls4ml build): nothing is counted, on hardware or in emulation
    assert {bench.fabric_source(_package(e, "hls_report", probe=False)) for e in (False, True)} == {bench.NO_PROBE}
    assert [bench.fabric_source(_package(True, s)) for s in ("rtl", "hls_report", "estimate")] == \
        ["rtl-sim", "hls-report", "estimate"]
    with pytest.raises(ArtifactError, match="timing.source 'guess'"):
        bench.fabric_source(_package(True, "guess"))


def _snapshot(latency=37, transfer=None, samples=1):
    transfer = transfer if transfer is not None else latency + (samples - 1) * 4 + 4
    return ProbeSnapshot(cycles=10**6, in_beats=4 * samples, out_beats=5 * samples, transfers=1,
                         last_latency=latency, last_transfer_time=transfer, min_latency=latency,
                         max_latency=latency, enabled=True, overflow=False, unmatched=False, in_busy=False,
                         out_busy=False, pending=0)


def test_cycles_become_time_with_the_clock_given_and_carry_the_source():
    fab = bench.fabric_figures(_snapshot(latency=40, transfer=40 + 99 * 4 + 4, samples=100), 100, 5, 125.0,
                               "estimate")
    assert fab["source"] == "estimate" and "measured" not in fab
    assert fab["latency_ns"] == pytest.approx(40 * 8.0) and fab["transfer_ns"] == pytest.approx(440 * 8.0)
    assert fab["effective_ii_cycles"] == pytest.approx(4.0) and fab["fclk_mhz"] == 125.0
    empty = bench.fabric_figures(replace(_snapshot(), last_latency=None), 1, 5, 100.0, "rtl-sim")
    assert empty == {"source": "rtl-sim", "available": False,
                     "reason": "the probe saw no complete transfer since CLEAR"}


def _report(fabric_available: bool, chunks: int = 1, accuracy: bool = True, slow_repeat: int | None = None):
    batches = []
    for size in (1, 10, 100):
        latencies = [0.5 + size * 1e-3] * 4
        if slow_repeat is not None and size == 10:
            latencies[slow_repeat - 1] = 40.0
        fab = (bench.fabric_figures(_snapshot(samples=size), size, 5, 100.0, "estimate") if fabric_available
               else {"source": "estimate", "available": False, "reason": "none"})
        slowest = int(np.argmax(latencies))
        batches.append({"batch_size": size, "repeats": 4, "latency_ms": bench._percentiles(np.array(latencies) / 1e3),
                        "latencies_ms": latencies, "throughput_per_s": size / (np.median(latencies) / 1e3),
                        "chunks": chunks, "mm2s_transfers": [1, 4],
                        "repeat_mm2s_transfers": [[r, r] for r in range(1, 5)],
                        "slowest_repeat": {"repeat": slowest + 1, "ms": latencies[slowest],
                                           "vs_p50": latencies[slowest] / np.median(latencies),
                                           "mm2s_transfers": [slowest + 1, slowest + 1]},
                        "fabric_last_transfer": fab})
    report = {"package": {"name": "jet", "emulation": True},
              "board": {"package_board": "pynq-z2", "reported_board": "Pynq-Z2", "remote": "127.0.0.2",
                        "fclk_mhz_readback": 99.999},
              "fabric_source": {"label": "estimate", "meaning": bench.FABRIC_SOURCE_MEANING["estimate"]},
              "batches": batches}
    if accuracy:
        rng = np.random.default_rng(1)
        y = rng.integers(0, 5, 300)
        result = classification.evaluate(rng.normal(size=(300, 5)) + 2 * np.eye(5)[y], y, CLASSES, "test vectors")
        report["accuracy"] = {**result, "training": {"sample_set": "test split", "n": 160000, "top1": 0.71,
                                                     "auc_macro": 0.9},
                              "vs_csim": {"exact_samples": 1.0}, "vs_qkeras": {"exact_samples": 1.0},
                              "samples_in": 300, "samples_out": 300}
    return report


def _drawn(monkeypatch, report, tmp_path):
    """Write the plots; return {file name: [(label, x, y) of every line]} of the figures drawn."""
    import matplotlib.pyplot as plt

    figures, close = [], plt.close
    monkeypatch.setattr(plt, "close", lambda fig: (figures.append(fig), close(fig)))
    written = bench.write_plots(report, tmp_path)
    return {path.name: [(line.get_label(), np.asarray(line.get_xdata()), np.asarray(line.get_ydata()))
                        for line in fig.axes[0].get_lines()] for path, fig in zip(written, figures)}


@pytest.mark.parametrize("available, chunks", [(False, 1), (True, 3)])
def test_no_point_is_invented_when_there_is_no_fabric_figure(monkeypatch, tmp_path, available, chunks):
    lines = _drawn(monkeypatch, _report(available, chunks), tmp_path)["throughput_vs_batch.png"]
    assert [label for label, _, _ in lines] == ["host (p50 call)"]
    for _, x, y in lines:
        assert x.dtype.kind in "if" and y.dtype.kind in "if" and (x > 0).all() and (y > 0).all()


def test_plots_draw_the_fabric_series_with_its_source_and_the_classification(monkeypatch, tmp_path):
    drawn = _drawn(monkeypatch, _report(True), tmp_path)
    assert sorted(drawn) == ["confusion_matrix.png", "latency_histogram.png", "latency_vs_batch.png",
                             "roc_curves.png", "throughput_vs_batch.png"]
    label, x, y = drawn["throughput_vs_batch.png"][1]
    assert label == "fabric (stream probe, estimate)" and list(x) == [1, 10, 100]
    # transfer time (cycles at the 100 MHz given) -> inferences / s
    assert y[-1] == pytest.approx(100 / ((37 + 99 * 4 + 4) * 10e-9))
    roc_labels = [label.split(" (AUC")[0] for label, _, _ in drawn["roc_curves.png"][:-1]]
    assert roc_labels == [f"{c} vs rest" for c in CLASSES]


def test_summary_labels_every_fabric_figure_and_names_the_sample_sets():
    text = bench.summary(_report(True, slow_repeat=3))
    rows = [line for line in text.splitlines() if line.split()[0] in {"1", "10", "100"}]
    assert len(rows) == 3 and all(row.split()[-1] == "estimate" for row in rows)
    assert "fabric     figures: estimate: the emulated probe" in text
    assert "on test vectors, N=300 (training: 0.7100 on test split, N=160000)" in text
    assert "outlier    batch size 10 repeat 3/4: 40.000 ms" in text and "(MM2S transfer 3)" in text
    partial = bench.summary(_report(True, accuracy=False))            # a partial report has no accuracy
    assert "accuracy" not in partial and len(partial.splitlines()) == 6


def test_output_paths_are_refused_before_anything_runs(tmp_path):
    (tmp_path / "file").write_text("thesis")
    cases = {
        ("json", tmp_path): "--json {p}: is a directory; give a file name such as {p}/run_report.json",
        ("json", tmp_path / "file" / "run.json"): "--json {p}: {t}/file is not a directory",
        ("plots", tmp_path / "file"): "--plots {p}: exists and is not a directory",
        ("plots", tmp_path / "file" / "sub" / "plots"): "--plots {p}: {t}/file is not a directory",
    }
    for (option, path), message in cases.items():
        with pytest.raises(PsqsError) as info:
            bench.check_outputs(path if option == "json" else None, path if option == "plots" else None)
        assert str(info.value) == message.format(p=path, t=tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    bench.check_outputs(tmp_path / "new" / "deeper" / "run.json", tmp_path / "new" / "plots")
    assert sorted(p.name for p in tmp_path.iterdir()) == before              # checked, nothing created
    assert bench.partial_path(tmp_path / "new" / "run.json") == tmp_path / "new" / "run_report.partial.json"
    assert str(bench.partial_path(None)) == "run_report.partial.json"


def test_accelerator_is_importable_from_psqs_host_without_pynq():
    """README: ``from psqs.host import Accelerator``; pynq picks local/remote at import, so not yet."""
    proc = subprocess.run([sys.executable, "-c", "import sys; from psqs.host import Accelerator; "
                           "print(Accelerator.__module__, 'pynq' in sys.modules)"],
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["psqs.host.accelerator", "False"], proc.stderr[-2000:]
