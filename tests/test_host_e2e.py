"""psqs.host end to end: the board runtime, through unmodified pynq, against the emulated board.

The package is the real pipeline's (QAP training -> hls4ml conversion -> emulation overlay build)
with more than 10,000 test jets; every client runs in its own process with private pynq state.
The board is a zcu104 over PYNQ.remote (a Zynq-7000 has no PYNQ.remote image; the on-board path
is tests/test_local_device.py's).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import synthetic_jets
from sklearn.metrics import confusion_matrix, roc_auc_score
from test_emulator_support import run_client, start_emulator

from psqs.common.artifact import ArtifactError
from psqs.common.classification import softmax
from psqs.common.package import OverlayPackage
from psqs.deploy.emulator.client_env import client_env
from psqs.deploy.emulator.faults import Fault
from psqs.hls import stage as hls_stage
from psqs.host.accelerator import Accelerator, BoardMismatch
from psqs.overlays.build import build
from psqs.qap import stage as qap_stage
from psqs.qap.config import TrainConfig
from psqs.qap.data import FEATURES

pytestmark = pytest.mark.slow

N_VECTORS = 12000
BOARD = "zcu104"


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    root = tmp_path_factory.mktemp("host_e2e")
    X, y, classes = synthetic_jets(62000, seed=7)
    np.savez(root / "jets.npz", X=X, y=y, feature_names=np.array(FEATURES), class_names=np.array(classes))
    model = qap_stage.run(TrainConfig(data=str(root / "jets.npz"), bits=6, pruning="imp-ft", sparsity=0.5,
                                      epochs=2, patience=2, batch_size=512, max_train=3000,
                                      test_vectors=N_VECTORS, widths=(24, 12, 12)), root / "model")
    hls = hls_stage.run(model.path, root / "hls", hls_stage.options_for_board(BOARD))
    return build(hls, BOARD, root / "overlay", emulation=True)


@pytest.fixture
def emulator(package):
    server = start_emulator([package], board=BOARD)
    yield server
    server.stop()


def _bench(package, host, workdir, *options, timeout=600):
    return subprocess.run([sys.executable, "-m", "psqs.host", "bench", str(package), *map(str, options)],
                          env=client_env(host, workdir / "client"), cwd=workdir, capture_output=True, text=True,
                          timeout=timeout)


def test_bench_through_unmodified_pynq_is_bit_exact(package, emulator, tmp_path):
    report_path, plots = tmp_path / "run.json", tmp_path / "plots"
    proc = _bench(package, emulator.config.host, tmp_path, "--batch-sizes", "1,1000,12000", "--repeats", "3",
                  "--warmup", "1", "--json", report_path, "--plots", plots)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(report_path.read_text())
    accuracy = report["accuracy"]
    assert accuracy["samples_in"] == accuracy["samples_out"] == accuracy["n"] == N_VECTORS
    assert accuracy["sample_set"] == "test vectors" and accuracy["training"]["sample_set"] == "test split"
    assert accuracy["vs_csim"]["exact_samples"] == 1.0 and accuracy["vs_qkeras"]["exact_samples"] == 1.0
    assert 0.2 < accuracy["top1"] <= 1.0
    # the board's bit-exact logits are the package's reference logits: scikit-learn on those
    pkg = OverlayPackage(package)
    vectors, classes = pkg.test_vectors(), pkg.manifest["model"]["classes"]
    probs = softmax(vectors["logits"])
    for c, name in enumerate(classes):
        assert accuracy["auc"][name] == pytest.approx(roc_auc_score(vectors["y"] == c, probs[:, c]), abs=1e-12)
    assert accuracy["confusion_matrix"]["counts"] == confusion_matrix(
        vectors["y"], vectors["logits"].argmax(axis=1), labels=range(len(classes))).tolist()
    timing = pkg.timing
    assert timing["source"] == "estimate" and report["fabric_source"]["label"] == "estimate"
    clock = report["board"]["fclk_mhz_readback"]
    for batch in report["batches"]:
        fabric = batch["fabric_last_transfer"]
        assert fabric["source"] == "estimate" and "measured" not in fabric
        assert fabric["available"] and fabric["trusted"]
        assert fabric["latency_cycles"] == timing["latency_cycles"]           # the probe, filled by the timing model
        assert fabric["latency_ns"] == pytest.approx(fabric["latency_cycles"] * 1e3 / clock)
        if batch["batch_size"] > 1:
            assert fabric["effective_ii_cycles"] == pytest.approx(timing["ii_cycles"])
        assert batch["latency_ms"]["p50"] > 0 and len(batch["latencies_ms"]) == 3
    # one MM2S transfer per call (no batch exceeds a chunk), numbered from the warm-up on
    assert report["warmup"]["mm2s_transfers"] == [1, 1]
    assert [b["repeat_mm2s_transfers"] for b in report["batches"]] == [[[2, 2], [3, 3], [4, 4]],
                                                                      [[5, 5], [6, 6], [7, 7]],
                                                                      [[8, 8], [9, 9], [10, 10]]]
    assert accuracy["mm2s_transfers"] == [11, 11] and report["complete"]
    assert report["batches"][-1]["chunks"] == 1 and report["board"]["reported_board"] == "ZCU104"
    assert clock == pytest.approx(100.0, rel=1e-3)
    assert sorted(p.name for p in plots.iterdir()) == ["confusion_matrix.png", "latency_histogram.png",
                                                        "latency_vs_batch.png", "roc_curves.png",
                                                        "throughput_vs_batch.png"]
    assert "exact vs C simulation 100.00%" in proc.stdout
    assert f"on test vectors, N={N_VECTORS} (training: " in proc.stdout and "on test split, N=" in proc.stdout
    rows = [line.split() for line in proc.stdout.splitlines() if line.split()[:1] in (["1"], ["1000"], ["12000"])]
    assert len(rows) == 3 and all(row[-1] == "estimate" for row in rows)


def test_a_fault_mid_bench_is_named_and_the_finished_batch_sizes_are_kept(package, tmp_path):
    """hang@6: warm-up is transfer 1, batch size 1 transfers 2-4, so transfer 6 is batch size 10's
    second repeat. The run fails (exit 1) naming it, and the partial report keeps batch size 1."""
    server = start_emulator([package], board=BOARD, faults=[Fault("hang", at_transfer=6)])
    try:
        out = tmp_path / "out"
        proc = _bench(package, server.config.host, tmp_path, "--batch-sizes", "1,10,100", "--repeats", "3",
                      "--warmup", "1", "--timeout", "1", "--json", out / "run.json", "--plots", out / "plots",
                      timeout=120)
    finally:
        server.stop()
    assert proc.returncode == 1, proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    assert "batch size 10 repeat 2/3, MM2S transfer 6: DMA S2MM channel: transfer not done" in proc.stderr
    assert f"partial report written to {out / 'run_report.partial.json'}" in proc.stderr
    assert not (out / "run.json").exists()
    partial = json.loads((out / "run_report.partial.json").read_text())
    assert not partial["complete"] and "accuracy" not in partial
    assert [b["batch_size"] for b in partial["batches"]] == [1]
    assert partial["batches"][0]["repeat_mm2s_transfers"] == [[2, 2], [3, 3], [4, 4]]
    assert partial["error"]["phase"] == "batch size 10 repeat 2/3" and partial["error"]["mm2s_transfer"] == 6
    assert partial["error"]["type"] == "DMATimeout"
    assert [line.split()[0] for line in proc.stdout.splitlines()][-1] == "1"     # the summary of what finished


def test_a_stall_that_completes_is_an_outlier_found_by_repeat_and_counted_as_dma_time(package, tmp_path):
    """stall=1500@3 hits batch size 1's second repeat: the report points at it, and the host
    breakdown puts the fabric's delay in ``dma`` (the wait), not in ``to_device`` or ``from_device``."""
    server = start_emulator([package], board=BOARD, faults=[Fault("stall", stall_ms=1500, at_transfer=3)])
    try:
        proc = _bench(package, server.config.host, tmp_path, "--batch-sizes", "1,10", "--repeats", "3",
                      "--warmup", "1", "--json", tmp_path / "run.json", timeout=120)
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr[-4000:]
    batch = json.loads((tmp_path / "run.json").read_text())["batches"][0]
    slow = batch["slowest_repeat"]
    assert (slow["repeat"], slow["mm2s_transfers"]) == (2, [3, 3]) and slow["ms"] >= 1500
    assert batch["latencies_ms"][1] == slow["ms"]
    assert "outlier    batch size 1 repeat 2/3:" in proc.stdout and "(MM2S transfer 3)" in proc.stdout
    breakdown = batch["breakdown_ms"]                  # means over the 3 repeats
    assert breakdown["dma"] >= 1500 / 3
    assert breakdown["to_device"] < 100 and breakdown["from_device"] < 100


