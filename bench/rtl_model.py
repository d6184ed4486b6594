"""Benchmark: the paper's network as cycle-accurate RTL, and what the pipeline depth costs.

A 6-bit, 80 %-pruned (lottery-ticket IMP) 16-64-32-32-5 model goes through ``psqs rtl`` once per
stage depth: Verilator build time, simulated samples/s, latency and II (stated and measured), yosys
resources for the board's part, and how the stage depth trades latency against flip-flops.

    python bench/rtl_model.py [--out runs/bench-rtl] [--max-train 30000] [--epochs 5]
                              [--depths 2,3,5,8] [--board pynq-z2] [--json FILE]

The model directory under ``--out`` is reused when it exists. Build and synthesis results come
from the content cache ($PSQS_CACHE/rtl) when present; the times reported are those of the real
builds either way (the manifest keeps them), and ``cached`` says which.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from psqs.hls.rtl import stage
from psqs.qap import stage as qap_stage
from psqs.qap.artifact import ModelDir
from psqs.qap.config import TrainConfig


def model_dir(out: Path, max_train: int, epochs: int) -> Path:
    path = out / "model-6bit-imp-lt-80"
    config = TrainConfig(bits=6, pruning="imp-lt", sparsity=0.8, widths=(64, 32, 32), max_train=max_train,
                         epochs=epochs)
    if path.is_dir() and ModelDir(path).config == config:
        return path
    return qap_stage.run(config, path, force=True).path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-rtl")
    parser.add_argument("--max-train", type=int, default=30000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--depths", default="2,3,5,8", help="stage depths to sweep (default 2,3,5,8)")
    parser.add_argument("--board", default="pynq-z2")
    parser.add_argument("--solver", default="cmvm")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out = Path(args.out)

    model = model_dir(out, args.max_train, args.epochs)
    metrics = ModelDir(model).metrics
    rows = {}
    for depth in (int(d) for d in args.depths.split(",")):
        t0 = time.perf_counter()
        rtl = stage.run(model, out / f"rtl-depth{depth}", stage.RtlOptions(stage_depth=depth, board=args.board,
                                                                           solver=args.solver), force=True)
        manifest = json.loads((rtl / "manifest.json").read_text())
        resources = json.loads((rtl / "resources.json").read_text())
        r, sim, measured = manifest["rtl"], manifest["emulation"], manifest["timing"]
        rows[depth] = {
            "stages": r["pipeline_stages"], "latency_cycles": r["latency_cycles"],
            "core_latency_cycles": r["core_latency_cycles"], "ii_cycles": r["ii_cycles"],
            "measured_latency_cycles": measured["latency_cycles"], "measured_ii_cycles": measured["ii_cycles"],
            "latency_ns": r["latency_ns"], "verilator_build_seconds": sim["build_seconds"],
            "verilator_cached": sim["cached"], "samples_per_second": sim["samples_per_second"]["free"],
            "da4ml_cost_luts": manifest["da4ml"]["cost_luts"], "da4ml_register_bits": manifest["da4ml"]["register_bits"],
            **{k: resources["resources"][k] for k in ("LUT", "LUT_memory", "CARRY", "FF", "DSP", "BRAM_18K")},
            "fits": resources["fits"], "overflows": resources["overflows"],
            "yosys_seconds": resources["seconds"], "yosys_cached": resources["cached"],
            "stage_seconds": time.perf_counter() - t0,
        }
        print(f"\n{(rtl / 'manifest.json')}:\n" + "\n".join(manifest["verification"]["rungs"]))

    print(f"\nmodel {model}: accuracy {metrics['test']['accuracy']:.4f}, sparsity {metrics['sparsity']['total']:.3f}, "
          f"solver {args.solver}, board {args.board}")
    print(f"{'depth':>5} {'stages':>6} {'latency':>7} {'meas.':>5} {'II':>3} {'meas.':>5} {'LUT':>7} {'CARRY':>6} "
          f"{'FF':>6} {'DSP':>4} {'fits':>5} {'build s':>8} {'yosys s':>8} {'samples/s':>10}")
    for depth, x in rows.items():
        print(f"{depth:>5} {x['stages']:>6} {x['latency_cycles']:>7} {x['measured_latency_cycles']:>5} "
              f"{x['ii_cycles']:>3} {x['measured_ii_cycles']:>5g} {x['LUT']:>7} {x['CARRY']:>6} {x['FF']:>6} "
              f"{x['DSP']:>4} {x['fits']!s:>5} {x['verilator_build_seconds']:>8.1f} {x['yosys_seconds']:>8.1f} "
              f"{x['samples_per_second']:>10.3g}")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": str(model), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
