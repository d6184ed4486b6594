"""``psqs import-hls4ml`` on what an hls4ml user has: a ``VivadoAccelerator`` project written here
by hls4ml 1.3 (16 inputs, 5 outputs, ``float`` AXI streams), the real PYNQ-Z2 jet-tagger handoff of
that layout (``hier_0/axi_dma_0`` + ``hier_0/myproject_axi_0``, 32-bit float streams; from
../shared/data/vendor) and a ``.bit`` whose header names that design and part (no Vivado here).
The ``ap_fixed<16,6>`` interface is the same project written with ``ap_fixed`` I/O and a handoff
DERIVED from the real one by making its two streams 16 bits wide
(:func:`hls4ml_projects.stream_width_variant`; no one has built that design with Vivado here).

Every output is compared with hls4ml's own C simulation of the project (``HLSModel.predict``,
hls4ml's library of the ``myproject`` top), which psqs does not use: the package's C simulation,
``psqs bench`` through pynq's on-board path, and hls4ml's own ``NeuralNetworkOverlay`` driver,
loaded unchanged from the project, in each PYNQ image's environment.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hls4ml_projects import hls4ml_project, stream_width_variant
from test_board_install import IMAGES, board_python, envs, wheel  # noqa: F401
from test_onboard_images import on_board

from psqs.common.package import OverlayPackage
from psqs.deploy.cli import main
from psqs.deploy.emulator.local_device import environment
from psqs.overlays import bitfile

pytestmark = pytest.mark.slow

N = 10000
JET_HWH = "vivado2019_pynqz2_jet_design_1.hwh"
DESIGN, PART = "design_1_wrapper;UserID=0XFFFFFFFF;Version=2019.1", "7z020clg400"


def fake_bit(path: Path, design: str = DESIGN, part: str = PART) -> Path:
    """A ``.bit`` container with Vivado's header fields (the configuration data is not a design)."""
    path.write_bytes(bitfile.container(design, part, bytes(range(256)) * 64, datetime(2019, 11, 5, 14, 2)))
    return path


def import_args(project: Path, bit: Path, hwh: Path, out: Path, data: Path | None) -> list[str]:
    return ["-q", "import-hls4ml", "--project", str(project), "--bit", str(bit), "--hwh", str(hwh),
            "--out", str(out), *(["--test-data", str(data)] if data else [])]


@pytest.fixture(scope="module")
def imported(tmp_path_factory, shared_vendor):
    project = hls4ml_project(tmp_path_factory, "float")
    root = tmp_path_factory.mktemp("imported")
    rng = np.random.default_rng(7)
    X = rng.normal(0, 1.5, size=(N, 16))
    y = rng.integers(0, 5, size=N)
    np.savez(root / "jets.npz", X=X, y=y)
    bit, hwh = fake_bit(root / "design_1_wrapper.bit"), shared_vendor / JET_HWH
    out = root / "pkg"
    assert main(import_args(project.directory, bit, hwh, out, root / "jets.npz")) == 0
    return SimpleNamespace(project=project, package=out, X=X, y=y, bit=bit, hwh=hwh, root=root,
                           expected=project.predict(X.astype(np.float32)))


def test_the_package_holds_the_users_files_and_the_c_simulation_of_their_top(imported):
    package = OverlayPackage(imported.package)          # verifies every sha256
    assert package.bitstream.read_bytes() == imported.bit.read_bytes()
    assert package.hwh.read_bytes() == imported.hwh.read_bytes()
    source = package.manifest["source"]
    assert source["kind"] == "hls4ml" and package.manifest["files"][package.hwh.name] == source["hwh"]["sha256"]
    assert package.dma.name == "hier_0/axi_dma_0" and package.probe is None and not package.emulation
    contract = package.contract
    assert (contract.input.element, contract.input.values, contract.output.values) == ("float32", 16, 5)
    # the package's reference outputs are hls4ml's own C simulation, bit for bit
    vectors = package.test_vectors()
    assert np.array_equal(vectors["csim_logits"], imported.expected) and np.array_equal(vectors["y"], imported.y)
    assert package.timing["source"] == "estimate"      # no csynth report here: nothing taken as a report


