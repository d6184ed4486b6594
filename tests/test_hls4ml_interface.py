"""``psqs convert --interface hls4ml-float|hls4ml-fixed``: psqs-built overlays that scripts written
for hls4ml's ``VivadoAccelerator`` overlays use unchanged.

A tiny 4-bit QAP model (inputs ``ap_fixed<16,I>``, outputs ``ap_fixed<16,6>``: one 16-bit dtype
for both of hls4ml's driver buffers) is converted with both interfaces and built for an emulated
PYNQ-Z2. hls4ml's own ``axi_stream_driver.py``, copied byte for byte from the installed hls4ml,
then runs in each PYNQ image's environment on pynq's on-board path; its outputs on 10,000 jets are
compared with the package's C simulation and with the QKeras model's float64 twin evaluated here
(``psqs.qap.reference``), on inputs quantized here with numpy, not with psqs's codec.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import synthetic_jets
from test_board_install import IMAGES, board_python, envs, wheel  # noqa: F401
from test_onboard_images import on_board

from psqs.board_configs import board_names, load_board
from psqs.common import codec
from psqs.common.package import OverlayPackage
from psqs.deploy.cli import main
from psqs.deploy.emulator.local_device import environment
from psqs.hls.csim import AxisLibrary
from psqs.overlays.design import DMA_BURSTS, HP_MAX_BURST, dma_burst
from psqs.overlays.ps import processing_system
from psqs.qap import stage as qap_stage
from psqs.qap.artifact import ModelDir
from psqs.qap.config import TrainConfig
from psqs.qap.reference import ExactModel

N = 10000
TINY = dict(epochs=2, patience=2, batch_size=256, max_train=2000, test_vectors=600, widths=(24, 12, 12), bits=4)
DRIVER = Path(__import__("hls4ml").__file__).parent / "templates/vivado_accelerator/pynq-z2/python_drivers/axi_stream_driver.py"


@pytest.fixture(scope="module")
def built(tmp_path_factory, synthetic_npz):
    """The model, both conversions and their PYNQ-Z2 emulation packages, and 10,000 standardized jets."""
    root = tmp_path_factory.mktemp("hls4ml-interface")
    model = qap_stage.run(TrainConfig(data=str(synthetic_npz), **TINY), root / "model").path
    out = {}
    for interface in ("hls4ml-float", "hls4ml-fixed"):
        hls, pkg = root / f"hls-{interface}", root / f"pkg-{interface}"
        assert main(["-q", "convert", str(model), "--out", str(hls), "--board", "pynq-z2",
                     "--interface", interface]) == 0
        assert main(["-q", "build", str(hls), "--board", "pynq-z2", "--out", str(pkg), "--emulation"]) == 0
        out[interface] = pkg
    md = ModelDir(model)
    X_std = md.scaler.transform(synthetic_jets(N, seed=11)[0])
    return SimpleNamespace(model=md, packages=out, X_std=X_std, root=root,
                           exact=ExactModel(md.keras_model(), md.config, md.input_format))


def independent_input_codes(md: ModelDir, x: np.ndarray) -> np.ndarray:
    """``input_t`` codes of real values, by numpy alone: round half to even, saturate."""
    fmt = md.input_format
    assert (fmt.rounding, fmt.overflow, fmt.signed) == ("RND_CONV", "SAT", True)
    return np.clip(np.rint(np.asarray(x, np.float64) * 2.0 ** fmt.frac), -2 ** (fmt.width - 1), 2 ** (fmt.width - 1) - 1)


def csim_outputs(package: OverlayPackage, wire: np.ndarray) -> np.ndarray:
    """The package's own C simulation fed ``wire`` (the elements the DMA would send): wire outputs."""
    contract = package.contract
    library = AxisLibrary(package.path / package.manifest["emulation_model"]["library"])
    library.reset()
    data, _ = library.transfer(codec.pack(contract.input, wire))
    return codec.unpack(contract.output, data)


@pytest.mark.slow
def test_packages_have_hls4ml_layout_and_keep_the_probe(built):
    for interface, path in built.packages.items():
        package = OverlayPackage(path)
        m = package.manifest
        assert package.dma.name == "hier_0/axi_dma_0" and package.probe is not None, interface
        assert m["design"]["hierarchy"] == {"hier_0": ["hier_0/axi_dma_0", m["design"]["model_cell"]]}
        assert set(m["ips"]) == {"hier_0/axi_dma_0", package.probe.name}
        contract = package.contract
        assert contract.input.values_per_beat == contract.output.values_per_beat == 1
        assert contract.input.bus_bits == contract.output.bus_bits == (32 if interface == "hls4ml-float" else 16)
        dma = ET.parse(package.hwh).getroot().find(".//MODULE[@FULLNAME='/hier_0/axi_dma_0']")
        assert dma.get("INSTANCE") == "hier_0_axi_dma_0"
        for key in ("c_mm2s_burst_size", "c_s2mm_burst_size"):
            assert dma.find(f".//PARAMETER[@NAME='{key}']").get("VALUE") == str(m["dma"]["burst_beats"])


