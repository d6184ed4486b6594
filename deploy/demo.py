"""``make demo``: the pipeline end to end on the default data, small enough for minutes on 2 cores.

Stage 4 benchmarks the package the way its board runs it: on a board whose PYNQ image has no
PYNQ.remote (``pynq_remote: false``: the default pynq-z2, every Zynq-7000) ``psqs bench`` runs on
the board itself, here through pynq's on-board code path on the emulated local device; on a
PYNQ.remote board (``make demo-remote``: zcu104) it runs on a PC next to the board, here against
the PYNQ.remote emulator.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from psqs.board_configs import DEFAULT_BOARD, load_board

#: The paper's headline configuration, 6 bits and 80 % lottery-ticket IMP, on a subset of the
#: data with short rounds: every QAP mechanism runs, in a few minutes.
DEMO_TRAINING = dict(bits=6, pruning="imp-lt", sparsity=0.8, max_train=40000, epochs=15,
                     patience=4, test_vectors=10000)


def run(out: Path, force: bool = False, quiet: bool = False, board: str = DEFAULT_BOARD) -> int:
    import json

    from psqs.deploy.cli import summarize_hls, summarize_model
    from psqs.hls import stage as hls_stage
    from psqs.common.artifact import check_output
    from psqs.overlays.build import build as build_overlay
    from psqs.overlays.cli import summarize as summarize_overlay
    from psqs.qap import stage as qap_stage
    from psqs.qap.config import TrainConfig
    from psqs.qap.progress import epoch_bar_factory

    load_board(board)                                 # an unknown board before minutes of training
    out.mkdir(parents=True, exist_ok=True)
    for stage_dir in ("model", "hls", "overlay"):     # before minutes of training, not after
        check_output(out / stage_dir, force)
    model_dir = qap_stage.run(TrainConfig(**DEMO_TRAINING), out / "model", force=force,
                              progress_factory=epoch_bar_factory(not quiet))
    print("\n== stage 1: QAP training ==")
    print(summarize_model(model_dir.metrics, model_dir.path))

    hls_dir = hls_stage.run(model_dir.path, out / "hls", hls_stage.options_for_board(board), force=force)
    print(f"\n== stage 2: hls4ml conversion for {board} ==")
    print(summarize_hls(json.loads((hls_dir / "manifest.json").read_text()), hls_dir))

    package = build_overlay(hls_dir, board, out / "overlay", emulation=True, force=force)
    print(f"\n== stage 3: emulation overlay for {board} ==")
    print(summarize_overlay(json.loads((package / "manifest.json").read_text()), package))

    path = "PYNQ.remote" if load_board(board).pynq_remote else "the on-board path"
    print(f"\n== stage 4: psqs bench through unmodified pynq on {path}, against an emulated {board} ==")
    return bench_on_emulator(package, out)


def bench_on_emulator(package: Path, out: Path, extra_args=(), output=None) -> int:
    """Run the board-side benchmark of ``package`` on an emulation of the board it was built for,
    by the path that board's PYNQ image offers (its manifest's ``pynq_remote``; module docstring).

    The benchmark runs as its own process with pynq state of its own, as on the board (the
    emulated local device, found by pynq's device registry) or on a PC next to it (pynq decides
    at import time that it talks to a remote device). ``extra_args`` go to ``psqs bench``;
    ``output`` (a file) takes what the run prints, else it goes to this process's stdout.
    """
    from psqs.common.package import OverlayPackage

    command = ["-m", "psqs.host", "bench", str(package), "--json", str(out / "run_report.json"),
               "--plots", str(out / "plots"), *extra_args]
    board = OverlayPackage(package).board
    if board.get("pynq_remote", True):       # unrecorded (older packages): PYNQ.remote, as before
        result = _bench_over_pynq_remote(package, out, board["name"], command, output)
    else:
        from psqs.deploy.emulator.local_device import environment

        print(f"emulator   {board['name']} as pynq's local device (python -m psqs.deploy.emulator.local_device)",
              file=output)
        result = subprocess.run([sys.executable, "-m", "psqs.deploy.emulator.local_device", *command],
                                env=environment(board["name"], [package], out / "pynq_client"), check=False,
                                stdout=output, stderr=output)
    if result.returncode == 0:
        print(f"report     {out / 'run_report.json'}; plots in {out / 'plots'} (latency, throughput, "
              "ROC curves, confusion matrix; fabric figures labelled with their source)", file=output)
    return result.returncode


def _bench_over_pynq_remote(package: Path, out: Path, board: str, command: list[str], output=None):
    """``command`` on this PC against a PYNQ.remote emulator of ``board`` serving ``package``."""
    from psqs.deploy.emulator import EmulatorConfig, EmulatorServer
    from psqs.deploy.emulator.client_env import client_env

    server = EmulatorServer.on_free_loopback(EmulatorConfig(board=board, overlays=[package]))
    try:
        print(f"emulator   {board} on {server.address} (PYNQ_REMOTE_DEVICES={server.config.host})", file=output)
        return subprocess.run([sys.executable, *command], env=client_env(server.config.host, out / "pynq_client"),
                              check=False, stdout=output, stderr=output)
    finally:
        server.stop()
