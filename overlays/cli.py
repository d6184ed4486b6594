"""``psqs build``: the command-line face of :mod:`psqs.overlays.build`.

``deploy/cli.py`` wires it in with ``add_parser(subparsers)``; the subcommand's function is
:func:`run`. Its expected failures (bad input, missing tools, failed timing, a design that does
not fit) are :class:`psqs.common.errors.PsqsError`, which ``psqs`` prints as one line.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from psqs.board_configs import board_names
from psqs.common.cli_types import integer

from .build import BuildConfig
from .build import run as build_run


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "build", help="overlay package (.bit, .hwh, manifest) of an HLS or RTL directory",
        description="Build a PYNQ overlay package: with Vivado/Vitis on PATH a real bitstream, "
                    "with --emulation a package with the same interface for the board emulator.")
    p.add_argument("source", metavar="HLS_OR_RTL_DIR", help="output of psqs convert (or psqs rtl)")
    p.add_argument("--board", required=True, help=f"target board: {', '.join(board_names())}")
    p.add_argument("--out", required=True, help="package directory to write")
    p.add_argument("--emulation", action="store_true",
                   help="no vendor tools: emulation .bit/.hwh with the identical interface")
    p.add_argument("--jobs", type=integer(1), default=1, help="parallel Vivado jobs (default 1)")
    p.add_argument("--force", action="store_true", help="replace --out (and the tarball) if it is a psqs artifact or empty")
    p.add_argument("--tar", action="store_true", help="also write <out>.tar.gz")
    p.add_argument("--name", default=None,
                   help="package name: names the .bit/.hwh (default <project>_<board>)")
    p.set_defaults(func=run)
    return p


def summarize(manifest: dict, path: Path) -> str:
    board, timing, dma, bit = manifest["board"], manifest["timing"], manifest["dma"], manifest["bitstream"]
    kind = "emulation package" if manifest["emulation"] else "bitstream"
    lines = [f"overlay    {path}  ({kind} for {board['name']}, {board['part']}, {board['fclk_mhz']:g} MHz)",
             f"files      {manifest['name']}.bit (.bin sha256 {bit['bin_sha256'][:16]}…), {manifest['name']}.hwh",
             "ips        " + ", ".join(f"{k} @ {v['base']:#010x}" for k, v in manifest["ips"].items()),
             (f"dma        {dma['mm2s_tdata_width']}/{dma['s2mm_tdata_width']}-bit streams, "
              f"{dma['mm_data_width']}-bit memory side, at most {dma['max_transfer_bytes']} bytes per transfer"),
             f"timing     {timing['latency_cycles']} cycles latency, II {timing['ii_cycles']} ({timing['source']})"]
    return "\n".join(lines)


def run(args) -> int:
    config = BuildConfig(Path(args.source), args.board, Path(args.out), emulation=args.emulation,
                         jobs=args.jobs, force=args.force, tar=args.tar, name=args.name)
    out = build_run(config)
    print(summarize(json.loads((out / "manifest.json").read_text()), out))
    return 0
