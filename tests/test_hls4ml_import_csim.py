"""An hls4ml user's VivadoAccelerator project: read as written by hls4ml 1.3, and its myproject_axi
top simulated bit-exactly by psqs's g++ harness, driven through psqs's own C-simulation ABI.

The reference is hls4ml's own C simulation of the same project (``hls_model.predict``: hls4ml's
build script, its bridge, its float-to-element conversion in C, its weights compiled in), against
psqs's library (the user's firmware staged with psqs's harness, raw beats in and out through
``AxisLibrary``, weights read at run time).
"""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from hls4ml_projects import hls4ml_project, write_project
from psqs.common.contract import IOContract, StreamLayout
from psqs.common.fixed_point import FixedFormat
from psqs.hls.csim import LIBRARY_NAME, AxisLibrary
from psqs.overlays.from_hls4ml.csim import build_csim
from psqs.overlays.from_hls4ml.project import Hls4mlProjectError, parse_element, read_project

FLOAT, FIXED = "float", "ap_fixed<16,6>"
N_SAMPLES = 2000
#: psqs's numpy reading of hls4ml's ``ap_fixed<16,6>`` (ap_fixed's defaults: truncate, wrap)
AP_FIXED_16_6 = FixedFormat(16, 6, True, "TRN", "WRAP")

_LIBRARIES: dict = {}


def _tree(directory: Path) -> dict:
    return {str(f.relative_to(directory)): f.read_bytes() for f in sorted(directory.rglob("*")) if f.is_file()}


def _library(tmp_path_factory, element: str, hand_fix: bool = True, io: str = "io_parallel"):
    """(project, library, g++ seconds) for the project with this element type, built once; the
    build leaves the user's project exactly as it was."""
    key = (element, hand_fix, io)
    if key not in _LIBRARIES:
        project = hls4ml_project(tmp_path_factory, element, hand_fix=hand_fix, io_type=io)
        before = _tree(project.directory)
        out = tmp_path_factory.mktemp("hls4ml_csim") / LIBRARY_NAME
        seconds = build_csim(read_project(project.directory), out)
        assert _tree(project.directory) == before
        print(f"g++ build of the {element} {io} harness (hand_fix={hand_fix}): {seconds:.1f} s")
        _LIBRARIES[key] = (project, AxisLibrary(out), seconds)
    return _LIBRARIES[key]