FAULT_CLIENT = """
    import time
    from psqs.host.accelerator import Accelerator
    package, kind = sys.argv[1], sys.argv[2]
    acc = Accelerator(package, timeout=1.0)
    vectors = acc.package.test_vectors()
    X, expected = vectors["X"][:300], vectors["csim_logits"][:300]
    t0 = time.monotonic()
    try:
        acc.predict(X)
        emit(first="ok")
    except Exception as exc:
        emit(first=type(exc).__name__, message=str(exc))
    emit(first_seconds=time.monotonic() - t0)
    emit(second_exact=bool(np.array_equal(acc.predict(X), expected)))
"""


@pytest.mark.parametrize("fault, error, message", [
    (Fault("hang"), "DMATimeout", "S2MM channel: transfer not done after"),
    (Fault("decode-error"), "DMAError", "decode error"),
    (Fault("slave-error"), "DMAError", "slave error"),
    (Fault("no-tlast"), "DMAError", "internal error"),
    (Fault("stall", stall_ms=3000), "DMATimeout", "transfer not done after"),
    (Fault("stall", stall_ms=300), "ok", None),
])
def test_injected_faults_give_the_documented_error_and_the_next_call_succeeds(package, emulator, tmp_path,
                                                                               fault, error, message):
    emulator.board.inject(fault)
    result = run_client(FAULT_CLIENT, emulator.config.host, tmp_path, args=(package, fault.kind))
    assert result["first"] == error, result
    if message:
        assert message in result["message"]
        assert result["first_seconds"] < 1.0 + 2.0          # its deadline, not forever
    if fault.kind == "stall" and error == "ok":
        assert result["first_seconds"] >= 0.3
    assert result["second_exact"]


