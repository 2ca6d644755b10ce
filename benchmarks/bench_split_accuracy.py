"""How close is one split to the exact block SVD, and what does it cost?

    python -m benchmarks.bench_split_accuracy            # n = 1024, 2048, 4096
    python -m benchmarks.bench_split_accuracy --n 4096 --case monarch

For the root split of the balanced tree (rank 1, the split that dominates a
fit), compares the energy that skbutterfly's chosen solver captures with the
exact one (LAPACK's SVD of every block): the shortfall is reported relative to
the energy the exact rank-one blocks leave out, which is what the split's error
is made of (a shortfall of 1e-8 changes the split's error in the 9th digit).
Times are medians of 3 runs with BLAS held to one thread.
"""

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks._cases import CASES, build_input, make_case


def _root_split(n):
    """``(b2, c1)`` of the balanced tree's root split of a square dyadic chain."""
    levels = n.bit_length() - 1
    left = levels // 2
    return 2 ** (levels - left), 2**left


def measure(case, n, repeats=3):
    from skbutterfly._split import split_group, split_stacked

    A = build_input(make_case(case, n))
    T = A.reshape(1, 1, n, n)
    b2, c1 = _root_split(n)

    def split(solver):
        if solver == "full":
            return split_stacked(
                [T],
                b2,
                c1,
                1,
                orthonormalize=True,
                solver="full",
                n_jobs=1,
                random_state=None,
            )[0]
        return split_group(
            [T],
            [b2],
            [c1],
            1,
            orthonormalize=True,
            solver=solver,
            random_state=np.random.RandomState(0),
        )[0]

    rows = []
    with threadpool_limits(1):
        split("auto")  # warm-up
        for solver in ("auto", "full"):
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                _, right = split(solver)
                times.append(time.perf_counter() - start)
            rows.append((solver, float(np.median(times)), right))
    total = float(np.vdot(A, A).real)
    exact = float(np.vdot(rows[1][2], rows[1][2]).real)
    captured = float(np.vdot(rows[0][2], rows[0][2]).real)
    return {
        "case": case,
        "n": n,
        "blocks": f"{n // b2} x {n // c1}",
        "auto_s": rows[0][1],
        "lapack_s": rows[1][1],
        "shortfall": (exact - captured) / (total - exact),
    }


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_split_accuracy")
    p.add_argument("--case", default="gaussian", choices=list(CASES))
    p.add_argument("--n", type=int, nargs="+", default=[1024, 2048, 4096])
    args = p.parse_args(argv)
    print(
        "| case | n | blocks | auto solver s | LAPACK SVD s | speed-up | "
        "energy shortfall / left-out energy |"
    )
    print("|---|---|---|---:|---:|---:|---:|")
    for n in args.n:
        r = measure(args.case, n)
        print(
            f"| {r['case']} | {r['n']} | {r['blocks']} | {r['auto_s']:.3f} | "
            f"{r['lapack_s']:.3f} | {r['lapack_s'] / r['auto_s']:.1f}x | "
            f"{r['shortfall']:.1e} |"
        )


if __name__ == "__main__":
    main()
