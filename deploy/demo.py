"""``make demo``: the pipeline end to end on the default data, small enough for minutes on 2 cores."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from psqs.board_configs import DEFAULT_BOARD

#: The paper's headline configuration, 6 bits and 80 % lottery-ticket IMP, on a subset of the
#: data with short rounds: every QAP mechanism runs, in a few minutes.
DEMO_TRAINING = dict(bits=6, pruning="imp-lt", sparsity=0.8, max_train=40000, epochs=15,
                     patience=4, test_vectors=10000)


BOARD = DEFAULT_BOARD


def run(out: Path, force: bool = False, quiet: bool = False) -> int:
    import json

    from psqs.deploy.cli import summarize_hls, summarize_model
    from psqs.hls import stage as hls_stage
    from psqs.host.artifact import check_output
    from psqs.overlays.build import build as build_overlay
    from psqs.overlays.cli import summarize as summarize_overlay
    from psqs.qap import stage as qap_stage
    from psqs.qap.config import TrainConfig
    from psqs.qap.progress import epoch_bar_factory

    out.mkdir(parents=True, exist_ok=True)
    for stage_dir in ("model", "hls", "overlay"):     # before minutes of training, not after
        check_output(out / stage_dir, force)
    model_dir = qap_stage.run(TrainConfig(**DEMO_TRAINING), out / "model", force=force,
                              progress_factory=epoch_bar_factory(not quiet))
    print("\n== stage 1: QAP training ==")
    print(summarize_model(model_dir.metrics, model_dir.path))

    hls_dir = hls_stage.run(model_dir.path, out / "hls", hls_stage.options_for_board(BOARD), force=force)
    print(f"\n== stage 2: hls4ml conversion for {BOARD} ==")
    print(summarize_hls(json.loads((hls_dir / "manifest.json").read_text()), hls_dir))

    package = build_overlay(hls_dir, BOARD, out / "overlay", emulation=True, force=force)
    print(f"\n== stage 3: emulation overlay for {BOARD} ==")
    print(summarize_overlay(json.loads((package / "manifest.json").read_text()), package))

    print(f"\n== stage 4: psqs bench through unmodified pynq, against an emulated {BOARD} ==")
    return bench_on_emulator(package, out)


def bench_on_emulator(package: Path, out: Path) -> int:
    """Serve ``package`` on an emulated board and run the board-side benchmark against it.

    The benchmark runs as its own process, as it would on a PC next to a real board: pynq decides
    at import time that it talks to a remote device, and keeps its state in a private directory.
    """
    from psqs.deploy.emulator import EmulatorConfig, EmulatorServer
    from psqs.deploy.emulator.client_env import client_env

    server = EmulatorServer.on_free_loopback(EmulatorConfig(board=BOARD, overlays=[package]))
    try:
        print(f"emulator   {BOARD} on {server.address} (PYNQ_REMOTE_DEVICES={server.config.host})")
        command = [sys.executable, "-m", "psqs.host", "bench", str(package), "--json", str(out / "run_report.json"),
                   "--plots", str(out / "plots")]
        result = subprocess.run(command, env=client_env(server.config.host, out / "pynq_client"), check=False)
    finally:
        server.stop()
    if result.returncode == 0:
        print(f"report     {out / 'run_report.json'}; plots in {out / 'plots'} (latency, throughput, "
              "ROC curves, confusion matrix; fabric figures labelled with their source)")
    return result.returncode