def test_chunks_smaller_than_the_batch_stream_back_to_back(package, emulator, tmp_path):
    """Double buffering across many chunks: the answers stay exact and in order."""
    result = run_client("""
        from psqs.host.accelerator import Accelerator
        acc = Accelerator(sys.argv[1], chunk_samples=700)
        vectors = acc.package.test_vectors()
        logits, timing = acc.timed_predict(vectors["X"][:5000])
        emit(exact=bool(np.array_equal(logits, vectors["csim_logits"][:5000])), chunks=timing.chunks)
    """, emulator.config.host, tmp_path, args=(package,))
    assert result == {"exact": True, "chunks": 8}


def test_input_errors_are_named_before_anything_is_sent(package, emulator, tmp_path):
    result = run_client("""
        from psqs.host.accelerator import Accelerator, InputError
        acc = Accelerator(sys.argv[1])
        X = acc.package.test_vectors()["X"][:20].astype(np.float64)
        X[[3, 17], 5] = np.nan
        for name, bad in (("nan", X), ("shape", X[:, :15]), ("dtype", X.astype(str)), ("empty", X[:0])):
            try:
                acc.predict(bad)
                emit(**{name: "accepted"})
            except InputError as exc:
                emit(**{name: str(exc)})
        huge = acc.package.test_vectors()["X"][:4].astype(np.float64) * 1e6
        logits, timing = acc.timed_predict(huge)
        emit(saturated=timing.saturated, rows=int(logits.shape[0]))
    """, emulator.config.host, tmp_path, args=(package,))
    assert result["nan"] == "2 sample(s) with NaN/inf features, rows [3, 17]"
    assert result["shape"] == "features must have shape (n, 16), got (20, 15)"
    assert result["dtype"].startswith("features must be numeric")
    assert result["empty"] == "no samples"
    assert result["saturated"] > 0 and result["rows"] == 4                   # saturated like the hardware, counted


def test_refusals_before_pynq(package, tmp_path):
    copy = shutil.copytree(package, tmp_path / "copy")
    npz = copy / "test_vectors.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="test_vectors.npz: sha256"):
        Accelerator(copy)
    acc = Accelerator.__new__(Accelerator)
    acc.package = OverlayPackage(package)

    class RemoteDevice:      # pynq 4.0's: its name is the remote board's device tree
        capabilities = {"REMOTE": True}
        name = "Pynq-Z2"

    with pytest.raises(BoardMismatch, match=r"built for zcu104 \(pynq_board 'ZCU104'\); the board reports 'Pynq-Z2'"):
        acc._check_board(RemoteDevice())


def test_pynqmetadata_zynq7_clock_bug_and_its_patch(shared_vendor):
    """Without psqs' patch pynq reads no FCLK frequency from a real PYNQ-Z2 handoff (pynqmetadata
    0.2.0); with it, 100 MHz. If pynqmetadata gets fixed, the first assertion tells us to drop the patch."""
    script = """
import sys
from pynqmetadata.frontends import Metadata
from pynqmetadata.views.runtime import RuntimeMetadataParser
from psqs.host import pynq_compat
if sys.argv[2] == "patched":
    pynq_compat.apply()
print(RuntimeMetadataParser(Metadata(input=sys.argv[1])).clock_dict[0]["frequency"])
"""
    hwh = shared_vendor / "vivado2019_pynqz2_jet_design_1.hwh"
    out = {mode: subprocess.run([sys.executable, "-c", script, str(hwh), mode], capture_output=True, text=True,
                                timeout=120) for mode in ("plain", "patched")}
    assert out["plain"].stdout.strip().splitlines()[-1] == "None", out["plain"].stderr[-2000:]
    assert out["patched"].stdout.strip().splitlines()[-1] == "100.0", out["patched"].stderr[-2000:]
