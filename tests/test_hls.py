"""Stage 2: conversion with hls4ml, proven bit-exact on every rung of the ladder."""
from __future__ import annotations

import json
import os
import shutil
import stat

import numpy as np
import pytest

from conftest import resign_manifest
from psqs.common import codec
from psqs.common.artifact import ArtifactError, read_manifest
from psqs.common.contract import IOContract
from psqs.hls import ladder, stage
from psqs.hls.convert import ConversionError
from psqs.hls.csim import AxisLibrary
from psqs.hls.stage import ConvertOptions
from psqs.qap import stage as qap_stage
from psqs.qap.config import TrainConfig

pytestmark = pytest.mark.slow

TINY = dict(epochs=2, patience=2, batch_size=256, max_train=2000, test_vectors=600, widths=(24, 12, 12))

CASES = {
    "4bit-imp-ft-50": (dict(bits=4, pruning="imp-ft", sparsity=0.5), ConvertOptions()),
    "6bit-bn": (dict(bits=6, bn=True), ConvertOptions(bus_bits=128)),
    "8bit-gradual-60-bn-stream": (dict(bits=8, pruning="gradual", sparsity=0.6, bn=True),
                                  ConvertOptions(io="stream", backend="Vivado")),
    "16bit-dense": (dict(bits=16, relu_integer=2), ConvertOptions()),
}
# Together: pruned and dense, each with and without batch normalization, at 4, 6, 8 and 16 bits.


@pytest.fixture(scope="module")
def converted(tmp_path_factory, synthetic_npz):
    """Each case trained and converted once (the expensive part), shared by the tests below."""
    root = tmp_path_factory.mktemp("hls")
    out = {}
    for name, (train, options) in CASES.items():
        model = qap_stage.run(TrainConfig(data=str(synthetic_npz), **TINY, **train), root / f"{name}-model")
        out[name] = (model.path, stage.run(model.path, root / f"{name}-hls", options))
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_ladder_is_bit_exact(converted, case):
    _, hls_dir = converted[case]
    verify = json.loads((hls_dir / "verify.json").read_text())
    assert verify["success"]
    qkeras, *gates = verify["rungs"]
    assert [r["rung"][0] for r in gates] == ["2", "3"]
    for rung in gates:
        assert rung["exact_outputs"] == 1.0 and rung["exact_samples"] == 1.0, rung
        assert rung["n_samples"] == 600
    axis = gates[1]
    assert axis["samples_out"] == axis["samples_in"] == 600 and axis["tlast_only_on_last_beat"]
    vectors = np.load(hls_dir / "test_vectors.npz")
    np.testing.assert_array_equal(vectors["csim_logits"], vectors["logits"])
    np.testing.assert_array_equal(np.load(hls_dir / "verify" / "rung2_hls4ml.npy"), vectors["logits"])
    np.testing.assert_array_equal(np.load(hls_dir / "verify" / "reference_float64.npy"), vectors["logits"])

    # rung 1: Keras' own float32 predict, an independent computation, reported and not gated
    float32 = np.load(hls_dir / "verify" / "rung1_qkeras_float32.npy")
    assert qkeras["gate"] is False and qkeras["n_samples"] == 600
    assert qkeras["differing_samples"] == int((float32 != vectors["logits"]).any(axis=1).sum())
    assert qkeras["max_abs_diff"] == float(np.abs(float32 - vectors["logits"]).max())
    line = read_manifest(hls_dir, stage.KIND, stage.FORMAT_VERSION)["verification"]["rungs"][0]
    assert line.startswith(f"INFO 1 QKeras float32 predict vs the float64 reference: "
                           f"{qkeras['differing_samples']} of 600 samples differ") and "not a gate" in line


