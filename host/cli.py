"""``bench`` on the command line: ``python3 -m psqs.host bench PACKAGE`` on a board, or
``psqs bench PACKAGE`` on a host (with ``PYNQ_REMOTE_DEVICES`` set for a remote board)."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import bench
from .accelerator import DEFAULT_TIMEOUT_S, Accelerator, BoardMismatch, InputError, NoBoard
from .artifact import ArtifactError
from .contract import ContractError
from .dma import DMAError, DMATimeout

#: Failures a user can act on: printed as one line, exit status 2.
USER_ERRORS = (ArtifactError, BoardMismatch, ContractError, DMAError, DMATimeout, InputError, NoBoard)


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers") from None
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: batch sizes must be >= 1")
    return sizes


def add_bench_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("package", help="overlay package directory (from psqs build)")
    defaults = bench.BenchConfig()
    p.add_argument("--batch-sizes", type=_sizes, default=defaults.batch_sizes)
    p.add_argument("--repeats", type=int, default=defaults.repeats,
                   help=f"calls per batch size (default {defaults.repeats})")
    p.add_argument("--warmup", type=int, default=defaults.warmup)
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                   help=f"seconds every DMA wait may take beyond the data's bus time (default {DEFAULT_TIMEOUT_S:g})")
    p.add_argument("--json", default=None, help="write the report here")
    p.add_argument("--plots", default=None, help="write PNG plots into this directory")


def cmd_bench(args) -> int:
    config = bench.BenchConfig(batch_sizes=args.batch_sizes, repeats=args.repeats, warmup=args.warmup)
    with Accelerator(Path(args.package), timeout=args.timeout) as acc:
        report = bench.run(acc, config)
    if args.plots:
        report["plots"] = [str(p) for p in bench.write_plots(report, Path(args.plots))]
    if args.json:
        bench.write_report(report, Path(args.json))
    print(bench.summary(report))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m psqs.host")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("bench", help="latency, throughput and accuracy of an overlay package")
    add_bench_options(p)
    p.set_defaults(func=cmd_bench)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("psqs").setLevel(logging.INFO)
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
