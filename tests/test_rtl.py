"""psqs rtl end to end: da4ml Verilog, Verilated bit-exact under stalls, timed as stated, packaged.

A tiny 16-8-8 network keeps the C++ builds and yosys short. Both run for real on a fresh machine
(nothing in $PSQS_CACHE); a second run of the suite takes them from the content cache.
"""
from __future__ import annotations

import ctypes
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from conftest import resign_manifest
from psqs.common import codec
from psqs.common.artifact import ArtifactError, read_manifest
from psqs.common.contract import IOContract
from psqs.hls import stage as hls_stage
from psqs.hls.csim import AxisLibrary
from psqs.hls.rtl import cli, ipxact, stage, synth, trace
from psqs.hls.rtl.verilator import RtlLibrary
from psqs.qap import stage as qap_stage
from psqs.qap.artifact import ModelDir
from psqs.qap.config import TrainConfig

pytestmark = pytest.mark.slow

TINY = {"bits": 6, "pruning": "gradual", "sparsity": 0.8, "widths": (16, 8, 8), "epochs": 2, "patience": 2,
        "batch_size": 256, "max_train": 2000, "test_vectors": 600}


@pytest.fixture(scope="module")
def built(tmp_path_factory, synthetic_npz):
    """A model, its HLS directory, and two RTL directories: from the HLS directory (pynq-z2, 64-bit
    streams, adder trees, yosys) and from the model directory (kv260, 128-bit streams, CMVM, depth 2).

    On a fresh machine the tools compile themselves once (numba: da4ml's solver; YoWASP: yosys),
    a minute or two each: that happens in side processes while the model trains.
    """
    warm_ups = {name: subprocess.Popen([sys.executable, "-c", f"from psqs.hls.rtl import {name}; {name}.warm_up()"])
                for name in ("trace", "synth")}
    try:
        root = tmp_path_factory.mktemp("rtl")
        model = qap_stage.run(TrainConfig(data=str(synthetic_npz), **TINY), root / "model").path
        hls = hls_stage.run(model, root / "hls", hls_stage.ConvertOptions())
        assert warm_ups["synth"].wait() == 0
        from_hls = stage.run(hls, root / "rtl-hls", stage.RtlOptions(solver="adder-tree"))
        assert warm_ups["trace"].wait() == 0
        from_model = stage.run(model, root / "rtl-model",
                               stage.RtlOptions(board="kv260", stage_depth=2, solver="cmvm", synth=False))
    finally:
        for process in warm_ups.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return {"model": model, "hls": hls, "from_hls": from_hls, "from_model": from_model, "root": root}


def _manifest(path):
    return read_manifest(path, stage.KIND, stage.FORMAT_VERSION)


def _vectors(path, contract):
    manifest = _manifest(path)
    scaler = manifest["model"]["scaler"]
    vectors = np.load(path / "test_vectors.npz")
    X_std = (vectors["X"].astype(np.float64) - np.asarray(scaler["mean"])) / np.asarray(scaler["scale"])
    codes, _ = codec.encode(contract.input, X_std)
    return codes, vectors["logits"]


