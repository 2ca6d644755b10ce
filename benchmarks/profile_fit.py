"""Profile one skbutterfly fit with cProfile: where does the time go?

    python -m benchmarks.profile_fit --case dft --n 4096
    python -m benchmarks.profile_fit --case dft --n 4096 --all   # every tree x solver

Prints the wall time of each (tree, svd_solver) and the functions with the most
own time (``tottime``) and cumulative time.
"""

import argparse
import cProfile
import io
import pstats
import time

from benchmarks._cases import CASES, build_input, make_case, uses_bit_reversal

TREES = ("balanced", "left-to-right", "right-to-left")
SOLVERS = ("auto", "full", "gram", "subspace")


def profile(A, spec, tree, solver, top, repeats=3):
    import skbutterfly

    kwargs = dict(
        depth=spec["depth"],
        rank=spec["rank"],
        tree=tree,
        svd_solver=solver,
        permutation="bit-reversal" if uses_bit_reversal(spec) else None,
    )
    walls = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        skbutterfly.butterfly_factorize(A, **kwargs)
        walls.append(time.perf_counter() - start)
    prof = cProfile.Profile()
    prof.enable()
    skbutterfly.butterfly_factorize(A, **kwargs)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return walls, out.getvalue()


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile_fit")
    p.add_argument("--case", default="dft", choices=list(CASES))
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--precision", default="float64", choices=["float64", "float32"])
    p.add_argument("--tree", default="balanced", choices=TREES)
    p.add_argument("--svd-solver", default="auto", choices=SOLVERS)
    p.add_argument("--all", action="store_true", help="every tree and solver")
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3, help="unprofiled runs")
    p.add_argument("--quiet", action="store_true", help="wall times only")
    args = p.parse_args(argv)
    spec = make_case(args.case, args.n, args.precision)
    A = build_input(spec)
    combos = (
        [(t, s) for t in TREES for s in SOLVERS]
        if args.all
        else [(args.tree, args.svd_solver)]
    )
    for tree, solver in combos:
        try:
            walls, text = profile(A, spec, tree, solver, args.top, args.repeats)
        except Exception as exc:  # e.g. a solver that refuses a block shape
            print(f"== {tree} / {solver}: {type(exc).__name__}: {exc}")
            continue
        print(
            f"== {args.case} n={args.n} {args.precision} tree={tree} "
            f"svd_solver={solver}: {' '.join(f'{w:.3f}' for w in walls)} s "
            "(unprofiled runs; the first includes one-off costs)"
        )
        if not args.quiet:
            print(text)


if __name__ == "__main__":
    main()
