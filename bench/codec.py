"""Benchmark: the board's feature codec against hls4ml's PYNQ driver approach, in one run.

hls4ml's VivadoAccelerator driver (``axi_stream_driver.py``) leaves fixed-point encoding to the
user and documents per-element Python functions wrapped in ``np.vectorize``::

    encode_v = np.vectorize(lambda xi: np.int16(round(xi * 2**10)))
    decode_v = np.vectorize(lambda yi: yi * 2**-10)

psqs' path: standardize + quantize (round half to even, saturate) + pack straight into the DMA
buffer (:class:`psqs.common.codec.FeatureEncoder`), and unpack + decode of the logits
(:func:`psqs.common.codec.decode_bytes`). Targets (issue 6): >= 300x the baseline and >= 150 M
feature values/s standardized+encoded+packed. Plain numpy rounding is printed as a yardstick.

    python bench/codec.py [--samples 2000000] [--baseline-samples 50000] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from psqs.common import codec
from psqs.common.contract import StreamLayout
from psqs.common.fixed_point import FixedFormat

INPUT = StreamLayout.packed(16, FixedFormat(16, 5), 64)                                   # the jet tagger's
OUTPUT = StreamLayout.packed(5, FixedFormat(18, 7, rounding="TRN", overflow="WRAP"), 64)   # contract on PYNQ-Z2


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2_000_000)
    parser.add_argument("--baseline-samples", type=int, default=50_000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    X = (rng.normal(size=(args.samples, 16)) * rng.uniform(0.05, 200, 16) + 30).astype(np.float32)
    mean, scale = X.mean(axis=0).astype(np.float64), X.std(axis=0).astype(np.float64)
    frac = INPUT.format.frac
    out_codes = rng.integers(-(1 << 17), 1 << 17, size=(args.samples, 5))
    out_bytes = codec.pack(OUTPUT, out_codes)

    # hls4ml driver approach (standardization vectorized, as a user would write it)
    encode_v = np.vectorize(lambda xi: np.int16(round(xi * 2 ** frac)))
    decode_v = np.vectorize(lambda yi: yi * 2.0 ** -OUTPUT.format.frac)
    small = X[:args.baseline_samples]
    base_buffer = np.empty((small.shape[0], 16), np.int16)

    def baseline_encode():
        base_buffer[:] = encode_v((small.astype(np.float64) - mean) / scale)

    small_out = out_codes[:args.baseline_samples].astype(np.int32)

    def baseline_decode():
        decode_v(small_out)

    encoder = codec.FeatureEncoder(INPUT, mean, scale)
    buffer = np.empty(args.samples * INPUT.bytes_per_sample, np.uint8)
    results = {
        "baseline_encode": small.size / best_of(baseline_encode, 1),
        "psqs_encode": X.size / best_of(lambda: encoder(X, buffer)),
        "numpy_rint_only": X.size / best_of(lambda: np.rint(X.astype(np.float64))),
        "baseline_decode": small_out.size / best_of(baseline_decode, 1),
        "psqs_decode": out_codes.size / best_of(lambda: codec.decode_bytes(OUTPUT, out_bytes, args.samples)),
    }
    # same answer as the straightforward formula, so the speed is not bought with exactness
    expected, _ = codec.encode(INPUT, (X[:100_000].astype(np.float64) - mean) / scale)
    assert np.array_equal(buffer[:100_000 * INPUT.bytes_per_sample], codec.pack(INPUT, expected))
    ratios = {"encode_speedup": results["psqs_encode"] / results["baseline_encode"],
              "decode_speedup": results["psqs_decode"] / results["baseline_decode"]}

    print(f"{'path':<34} {'M values/s':>12}")
    for name, value in results.items():
        print(f"{name:<34} {value / 1e6:>12.2f}")
    print(f"\nencode+pack speed-up vs np.vectorize  {ratios['encode_speedup']:.0f}x (target >= 300x)")
    print(f"unpack+decode speed-up vs np.vectorize {ratios['decode_speedup']:.0f}x")
    print(f"psqs standardize+encode+pack          {results['psqs_encode'] / 1e6:.0f} M values/s (target >= 150)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"values_per_second": results, **ratios}, f, indent=2)


if __name__ == "__main__":
    main()
