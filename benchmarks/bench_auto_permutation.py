"""Classical transforms: exactness, size and fit time, and the cost of "auto".

Two tables, printed as markdown:

1. Every transform of the user guide page ``transforms.rst`` at several sizes
   (powers of two and not), fitted with its known permutation: relative error,
   number of parameters (and the compression against dense) and fit time.
2. ``permutation="auto"`` against the known permutation, timed side by side in
   one process (interleaved, best of ``--repeat``): the ratio is what the screen
   of the candidates costs on top of one fit.

    python -m benchmarks.bench_auto_permutation                 # about 2 minutes
    python -m benchmarks.bench_auto_permutation --ratio-sizes 1024,4096 \\
        --table-sizes 0 --repeat 5                              # ratios only
    python -m benchmarks.bench_auto_permutation --big           # + DFT 12345

The machine is shared: compare the ratios, not the absolute times, and note the
load (printed first).
"""

import argparse
import os
import time

import numpy as np

from skbutterfly._factorize import dense_source, factorize_core
from skbutterfly.datasets import (
    dct_matrix,
    dft_matrix,
    dst_matrix,
    hadamard_matrix,
    hartley_matrix,
)

# name: (builder, rank, known permutation)
TRANSFORMS = {
    "DFT": (dft_matrix, 1, "digit-reversal"),
    "Hartley": (lambda n: hartley_matrix(n, normalize=True), 2, "digit-reversal"),
    "DCT-II": (lambda n: dct_matrix(n, type=2), 2, "makhoul"),
    "DCT-III": (lambda n: dct_matrix(n, type=3), 2, "makhoul-rows"),
    "DCT-IV": (lambda n: dct_matrix(n, type=4), 2, "makhoul"),
    "DST-II": (lambda n: dst_matrix(n, type=2), 2, "makhoul"),
    "DST-III": (lambda n: dst_matrix(n, type=3), 2, "makhoul-rows"),
    "Hadamard": (hadamard_matrix, 1, None),
}


def _fit(A, rank, permutation):
    start = time.perf_counter()
    op, info = factorize_core(dense_source(A), rank=rank, permutation=permutation)
    elapsed = time.perf_counter() - start
    return op, info, elapsed


def _error(op, A):
    return float(np.linalg.norm(op.toarray() - A) / np.linalg.norm(A))


def table(sizes, names):
    print(
        "| transform | n | rank | permutation | depth | relative error "
        "| parameters | vs dense | fit time (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        build, rank, perm = TRANSFORMS[name]
        for n in sizes:
            if name == "Hadamard" and n & (n - 1):
                continue
            A = build(n)
            op, info, elapsed = _fit(A, rank, perm)
            print(
                f"| {name} | {n} | {rank} | {info['permutation']} | {op.depth} "
                f"| {_error(op, A):.1e} | {op.n_params:,} "
                f"| {n * n / op.n_params:.1f}x | {elapsed:.3f} |"
            )


def ratios(sizes, names, repeat):
    print("| transform | n | known (s) | auto (s) | auto / known | auto chose |")
    print("|---|---|---|---|---|---|")
    for name in names:
        build, rank, perm = TRANSFORMS[name]
        for n in sizes:
            A = build(n)
            known, auto = [], []
            _fit(A, rank, perm)  # warm up (thread pools, caches)
            for _ in range(repeat):
                known.append(_fit(A, rank, perm)[2])
                op, info, elapsed = _fit(A, rank, "auto")
                auto.append(elapsed)
            assert _error(op, A) < 1e-10, (name, n, info["permutation"])
            k, a = min(known), min(auto)
            print(
                f"| {name} | {n} | {k:.3f} | {a:.3f} | {a / k:.2f} "
                f"| {info['permutation']} |"
            )


def _ints(text):
    return [int(v) for v in text.split(",") if v.strip() and int(v) > 0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table-sizes", default="64,360,1000,1024")
    parser.add_argument("--ratio-sizes", default="1024,4096")
    parser.add_argument("--ratio-transforms", default="DFT,DCT-II")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--big", action="store_true", help="also fit the DFT of size 12345"
    )
    args = parser.parse_args(argv)
    print(f"load average: {os.getloadavg()}")
    sizes = _ints(args.table_sizes)
    if sizes:
        print()
        table(sizes, list(TRANSFORMS))
    if args.big:
        print()
        table([12345], ["DFT"])
    sizes = _ints(args.ratio_sizes)
    if sizes:
        print()
        ratios(sizes, args.ratio_transforms.split(","), args.repeat)
    print(f"\nload average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
