"""``psqs rtl``: the command-line face of :mod:`psqs.hls.rtl.stage`.

``add_parser(subparsers)`` registers the subcommand on the ``psqs`` parser (its ``func`` default
is :func:`run`); its expected failures are :class:`psqs.common.errors.PsqsError` subclasses,
which ``psqs`` prints as one line.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from psqs.common.cli_types import integer, real
from psqs.common.contract import IOContract

from .trace import SOLVERS


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "rtl", help="cycle-accurate RTL of the network (da4ml Verilog, Verilator, yosys), verified bit-exact",
        description="Generate synthesizable Verilog of the quantized network with an AXI-stream top that "
                    "speaks the HLS IP's I/O contract, simulate it cycle by cycle with Verilator (bit-exact "
                    "under random stalls; latency and II measured), package it as a Vivado IP and estimate "
                    "its resources with yosys.")
    p.add_argument("source", metavar="HLS_OR_MODEL_DIR",
                   help="an HLS directory (psqs convert; its I/O contract is reused) or a model directory")
    p.add_argument("--out", required=True, help="RTL directory to write")
    p.add_argument("--stage-depth", type=integer(1), default=5,
                   help="adder levels per pipeline stage: fewer = more stages, more latency and FFs (default 5)")
    p.add_argument("--clock-period", type=real(0, low_open=True), default=None,
                   help="target clock period in ns (default: the HLS directory's, else the board's fabric clock)")
    p.add_argument("--board", default=None,
                   help="board for the bus width (model directories) and the resource fit "
                        "(default: the HLS directory's board, else pynq-z2)")
    p.add_argument("--solver", choices=SOLVERS, default="cmvm",
                   help="dense layers: da4ml's CMVM shift-and-add sharing (default; numba-compiled once, "
                        "minutes) or a plain adder tree per output")
    p.add_argument("--synth", action=argparse.BooleanOptionalAction, default=True,
                   help="yosys resource estimate (minutes on the full network; cached)")
    p.add_argument("--force", action="store_true", help="replace --out if it is a psqs artifact or empty")
    p.set_defaults(func=run)
    return p


def options(args):
    from .stage import RtlOptions

    return RtlOptions(stage_depth=args.stage_depth, clock_period=args.clock_period, board=args.board,
                      solver=args.solver, synth=args.synth)


def run(args) -> int:
    from . import stage

    out = stage.run(Path(args.source), Path(args.out), options(args), force=args.force)
    print(summarize(json.loads((out / "manifest.json").read_text()), out))
    return 0


def summarize(manifest: dict, path: Path) -> str:
    io, ip, rtl, res = manifest["io"], manifest["ip"], manifest["rtl"], manifest["resources"]
    measured, sim = manifest["timing"], manifest["emulation"]
    lines = [(f"rtl        {path}  ({ip['vlnv']}, {rtl['pipeline_stages']} stages of <= {rtl['stage_depth']} "
              f"adder levels, {rtl['solver']}, {ip['clock_period_ns']:g} ns)")]
    contract = IOContract.from_dict(io)
    lines += [f"{'input':<10} {contract.input.describe()}", f"{'output':<10} {contract.output.describe()}"]
    lines.append(f"timing     latency {rtl['latency_cycles']} cycles ({rtl['latency_ns']:g} ns), II {rtl['ii_cycles']} "
                 f"cycles; measured {measured['latency_cycles']} / {measured['ii_cycles']}")
    lines += [f"ladder     {line}" for line in manifest["verification"]["rungs"]]
    if res["synthesized"]:
        r = res["resources"]
        fit = "fits" if res["fits"] else "DOES NOT FIT: " + "; ".join(res["overflows"])
        lines.append(f"yosys      {r['LUT']} LUT, {r['CARRY']} CARRY, {r['FF']} FF, {r['DSP']} DSP, "
                     f"{r['BRAM_18K']} BRAM_18K on {res['part']}: {fit}")
    else:
        lines.append(f"yosys      not run: {res['reason']}")
    lines.append(f"verilator  build {sim['build_seconds']:.1f} s{' (cached)' if sim['cached'] else ''}, "
                 f"{sim['samples_per_second']['free']:.3g} simulated samples/s")
    return "\n".join(lines)