@pytest.mark.parametrize("which", ["from_hls", "from_model"])
def test_rtl_is_bit_exact_under_stalls_and_timed_as_stated(built, which):
    path = built[which]
    manifest, verify = _manifest(path), json.loads((path / "verify.json").read_text())
    assert verify["success"] and manifest["verification"]["success"]
    rtl = verify["rungs"][-1]
    assert rtl["rung"] == stage.RTL_RUNG and rtl["success"]
    assert rtl["exact_samples"] == rtl["exact_outputs"] == 1.0 and rtl["n_samples"] == 600
    assert rtl["samples_in"] == rtl["samples_out"] == 600
    assert (rtl["valid_probability"], rtl["ready_probability"]) == (0.7, 0.6)
    assert all(rtl["checks"].values()), rtl["checks"]
    assert rtl["stalled_cycles"] > rtl["free_cycles"]                     # the stalls did stall
    stated = manifest["rtl"]
    assert rtl["latency_cycles"] == stated["latency_cycles"] == manifest["timing"]["latency_cycles"]
    assert rtl["ii_cycles"] == stated["ii_cycles"] == manifest["timing"]["ii_cycles"]
    contract = IOContract.from_dict(manifest["io"])
    assert stated["latency_cycles"] == contract.input.beats_per_sample + stated["pipeline_stages"] + 1
    assert stated["ii_cycles"] == max(contract.input.beats_per_sample, contract.output.beats_per_sample)
    vectors = np.load(path / "test_vectors.npz")
    np.testing.assert_array_equal(vectors["csim_logits"], vectors["logits"])
    np.testing.assert_array_equal(np.load(path / "verify" / "rung5_rtl.npy"), vectors["logits"])


def test_contracts(built):
    """From an HLS directory: its contract, unchanged. From a model directory: the same formats on
    the board's bus (kv260: 128 bits), as psqs convert would derive them."""
    hls_contract = IOContract.from_dict(read_manifest(built["hls"], hls_stage.KIND, hls_stage.FORMAT_VERSION)["io"])
    from_hls = _manifest(built["from_hls"])
    assert IOContract.from_dict(from_hls["io"]) == hls_contract
    assert [r["rung"][0] for r in json.loads((built["from_hls"] / "verify.json").read_text())["rungs"]] == \
        ["1", "2", "3", "4", "5"]
    from_model = IOContract.from_dict(_manifest(built["from_model"])["io"])
    assert from_model.input.format == hls_contract.input.format
    assert from_model.output.format == hls_contract.output.format
    assert from_model.input.bus_bits == from_model.output.bus_bits == 128
    assert (from_model.input.beats_per_sample, from_model.output.beats_per_sample) == (2, 1)
    rtl = _manifest(built["from_model"])["rtl"]
    assert (rtl["stage_depth"], rtl["solver"]) == (2, "cmvm")
    assert rtl["pipeline_stages"] > _manifest(built["from_hls"])["rtl"]["pipeline_stages"]


def test_library_loads_as_axis_library_and_counts_cycles(built, tmp_path):
    """The C ABI of the HLS C simulation, relocatable: partial samples wait, TLAST ends each transfer."""
    path = built["from_hls"]
    manifest = _manifest(path)
    contract = IOContract.from_dict(manifest["io"])
    codes, logits = _vectors(path, contract)
    moved = shutil.copy(path / manifest["emulation"]["library"], tmp_path / "elsewhere.so")
    lib = AxisLibrary(moved)
    cycles = ctypes.CDLL(str(moved)).psqs_cycles
    cycles.restype = ctypes.c_uint64
    lib.reset()
    assert cycles() == 0
    data = codec.pack(contract.input, codes[:10])
    beat, beats = contract.input.bus_bytes, contract.input.beats_per_sample
    last = np.zeros(10 * beats, np.uint8)
    last[3 * beats - 1] = last[10 * beats - 1] = 1                 # two transfers: 3 + 7 samples
    assert lib.push(data[:beat * (beats + 1)], last[:beats + 1]) == 1
    assert lib.pending_in_beats == 1
    first = cycles()
    assert first == beats + 1 + manifest["rtl"]["core_latency_cycles"] + contract.output.beats_per_sample - 1
    assert lib.push(data[beat * (beats + 1):], last[beats + 1:]) == 9
    assert lib.pending_in_beats == 0 and cycles() > first
    out, out_last = lib.pop(1000)
    ob = contract.output.beats_per_sample
    assert np.flatnonzero(out_last).tolist() == [3 * ob - 1, 10 * ob - 1]
    np.testing.assert_array_equal(codec.decode(contract.output, codec.unpack(contract.output, out)), logits[:10])


