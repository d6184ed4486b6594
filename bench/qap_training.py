"""Benchmark: the Ps and Qs comparison on the configured data set, side by side in one run.

float dense, 6-bit dense and 6-bit lottery-ticket IMP at 80 % sparsity: test accuracy, AUC, BOPs
and training time each, with BOPs and accuracy as ratios to the float network.

    python bench/qap_training.py [--out runs/bench-qap] [--epochs 100] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from psqs.qap import stage
from psqs.qap.config import TrainConfig

CASES = {
    "float dense": dict(bits=32),
    "6-bit dense": dict(bits=6),
    "6-bit imp-lt 80%": dict(bits=6, pruning="imp-lt", sparsity=0.8),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-qap")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--max-train", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    rows = {}
    for name, options in CASES.items():
        config = TrainConfig(epochs=args.epochs, max_train=args.max_train, **options)
        md = stage.run(config, Path(args.out) / name.replace(" ", "_").replace("%", "pct"), force=True)
        m = md.metrics
        rows[name] = {"accuracy": m["test"]["accuracy"], "auc_macro": m["test"]["auc_macro"],
                      "bops": m["bops"]["total"], "sparsity": m["sparsity"]["total"],
                      "eta_n": m["efficiency"]["eta_n"], "train_seconds": m["training"]["seconds"],
                      "rounds": len(m["training"]["rounds"]),
                      "epochs": sum(r["epochs"] for r in m["training"]["rounds"]),
                      "data": md.manifest["data"]["source"]}
    base = rows["float dense"]
    print(f"\n{'case':<18} {'accuracy':>8} {'AUC':>6} {'BOPs':>10} {'BOPs/float':>10} "
          f"{'sparsity':>8} {'epochs':>6} {'train s':>8}")
    for name, r in rows.items():
        print(f"{name:<18} {r['accuracy']:>8.4f} {r['auc_macro']:>6.4f} {r['bops']:>10.4g} "
              f"{r['bops'] / base['bops']:>10.4f} {r['sparsity']:>8.3f} {r['epochs']:>6d} {r['train_seconds']:>8.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
