"""Fit the cost model of the product plans (``skbutterfly/_fusion.py``) on this machine.

``python -m benchmarks.calibrate_products`` times one factor product
(``apply_twiddle`` into a reused buffer, operands in cache) for a range of
patterns and block widths, and the dense GEMM ``X @ D.T`` for a range of
shapes, both on one BLAS thread, then fits the model's constants by
non-negative least squares on relative errors and prints them with the
spread of predicted / measured times. The constants only have to rank plans
(the fused factors against each other and against the dense form); on a
shared machine run it when the load is low.
"""

import argparse
import os
import time

import numpy as np
from scipy.optimize import nnls
from threadpoolctl import threadpool_limits

from skbutterfly._twiddle import apply_twiddle

PATTERNS = [
    (1, 2, 2, 512), (512, 2, 2, 1), (32, 2, 2, 16), (1, 8, 8, 64), (64, 8, 8, 1),
    (8, 8, 8, 8), (1, 32, 32, 16), (16, 32, 32, 1), (4, 16, 16, 4), (1, 64, 64, 1),
    (2, 64, 64, 2), (1, 16, 16, 256), (256, 16, 16, 1), (4, 2, 2, 256),
    (1, 4, 4, 1024), (1024, 4, 4, 1), (64, 2, 2, 64), (1, 2, 2, 2048),
    (128, 32, 32, 1), (16, 16, 16, 16), (1, 8, 2, 64), (4, 32, 16, 1), (1, 8, 8, 16),
]  # fmt: skip
DENSE = [(64, 64), (128, 128), (256, 256), (512, 64), (512, 512), (1024, 1024),
         (64, 512), (256, 1024)]  # fmt: skip


def _median(func, repeats=9):
    func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _fit(features, seconds):
    t = np.asarray(seconds) * 1e9
    F = np.asarray(features, float)
    coef, _ = nnls(F / t[:, None], np.ones_like(t))
    ratio = F @ coef / t
    return coef, ratio


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-bytes", type=int, default=4 << 20)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"load average before: {os.getloadavg()}")
    factor_x, factor_t, dense_x, dense_t = [], [], [], []
    with threadpool_limits(1, user_api="blas"):
        for dtype in (np.float64, np.complex128):
            item = np.dtype(dtype).itemsize
            macs = 4 if item == 16 else 1
            for a, b, c, d in PATTERNS:
                T = rng.standard_normal((a, d, b, c)).astype(dtype)
                for k in (1, 4, 16, 32, 64, 128, 256):
                    if a * max(b, c) * d * k * item > args.budget_bytes:
                        continue
                    X = rng.standard_normal((a * c * d, k)).astype(dtype)
                    out = np.empty((a * b * d, k), dtype)
                    t = _median(lambda T=T, X=X, out=out: apply_twiddle(T, X, out=out))
                    words = (a * b * d + a * c * d) * k * item / 8
                    factor_x.append([1, a * d, macs * a * b * c * d * k, words])
                    factor_t.append(t)
            for m, n in DENSE:
                D = rng.standard_normal((m, n)).astype(dtype)
                for k in (1, 4, 16, 64, 256, 1024):
                    X = rng.standard_normal((k, n)).astype(dtype)
                    t = _median(lambda X=X, D=D: X @ D.T)
                    words = (m * n + (m + n) * k) * item / 8
                    dense_x.append([1, macs * m * n * k, words])
                    dense_t.append(t)
    for label, names, (coef, ratio) in (
        (
            "factor",
            ("_NS_PER_FACTOR", "_NS_PER_CALL", "_NS_PER_MAC", "_NS_PER_ELEMENT"),
            _fit(factor_x, factor_t),
        ),
        (
            "dense",
            ("_NS_DENSE_CALL", "_NS_PER_DENSE_MAC", "_NS_PER_DENSE_ELEMENT"),
            _fit(dense_x, dense_t),
        ),
    ):
        values = ", ".join(f"{n} {c:.3g}" for n, c in zip(names, coef))
        lo, hi = np.percentile(ratio, [10, 90])
        print(f"{label}: {values}")
        print(
            f"  predicted / measured: median {np.median(ratio):.2f}, "
            f"10% {lo:.2f}, 90% {hi:.2f}"
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
