"""``psqs deploy``: the options of :mod:`psqs.deploy.deploy` (SSH to a board, bench there, report back)."""
from __future__ import annotations

import argparse
from pathlib import Path

from psqs.common import cli_types

from .board_probe import PYNQ_PYTHON

#: bench options passed through to ``python -m psqs.host bench`` on the board, when given
BENCH_OPTIONS = {"--batch-sizes": cli_types.integer_list(), "--repeats": cli_types.integer(1),
                 "--warmup": cli_types.integer(0), "--timeout": cli_types.real(0, low_open=True)}


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("deploy", help="copy an overlay package to a board over SSH, bench it there, "
                                             "fetch the report and plots")
    p.add_argument("package", help="overlay package directory (from psqs build)")
    p.add_argument("--to", required=True, metavar="USER@HOST[:PORT]", help="the board's SSH login (port default 22)")
    p.add_argument("--out", required=True, help="local directory for run_report.json and plots/")
    p.add_argument("--python", default=PYNQ_PYTHON, help=f"the board's Python with pynq (default {PYNQ_PYTHON})")
    p.add_argument("--accept-new-host-key", action="store_true",
                   help="accept a host key that is not in ~/.ssh/known_hosts: print its fingerprint and record it "
                        "there (a changed key is always refused)")
    p.add_argument("--connect-timeout", type=cli_types.real(0, low_open=True), default=20.0,
                   help="seconds to connect and authenticate (default 20)")
    p.add_argument("--step-timeout", type=cli_types.real(0, low_open=True), default=300.0,
                   help="seconds each probe, install and fetch step may take (default 300)")
    p.add_argument("--bench-timeout", type=cli_types.real(0, low_open=True), default=3600.0,
                   help="seconds the bench on the board may take (default 3600)")
    p.add_argument("--dry-run", action="store_true", help="print the plan; connect to nothing, change nothing")
    g = p.add_argument_group("passed to the board's psqs bench (its defaults when not given)")
    g.add_argument("--batch-sizes", type=BENCH_OPTIONS["--batch-sizes"], help="comma-separated samples per call")
    g.add_argument("--repeats", type=BENCH_OPTIONS["--repeats"], help="calls per batch size")
    g.add_argument("--warmup", type=BENCH_OPTIONS["--warmup"], help="untimed calls of the largest batch size first")
    g.add_argument("--timeout", type=BENCH_OPTIONS["--timeout"], help="seconds every DMA wait may take beyond bus time")
    p.set_defaults(func=cmd_deploy)
    return p


def _bench_args(args) -> tuple[str, ...]:
    out = []
    for option in BENCH_OPTIONS:
        value = getattr(args, option[2:].replace("-", "_"))
        if value is not None:
            out += [option, ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return tuple(out)


def cmd_deploy(args) -> int:
    from .deploy import DeployConfig, run_deploy
    from .ssh import Target

    return run_deploy(DeployConfig(
        package=Path(args.package), target=Target.parse(args.to), out=Path(args.out), python=args.python,
        accept_new_host_key=args.accept_new_host_key, bench_args=_bench_args(args),
        connect_timeout=args.connect_timeout, step_timeout=args.step_timeout, bench_timeout=args.bench_timeout,
        dry_run=args.dry_run))