@pytest.mark.parametrize("valid, ready, seed", [(0.2, 0.15, 7), (1.0, 0.05, 3), (0.9, 1.0, 11)])
def test_no_beat_is_lost_under_any_backpressure(built, valid, ready, seed):
    """Heavy stalls, a sink that is almost never ready (the output FIFO fills and credits hold the
    input), and TLAST at several transfer ends, including mid-stream."""
    path = built["from_model"]
    contract = IOContract.from_dict(_manifest(path)["io"])
    codes, logits = _vectors(path, contract)
    ib, ob = contract.input.beats_per_sample, contract.output.beats_per_sample
    lib = RtlLibrary(path / stage.LIBRARY)
    last = np.zeros(codes.shape[0] * ib, np.uint8)
    ends = [0, 1, 17, 18, 299, codes.shape[0] - 1]
    last[[e * ib + ib - 1 for e in ends]] = 1
    run = lib.stream(codec.pack(contract.input, codes), last, valid, ready, seed)
    assert not run["stuck"] and run["received"] == codes.shape[0] * ob
    got = codec.decode(contract.output, codec.unpack(contract.output, run["data"]))
    np.testing.assert_array_equal(got, logits)
    assert np.flatnonzero(run["last"]).tolist() == [e * ob + ob - 1 for e in ends]
    assert np.all(np.diff(run["out_cycles"]) >= 1) and np.all(np.diff(run["in_cycles"]) >= 1)


def test_ip_package_matches_the_verilog(built):
    path = built["from_hls"]
    ip = _manifest(path)["ip"]
    assert ip["vlnv"] == "psqs.org:psqs:jet_tagger_axis:1.0"
    assert (ip["clock"], ip["reset"], ip["input"], ip["output"]) == ("aclk", "aresetn", "s_axis", "m_axis")
    repo = path / ip["repo"]
    ns = {"spirit": ipxact.SPIRIT}
    root = ET.parse(repo / "component.xml").getroot()
    listed = [f.find("spirit:name", ns).text for f in root.iter(f"{{{ipxact.SPIRIT}}}file")]
    assert all((repo / f).is_file() for f in listed)
    assert [f"{ip['repo']}/{f}" for f in listed if f.endswith(".v")][:len(ip["hdl"])] == ip["hdl"]
    top = (path / ip["hdl"][-1]).read_text()
    start = top.index(f"module {ip['top']} (")
    header = top[start:top.index(");", start)]
    verilog_ports = {}
    for direction, msb, name in re.findall(r"(input|output)\s+wire\s+(?:\[(\d+):0\])?\s*(\w+)", header):
        verilog_ports[name] = (direction[:-3] if direction == "output" else "in", int(msb or 0) + 1)
    xml_ports = {}
    for port in root.iter(f"{{{ipxact.SPIRIT}}}port"):
        left = port.find("spirit:wire/spirit:vector/spirit:left", ns)
        xml_ports[port.find("spirit:name", ns).text] = (port.find("spirit:wire/spirit:direction", ns).text,
                                                        int(left.text) + 1 if left is not None else 1)
    assert xml_ports == verilog_ports


def test_resources_fit_the_part(built):
    path = built["from_hls"]
    resources = json.loads((path / "resources.json").read_text())
    assert resources["synthesized"] and resources["family"] == "xc7" and resources["part"] == "xc7z020clg400-1"
    used = resources["resources"]
    assert used["LUT"] > 0 and used["CARRY"] > 0 and used["DSP"] == 0 and used["BRAM_18K"] == 0
    assert used["FF"] > 0 and used["LUT_memory"] > 0                     # the output FIFO is LUT RAM
    assert resources["fits"] and resources["overflows"] == [] and not resources["unclassified_cells"]
    assert _manifest(path)["resources"]["resources"] == used
    assert _manifest(built["from_model"])["resources"] == {
        "synthesized": False, "reason": "synthesis not requested (psqs rtl --synth)"}


