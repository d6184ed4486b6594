"""``bench`` on the command line: ``python3 -m psqs.host bench PACKAGE`` on a board, or
``psqs bench PACKAGE`` on a host (with ``PYNQ_REMOTE_DEVICES`` set for a remote board)."""
from __future__ import annotations

import argparse
from pathlib import Path

from psqs.common import cli_types, interrupts

from . import bench, cli_common
from .accelerator import DEFAULT_TIMEOUT_S, Accelerator


def add_bench_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("package", help="overlay package directory (from psqs build)")
    defaults = bench.BenchConfig()
    p.add_argument("--batch-sizes", type=cli_types.integer_list(), default=defaults.batch_sizes,
                   help=f"comma-separated samples per call (default {','.join(map(str, defaults.batch_sizes))})")
    p.add_argument("--repeats", type=cli_types.integer(1), default=defaults.repeats,
                   help=f"calls per batch size (default {defaults.repeats})")
    p.add_argument("--warmup", type=cli_types.integer(0), default=defaults.warmup,
                   help=f"untimed calls of the largest batch size first (default {defaults.warmup})")
    p.add_argument("--timeout", type=cli_types.real(0, low_open=True), default=DEFAULT_TIMEOUT_S,
                   help=f"seconds every DMA wait may take beyond the data's bus time (default {DEFAULT_TIMEOUT_S:g})")
    p.add_argument("--json", default=None,
                   help=f"write the report here (a failed run writes {bench.PARTIAL_REPORT} beside it, "
                        "or in the current directory)")
    p.add_argument("--plots", default=None,
                   help="write PNG plots (latency, throughput, ROC curves, confusion matrix) into this directory")


def cmd_bench(args) -> int:
    """Check the output paths, run the benchmark, save the report, then the plots, then print.

    A run that fails part-way has written its partial report (see :func:`bench.run`); the
    summary of what it finished is printed and the error propagates (exit status 1).
    """
    json_path = Path(args.json) if args.json else None
    plots = Path(args.plots) if args.plots else None
    bench.check_outputs(json_path, plots)
    config = bench.BenchConfig(batch_sizes=args.batch_sizes, repeats=args.repeats, warmup=args.warmup)
    with Accelerator(Path(args.package), timeout=args.timeout) as acc:
        try:
            report = bench.run(acc, config, partial=bench.partial_path(json_path))
        except bench.BenchFailed as exc:
            print(bench.summary(exc.partial))
            raise
    if json_path:
        bench.write_report(report, json_path)
    if plots:
        report["plots"] = [str(p) for p in bench.write_plots(report, plots)]
        if json_path:
            bench.write_report(report, json_path)      # again, now with the list of plots
    print(bench.summary(report))
    return 0


def main(argv=None, prog: str = "python3 -m psqs.host") -> int:
    """The board entry point; needs only the board install (numpy, pynq), on Python 3.8+."""
    interrupts.install()   # SIGINT/SIGTERM end the command within 2 s, even when stuck in C
    parser = cli_common.ArgumentParser(prog=prog)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("bench", help="latency, throughput and accuracy of an overlay package")
    add_bench_options(p)
    p.set_defaults(func=cmd_bench)
    cli_common.add_common_options(parser, sub)
    args = cli_common.parse(parser, argv)
    if isinstance(args, int):
        return args
    cli_common.configure_logging(args)
    return cli_common.run(args.func, args)
