"""pynq's on-board code path (``EmbeddedDevice``: local ``Overlay``/``allocate``/``DMA``/``MMIO``/
``Clocks``) against the emulated board, without PYNQ.remote.

Every client is a subprocess with pynq state of its own and no ``PYNQ_REMOTE_DEVICES``; pynq finds
the board through its device registry (:mod:`psqs.deploy.emulator.local_device`). The package is a
real emulation package (``psqs build --emulation``) whose model is a small C library; its outputs
are checked against the same computation done here in numpy, on 10,000 samples.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from test_emulator_support import fake_model_outputs, tiny_rtl_source

from psqs.deploy.emulator.local_device import environment

N = 10000
RUNNER = [sys.executable, "-m", "psqs.deploy.emulator.local_device"]
PRELUDE = """\
import json, sys
import numpy as np
import pynq
from pynq import Overlay, allocate

def emit(**values):
    print("RESULT " + json.dumps(values), flush=True)
"""


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    from psqs.overlays.build import build

    root = tmp_path_factory.mktemp("local_device")
    return build(tiny_rtl_source(root, N), "pynq-z2", root / "pkg", emulation=True)


def run(args: list, package: Path, workdir: Path, faults=(), board: str | None = "pynq-z2", timeout=300):
    workdir.mkdir(parents=True, exist_ok=True)
    env = environment(board or "", [package], workdir / "client", faults=list(faults))
    return subprocess.run([*RUNNER, *map(str, args)], env=env, cwd=workdir, capture_output=True, text=True,
                          timeout=timeout)


def run_script(body: str, package: Path, workdir: Path, **kwargs) -> dict:
    """A plain pynq script (``PRELUDE`` + ``body``: nothing of psqs unless the body imports it)
    on the emulated local board; returns what it emitted."""
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "client.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    proc = run([script, package], package, workdir, **kwargs)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            results.update(json.loads(line[len("RESULT "):]))
    return results


def expected_outputs(package: Path) -> np.ndarray:
    codes = np.rint(np.load(Path(package) / "test_vectors.npz")["X"] * 1024).astype(np.int16)
    return fake_model_outputs(codes)


def test_pynq_finds_the_emulated_board_only_when_asked(package, tmp_path):
    probe = """
        from pynq.pl_server.embedded_device import EmbeddedDevice
        devices = pynq.Device.devices
        emit(n=len(devices), types=[type(d).__name__ for d in devices],
             embedded=[isinstance(d, EmbeddedDevice) for d in devices], names=[d.name for d in devices],
             arch=[d.arch for d in devices])
    """
    assert run_script(probe, package, tmp_path / "off", board=None)["n"] == 0
    found = run_script(probe, package, tmp_path / "on")
    assert found == {"n": 1, "types": ["EmulatedLocalDevice"], "embedded": [True], "names": ["edge"],
                     "arch": ["armv7l"]}


def test_bench_on_the_on_board_path_is_bit_exact(package, tmp_path):
    report_path = tmp_path / "run.json"
    proc = run(["-m", "psqs.host", "bench", package, "--batch-sizes", f"1,{N}", "--repeats", "2", "--json",
                report_path], package, tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(report_path.read_text())
    accuracy = report["accuracy"]
    assert accuracy["samples_in"] == accuracy["samples_out"] == accuracy["n"] == N
    assert accuracy["vs_csim"]["exact_samples"] == 1.0
    # the package's C-simulation logits are the numpy model's: the bench compared against that
    vectors = np.load(Path(package) / "test_vectors.npz")
    assert np.array_equal(vectors["csim_logits"], expected_outputs(package))


def test_accelerator_on_the_on_board_path_equals_the_model(package, tmp_path):
    result = run_script("""
        from psqs.host.accelerator import Accelerator
        acc = Accelerator(sys.argv[1])
        logits = acc.predict(acc.package.test_vectors()["X"])
        np.save("logits.npy", logits)
        emit(fclk=acc.fclk_mhz, remote=bool(__import__("os").environ.get("PYNQ_REMOTE_DEVICES")))
    """, package, tmp_path)
    assert result == {"fclk": 100.0, "remote": False}
    logits = np.load(tmp_path / "logits.npy")
    assert logits.shape == (N, 5) and np.array_equal(logits, expected_outputs(package))


PLAIN_SCRIPT = """
    board = pynq.Device.active_device.emulated        # the board's DDR, to look behind the CPU's cache
    ddr = lambda buf: np.frombuffer(board.memory.read(buf.bo.ddr.id, 0, buf.nbytes), buf.dtype)
    ol = Overlay(sys.argv[1].rstrip("/") + "/" + [p for p in __import__("os").listdir(sys.argv[1])
                                                      if p.endswith(".bit")][0])
    codes = np.rint(np.load(sys.argv[1] + "/test_vectors.npz")["X"] * 1024).astype(np.int16)
    inp = allocate(shape=codes.shape, dtype=np.int16)
    out = allocate(shape=(len(codes), 5), dtype=np.int32)
    inp[:] = codes
    emit(ddr_before_flush=int(np.count_nonzero(ddr(inp))), cacheable=bool(inp.cacheable),
         phys=[int(inp.physical_address), int(out.physical_address)])
    dma = ol.axi_dma_0
    dma.recvchannel.transfer(out)
    dma.sendchannel.transfer(inp)                      # flushes inp, as on a board
    dma.sendchannel.wait()
    emit(ddr_after_flush=bool(np.array_equal(ddr(inp), codes.ravel())))
    import time
    deadline = time.monotonic() + 60
    while not dma.recvchannel.idle and time.monotonic() < deadline:
        time.sleep(0.001)
    emit(out_before_invalidate=int(np.count_nonzero(out)), ddr_out=int(np.count_nonzero(ddr(out))))
    dma.recvchannel.wait()                             # invalidates out
    np.save("out.npy", np.array(out))
    emit(fclk=pynq.Clocks.fclk0_mhz, received=int(dma.recvchannel.transferred))
"""


def test_a_plain_pynq_script_runs_on_the_on_board_path(package, tmp_path):
    result = run_script(PLAIN_SCRIPT, package, tmp_path)
    # the CPU's view and DDR meet only at flush and invalidate, as through a cache on the board
    assert result["cacheable"] and result["ddr_before_flush"] == 0 and result["ddr_after_flush"]
    assert result["out_before_invalidate"] == 0 and result["ddr_out"] > 0
    ddr = (0x1000_0000, 0x2000_0000)                   # pynq-z2: the upper half of its 512 MiB
    assert all(ddr[0] <= p < ddr[1] for p in result["phys"])
    assert result["received"] == N * 5 * 4 and result["fclk"] == 100.0
    assert np.array_equal(np.load(tmp_path / "out.npy"), expected_outputs(package))


def test_a_hang_gives_the_hosts_dma_timeout(package, tmp_path):
    result = run_script("""
        import time
        from psqs.host.accelerator import Accelerator
        acc = Accelerator(sys.argv[1], timeout=1.0)
        X = acc.package.test_vectors()["X"][:300]
        t0 = time.monotonic()
        try:
            acc.predict(X)
            emit(first="ok")
        except Exception as exc:
            emit(first=type(exc).__name__, message=str(exc))
        emit(seconds=time.monotonic() - t0)
        np.save("second.npy", acc.predict(X))
    """, package, tmp_path, faults=["hang"])            # the first MM2S transfer: the first predict
    assert result["first"] == "DMATimeout" and "S2MM channel: transfer not done after" in result["message"]
    assert 1.0 <= result["seconds"] < 3.0
    assert np.array_equal(np.load(tmp_path / "second.npy"), expected_outputs(package)[:300])