def test_rerun_through_the_cli_hits_the_caches(built, tmp_path, capsys):
    """Same HDL, same tools: the Verilated library and the yosys counts come from the cache."""
    import argparse

    parser = argparse.ArgumentParser(prog="psqs")
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["rtl", str(built["hls"]), "--out", str(tmp_path / "again"), "--solver", "adder-tree"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "SUCCESS 5 RTL" in printed and "(cached)" in printed
    manifest = _manifest(tmp_path / "again")
    assert manifest["emulation"]["cached"] and manifest["resources"]["cached"]
    first = _manifest(built["from_hls"])
    for name in manifest["ip"]["hdl"]:
        assert manifest["files"][name] == first["files"][name]      # the generation is deterministic


def test_model_mismatch_and_untraceable_layers_are_named(built, tmp_path):
    hls = shutil.copytree(built["hls"], tmp_path / "hls")
    resign_manifest(hls, lambda fields: fields["model"].update(model_sha256="0" * 64))
    with pytest.raises(ArtifactError, match=r"model\.h5: sha256 .* is not that of the model"):
        stage.run(hls, tmp_path / "out", stage.RtlOptions(synth=False))
    with pytest.raises(ArtifactError, match="neither an HLS directory"):
        stage.run(built["from_hls"], tmp_path / "out", stage.RtlOptions(synth=False))
    assert not (tmp_path / "out").exists()

    from psqs.qap import load_model

    model = load_model(built["model"])
    kernel, bias = model.get_layer("fc2").get_weights()
    model.get_layer("fc2").set_weights([kernel + 2.0 ** -9, bias])
    with pytest.raises(trace.TraceError, match=r"layer fc2 kernel: 128 value\(s\) are not on the ap_fixed<6,1"):
        trace.trace(model, ModelDir(built["model"]).input_format, "adder-tree")


def test_yosys_reports_what_does_not_fit(built):
    """A part with 100 LUTs: the same (cached) synthesis, judged against its capacity."""
    import dataclasses

    from psqs.board_configs import load_board

    path = built["from_hls"]
    ip = _manifest(path)["ip"]
    sources = {name[len(ip["repo"]) + 1:]: (path / name).read_text() for name in ip["hdl"]}
    small = dataclasses.replace(load_board("pynq-z2"), resources={"LUT": 100, "FF": 100000, "DSP": 0, "BRAM_18K": 0})
    result = synth.synthesize(sources, ip["top"], small)
    assert result["cached"] and not result["fits"]
    assert len(result["overflows"]) == 1 and result["overflows"][0].startswith("LUT: ")


def test_rtl_overlay_runs_on_the_emulated_board(built, tmp_path):
    """The RTL IP as the overlay's model: the emulator runs the Verilated library, so the host sees
    the RTL's outputs and the probe counts the RTL's own cycles."""
    from test_emulator_support import run_local_client

    from psqs.common.package import OverlayPackage
    from psqs.overlays.build import build

    package = OverlayPackage(build(built["from_hls"], "pynq-z2", tmp_path / "overlay", emulation=True))
    assert package.timing["source"] == "rtl" and package.manifest["emulation_model"]["kind"] == "rtl"
    result = run_local_client("""
        from psqs.host.accelerator import Accelerator
        acc = Accelerator(sys.argv[1])
        vectors = acc.package.test_vectors()
        acc.probe.clear()
        logits = acc.predict(vectors["X"])
        snap = acc.probe.snapshot()
        emit(exact=bool(np.array_equal(logits, vectors["csim_logits"])), n=int(logits.shape[0]),
             latency=snap.last_latency, in_beats=snap.in_beats)
    """, [package.path], tmp_path / "client", args=(package.path,))
    manifest = _manifest(built["from_hls"])
    assert result["exact"] and result["n"] == 600
    assert result["in_beats"] == 600 * package.contract.input.beats_per_sample
    assert result["latency"] == manifest["timing"]["latency_cycles"]
