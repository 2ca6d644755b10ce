"""Forward and adjoint products of fitted operators, side by side.

``python -m benchmarks.bench_adjoint`` prints the median time of ``matvec``,
``rmatvec``, ``matmat`` and ``rmatmat`` (64 vectors) at n = 4096 for the DFT
and a real rank-2 butterfly, and the adjoint/forward ratios.
"""

import argparse
import os
import time

import numpy as np

from skbutterfly import butterfly_factorize
from skbutterfly.datasets import dft_matrix, make_butterfly


def _median(func, repeats):
    func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _interleaved(op, x, X, repeats):
    """Medians of the four products, interleaved so that load hits all alike."""
    calls = [
        (lambda: op.matvec(x), repeats),
        (lambda: op.rmatvec(x), repeats),
        (lambda: op.matmat(X), repeats // 3 + 1),
        (lambda: op.rmatmat(X), repeats // 3 + 1),
    ]
    rounds = [[_median(f, r) for f, r in calls] for _ in range(3)]
    return [float(np.median(t)) for t in zip(*rounds)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--vectors", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    n, rng = args.n, np.random.default_rng(0)
    cases = [
        ("DFT", dft_matrix(n), {"permutation": "bit-reversal"}),
        ("real rank-2", make_butterfly(n, rank=2, random_state=0), {"rank": 2}),
    ]
    print(f"load average before: {os.getloadavg()}")
    print("| case | matvec | rmatvec | ratio | matmat | rmatmat | ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, A, params in cases:
        op = butterfly_factorize(A, **params)
        x = rng.standard_normal(n)
        X = rng.standard_normal((n, args.vectors))
        mv, rmv, mm, rmm = _interleaved(op, x, X, args.repeats)
        print(
            f"| {name} | {mv * 1e3:.3f} ms | {rmv * 1e3:.3f} ms | {rmv / mv:.2f} | "
            f"{mm * 1e3:.2f} ms | {rmm * 1e3:.2f} ms | {rmm / mm:.2f} |"
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