def test_informational_rung_is_reported_not_gated(tmp_path):
    """A float32 model that rounds one sample differently: INFO, the ladder still succeeds; a gate
    that differs fails it."""
    reference = np.arange(20, dtype=np.float64).reshape(4, 5) / 8

    class Float32Model:
        def predict(self, x, batch_size, verbose):
            out = reference.astype(np.float32).copy()
            out[2, 1] += 2 ** -20                     # a rounded sum
            return out

    row, outputs = ladder.qkeras_rung(Float32Model(), np.zeros((4, 16)), reference)
    assert (row["gate"], row["success"], row["differing_samples"], row["max_abs_diff"]) == \
        (False, False, 1, pytest.approx(2 ** -20))
    assert ladder.report_line(row).startswith("INFO 1 QKeras float32 predict vs the float64 reference: "
                                              "1 of 4 samples differ (25.00%)")
    exact_gate = ladder.compare("2 gate", reference, reference)
    assert ladder.save(tmp_path, [row, exact_gate], {"rung1": outputs}, {})["success"]
    assert json.loads((tmp_path / "verify.json").read_text())["rungs"][0]["gate"] is False
    failing_gate = ladder.compare("2 gate", reference, outputs)
    assert not ladder.save(tmp_path, [row, failing_gate], {}, {})["success"]
    assert ladder.gate_failures([row, failing_gate]) == [failing_gate]


def test_contract_describes_the_packing(converted):
    manifest = read_manifest(converted["6bit-bn"][1], stage.KIND, stage.FORMAT_VERSION)
    contract = IOContract.from_dict(manifest["io"])
    assert (contract.input.values, contract.input.field_bits, contract.input.bus_bits) == (16, 16, 128)
    assert (contract.input.values_per_beat, contract.input.beats_per_sample) == (8, 2)
    assert contract.output.values == 5 and contract.output.field_bits == 32   # 18..32-bit logits
    assert contract.output.beats_per_sample == 2                            # 5 x 32 bits on 128
    assert manifest["model"]["classes"] == ["t", "w", "z", "q", "g"]
    assert all(a["fits"] for a in manifest["accumulators"])
    assert manifest["hls"]["vlnv"] == "psqs.org:hls:jet_tagger_axis:1.0"


def test_library_buffers_partial_samples_and_marks_each_transfer(converted):
    """TLAST rule: an output TLAST ends every sample whose input carried TLAST; halves wait."""
    hls_dir = converted["4bit-imp-ft-50"][1]
    manifest = read_manifest(hls_dir, stage.KIND, stage.FORMAT_VERSION)
    contract = IOContract.from_dict(manifest["io"])
    vectors = np.load(hls_dir / "test_vectors.npz")
    scaler_mean = np.array(manifest["model"]["scaler"]["mean"])
    scaler_scale = np.array(manifest["model"]["scaler"]["scale"])
    codes, _ = codec.encode(contract.input, (vectors["X"][:10].astype(np.float64) - scaler_mean) / scaler_scale)
    data = codec.pack(contract.input, codes)
    lib = AxisLibrary(hls_dir / "csim" / "libpsqs_axis.so")   # the moved artifact still finds its weights
    lib.reset()
    beat = contract.input.bus_bytes
    beats = contract.input.beats_per_sample
    last = np.zeros(10 * beats, np.uint8)
    last[3 * beats - 1] = last[10 * beats - 1] = 1                 # two transfers: 3 + 7 samples
    assert lib.push(data[:beat * (beats + 1)], last[:beats + 1]) == 1   # 1 sample and a partial one
    assert lib.pending_in_beats == 1
    assert lib.push(data[beat * (beats + 1):], last[beats + 1:]) == 9
    out, out_last = lib.pop(1000)
    assert out_last.size == 10 * contract.output.beats_per_sample
    assert np.flatnonzero(out_last).tolist() == [3 * contract.output.beats_per_sample - 1, out_last.size - 1]
    logits = codec.decode(contract.output, codec.unpack(contract.output, out))
    np.testing.assert_array_equal(logits, vectors["logits"][:10])


def _rewrite_model(model_dir, target, keras_model):
    """A correctly checksummed model directory holding a different Keras model."""
    shutil.copytree(model_dir, target)
    keras_model.save(target / "model.h5", save_format="h5")
    return resign_manifest(target)


