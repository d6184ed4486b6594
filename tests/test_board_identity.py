"""Which board pynq is talking to, and which path to it the board's PYNQ image offers (issue 14).

On a PYNQ image the board names itself in ``/proc/device-tree/chosen/pynq_board`` and ``$BOARD``;
the local device's ``name`` is XRT's (``edge``), which names no board. The emulated local device
reports that XRT name, so a check on the device name fails here as it would on a board. Zynq-7000
boards (``pynq_remote: false``) have no PYNQ.remote image: a package for one is refused over
PYNQ.remote with a one-line error, while a ZynqMP package (zcu104) runs there bit-exact.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_emulator_support import start_emulator, tiny_rtl_source

from psqs.common.package import OverlayPackage
from psqs.deploy.emulator.client_env import client_env
from psqs.deploy.emulator.local_device import environment

N = 2000
RUNNER = [sys.executable, "-m", "psqs.deploy.emulator.local_device"]
OPEN = """
import json, sys
import pynq
from psqs.host.accelerator import Accelerator, board_name
device = pynq.Device.active_device
print("RESULT " + json.dumps({"device_name": device.name, "board": board_name(device)}), flush=True)
Accelerator(sys.argv[1])
print("OPENED", flush=True)
"""


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    from psqs.overlays.build import build

    root = tmp_path_factory.mktemp("identity")
    return {board: build(tiny_rtl_source(root / f"src-{board}", N, board=board), board, root / board, emulation=True)
            for board in ("pynq-z2", "zcu104")}


def open_locally(package: Path, workdir: Path, **env_changes) -> tuple[dict, subprocess.CompletedProcess]:
    """Open an Accelerator on the emulated local pynq-z2 (pynq's EmbeddedDevice path)."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = environment("pynq-z2", [package], workdir / "client")
    env.update({key: str(value) for key, value in env_changes.items()})
    (workdir / "open.py").write_text(OPEN)
    proc = subprocess.run([*RUNNER, workdir / "open.py", package], env=env, cwd=workdir, capture_output=True,
                          text=True, timeout=300)
    result = next((json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")), {})
    return result, proc


def device_tree(root: Path, board: str) -> Path:
    tree = root / "proc/device-tree/chosen"
    tree.mkdir(parents=True)
    (tree / "pynq_board").write_bytes(board.encode() + b"\0")
    return root


def test_the_local_board_is_named_by_its_environment_not_by_xrt(packages, tmp_path):
    package = packages["pynq-z2"]
    result, proc = open_locally(package, tmp_path)
    assert proc.returncode == 0 and "OPENED" in proc.stdout, proc.stderr[-3000:]
    # XRT's name for a Zynq device (zocl's shim: "edge"): the check on main compared this with
    # the package's pynq_board and refused every real board
    assert result["device_name"] == "edge"
    assert result["device_name"].lower() != OverlayPackage(package).board["pynq_board"].lower()
    assert result["board"] == OverlayPackage(package).board["pynq_board"] == "Pynq-Z2"


def test_the_device_tree_names_the_board_before_BOARD(packages, tmp_path):
    package = packages["pynq-z2"]
    tree = device_tree(tmp_path / "z2root", "Pynq-Z2")
    result, proc = open_locally(package, tmp_path / "ok", PSQS_BOARD_ROOT=tree, BOARD="ZCU104")
    assert proc.returncode == 0 and result["board"] == "Pynq-Z2", proc.stderr[-3000:]


@pytest.mark.parametrize("where", ["device tree", "BOARD"])
def test_another_board_is_a_one_line_mismatch(packages, tmp_path, where):
    package = packages["pynq-z2"]
    changes = ({"PSQS_BOARD_ROOT": device_tree(tmp_path / "root", "ZCU104")} if where == "device tree"
               else {"BOARD": "ZCU104"})
    result, proc = open_locally(package, tmp_path / "run", **changes)
    assert result["board"] == "ZCU104"
    assert proc.returncode != 0 and "OPENED" not in proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert "BoardMismatch" in last and "built for pynq-z2 (pynq_board 'Pynq-Z2')" in last
    assert "the board reports 'ZCU104'" in last


def _bench(package: Path, host: str, workdir: Path, *options):
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-m", "psqs.host", "bench", str(package), *map(str, options)],
                          env=client_env(host, workdir / "client"), cwd=workdir, capture_output=True, text=True,
                          timeout=300)


def test_pynq_remote_is_refused_for_a_zynq7000_package(packages, tmp_path):
    package = packages["pynq-z2"]
    assert OverlayPackage(package).board["pynq_remote"] is False
    server = start_emulator([package])     # an emulated pynq-z2 serving PYNQ.remote, which no Z2 image does
    try:
        proc = _bench(package, server.config.host, tmp_path, "--batch-sizes", "100", "--repeats", "1")
    finally:
        server.stop()
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("psqs: error: ")]
    assert len(errors) == 1 and proc.stderr.strip().endswith(errors[0]), proc.stderr     # the log lines aside
    assert "pynq-z2 has no PYNQ.remote" in errors[0] and "boards with PYNQ.remote: rfsoc4x2, zcu104" in errors[0]


def test_a_zynqmp_package_runs_over_pynq_remote_bit_exact(packages, tmp_path):
    package = packages["zcu104"]
    manifest_board = OverlayPackage(package).board
    assert manifest_board["pynq_remote"] is True and "zcu104" in manifest_board["pynq_remote_boards"]
    server = start_emulator([package], board="zcu104")
    try:
        proc = _bench(package, server.config.host, tmp_path, "--batch-sizes", f"1,{N}", "--repeats", "1",
                      "--json", tmp_path / "run.json")
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    accuracy = json.loads((tmp_path / "run.json").read_text())["accuracy"]
    assert accuracy["samples_in"] == accuracy["samples_out"] == N
    assert accuracy["vs_csim"]["exact_samples"] == 1.0


@pytest.mark.parametrize("tree, board, expected", [("Pynq-Z2", "ZCU104", "Pynq-Z2"), (None, "ZCU104", "ZCU104"),
                                                   (None, None, None)])
def test_deploys_probe_and_the_board_runtime_name_a_board_alike(tmp_path, tree, board, expected):
    """``psqs deploy``'s probe runs as a standalone script on a board without psqs; it carries
    :mod:`psqs.common.board_identity`'s source, which :func:`board_name` imports: one rule."""
    from psqs.deploy.board_probe import PROBE_SCRIPT
    from psqs.host.accelerator import board_name

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    if tree:
        env["PSQS_BOARD_ROOT"] = str(device_tree(tmp_path / "root", tree))
    if board:
        env["BOARD"] = board
    proc = subprocess.run([sys.executable, "-I", "-c", PROBE_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    probed = json.loads(proc.stdout.split("PSQS-PROBE ", 1)[1])["board"]
    assert probed == board_name(object(), environ=env) == expected
