"""``psqs import-hls4ml``: the command-line face of :mod:`psqs.overlays.from_hls4ml.importer`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from psqs.board_configs import board_names

from .importer import ImportConfig, summarize
from .importer import run as import_run


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "import-hls4ml", help="overlay package of an hls4ml VivadoAccelerator build (.bit, .hwh, project), unchanged",
        description="Turn an hls4ml VivadoAccelerator axi_stream build into a psqs overlay package: your .bit "
                    "and .hwh unchanged, the I/O contract from the project, and the bit-exact C simulation of "
                    "its <name>_axi top (g++) so that psqs emulate / psqs bench / your own scripts can run it.")
    p.add_argument("--project", required=True, help="the hls4ml project directory (hls4ml_config.yml, firmware/)")
    p.add_argument("--bit", required=True, help="the .bit Vivado built from it")
    p.add_argument("--hwh", required=True, help="the .hwh of that build")
    p.add_argument("--board", default=None,
                   help=f"target board (default: the one the .hwh names): {', '.join(board_names())}")
    p.add_argument("--test-data", default=None,
                   help=".npz with X (n, inputs) and optionally y (n,) labels; default the project's tb_data")
    p.add_argument("--out", required=True, help="package directory to write")
    p.add_argument("--name", default=None, help="package name: names its .bit/.hwh (default <project>_<board>)")
    p.add_argument("--force", action="store_true", help="replace --out if it is a psqs artifact or empty")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    config = ImportConfig(Path(args.project), Path(args.bit), Path(args.hwh), Path(args.out), board=args.board,
                          test_data=Path(args.test_data) if args.test_data else None, name=args.name,
                          force=args.force)
    out = import_run(config)
    print(summarize(json.loads((out / "manifest.json").read_text()), out))
    return 0
