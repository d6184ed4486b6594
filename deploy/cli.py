"""The ``psqs`` command line: one subcommand per pipeline stage, plus ``demo``.

Expected failures (bad data, bad options, corrupt artifacts) print one line naming the file or
option and exit with status 2; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from psqs.host.artifact import ArtifactError
from psqs.host.fixed_point import FormatError

log = logging.getLogger("psqs")


def _user_errors() -> tuple[type[BaseException], ...]:
    from psqs.qap.config import ConfigError
    from psqs.qap.data import DataError

    return (ArtifactError, ConfigError, DataError, FormatError)


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

    p = sub.add_parser("demo", help="the whole pipeline on the default data, end to end")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return args.func(args)
    except _user_errors() as exc:
        print(f"psqs {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
