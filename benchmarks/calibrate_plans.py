"""How well the product plan picks between the dense form and the fused factors.

``python -m benchmarks.calibrate_plans`` times, for butterfly operators of
several shapes, depths, ranks and dtypes and for batches of 1 to 4096 rows,
the two candidates of :func:`skbutterfly._fusion.product_plan` side by side
(interleaved, medians): the dense form ``X @ D.T`` and the fused factors on
blocks of rows (``_apply_rows`` with the plan forced), both as products run
(BLAS and product threads as in use). It prints, per cell, the plan's choice,
the faster candidate and the time lost by the choice, then the totals: the
number of wrong choices, the worst and the summed regret, and last the
constants ``_DENSE_COSTS`` and ``_BLOCK_COSTS`` fitted to these timings
(non-negative least squares on relative errors of the features of
:func:`skbutterfly._fusion.candidate_features`) with the choices they would
make. Run it on a quiet machine; copy the fitted constants into
``_fusion.py`` when they choose better.
"""

import argparse
import os
import pickle
import time
import warnings

import numpy as np
from scipy.optimize import nnls

from skbutterfly._fusion import (
    _BLOCK_COSTS,
    _DENSE_COSTS,
    candidate_features,
    product_plan,
)
from skbutterfly.datasets import make_butterfly

CASES = [
    # (label, shape, depth, rank, complex)
    ("512x64 depth 3 rank 2", (512, 64), 3, 2, False),
    ("512x64 finest", (512, 64), None, 1, False),
    ("64x512 finest", (64, 512), None, 1, False),
    ("128 finest", (128, 128), None, 1, False),
    ("256 finest", (256, 256), None, 1, False),
    ("256 depth 2 rank 4", (256, 256), 2, 4, False),
    ("512 finest rank 2", (512, 512), None, 2, False),
    ("1024 finest", (1024, 1024), None, 1, False),
    ("1024x256 depth 4", (1024, 256), 4, 1, False),
    ("256 complex", (256, 256), None, 1, True),
    ("1024 complex", (1024, 1024), None, 1, True),
]
BATCHES = (1, 4, 16, 64, 256, 1024, 4096)


def _per_call(func, min_time=0.01):
    func()
    start = time.perf_counter()
    func()
    once = time.perf_counter() - start
    loops = max(1, int(min_time / max(once, 1e-7)))
    start = time.perf_counter()
    for _ in range(loops):
        func()
    return (time.perf_counter() - start) / loops


def _forced(op, X, dense):
    width = product_plan(op.chain, X.shape[0], np.dtype(op.dtype).itemsize)[1]
    op._product_plan = lambda k: (dense, width)
    try:
        return op._apply_rows(X)
    finally:
        del op._product_plan


def _fit(features, seconds):
    t = np.asarray(seconds) * 1e9
    F = np.asarray(features)
    coef, _ = nnls(F / t[:, None], np.ones_like(t))
    return coef


def _regret(cells, dense_costs, block_costs):
    """Wrong choices (> 10% slower), the worst ratio and the time lost."""
    wrong, worst, lost = 0, (1.0, None), 0.0
    for label, k, fd, fb, dense, fused in cells:
        chose_dense = fd @ dense_costs <= fb @ block_costs
        got, best = (dense if chose_dense else fused), min(dense, fused)
        wrong += got > 1.1 * best
        lost += got - best
        if got / best > worst[0]:
            worst = (got / best, f"{label}, {k} rows")
    return wrong, worst, lost


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dump", help="also save the cells (features, times) here")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"load average before: {os.getloadavg()}")
    print("| case | rows | chosen | dense ms | fused ms | lost |")
    print("|---|---:|---|---:|---:|---:|")
    cells = []
    for label, shape, depth, rank, is_complex in CASES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, op = make_butterfly(
                shape=shape,
                depth=depth,
                rank=rank,
                complex=is_complex,
                random_state=0,
                return_operator=True,
            )
        itemsize = np.dtype(op.dtype).itemsize
        for k in BATCHES:
            X = rng.standard_normal((k, shape[1])).astype(op.dtype)
            chosen = product_plan(op.chain, k, itemsize)[0]
            fd, fb, _ = candidate_features(op.chain, k, itemsize)
            sides = [
                lambda op=op, X=X: _forced(op, X, True),
                lambda op=op, X=X: _forced(op, X, False),
            ]
            times = [[], []]
            for _ in range(args.repeats):
                for i, f in enumerate(sides):
                    times[i].append(_per_call(f))
            dense, fused = (float(np.median(t)) for t in times)
            cells.append((label, k, fd, fb, dense, fused))
            got = dense if chosen else fused
            print(
                f"| {label} | {k} | {'dense' if chosen else 'fused'} | "
                f"{dense * 1e3:.3f} | {fused * 1e3:.3f} | "
                f"{got / min(dense, fused):.2f}x |"
            )
    if args.dump:
        with open(args.dump, "wb") as file:
            pickle.dump(cells, file)
    fitted = (
        _fit([c[2] for c in cells], [c[4] for c in cells]),
        _fit([c[3] for c in cells], [c[5] for c in cells]),
    )
    for name, (dense_costs, block_costs) in (
        ("current constants", (_DENSE_COSTS, _BLOCK_COSTS)),
        ("fitted constants", fitted),
    ):
        wrong, worst, lost = _regret(cells, dense_costs, block_costs)
        print(
            f"\n{name}: _DENSE_COSTS {np.round(dense_costs, 4).tolist()}, "
            f"_BLOCK_COSTS {np.round(block_costs, 4).tolist()}\n"
            f"  choices more than 10% slower than the best: {wrong}/{len(cells)}; "
            f"worst {worst[0]:.2f}x ({worst[1]}); time lost {lost * 1e3:.1f} ms"
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