def _inputs(n: int, seed: int = 1) -> np.ndarray:
    """Random features: mostly within ap_fixed<16,6>'s range, every tenth row far outside it."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, 4.0, size=(n, 16))
    X[::10] *= 25.0
    return X.astype(np.float32)


def _encode(io_type: str, X: np.ndarray) -> np.ndarray:
    """The bytes a DMA sends for X: one element per beat, little-endian."""
    if io_type == FLOAT:
        return np.ascontiguousarray(X, dtype="<f4").view(np.uint8).ravel()
    return AP_FIXED_16_6.to_codes(X).astype("<i2").view(np.uint8).ravel()


def _decode(io_type: str, data: np.ndarray) -> np.ndarray:
    """Output beats as values (exact: float32, or 16-bit codes times 2**-10)."""
    if io_type == FLOAT:
        return data.view("<f4").astype(np.float64)
    return AP_FIXED_16_6.from_codes(data.view("<i2"))


def _run(lib: AxisLibrary, data: np.ndarray, last: np.ndarray):
    lib.reset()
    lib.push(data, last)
    return lib.pop(lib.pending_out_beats)


@pytest.mark.slow
@pytest.mark.parametrize("io_type, io", [(FLOAT, "io_parallel"), (FIXED, "io_parallel"), (FLOAT, "io_stream")])
def test_harness_equals_hls4ml_csim_bit_for_bit(tmp_path_factory, io_type, io):
    project, lib, _ = _library(tmp_path_factory, io_type, io=io)
    X64 = _inputs(N_SAMPLES).astype(np.float64) * (1.0 + 1e-9)     # not float32 values
    X = X64.astype(np.float32)
    t0 = time.perf_counter()
    out, last = lib.transfer(_encode(io_type, X))
    print(f"{io_type} {io}: {N_SAMPLES} samples through the harness in {time.perf_counter() - t0:.3f} s")
    assert last.size == N_SAMPLES * 5 and lib.pending_in_beats == 0
    if io_type == FLOAT:
        # hls4ml's bridge passes numpy's float32 into input_axi_t as the same float, and the
        # top converts it to input_t in C: the very conversion the harness runs on the beat
        reference = project.predict(X).astype(np.float32)
        assert np.array_equal(out.view("<u4"), reference.ravel().view(np.uint32))
        # given float64, hls4ml's bridge stores each double into the float T_in (rounding to
        # nearest, as numpy's astype(float32) does) before the top converts it: the same again
        assert np.array_equal(project.predict(X64).astype(np.float32), reference)
    else:
        # the beats carry T_in codes, so hls4ml gets the values those codes stand for (exact in
        # float32); its own C conversion of the raw floats lands on the same codes (TRN, WRAP)
        X_codes = AP_FIXED_16_6.quantize(X).astype(np.float32)
        reference = project.predict(X_codes).astype(np.float64)
        assert np.array_equal(_decode(io_type, out), reference.ravel())
        assert np.array_equal(project.predict(X), project.predict(X_codes))
    assert np.ptp(reference) > 1.0     # not a network that outputs a constant


@pytest.mark.slow
@pytest.mark.parametrize("io_type", [FLOAT, FIXED])
def test_bus_bytes_and_beats_follow_the_element_type(tmp_path_factory, io_type):
    project, lib, _ = _library(tmp_path_factory, io_type)
    expected_bytes = np.dtype(np.float32).itemsize if io_type == FLOAT else 16 // 8
    info = read_project(project.directory)
    assert lib.in_bus_bytes == lib.out_bus_bytes == expected_bytes == info.input.bus_bytes == info.output.bus_bytes
    hls_model = project.hls_model
    n_in = int(np.prod(hls_model.get_input_variables()[0].shape))
    n_out = int(np.prod(hls_model.get_output_variables()[0].shape))
    assert (lib.in_beats_per_sample, lib.out_beats_per_sample) == (n_in, n_out) == (info.input.values, info.output.values)


@pytest.mark.slow
def test_tlast_marks_the_last_output_beat_of_each_sample_whose_input_carried_it(tmp_path_factory):
    project, lib, _ = _library(tmp_path_factory, FIXED)
    n, n_in, n_out = 40, lib.in_beats_per_sample, lib.out_beats_per_sample
    rng = np.random.default_rng(2)
    last_in = (rng.random(n * n_in) < 0.02).astype(np.uint8)   # anywhere in a sample, or nowhere
    last_in[n_in - 1] = 1
    last_in[5 * n_in: 6 * n_in] = 0
    _, last_out = _run(lib, _encode(FIXED, _inputs(n)), last_in)
    expected = np.zeros((n, n_out), dtype=np.uint8)
    expected[:, -1] = last_in.reshape(n, n_in).any(axis=1)
    assert np.array_equal(last_out, expected.ravel())
    assert 0 < expected.sum() < n


@pytest.mark.slow
def test_library_and_weights_move_together(tmp_path, tmp_path_factory):
    """hls4ml's firmware reads its weights from WEIGHTS_DIR, which the build points at weights/
    beside the library: moved together (into a package, say), the copy computes the same."""
    project, lib, _ = _library(tmp_path_factory, FLOAT)
    moved = tmp_path / "package" / "csim"
    shutil.copytree(lib.path.parent, moved)
    assert sorted(p.name for p in (moved / "weights").iterdir()) == \
        sorted(p.name for p in (project.directory / "firmware" / "weights").glob("*.txt"))
    data = _encode(FLOAT, _inputs(100, seed=6))
    assert np.array_equal(AxisLibrary(moved / LIBRARY_NAME).transfer(data)[0], lib.transfer(data)[0])


@pytest.mark.slow
def test_a_partial_sample_stays_buffered_across_calls(tmp_path_factory):
    project, lib, _ = _library(tmp_path_factory, FLOAT)
    n = 7
    data = _encode(FLOAT, _inputs(n, seed=3))
    last = np.zeros(n * 16, dtype=np.uint8)
    last[-1] = 1
    whole, whole_last = _run(lib, data, last)

    lib.reset()
    rng = np.random.default_rng(4)
    cuts = np.sort(rng.choice(np.arange(1, n * 16), size=12, replace=False))
    pieces, flags = [], []
    for start, stop in zip([0, *cuts], [*cuts, n * 16]):
        computed = lib.push(data[start * 4: stop * 4], last[start:stop])
        assert lib.pending_in_beats == stop % 16
        assert computed == stop // 16 - start // 16
        piece, flag = lib.pop(lib.pending_out_beats)
        pieces.append(piece)
        flags.append(flag)
    assert np.array_equal(np.concatenate(pieces), whole)
    assert np.array_equal(np.concatenate(flags), whole_last)

    lib.push(data[:10 * 4], last[:10])          # reset drops a partial sample, as a FIFO reset does
    lib.reset()
    assert (lib.pending_in_beats, lib.pending_out_beats) == (0, 0)


@pytest.mark.slow
def test_project_as_hls4ml_wrote_it_builds_the_same_ip(tmp_path_factory):
    """hls4ml 1.3 spells the ap_fixed element types in its own notation (no compiler accepts
    it); the reader takes that for the type its users fix it to, and the library is the same."""
    raw, raw_lib, _ = _library(tmp_path_factory, FIXED, hand_fix=False)
    fixed, fixed_lib, _ = _library(tmp_path_factory, FIXED)
    header = (raw.directory / "firmware" / "myproject_axi.h").read_text()
    spelled = re.search(r"typedef (\S+) T_in;", header).group(1)
    assert not spelled.startswith("ap_")
    assert read_project(fixed.directory).input == read_project(raw.directory).input
    assert parse_element(spelled) == read_project(fixed.directory).input.format
    for weights in sorted((fixed.directory / "firmware" / "weights").glob("*.txt")):
        assert (raw.directory / "firmware" / "weights" / weights.name).read_bytes() == weights.read_bytes()
    data = _encode(FIXED, _inputs(300, seed=5))
    assert np.array_equal(raw_lib.transfer(data)[0], fixed_lib.transfer(data)[0])


@pytest.mark.parametrize("text, expected", [
    ("float", "float32"),
    ("double", "float64"),
    ("ap_fixed<16,6>", FixedFormat(16, 6, True, "TRN", "WRAP")),
    ("fixed<16,6,TRN,WRAP,0>", FixedFormat(16, 6, True, "TRN", "WRAP")),
    ("ap_ufixed<8, 0, AP_RND_CONV, AP_SAT>", FixedFormat(8, 0, False, "RND_CONV", "SAT")),
    ("ufixed<24,4,RND,SAT,0>", FixedFormat(24, 4, False, "RND", "SAT")),
    ("ap_int<8>", FixedFormat(8, 8, True, "TRN", "WRAP")),
    ("uint<32>", FixedFormat(32, 32, False, "TRN", "WRAP")),
])
def test_element_spellings(text, expected):
    element = parse_element(text)
    assert element == expected
    # the C++ spelling the harness compiles (the contract's element type) reads back the same
    assert parse_element(StreamLayout.one_per_beat(3, element).element_type()) == element


@pytest.mark.parametrize("text, message", [
    ("ap_fixed<12,4>", "width 12 is not whole bytes"),
    ("fixed<16,6,RND_ZERO,WRAP,0>", "rounding 'RND_ZERO'"),
    ("ap_fixed<16,6,AP_TRN,AP_SAT_SYM>", "overflow 'SAT_SYM'"),
    ("ap_fixed<16,6,AP_TRN,AP_SAT,2>", "saturation bits 2"),
    ("half", "not float, double or an ap_fixed"),
])
def test_unsupported_element_types(text, message):
    with pytest.raises((ValueError,), match=re.escape(message)):
        parse_element(text)


# ---- the project reader -------------------------------------------------------------------------

def _copy(tmp_path, project) -> Path:
    return shutil.copytree(project.directory, tmp_path / "project")


def _xml_figures(text: str) -> dict:
    """The csynth figures, read from the XML text with regular expressions (not ElementTree)."""
    tag = lambda name: re.search(rf"<{name}>\s*([^<]*?)\s*</{name}>", text).group(1)
    number = lambda name: int(tag(name)) if tag(name).isdigit() else float(tag(name))
    return {"top": tag("TopModelName"), "tool_version": tag("Version"), "part": tag("Part"),
            "clock_ns": {"target": number("TargetClockPeriod"), "estimated": number("EstimatedClockPeriod")},
            "latency_cycles": {"min": number("Best-caseLatency"), "max": number("Worst-caseLatency")},
            "interval_cycles": {"min": number("Interval-min"), "max": number("Interval-max")}}


def _place_report(directory, xml, report_name, solution="solution1"):
    target = directory / "myproject_prj" / solution / "syn" / "report" / report_name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(xml, target)
    return target


@pytest.mark.slow
def test_reader_against_hls4mls_own_model(tmp_path_factory):
    project = hls4ml_project(tmp_path_factory, FLOAT)
    info = read_project(project.directory)
    config = project.hls_model.config
    assert info.name == config.get_project_name() and info.top == f"{config.get_project_name()}_axi"
    assert info.clock_period_ns == float(config.get_config_value("ClockPeriod"))
    assert info.part == config.get_config_value("Part")
    assert info.io_type == config.get_config_value("IOType")
    assert info.board == config.get_config_value("AcceleratorConfig")["Board"]
    assert info.input_shape == tuple(project.hls_model.get_input_variables()[0].shape)
    assert info.output_shape == tuple(project.hls_model.get_output_variables()[0].shape)
    assert info.input.element == info.output.element == "float32"
    assert IOContract.from_dict(json.loads(json.dumps(info.to_dict()))["io"]) == info.contract
    assert info.csynth is None        # no vendor HLS ran here: no figures, none invented


@pytest.mark.slow
@pytest.mark.parametrize("vendor_xml, report_name", [
    ("vivadohls2019_pynqz2_jet_myproject_axi_csynth.xml", "myproject_axi_csynth.xml"),
    ("vivadohls2019_zu5ev_cnn_myproject_axi_csynth.xml", "myproject_axi_csynth.xml"),
    ("vivadohls2019_pynqz2_jet_myproject_csynth.xml", "myproject_csynth.xml"),
    ("vitishls2022_u250_jet_myproject_csynth.xml", "myproject_csynth.xml"),
    ("vitishls2025_7z020_iris_myproject_csynth.xml", "myproject_csynth.xml"),
])
def test_reader_takes_the_real_csynth_reports(tmp_path, tmp_path_factory, shared_vendor, vendor_xml, report_name):
    directory = _copy(tmp_path, hls4ml_project(tmp_path_factory, FLOAT))
    placed = _place_report(directory, shared_vendor / vendor_xml, report_name)
    csynth = read_project(directory).csynth
    assert csynth == {"provenance": "hls-report", "xml": str(placed.relative_to(directory)),
                      **_xml_figures((shared_vendor / vendor_xml).read_text())}


@pytest.mark.slow
def test_the_ip_report_wins_over_the_networks(tmp_path, tmp_path_factory, shared_vendor):
    directory = _copy(tmp_path, hls4ml_project(tmp_path_factory, FLOAT))
    _place_report(directory, shared_vendor / "vivadohls2019_pynqz2_jet_myproject_csynth.xml", "myproject_csynth.xml")
    _place_report(directory, shared_vendor / "vivadohls2019_pynqz2_jet_myproject_csynth.xml",
                  "myproject_axi_csynth.xml", solution="solution0")
    axi = _place_report(directory, shared_vendor / "vivadohls2019_pynqz2_jet_myproject_axi_csynth.xml",
                        "myproject_axi_csynth.xml")
    csynth = read_project(directory).csynth
    assert csynth["xml"] == str(axi.relative_to(directory))
    assert csynth["latency_cycles"] == _xml_figures(axi.read_text())["latency_cycles"]


# ---- errors: one line, naming the file ----------------------------------------------------------

def _edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.slow
@pytest.mark.parametrize("break_it, names, message", [
    (lambda d: (d / "hls4ml_config.yml").unlink(), "", "not an hls4ml project (no hls4ml_config.yml)"),
    (lambda d: _edit(d / "hls4ml_config.yml", "Backend: VivadoAccelerator", "Backend: Vivado"),
     "hls4ml_config.yml", "Backend 'Vivado', not VivadoAccelerator"),
    (lambda d: _edit(d / "hls4ml_config.yml", "Interface: axi_stream", "Interface: axi_master"),
     "hls4ml_config.yml", "Interface 'axi_master' is not supported"),
    (lambda d: (d / "firmware" / "myproject_axi.cpp").unlink(), "firmware/myproject_axi.cpp", "missing"),
    (lambda d: (d / "firmware" / "parameters.h").unlink(), "firmware/parameters.h", "missing"),
    (lambda d: shutil.rmtree(d / "firmware" / "weights"), "firmware/weights", "missing"),
    (lambda d: _edit(d / "firmware" / "myproject_axi.h", "typedef float T_in;", ""),
     "firmware/myproject_axi.h", "no `typedef ... T_in;`"),
    (lambda d: _edit(d / "firmware" / "myproject_axi.h", "typedef float T_out;", "typedef ap_fixed<12,4> T_out;"),
     "firmware/myproject_axi.h", "T_out: 'ap_fixed<12,4>': width 12 is not whole bytes"),
    (lambda d: _edit(d / "firmware" / "myproject_axi.h", "N_OUT = 5;", "N_OUT = 6;"),
     "hls4ml_config.yml", "OutputShapes layer8_out [5] has 5 elements, but N_OUT in the firmware is 6"),
    (lambda d: _edit(d / "hls4ml_config.yml", "ProjectName: myproject", "ProjectName: ''"),
     "hls4ml_config.yml", "no ProjectName"),
    (lambda d: _place_report(d, d / "hls4ml_config.yml", "myproject_axi_csynth.xml"),
     "myproject_prj/solution1/syn/report/myproject_axi_csynth.xml", "unreadable csynth report"),
])
def test_bad_projects_are_named(tmp_path, tmp_path_factory, break_it, names, message):
    directory = _copy(tmp_path, hls4ml_project(tmp_path_factory, FLOAT))
    break_it(directory)
    with pytest.raises(Hls4mlProjectError) as err:
        read_project(directory)
    text = str(err.value)
    assert "\n" not in text and message in text and str(directory / names).rstrip("/") in text


@pytest.mark.slow
def test_an_axi_lite_project_is_refused(tmp_path):
    """A real axi_lite project for PYNQ-Z2, as far as hls4ml 1.3 writes it: it ships no
    axi_lite_driver.py and stops there, after the firmware and hls4ml_config.yml."""
    directory = tmp_path / "axi_lite"
    with pytest.raises(FileNotFoundError, match="axi_lite_driver.py"):
        write_project(directory, FLOAT, interface="axi_lite")
    assert (directory / "hls4ml_config.yml").is_file() and (directory / "firmware" / "myproject.cpp").is_file()
    with pytest.raises(Hls4mlProjectError, match="Interface 'axi_lite' is not supported .only 'axi_stream'"):
        read_project(directory)
