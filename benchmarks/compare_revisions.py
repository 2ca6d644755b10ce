"""Fit times of two checkouts of skbutterfly, interleaved in one run.

``python -m benchmarks.compare_revisions OLD_TREE NEW_TREE`` times
``butterfly_factorize`` on the same matrices with each tree's package (one
subprocess per measurement, alternating old and new so that load changes on
a shared machine hit both alike) and prints the medians and new/old ratios.
A tree is a directory holding ``skbutterfly/`` (e.g. a ``git worktree``).
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

_CASES = {
    "dft": "dft_matrix({n})",
    "hadamard": "hadamard_matrix({n})",
    "gaussian": "np.random.default_rng(0).standard_normal(({n}, {n}))",
    "noisy": "make_butterfly({n}, random_state=0, noise=0.1)",
}
_PARAMS = {"dft": "permutation='bit-reversal'"}

_SCRIPT = """
import time, json, numpy as np
import skbutterfly
from threadpoolctl import threadpool_limits
from skbutterfly import butterfly_factorize
from skbutterfly.datasets import dft_matrix, hadamard_matrix, make_butterfly
A = {matrix}
with threadpool_limits(1, user_api="blas"):
    butterfly_factorize(A[:64, :64], {params})
    start = time.perf_counter()
    butterfly_factorize(A, {params})
print(json.dumps([time.perf_counter() - start, skbutterfly.__file__]))
"""


def _time(tree, case, n):
    code = _SCRIPT.format(matrix=_CASES[case].format(n=n), params=_PARAMS.get(case, ""))
    env = {**os.environ, "PYTHONPATH": os.path.abspath(tree)}
    # Run inside the tree: ``python -c`` puts the working directory first on
    # sys.path, ahead of PYTHONPATH (run from a checkout, both sides would
    # otherwise import that checkout).
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        cwd=os.path.abspath(tree),
    )
    if out.returncode:
        raise RuntimeError(out.stderr)
    seconds, where = json.loads(out.stdout.strip().splitlines()[-1])
    expected = os.path.join(os.path.abspath(tree), "skbutterfly")
    if not os.path.abspath(where).startswith(expected):
        raise RuntimeError(f"{tree} ran the skbutterfly of {where}")
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--cases", default="dft,hadamard,gaussian,noisy")
    parser.add_argument("--sizes", default="2048,4096")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()}")
    print("| case | n | old (s) | new (s) | new/old |")
    print("|---|---|---|---|---|")
    for case in args.cases.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            old, new = [], []
            for _ in range(args.repeats):
                old.append(_time(args.old, case, n))
                new.append(_time(args.new, case, n))
            o, w = float(np.median(old)), float(np.median(new))
            print(f"| {case} | {n} | {o:.3f} | {w:.3f} | {w / o:.2f} |", flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