def test_unsupported_and_inexact_layers_are_named(converted, tmp_path):
    import tensorflow as tf

    from psqs.qap import load_model

    model_dir = converted["4bit-imp-ft-50"][0]
    base = load_model(model_dir)
    x = tf.keras.layers.Dropout(0.1, name="drop")(base.layers[-2].output)
    dropout = tf.keras.Model(base.inputs, base.layers[-1](x))
    with pytest.raises(ArtifactError, match=r"model\.h5: refused before loading.*layer 'drop' is a Dropout"):
        stage.run(_rewrite_model(model_dir, tmp_path / "dropout", dropout), tmp_path / "out1", ConvertOptions())
    assert not (tmp_path / "out1").exists()

    features = tf.keras.Input((16,), name="features")
    hidden = tf.keras.layers.Activation("relu", name="relu1")(tf.keras.layers.Dense(8, name="fc1")(features))
    floaty = tf.keras.Model(features, tf.keras.layers.Dense(5, name="output")(hidden))
    float_dir = _rewrite_model(model_dir, tmp_path / "float", floaty)
    with pytest.raises(ConversionError, match=r"layer fc1: float Dense layer.*--allow-inexact"):
        stage.run(float_dir, tmp_path / "out2", ConvertOptions())
    out = stage.run(float_dir, tmp_path / "out3", ConvertOptions(allow_inexact=True))
    manifest = json.loads((out / "manifest.json").read_text())
    assert not manifest["verification"]["success"]            # measured, not hidden
    assert {f["layer"] for f in manifest["inexact_layers"]} == {"fc1", "relu1", "output"}
    rung2 = json.loads((out / "verify.json").read_text())["rungs"][1]
    assert rung2["exact_outputs"] < 1.0 and rung2["max_abs_diff"] > 0


def test_corrupt_or_missing_model_dir(converted, tmp_path):
    with pytest.raises(ArtifactError, match="not a directory"):
        stage.run(tmp_path / "nothing", tmp_path / "out", ConvertOptions())
    copy = shutil.copytree(converted["4bit-imp-ft-50"][0], tmp_path / "model")
    with open(copy / "model.h5", "r+b") as f:
        f.seek(100)
        f.write(b"\x00")
    with pytest.raises(ArtifactError, match="model.h5: sha256"):
        stage.run(copy, tmp_path / "out", ConvertOptions())
    assert not (tmp_path / "out").exists()


def test_vendor_synthesis_with_a_stand_in_tool(converted, tmp_path, shared_vendor, monkeypatch):
    """The --synth plumbing: tool found, script run, csynth XML parsed by hls4ml's reader.

    The stand-in `vitis_hls` writes the real Vitis HLS 2022.2 jet-tagger report where the tool would.
    """
    axis_ip = shutil.copytree(converted["4bit-imp-ft-50"][1] / "axis_ip", tmp_path / "axis_ip")
    fake = tmp_path / "bin" / "vitis_hls"
    fake.parent.mkdir()
    report = shared_vendor / "vitishls2022_u250_jet_myproject_csynth.xml"
    fake.write_text(f"""#!/bin/sh
[ "$1" = "-version" ] && {{ echo "vitis_hls v2022.2 (64-bit)"; exit 0; }}
grep -q "set_top jet_tagger_axis" "$2" || exit 3
mkdir -p jet_tagger_axis_prj/solution1/syn/report
echo '<project name="jet_tagger_axis_prj"><solutions><solution name="solution1"/></solutions></project>' > jet_tagger_axis_prj/hls.app
cp {report} jet_tagger_axis_prj/solution1/syn/report/jet_tagger_axis_csynth.xml
echo "INFO: [HLS 200-111] Finished Command csynth_design"
""")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    result = stage._synthesis_report(ConvertOptions(synth=True), axis_ip)
    assert result["synthesized"] and result["version"] == "2022.2"
    assert result["latency_cycles"] == {"min": 15, "max": 15}
    assert result["resources"]["DSP"] == 2557 and result["resources"]["LUT"] == 116694
    assert (axis_ip / "vendor.log").read_text().startswith("INFO: [HLS 200-111]")
    assert stage._synthesis_report(ConvertOptions(synth=False), axis_ip)["synthesized"] is False