@pytest.mark.parametrize("board", board_names())
def test_dma_burst_is_the_longest_the_hp_port_takes_whole(board):
    hp = processing_system(load_board(board)).hp
    beats, why = dma_burst(hp)
    assert beats in DMA_BURSTS and beats <= HP_MAX_BURST[hp.protocol] and beats * hp.data_width // 8 <= 4096
    longer = [b for b in DMA_BURSTS if b > beats]
    assert not longer or longer[0] > HP_MAX_BURST[hp.protocol] or longer[0] * hp.data_width // 8 > 4096
    assert str(beats) in why and hp.protocol in why


DRIVER_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    sys.path.insert(0, sys.argv[2])                   # hls4ml's axi_stream_driver.py, unchanged
    from axi_stream_driver import NeuralNetworkOverlay
    X = np.load(sys.argv[3])
    nn = NeuralNetworkOverlay(sys.argv[1], X.shape, (X.shape[0], 5), dtype=X.dtype)
    plain = np.array(nn.predict(X))
    profiled, seconds, rate = nn.predict(X, profile=True)
    np.savez(sys.argv[4], plain=plain, profiled=np.array(profiled))
    print("RESULT " + json.dumps({"seconds": seconds, "rate": rate}))
""")


@pytest.mark.slow
@pytest.mark.parametrize("interface", ["hls4ml-float", "hls4ml-fixed"])
def test_hls4ml_own_driver_runs_unchanged_on_each_images_on_board_path(built, interface, board_python, tmp_path):
    md, package = built.model, OverlayPackage(built.packages[interface])
    driver_dir = tmp_path / "driver"
    driver_dir.mkdir()
    shutil.copy(DRIVER, driver_dir / DRIVER.name)
    assert (driver_dir / DRIVER.name).read_bytes() == DRIVER.read_bytes()
    if interface == "hls4ml-float":
        X = built.X_std.astype(np.float32)                 # what an hls4ml user hands the driver
        x_q = independent_input_codes(md, X) * 2.0 ** -md.input_format.frac
        expected = np.asarray(built.exact(x_q)[0], np.float64).astype(np.float32)
        csim = csim_outputs(package, X)
        # float64 -> float32 -> input_t rounds twice; the single rounding float64 -> input_t of the
        # model's test vectors is not what the FPGA computes (informational: how often it differs here)
        single = independent_input_codes(md, built.X_std)
        changed = (independent_input_codes(md, X) != single).any(axis=1)
        naive = np.asarray(built.exact(single * 2.0 ** -md.input_format.frac)[0], np.float64).astype(np.float32)
        print(f"float32 wire: {int(changed.sum())} of {N} jets have an input quantized differently than in "
              f"float64, {int((naive != expected).any(axis=1).sum())} of them with different logits")
    else:
        X = independent_input_codes(md, built.X_std).astype(np.int16)
        logits = np.asarray(built.exact(X * 2.0 ** -md.input_format.frac)[0], np.float64)
        codes = logits * 2.0 ** package.contract.output.format.frac
        assert np.array_equal(codes, np.rint(codes))           # the reference lies on the output grid
        expected = codes.astype(np.int16)
        csim = csim_outputs(package, X)
    assert np.array_equal(csim, expected)
    np.save(tmp_path / "X.npy", X)
    script, result = tmp_path / "user_script.py", tmp_path / "outputs.npz"
    script.write_text(DRIVER_SCRIPT)
    proc = on_board(board_python, [script, package.bitstream, driver_dir, tmp_path / "X.npy", result],
                    package.path, tmp_path)
    outputs = np.load(result)
    for key in ("plain", "profiled"):
        assert outputs[key].dtype == X.dtype, key
        assert np.array_equal(outputs[key], expected), key
        assert np.array_equal(outputs[key], csim), key
    assert json.loads(proc.stdout.split("RESULT ", 1)[1])["rate"] > 0


@pytest.mark.slow
def test_psqs_bench_on_a_float_interface_package(built, tmp_path):
    """pynq 4.0's on-board path on the emulated PYNQ-Z2: every sample back, exact vs the C simulation,
    and the probe still measures the fabric."""
    package = built.packages["hls4ml-float"]
    report_path = tmp_path / "run.json"
    proc = subprocess.run([sys.executable, "-m", "psqs.deploy.emulator.local_device", "-m", "psqs.host", "bench",
                           str(package), "--batch-sizes", "1,600", "--repeats", "2", "--json", str(report_path)],
                          env=environment("pynq-z2", [package], tmp_path / "client"),
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    accuracy = json.loads(report_path.read_text())["accuracy"]
    assert accuracy["samples_in"] == accuracy["samples_out"] == 600
    assert accuracy["vs_csim"]["exact_samples"] == 1.0
