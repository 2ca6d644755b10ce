"""Fit the factor cost model of the fusion plans (``skbutterfly/_fusion.py``).

``python -m benchmarks.calibrate_products`` times one factor product
(``apply_twiddle`` into a reused buffer, operands in cache, one BLAS thread)
for a range of patterns and block widths, then fits the ``_NS_PER_*``
constants by non-negative least squares on relative errors and prints them
with the spread of predicted / measured times. The constants only have to
rank the fusion plans against each other; the choice between the fused
factors and the dense form is calibrated by ``benchmarks.calibrate_plans``.
On a shared machine run it when the load is low.
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
    factor_x, factor_t = [], []
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
    for label, names, (coef, ratio) in (
        (
            "factor",
            ("_NS_PER_FACTOR", "_NS_PER_CALL", "_NS_PER_MAC", "_NS_PER_ELEMENT"),
            _fit(factor_x, factor_t),
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
