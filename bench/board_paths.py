"""Benchmark: ``psqs bench`` on the two paths to a board, side by side in one run, emulated.

The same ZCU104 package (whose PYNQ image offers both) is benchmarked by the unmodified
``python -m psqs.host bench``

- over PYNQ.remote: this PC's pynq 4.0 client, gRPC on loopback, the emulator in this process;
- on the board's own code path: pynq 4.0's local device discovery finding the emulated local
  device (:mod:`psqs.deploy.emulator.local_device`) in the bench's own process;
- the same on-board path in each image-like environment of ``make board-envs`` (pynq 2.7 /
  3.0.1 / 3.1.2 on that image's Python and numpy) that already has psqs installed (``make test``
  installs it there; this script changes no environment).

All of them emulate the same board model (memory, DMA registers, the package's C library,
probe), so the ratios isolate what the path costs on this PC: PYNQ.remote pays a gRPC round
trip per register access and buffer copy, the local path a Python call. Neither is a board's
figure: every number here is ``emulated`` (host wall-clock time around an emulated board), and
the fabric figures are the package's timing model, labelled as the bench labels them.

    python bench/board_paths.py [--package DIR] [--batch-sizes 1,100,10000] [--repeats 5] [--json FILE]

Without ``--package`` a small model is trained, converted and built for the ZCU104 under
``--work``, as ``bench/emulator_throughput.py`` does.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from emulator_throughput import BOARD, build_package
from psqs.deploy.emulator import EmulatorConfig, EmulatorServer
from psqs.deploy.emulator.client_env import client_env
from psqs.deploy.emulator.local_device import environment

REPO = Path(__file__).resolve().parents[1]
BOARD_ENVS = REPO / ".venv-boards"


def _bench(python: str, package: Path, args: list[str], env: dict, work: Path, runner: list[str]) -> dict:
    report = work / "run.json"
    command = [python, *runner, "-m", "psqs.host", "bench", str(package), *args, "--json", str(report)]
    proc = subprocess.run(command, env=env, cwd=work, capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode:
        raise SystemExit(f"{' '.join(command[:3])} ... failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(report.read_text())


def _image_pythons() -> list[Path]:
    """The image-like environments that have psqs (and so its emulated local device) installed."""
    found = []
    for python in sorted(BOARD_ENVS.glob("*/bin/python")):
        probe = subprocess.run([str(python), "-c", "import psqs.deploy.emulator.local_device"],
                               capture_output=True, timeout=120, check=False)
        if probe.returncode == 0:
            found.append(python)
        else:
            print(f"skipped {python.parent.parent.name}: psqs is not installed there (make test installs it)")
    return found


def measure(package: Path, batch_sizes: str, repeats: int, work: Path) -> dict:
    args = ["--batch-sizes", batch_sizes, "--repeats", str(repeats), "--warmup", "1"]
    runs = {}
    server = EmulatorServer.on_free_loopback(EmulatorConfig(board=BOARD, overlays=[package]))
    try:
        (work / "remote").mkdir()
        runs["PYNQ.remote (pynq 4.0)"] = _bench(sys.executable, package, args,
                                                client_env(server.config.host, work / "remote"), work / "remote", [])
    finally:
        server.stop()
    local = ["-m", "psqs.deploy.emulator.local_device"]
    (work / "local").mkdir()
    runs["on-board (pynq 4.0)"] = _bench(sys.executable, package, args,
                                         environment(BOARD, [package], work / "local"), work / "local", local)
    for python in _image_pythons():
        name = python.parent.parent.name
        where = work / name
        where.mkdir()
        site = subprocess.run([str(python), "-c", "import sys; from pathlib import Path; "
                               "from psqs.deploy.emulator.client_env import private_pynq; "
                               "print(private_pynq(Path(sys.argv[1])))", str(where)],
                              capture_output=True, text=True, timeout=120, check=True).stdout.strip()
        runs[f"on-board ({name})"] = _bench(str(python), package, args,
                                            environment(BOARD, [package], where, pynq_site=Path(site)), where, local)
    return runs


def table(runs: dict) -> str:
    """p50 call latency per batch size, throughput at the largest, and each path's speed relative to
    PYNQ.remote (the first run) at the smallest and the largest batch size."""
    reference = {b["batch_size"]: b for b in next(iter(runs.values()))["batches"]}
    sizes = sorted(reference)
    ends = (sizes[0], sizes[-1])
    lines = ["all figures emulated: host wall-clock around an emulated ZCU104 on this PC, not a board's",
             f"{'path':<28} {'pynq':>6} " + " ".join(f"{f'p50 ms @{s}':>13}" for s in sizes)
             + f" {'inf/s @' + str(sizes[-1]):>13} " + " ".join(f"{f'vs remote @{s}':>15}" for s in ends)
             + f" {'exact':>7}"]
    for name, report in runs.items():
        batches = {b["batch_size"]: b for b in report["batches"]}
        speedups = [reference[s]["latency_ms"]["p50"] / batches[s]["latency_ms"]["p50"] for s in ends]
        accuracy = report["accuracy"]
        exact = accuracy["vs_csim"]["exact_samples"] if accuracy["samples_in"] == accuracy["samples_out"] else 0.0
        lines.append(f"{name:<28} {report['versions']['pynq']:>6} "
                     + " ".join(f"{batches[s]['latency_ms']['p50']:>13.2f}" for s in sizes)
                     + f" {batches[sizes[-1]]['throughput_per_s']:>13.0f} "
                     + " ".join(f"{x:>14.2f}x" for x in speedups) + f" {exact:>7.2%}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, default=None, help=f"an emulation overlay package for {BOARD}")
    parser.add_argument("--work", type=Path, default=Path("runs/bench-emulator"))
    parser.add_argument("--batch-sizes", default="1,100,10000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    package = args.package or build_package(args.work)
    with tempfile.TemporaryDirectory(prefix="psqs-board-paths-") as tmp:
        runs = measure(package.resolve(), args.batch_sizes, args.repeats, Path(tmp))
    print(table(runs))
    if args.json:
        args.json.write_text(json.dumps({name: {"batches": r["batches"], "accuracy": r["accuracy"],
                                                "versions": r["versions"]} for name, r in runs.items()},
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
