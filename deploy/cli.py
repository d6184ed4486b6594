"""The ``psqs`` command line: one subcommand per pipeline stage, plus ``demo``.

Expected failures (bad data, bad options, corrupt artifacts) print one line naming the file or
option and exit with status 2; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from pathlib import Path

from psqs.board_configs import DEFAULT_BOARD
from psqs.host.contract import IOContract
from psqs.host.fixed_point import FormatError



def _user_errors() -> tuple[type[BaseException], ...]:
    from psqs.board_configs import BoardConfigError
    from psqs.hls.convert import ConversionError
    from psqs.host.cli import USER_ERRORS as HOST_ERRORS
    from psqs.qap.config import ConfigError
    from psqs.qap.data import DataError

    return (*HOST_ERRORS, BoardConfigError, ConfigError, ConversionError, DataError, FormatError)


def _widths(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. 64,32,32") from None


def add_train_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and QAP")
    g.add_argument("--bits", type=int, default=6, help="weight/bias/ReLU bits, 4..16, or 32 for float (default 6)")
    g.add_argument("--relu-integer", type=int, default=0, help="integer bits of the quantized ReLU (default 0)")
    g.add_argument("--input-width", type=int, default=16, help="hardware input word width in bits (default 16)")
    g.add_argument("--widths", type=_widths, default=(64, 32, 32), help="hidden layer widths (default 64,32,32)")
    g.add_argument("--bn", action=argparse.BooleanOptionalAction, default=False,
                   help="batch normalization after each hidden dense layer (folded before export)")
    g.add_argument("--l1", type=float, default=1e-4, help="L1 regularization of dense kernels (default 1e-4)")
    g.add_argument("--pruning", choices=("none", "imp-ft", "imp-lt", "gradual"), default="none")
    g.add_argument("--sparsity", type=float, default=None,
                   help="target fraction of pruned weights (default 0.8 when pruning)")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=100, help="max epochs per round (early stopping)")
    g.add_argument("--patience", type=int, default=10)
    g.add_argument("--batch-size", type=int, default=1024)
    g.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    g.add_argument("--max-train", type=int, default=None, help="use at most N training jets")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--test-vectors", type=int, default=10000, help="test jets stored with the model")
    g.add_argument("--data", default=None,
                   help="data file (.npz/.csv/.parquet); default $PSQS_DATA, else OpenML 42468")


def train_config(args):
    from psqs.qap.config import TrainConfig

    sparsity = args.sparsity if args.sparsity is not None else (0.8 if args.pruning != "none" else 0.0)
    return TrainConfig(
        bits=args.bits, relu_integer=args.relu_integer, input_width=args.input_width,
        widths=args.widths, bn=args.bn, l1=args.l1, pruning=args.pruning, sparsity=sparsity,
        epochs=args.epochs, patience=args.patience, batch_size=args.batch_size,
        learning_rate=args.lr, max_train=args.max_train, seed=args.seed,
        test_vectors=args.test_vectors, data=args.data)


def cmd_train(args) -> int:
    from psqs.qap import stage
    from psqs.qap.progress import epoch_bar_factory

    config = train_config(args)
    model_dir = stage.run(config, Path(args.out), force=args.force,
                          progress_factory=epoch_bar_factory(not args.quiet))
    print(summarize_model(model_dir.metrics, model_dir.path))
    return 0


def summarize_model(metrics: dict, path: Path) -> str:
    test, sparsity, bops = metrics["test"], metrics["sparsity"], metrics["bops"]
    eff = metrics["efficiency"]
    lines = [
        f"model      {path}",
        f"accuracy   {test['accuracy']:.4f}   AUC (macro) {test['auc_macro']:.4f}   on {test['n_jets']} test jets",
        "rejection  " + "  ".join(f"{k}:{v:.1f}" if v else f"{k}:inf"
                                  for k, v in test["rejection_at_50pct_signal_eff"].items())
        + "   (1/FPR at 50% signal efficiency)",
        f"sparsity   {sparsity['total']:.3f}   BOPs {bops['total']:.4g}   eta_N {eff['eta_n']:.3f}",
        f"training   {metrics['training']['seconds']:.1f} s in {len(metrics['training']['rounds'])} round(s)",
    ]
    return "\n".join(lines)


def add_convert_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("Vitis", "Vivado"), default="Vitis")
    p.add_argument("--io", choices=("parallel", "stream"), default="parallel")
    p.add_argument("--strategy", choices=("latency", "resource"), default="latency")
    p.add_argument("--reuse", type=int, default=1, help="hls4ml reuse factor (default 1)")
    p.add_argument("--clock-period", type=float, default=None,
                   help="HLS clock period in ns (default: the board's fabric clock, 10 ns at 100 MHz)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--board", default=None, help="target board (default pynq-z2): sets part, bus width, clock")
    target.add_argument("--part", default=None, help="FPGA part, instead of a board")
    p.add_argument("--bus-width", type=int, default=None,
                   help="AXI-stream data width in bits (default: the board's HP port width, else 64)")
    p.add_argument("--allow-inexact", action="store_true",
                   help="convert even if the C simulation cannot be bit-exact (the mismatch is measured)")
    p.add_argument("--synth", action="store_true", help="run vendor HLS synthesis when the tool is on PATH")


def convert_options(args):
    from psqs.hls.stage import ConvertOptions, options_for_board

    common = dict(backend=args.backend, io=args.io, strategy=args.strategy, reuse=args.reuse,
                  allow_inexact=args.allow_inexact, synth=args.synth)
    if args.part:
        return ConvertOptions(part=args.part, bus_bits=args.bus_width or 64,
                              clock_period=args.clock_period or 10.0, **common)
    return options_for_board(args.board or DEFAULT_BOARD, bus_bits=args.bus_width,
                             clock_period=args.clock_period, **common)


def cmd_convert(args) -> int:
    from psqs.hls import stage

    out = stage.run(Path(args.model_dir), Path(args.out), convert_options(args), force=args.force)
    print(summarize_hls(json.loads((out / "manifest.json").read_text()), out))
    return 0


def summarize_hls(manifest: dict, path: Path) -> str:
    io, hls, csim = manifest["io"], manifest["hls"], manifest["csim"]
    lines = [f"hls        {path}  ({hls['backend']}, {hls['io_type']}, {hls['strategy']}, reuse {hls['reuse_factor']}, "
             f"{hls['part']}, {hls['clock_period_ns']} ns)"]
    contract = IOContract.from_dict(io)
    lines += [f"{'input':<10} {contract.input.describe()}", f"{'output':<10} {contract.output.describe()}"]
    lines += [f"ladder     {line}" for line in manifest["verification"]["rungs"]]
    lines.append(f"timing     hls4ml convert+compile {csim['convert_seconds']:.1f} s, "
                 f"AXI-stream csim build {csim['build_seconds']:.1f} s")
    return "\n".join(lines)


def cmd_demo(args) -> int:
    from psqs.deploy import demo

    return demo.run(Path(args.out), force=args.force, quiet=args.quiet)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="psqs", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="QAP-train a jet tagger into a model directory")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    add_train_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("convert", help="hls4ml conversion of a model directory, verified bit-exact")
    p.add_argument("model_dir")
    p.add_argument("--out", required=True, help="HLS directory to write")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    add_convert_options(p)
    p.set_defaults(func=cmd_convert)

    from psqs.host.cli import add_bench_options, cmd_bench
    from psqs.overlays.cli import add_parser as add_build_parser

    from psqs.deploy.emulator.cli import add_parser as add_emulate_parser

    from psqs.hls.rtl.cli import add_parser as add_rtl_parser

    add_rtl_parser(sub)
    add_build_parser(sub)
    add_emulate_parser(sub)

    p = sub.add_parser("bench", help="latency, throughput and accuracy of an overlay package on a board "
                                     "(PYNQ_REMOTE_DEVICES for a remote or emulated one)")
    add_bench_options(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("demo", help="the whole pipeline on the default data, end to end")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    # psqs logs at INFO; the libraries underneath (QKeras logs on the root logger) only warn.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("psqs").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", category=UserWarning, module="keras")  # h5 "legacy format" notes
    try:
        return args.func(args)
    except _user_errors() as exc:
        print(f"psqs {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