def bench_on_board(package: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """``psqs bench`` (batch sizes 1 and N) through pynq 4.0's on-board path on the emulated PYNQ-Z2."""
    report_path = tmp_path / "run.json"
    proc = subprocess.run([sys.executable, "-m", "psqs.deploy.emulator.local_device", "-m", "psqs.host", "bench",
                           str(package), "--batch-sizes", f"1,{N}", "--repeats", "2", "--json", str(report_path)],
                          env=environment("pynq-z2", [package], tmp_path / "client"),
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(report_path.read_text())


def test_psqs_bench_on_the_imported_package(imported, tmp_path):
    """pynq 4.0's on-board path on the emulated PYNQ-Z2: exact, every sample back, accuracy against
    the labels as computed here, and no fabric figure (no probe in an hls4ml design)."""
    proc, report = bench_on_board(imported.package, tmp_path)
    accuracy = report["accuracy"]
    assert accuracy["samples_in"] == accuracy["samples_out"] == N
    assert accuracy["vs_csim"]["exact_samples"] == 1.0 and accuracy["vs_qkeras"] is None
    assert accuracy["top1"] == pytest.approx(np.mean(imported.expected.argmax(axis=1) == imported.y), abs=0)
    assert report["fabric_source"]["label"] == "none"
    assert not any(b["fabric_last_transfer"]["available"] for b in report["batches"])
    assert "fabric     figures: none" in proc.stdout


DRIVER_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    sys.path.insert(0, sys.argv[2])                   # the project's own axi_stream_driver.py
    from axi_stream_driver import NeuralNetworkOverlay
    X = np.load(sys.argv[3])["X"].astype(np.float32)
    nn = NeuralNetworkOverlay(sys.argv[1], X.shape, (X.shape[0], 5))
    plain = np.array(nn.predict(X))
    profiled, seconds, rate = nn.predict(X, profile=True)
    np.savez(sys.argv[4], plain=plain, profiled=np.array(profiled))
    print("RESULT " + json.dumps({"seconds": seconds, "rate": rate}))
""")


def test_hls4ml_own_driver_runs_unchanged_on_each_images_on_board_path(imported, board_python, tmp_path):
    """hls4ml 1.3's ``NeuralNetworkOverlay`` (the file hls4ml wrote into the project, not edited)
    with the image's own pynq: ``predict`` with and without ``profile``, bit-exact on 10,000 jets."""
    driver = imported.project.directory / "axi_stream_driver.py"
    assert "class NeuralNetworkOverlay(Overlay)" in driver.read_text()
    script, result = tmp_path / "user_script.py", tmp_path / "outputs.npz"
    script.write_text(DRIVER_SCRIPT)
    package = OverlayPackage(imported.package)
    proc = on_board(board_python, [script, package.bitstream, imported.project.directory,
                                   imported.root / "jets.npz", result], imported.package, tmp_path)
    outputs = np.load(result)
    for key in ("plain", "profiled"):
        assert outputs[key].dtype == np.float32
        assert np.array_equal(outputs[key], imported.expected), key
    assert json.loads(proc.stdout.split("RESULT ", 1)[1])["rate"] > 0


@pytest.mark.parametrize("case, message", [
    ("fixed-project", "declares input elements of 16 bits"),
    ("other-design", "built from design 'other_wrapper'"),
    ("other-part", "built for part 7z010clg400"),
    ("no-dma", "no AXI DMA"),
    ("no-test-data", "no test inputs"),
])
def test_import_refuses_files_that_do_not_belong_together(case, message, imported, shared_vendor, tmp_path,
                                                          tmp_path_factory, capsys):
    project, bit, hwh = imported.project.directory, imported.bit, imported.hwh
    data = imported.root / "jets.npz"
    if case == "fixed-project":
        project = hls4ml_project(tmp_path_factory, "ap_fixed<16,6>").directory
    elif case == "other-design":
        bit = fake_bit(tmp_path / "other.bit", design="other_wrapper;UserID=0XFFFFFFFF")
    elif case == "other-part":
        bit = fake_bit(tmp_path / "z1.bit", part="7z010clg400")
    elif case == "no-dma":
        hwh = shared_vendor / "vivado2025_pynqz2_iris_gpio_nodma_design_1.hwh"
    else:
        data = None
    capsys.readouterr()
    assert main(import_args(project, bit, hwh, tmp_path / "out", data)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the ap_fixed interface

FIXED, FRACTION = "ap_fixed<16,6>", 10        # 2**(16 - 6): what one LSB of the 16-bit code is worth


@pytest.fixture(scope="module")
def imported_fixed(tmp_path_factory, shared_vendor, imported):
    """The ``ap_fixed<16,6>`` project imported with the derived 16-bit handoff and the same jets."""
    project = hls4ml_project(tmp_path_factory, FIXED)
    root = tmp_path_factory.mktemp("imported_fixed")
    hwh = stream_width_variant(shared_vendor / JET_HWH, root / "design_1.hwh", 16)
    bit = fake_bit(root / "design_1_wrapper.bit")
    out = root / "pkg"
    assert main(import_args(project.directory, bit, hwh, out, imported.root / "jets.npz")) == 0
    return SimpleNamespace(project=project, package=out, hwh=hwh, bit=bit, root=root, X=imported.X, y=imported.y,
                           jets=imported.root / "jets.npz")


def on_the_grid(X: np.ndarray) -> np.ndarray:
    """The values ``ap_fixed<16,6>`` (AP_TRN, AP_WRAP) holds for ``X``: truncated to 2**-10; these
    jets stay inside its +-32, so nothing wraps."""
    assert np.abs(X).max() < 2 ** 5
    return np.floor(X * 2 ** FRACTION) / 2 ** FRACTION


def test_the_16_bit_handoff_is_the_real_one_with_only_its_stream_widths_changed(imported_fixed, shared_vendor):
    """What pynq (pynqmetadata, as pynq 3.x/4.0 parse a handoff) and psqs read from the derived
    handoff equals what they read from the real one, except the stream widths, 32 -> 16 bits."""
    from pynq.metadata.runtime_metadata_parser import RuntimeMetadataParser
    from pynqmetadata.frontends import Metadata

    from psqs.overlays.from_hls4ml import hwh

    real_path = shared_vendor / JET_HWH
    ips = [RuntimeMetadataParser(Metadata(str(p))).ip_dict for p in (real_path, imported_fixed.hwh)]
    assert ips[0].keys() == ips[1].keys()
    widths = {f"{side}_axis_{ch}_tdata_width" for side, ch in (("c_m", "mm2s"), ("c_s", "s2mm"))}
    for name in ips[0]:
        for key in ("phys_addr", "addr_range", "type", "registers"):
            assert ips[0][name].get(key) == ips[1][name].get(key), (name, key)
        changed = {k: (v, ips[1][name]["parameters"][k]) for k, v in ips[0][name]["parameters"].items()
                   if v != ips[1][name]["parameters"][k]}
        # (pynqmetadata also lists an IP's stream-interface parameters among its parameters)
        expected = {k: ("32", "16") if k.lower() in widths else ("4", "2") for k in ips[0][name]["parameters"]
                    if k.lower() in widths or k == "TDATA_NUM_BYTES"}
        assert changed == expected, name
    ports = [{(b, n): p.parameters["TDATA_NUM_BYTES"].value for b in ("hier_0_axi_dma_0", "hier_0_myproject_axi_0")
              for n, p in Metadata(str(path)).blocks[b].ports.items() if "TDATA_NUM_BYTES" in p.parameters}
             for path in (real_path, imported_fixed.hwh)]
    assert len(ports[0]) == 4 and set(ports[0].values()) == {"4"} and ports[1] == dict.fromkeys(ports[0], "2")
    real, derived = hwh.read(real_path, top="myproject_axi"), hwh.read(imported_fixed.hwh, top="myproject_axi")
    assert derived.dma == dataclasses.replace(real.dma, mm2s_stream_bits=16, s2mm_stream_bits=16)
    assert derived.model == dataclasses.replace(real.model, input_bits=16, output_bits=16)
    assert (derived.mm2s_path, derived.s2mm_path) == (real.mm2s_path, real.s2mm_path) == ((), ())


def test_the_ap_fixed_package_and_psqs_bench_on_it(imported_fixed, tmp_path):
    """The package's contract is one ``ap_fixed<16,6>`` per 16-bit beat, its reference outputs are
    hls4ml's own C simulation of the truncated inputs, and psqs's bench (pynq 4.0's on-board path)
    gets every sample back bit-exact."""
    package = OverlayPackage(imported_fixed.package)
    assert package.hwh.read_bytes() == imported_fixed.hwh.read_bytes()
    contract = package.contract
    assert (contract.input.element, contract.input.bus_bits, contract.input.beats_per_sample) == ("fixed", 16, 16)
    assert (contract.output.element, contract.output.bus_bits, contract.output.beats_per_sample) == ("fixed", 16, 5)
    expected = imported_fixed.project.predict(on_the_grid(imported_fixed.X).astype(np.float32))
    assert np.array_equal(package.test_vectors()["csim_logits"], expected)
    accuracy = bench_on_board(imported_fixed.package, tmp_path)[1]["accuracy"]
    assert accuracy["samples_in"] == accuracy["samples_out"] == N
    assert accuracy["vs_csim"]["exact_samples"] == 1.0
    assert accuracy["top1"] == pytest.approx(np.mean(expected.argmax(axis=1) == imported_fixed.y), abs=0)


FIXED_DRIVER_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[2])                   # the project's own axi_stream_driver.py
    from axi_stream_driver import NeuralNetworkOverlay

    # encode/decode for 'ap_fixed<16,6>' as the docstring of hls4ml's predict gives them
    def encode(xi):
        return np.int16(round(xi * 2**10)) # note 2**10 = 2**(A-B)
    def decode(yi):
        return yi * 2**-10
    encode_v = np.vectorize(encode) # to apply them element-wise
    decode_v = np.vectorize(decode)

    X = np.load(sys.argv[3])["X"]
    nn = NeuralNetworkOverlay(sys.argv[1], X.shape, (X.shape[0], 5), dtype=np.int16)
    # predict(decode=...) replaces nn.output_buffer by the decoded array, and the buffer the DMA
    # wrote is freed: only the last predict on an overlay may decode; the others decode outside
    codes = np.array(nn.predict(X, encode=encode_v))
    profiled, seconds, rate = nn.predict(X, profile=True, encode=encode_v, decode=decode_v)
    np.savez(sys.argv[4], sent=encode_v(X), plain=decode_v(codes), profiled=np.array(profiled))
""")


def test_hls4ml_own_driver_on_the_ap_fixed_interface_on_each_images_on_board_path(imported_fixed, board_python,
                                                                                 tmp_path):
    """``NeuralNetworkOverlay(..., dtype=np.int16)`` with the encode/decode hls4ml's docstring
    gives, unchanged, on 10,000 jets: the decoded outputs equal hls4ml's C simulation of the
    values the sent codes stand for, bit for bit, with and without ``profile``."""
    script, result = tmp_path / "user_script.py", tmp_path / "outputs.npz"
    script.write_text(FIXED_DRIVER_SCRIPT)
    package = OverlayPackage(imported_fixed.package)
    on_board(board_python, [script, package.bitstream, imported_fixed.project.directory, imported_fixed.jets, result],
             imported_fixed.package, tmp_path)
    outputs = np.load(result)
    sent = outputs["sent"]
    assert sent.dtype == np.int16 and sent.shape == (N, 16)
    expected = imported_fixed.project.predict((sent * 2.0 ** -FRACTION).astype(np.float32))
    for key in ("plain", "profiled"):
        assert outputs[key].shape == (N, 5) and np.array_equal(outputs[key], expected), key


# --------------------------------------------------------------------------- wrong dtype / shape

WRONG_SCRIPT = textwrap.dedent("""
    import json, linecache, os, sys, threading, time
    import numpy as np
    sys.path.insert(0, sys.argv[2])                   # the project's own axi_stream_driver.py
    from axi_stream_driver import NeuralNetworkOverlay

    case, n = sys.argv[4], int(sys.argv[5])
    X = np.load(sys.argv[3])["X"][:n]
    codes = np.floor(X * 2**10).astype(np.int16)
    x, y_shape, dtype = {"float32": (X.astype(np.float32), (n, 5), np.float32),   # hls4ml's default dtype
                         "15 features": (codes[:, :15], (n, 5), np.int16),
                         "4 outputs": (codes, (n, 4), np.int16)}[case]
    nn = NeuralNetworkOverlay(sys.argv[1], x.shape, y_shape, dtype=dtype)
    dma = nn.hier_0.axi_dma_0

    def state():
        return {"mm2s_dmasr": dma.mmio.read(0x04), "s2mm_dmasr": dma.mmio.read(0x34)}

    def watchdog():
        # hls4ml's predict has no timeout: once the DMA registers and the driver's line have not
        # changed for 10 s (a right-sized call takes under 1 s), say where it waits and end
        last, since = None, time.monotonic()
        while True:
            time.sleep(0.25)
            frame, line = sys._current_frames().get(threading.main_thread().ident), None
            while frame is not None:
                if frame.f_code.co_filename.endswith("axi_stream_driver.py"):
                    line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
                frame = frame.f_back
            now = (state(), line)
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since > 10:
                print("WAITING " + json.dumps({**now[0], "line": line}), flush=True)
                os._exit(0)

    threading.Thread(target=watchdog, daemon=True).start()
    out = np.array(nn.predict(x))
    np.save(sys.argv[6], out)
    print("DONE " + json.dumps({**state(), "transferred": nn.recvchannel.transferred}), flush=True)
""")

#: AXI DMA status register bits (PG021)
HALTED, IDLE, INT_ERR, ERR_BITS = 0x1, 0x2, 0x10, 0x70


def run_wrong(board_python, imported_fixed, tmp_path, case: str, n: int) -> tuple[str, dict, Path]:
    script, result = tmp_path / "user_script.py", tmp_path / "outputs.npy"
    script.write_text(WRONG_SCRIPT)
    package = OverlayPackage(imported_fixed.package)
    proc = on_board(board_python, [script, package.bitstream, imported_fixed.project.directory, imported_fixed.jets,
                                   case, n, result], imported_fixed.package, tmp_path)
    kind, _, text = proc.stdout.strip().splitlines()[-1].partition(" ")
    return kind, json.loads(text), result


def test_hls4ml_default_float32_dtype_on_the_16_bit_interface(imported_fixed, board_python, tmp_path):
    """64 bytes per jet into a 32-byte-per-sample interface: whole samples, twice as many, and a
    float32 output buffer exactly as large as their 16-bit outputs. On hardware nothing fails: the
    IP reads each float32 as two ``ap_fixed<16,6>`` codes (low half first) and the buffer holds
    their outputs as float32 bit patterns. The emulated board gives exactly that, no error bit."""
    kind, state, result = run_wrong(board_python, imported_fixed, tmp_path, "float32", N)
    assert kind == "DONE" and state["transferred"] == N * 5 * 4
    assert not (state["mm2s_dmasr"] | state["s2mm_dmasr"]) & ERR_BITS
    halves = imported_fixed.X.astype(np.float32).view("<i2").reshape(2 * N, 16)
    answers = imported_fixed.project.predict((halves * 2.0 ** -FRACTION).astype(np.float32))
    expected_bits = np.round(answers * 2 ** FRACTION).astype("<i2").reshape(-1).view("<u4").reshape(N, 5)
    assert np.array_equal(np.load(result).view("<u4"), expected_bits)


@pytest.mark.parametrize("case, waits_in", [("15 features", "self.recvchannel.wait()"),
                                            ("4 outputs", "self.sendchannel.wait()")])
def test_a_wrong_shape_leaves_hls4ml_driver_waiting_as_on_hardware(imported_fixed, board_python, tmp_path,
                                                                   case, waits_in):
    """1,000 jets. 15 features: 15,000 beats are 937 samples and half of one, which the IP keeps
    waiting for; their TLAST never comes, so the S2MM channel stays busy with 9,370 of its 10,000
    bytes, no error bit, and pynq's ``recvchannel.wait()`` loops forever. 4 outputs: the 8,000-byte
    S2MM buffer fills before the TLAST of the 10,000 bytes the IP writes: the channel halts with
    DMAIntErr, the IP's output backs up and stops its input, so the MM2S channel never finishes and
    hls4ml's driver, which waits for MM2S first, never looks at the S2MM error."""
    kind, state, _ = run_wrong(board_python, imported_fixed, tmp_path, case, 1000)
    assert kind == "WAITING" and state["line"] == waits_in
    mm2s, s2mm = state["mm2s_dmasr"], state["s2mm_dmasr"]
    if case == "15 features":
        assert mm2s & IDLE and not mm2s & ERR_BITS
        assert not s2mm & (IDLE | HALTED | ERR_BITS)
    else:
        assert not mm2s & (IDLE | HALTED | ERR_BITS)
        assert s2mm & HALTED and s2mm & ERR_BITS == INT_ERR


@pytest.mark.parametrize("fault, message", [
    ("no-tlast@3", "DMA S2MM channel: internal error (DMAIntErr)"),
    ("hang@2", "DMA S2MM channel: transfer not done after 3 s"),
])
def test_psqs_bench_names_an_ip_that_breaks_the_contract_in_one_line(imported_fixed, tmp_path, fault, message):
    """The emulator's faults make the imported IP do what its contract says it does not: output
    without TLAST (the S2MM buffer fills: DMAIntErr) or no output at all. psqs's bench, unlike
    hls4ml's driver, has a deadline on every DMA wait and decodes DMASR: one line, exit 1."""
    proc = subprocess.run([sys.executable, "-m", "psqs.deploy.emulator.local_device", "-m", "psqs.host", "bench",
                           str(imported_fixed.package), "--batch-sizes", "1,1000", "--repeats", "1", "--timeout", "3"],
                          env=environment("pynq-z2", [imported_fixed.package], tmp_path / "client", faults=[fault]),
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("psqs: error:")]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(errors) == 1 and message in errors[0] and "MM2S transfer" in errors[0], errors
