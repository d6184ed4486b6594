"""pynq's unmodified on-board code path in each PYNQ image's environment: ``psqs bench`` and a
plain pynq script.

Each image-like environment (``make board-envs``: pyenv's Python with that image's numpy and pynq
2.7.0 / 3.0.1 / 3.1.2; no gRPC, yaml or jsonschema) gets psqs' wheel with no index, as
:mod:`test_board_install` installs it, and runs ``python -m psqs.deploy.emulator.local_device``
on the emulated local board (:mod:`psqs.deploy.emulator.local_device`), whose model is the
package's C library loaded by that Python. Outputs are checked against the numpy stand-in model
computed here, on 10,000 samples. pynq 4.0.0 (this venv) runs the same in :mod:`test_local_device`.
"""
from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
from test_board_install import IMAGES, _clean_pip_env, board_python, envs, run, wheel  # noqa: F401
from test_emulator_support import tiny_rtl_source
from test_local_device import PLAIN_SCRIPT, PRELUDE, expected_outputs

from psqs.deploy.emulator.local_device import environment

N = 10000
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    from psqs.overlays.build import build

    root = tmp_path_factory.mktemp("onboard")
    return build(tiny_rtl_source(root, N), "pynq-z2", root / "pkg", emulation=True)


def on_board(python: Path, args: list, package: Path, workdir: Path) -> subprocess.CompletedProcess:
    """``python -m psqs.deploy.emulator.local_device ARGS`` in the image's environment, with a
    private view of *that* environment's pynq (its state files stay under ``workdir``)."""
    client = workdir / "client"
    client.mkdir(parents=True)
    site = run(python, "-c", "import sys; from pathlib import Path; "
                             "from psqs.deploy.emulator.client_env import private_pynq; "
                             "print(private_pynq(Path(sys.argv[1])))", str(client)).stdout.strip()
    env = environment("pynq-z2", [package], client, pynq_site=Path(site), base=_clean_pip_env())
    proc = subprocess.run([str(python), "-m", "psqs.deploy.emulator.local_device", *map(str, args)], env=env,
                          cwd=workdir, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def test_bench_on_the_images_on_board_path_is_bit_exact(board_python, package, tmp_path):
    report_path = tmp_path / "run.json"
    on_board(board_python, ["-m", "psqs.host", "bench", package, "--batch-sizes", f"1,{N}", "--repeats", "2",
                            "--json", report_path], package, tmp_path)
    report = json.loads(report_path.read_text())
    python, numpy_version, pynq_version, _ = IMAGES[board_python.parent.parent.name]
    assert report["versions"]["pynq"] == pynq_version and report["versions"]["numpy"] == numpy_version
    assert report["versions"]["python"] == python and report["board"]["remote"] is None   # on-board path
    accuracy = report["accuracy"]
    assert accuracy["samples_in"] == accuracy["samples_out"] == accuracy["n"] == N
    assert accuracy["vs_csim"]["exact_samples"] == 1.0
    # the package's C-simulation logits, which the bench compared against, are the numpy model's
    assert np.array_equal(np.load(package / "test_vectors.npz")["csim_logits"], expected_outputs(package))


def test_a_plain_pynq_script_on_the_images_on_board_path(board_python, package, tmp_path):
    """``Overlay``, ``allocate``, ``sendchannel``/``recvchannel`` as the image's pynq ships them:
    the CPU's buffers meet DDR only at flush/invalidate, and the DMA brings the model's outputs."""
    script = tmp_path / "client.py"
    script.write_text(PRELUDE + textwrap.dedent(PLAIN_SCRIPT))
    proc = on_board(board_python, [script, package], package, tmp_path)
    result = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result.update(json.loads(line[len("RESULT "):]))
    assert result["cacheable"] and result["ddr_before_flush"] == 0 and result["ddr_after_flush"]
    assert result["out_before_invalidate"] == 0 and result["ddr_out"] > 0
    assert result["received"] == N * 5 * 4 and result["fclk"] == 100.0
    assert np.array_equal(np.load(tmp_path / "out.npy"), expected_outputs(package))
