"""The ``psqs`` command line: one subcommand per pipeline stage, plus ``demo``.

Expected failures (:class:`psqs.common.errors.PsqsError`: bad data, bad options, corrupt artifacts,
missing tools, failed runs) print one line ``psqs: error: ...`` naming the file, option or tool and
exit with status 2 (bad input) or 1 (failed run); anything else is a bug and keeps its traceback.
See :mod:`psqs.host.cli_common`.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

from psqs.board_configs import DEFAULT_BOARD
from psqs.common import interrupts
from psqs.common.cli_types import integer, integer_list, real
from psqs.common.contract import IOContract
from psqs.common.errors import PsqsError
from psqs.host import cli_common


def add_train_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and QAP")
    g.add_argument("--bits", type=integer(), default=6, help="weight/bias/ReLU bits, 4..16, or 32 for float (default 6)")
    g.add_argument("--relu-integer", type=integer(0), default=0, help="integer bits of the quantized ReLU (default 0)")
    g.add_argument("--input-width", type=integer(), default=16, help="hardware input word width in bits (default 16)")
    g.add_argument("--widths", type=integer_list(1, "64,32,32"), default=(64, 32, 32), help="hidden layer widths (default 64,32,32)")
    g.add_argument("--bn", action=argparse.BooleanOptionalAction, default=False,
                   help="batch normalization after each hidden dense layer (folded before export)")
    g.add_argument("--l1", type=real(0), default=1e-4, help="L1 regularization of dense kernels (default 1e-4)")
    g.add_argument("--pruning", choices=("none", "imp-ft", "imp-lt", "gradual"), default="none",
                   help="pruning during QAT: iterative magnitude pruning with fine-tuning or lottery-ticket "
                        "rewinding, tfmot's gradual schedule, or none (default none)")
    g.add_argument("--sparsity", type=real(0, 1, high_open=True), default=None,
                   help="target fraction of pruned weights (default 0.8 when pruning)")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=integer(1), default=100, help="max epochs per round (early stopping)")
    g.add_argument("--patience", type=integer(1), default=10,
                   help="epochs without a better validation loss before a round stops (default 10)")
    g.add_argument("--batch-size", type=integer(1), default=1024, help="training batch size (default 1024)")
    g.add_argument("--lr", type=real(0, low_open=True), default=1e-3, help="Adam learning rate (default 1e-3)")
    g.add_argument("--max-train", type=integer(1), default=None,
                   help="use at most N training and N/3 validation jets (3:1, as split); the test split is not capped")
    g.add_argument("--seed", type=integer(0, 2**32 - 1), default=0,
                   help="seed of the data split, initialization and shuffling (default 0)")
    g.add_argument("--test-vectors", type=integer(1), default=10000, help="test jets stored with the model (default 10000)")
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
        f"accuracy   {test['accuracy']:.4f}   AUC (macro) {test['auc_macro']:.4f}   on test split, N={test['n_jets']}",
        "rejection  " + "  ".join(f"{k}:{v:.1f}" if v else f"{k}:inf"
                                  for k, v in test["rejection_at_50pct_signal_eff"].items())
        + "   (1/FPR at 50% signal efficiency)",
        f"sparsity   {sparsity['total']:.3f}   BOPs {bops['total']:.4g}   eta_N {eff['eta_n']:.3f}",
        f"training   {metrics['training']['seconds']:.1f} s in {len(metrics['training']['rounds'])} round(s)",
    ]
    return "\n".join(lines)


def add_convert_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("Vitis", "Vivado"), default="Vitis", help="hls4ml backend (default Vitis)")
    p.add_argument("--io", choices=("parallel", "stream"), default="parallel",
                   help="hls4ml io_type: layers as parallel arrays or as streams (default parallel)")
    p.add_argument("--strategy", choices=("latency", "resource"), default="latency",
                   help="hls4ml strategy (default latency)")
    p.add_argument("--reuse", type=integer(1), default=1, help="hls4ml reuse factor (default 1)")
    p.add_argument("--clock-period", type=real(0, low_open=True), default=None,
                   help="HLS clock period in ns (default: the board's fabric clock, 10 ns at 100 MHz)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--board", default=None, help="target board (default pynq-z2): sets part, bus width, clock")
    target.add_argument("--part", default=None, help="FPGA part, instead of a board")
    p.add_argument("--bus-width", type=integer(8), default=None,
                   help="AXI-stream data width in bits (default: the board's HP port width, else 64)")
    p.add_argument("--allow-inexact", action="store_true",
                   help="convert even if the C simulation cannot be bit-exact (the mismatch is measured)")
    p.add_argument("--synth", action="store_true", help="run vendor HLS synthesis when the tool is on PATH")
    from psqs.hls.interface import DEFAULT, INTERFACES

    p.add_argument("--interface", choices=tuple(INTERFACES), default=DEFAULT,
                   help="stream format of the model IP: psqs (fixed-point codes packed on the bus, default), "
                        "hls4ml-float (float32 elements, one per beat) or hls4ml-fixed (the model's ap_fixed "
                        "formats widened to whole bytes, one per beat); the hls4ml ones also get hls4ml's "
                        "overlay layout (hier_0/axi_dma_0), so scripts written for hls4ml overlays run unchanged")


def convert_options(args):
    from psqs.hls.stage import ConvertOptions, options_for_board

    common = dict(backend=args.backend, io=args.io, strategy=args.strategy, reuse=args.reuse,
                  allow_inexact=args.allow_inexact, synth=args.synth, interface=args.interface)
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

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise PsqsError(f"--out {args.out}: exists and is not a directory")
    return demo.run(Path(args.out), force=args.force, quiet=args.quiet, board=args.board)


def build_parser() -> argparse.ArgumentParser:
    parser = cli_common.ArgumentParser(prog="psqs", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="QAP-train a jet tagger into a model directory")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--force", action="store_true", help="replace --out if it is a psqs artifact or empty")
    add_train_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("convert", help="hls4ml conversion of a model directory, verified bit-exact")
    p.add_argument("model_dir", help="model directory (from psqs train)")
    p.add_argument("--out", required=True, help="HLS directory to write")
    p.add_argument("--force", action="store_true", help="replace --out if it is a psqs artifact or empty")
    add_convert_options(p)
    p.set_defaults(func=cmd_convert)

    from psqs.deploy.deploy_cli import add_parser as add_deploy_parser
    from psqs.deploy.emulator.cli import add_parser as add_emulate_parser
    from psqs.deploy.sweep.report import add_parser as add_report_parser
    from psqs.deploy.sweep.cli import add_parser as add_sweep_parser
    from psqs.hls.rtl.cli import add_parser as add_rtl_parser
    from psqs.host.cli import add_bench_options, cmd_bench
    from psqs.overlays.cli import add_parser as add_build_parser
    from psqs.overlays.from_hls4ml.cli import add_parser as add_import_parser

    add_rtl_parser(sub)
    add_build_parser(sub)
    add_import_parser(sub)
    add_emulate_parser(sub)
    add_deploy_parser(sub)
    add_report_parser(sub)
    add_sweep_parser(sub)

    p = sub.add_parser("bench", help="latency, throughput and accuracy of an overlay package on a board "
                                     "(PYNQ_REMOTE_DEVICES for a remote or emulated one)")
    add_bench_options(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("demo", help="the whole pipeline on the default data, end to end")
    p.add_argument("--out", default="runs/demo", help="directory of the demo's artifacts (default runs/demo)")
    p.add_argument("--force", action="store_true", help="replace the demo's artifacts under --out")
    p.add_argument("--board", default=DEFAULT_BOARD, help=f"board to target (default {DEFAULT_BOARD}: its on-board "
                   "path; a PYNQ.remote board such as zcu104: PYNQ.remote)")
    p.set_defaults(func=cmd_demo)
    cli_common.add_common_options(parser, sub)
    return parser


def _quiet_libraries() -> None:
    """TensorFlow's and absl's Python-side warnings and Keras' legacy-format notes are not the
    user's business (their C++ start-up lines: :func:`cli_common.quiet_native_logs`)."""
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module="keras")  # h5 "legacy format" notes


def main(argv=None) -> int:
    interrupts.install()   # SIGINT/SIGTERM end the command within 2 s, even when stuck in C
    cli_common.quiet_native_logs(argv)
    args = cli_common.parse(build_parser(), argv)
    if isinstance(args, int):
        return args
    cli_common.configure_logging(args)
    if not args.debug:
        _quiet_libraries()
    return cli_common.run(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
