"""``psqs emulate``: serve an emulated PYNQ board to unmodified pynq clients over PYNQ.remote.

    psqs emulate [--board pynq-z2] [--overlays DIR ...] [--host 127.0.0.1] [--port 7967]
                 [--fault KIND[=MS][@N] ...] [--sandbox DIR] [--stream-capacity N]

Clients connect with ``PYNQ_REMOTE_DEVICES=<host>`` (pynq always uses port 7967).
"""
from __future__ import annotations

import argparse
import signal
from pathlib import Path

from psqs.board_configs import DEFAULT_BOARD
from psqs.common.cli_types import integer, port

from .board import EmulatorConfig
from .faults import KINDS, Fault, FaultSpecError
from .server import EmulatorServer


def _fault(text: str) -> Fault:
    try:
        return Fault.parse(text)
    except FaultSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _sandbox(text: str) -> Path:
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: exists and is not a directory")
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--board", default=DEFAULT_BOARD,
                        help=f"board to emulate (psqs/board_configs; default {DEFAULT_BOARD})")
    parser.add_argument("--overlays", nargs="+", type=Path, default=[], metavar="DIR",
                        help="overlay packages to serve: package directories, or directories holding them "
                             "(rescanned when an unknown bitstream is downloaded)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; use 127.0.0.x for several boards)")
    parser.add_argument("--port", type=port, default=7967, help="port, 1..65535 (pynq's client only uses 7967)")
    parser.add_argument("--fault", type=_fault, action="append", default=[], metavar="KIND[=MS][@N]",
                        help=f"inject a fault into the N-th DMA transfer (default the first); KIND is one of "
                             f"{', '.join(KINDS)} (stall=MS); repeatable")
    parser.add_argument("--sandbox", type=_sandbox, default=None,
                        help="directory holding the board's files (/lib/firmware persists there); "
                             "default: a temporary directory")
    parser.add_argument("--stream-capacity", type=integer(1), default=EmulatorConfig.stream_capacity, metavar="N",
                        help="samples the stream path buffers before back-pressuring the DMA (default %(default)s)")


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("emulate", help="serve an emulated PYNQ board over PYNQ.remote (gRPC)",
                                   description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def config_from(args: argparse.Namespace) -> EmulatorConfig:
    return EmulatorConfig(board=args.board, overlays=list(args.overlays), host=args.host, port=args.port,
                          faults=list(args.fault), sandbox=args.sandbox, stream_capacity=args.stream_capacity)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted (SIGINT/SIGTERM). Returns the exit status; a board, package or
    address it cannot serve is a :class:`psqs.common.errors.PsqsError`."""
    server = EmulatorServer(config_from(args)).start()
    board = server.board
    names = ", ".join(p.name for p in board.catalog.packages) or "no packages"
    print(f"psqs emulate: {board.board.name} on {server.address} serving {names}; "
          f"connect with PYNQ_REMOTE_DEVICES={args.host}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    try:
        server.wait()
    except KeyboardInterrupt:      # Ctrl-C: stop serving, then report it as every command does (130)
        server.stop()
        raise
    return 0
