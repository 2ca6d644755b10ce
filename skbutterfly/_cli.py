"""The ``skbutterfly`` command line: ``demo``, ``fit`` and ``info``."""

# SPDX-License-Identifier: BSD-3-Clause

import argparse
import sys
import time
import tokenize
import zipfile

import numpy as np

from skbutterfly import __version__
from skbutterfly._approximator import ButterflyApproximator
from skbutterfly._factorize import (
    SVD_SOLVERS,
    dense_source,
    factorize_core,
    relative_error,
)
from skbutterfly._hierarchical import TREES
from skbutterfly._operator import ButterflyOperator
from skbutterfly._validation import check_matrix
from skbutterfly.datasets import dft_matrix, hadamard_matrix

__all__ = ["main"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class CLIError(Exception):
    """An error reported to the user on one line, without a traceback."""


def _median_time(func, repeats=5):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _kernel_matrix(n):
    """A smooth Cauchy kernel ``1 / (1 + |x_i - y_j|)`` on two point grids."""
    x = np.linspace(0.0, 1.0, n)
    y = np.linspace(0.0, 1.0, n) + 0.5 / n
    return 1.0 / (1.0 + n * np.abs(x[:, None] - y[None, :]) / 16)


def _demo_row(name, A, n_vectors, rng, **params):
    start = time.perf_counter()
    op, info = factorize_core(dense_source(A), **params, compute_error=True)
    fit_time = time.perf_counter() - start
    X = rng.standard_normal((A.shape[1], n_vectors)).astype(A.dtype)
    dense = _median_time(lambda: A @ X)
    fast = _median_time(lambda: op @ X)
    return {
        "matrix": name,
        "shape": f"{A.shape[0]}x{A.shape[1]}",
        "depth": op.depth,
        "rank": params.get("rank", 1),
        "rel. error": f"{info['relative_error']:.2e}",
        "params": op.n_params,
        "compression": f"{A.size / op.n_params:.1f}x",
        "fit (s)": f"{fit_time:.3f}",
        "apply speed-up": f"{dense / fast:.1f}x",
    }


def _print_table(rows, file=sys.stdout):
    columns = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print(" | ".join(c.ljust(w) for c, w in zip(columns, widths)), file=file)
    print("-+-".join("-" * w for w in widths), file=file)
    for row in rows:
        print(
            " | ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths)), file=file
        )


def run_demo(args):
    """Factorize the embedded default matrices and print a summary table."""
    n, rng = args.n, np.random.default_rng(0)
    if n < 4 or n & (n - 1):
        raise CLIError(f"--n must be a power of two >= 4, got {n}.")
    print(
        f"skbutterfly {__version__} demo: DFT, Hadamard and a smooth kernel of size "
        f"{n}; apply speed-up measured on {args.vectors} vectors against dense numpy."
    )
    rows = [
        _demo_row("DFT", dft_matrix(n), args.vectors, rng, permutation="bit-reversal"),
        _demo_row("Hadamard", hadamard_matrix(n), args.vectors, rng),
    ]
    kernel = _kernel_matrix(n)
    for rank in (1, 2, 4):
        rows.append(_demo_row("Cauchy kernel", kernel, args.vectors, rng, rank=rank))
    _print_table(rows)
    return EXIT_OK


def _load_matrix(path):
    try:
        A = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise CLIError(f"{path}: is a directory, not a .npy file.") from None
    except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError) as exc:
        raise CLIError(f"{path}: not a readable .npy array ({exc}).") from None
    if isinstance(A, np.lib.npyio.NpzFile):
        A.close()
        raise CLIError(f"{path}: is an .npz archive; give one matrix as a .npy file.")
    try:
        return check_matrix(A, name=path)
    except (TypeError, ValueError) as exc:
        raise CLIError(str(exc)) from None


def _permutation_arg(value):
    if value in (None, "none"):
        return None
    if value in ("bit-reversal", "auto", "identify"):
        return value
    try:
        perm = np.load(value, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CLIError(
            f"--permutation {value}: expected none, bit-reversal, auto, identify or "
            f"a .npy file of column indices ({exc})."
        ) from None
    return perm


def run_fit(args):
    """Factorize a matrix from a ``.npy`` file and save the operator."""
    A = _load_matrix(args.matrix)
    params = dict(
        depth=args.depth,
        rank=args.rank,
        tree=args.tree,
        orthonormalize=not args.no_orthonormalize,
        svd_solver=args.svd_solver,
        n_jobs=args.n_jobs,
    )
    try:
        ButterflyApproximator(**params)._validate_params()
    except (TypeError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    print(f"fitting {args.matrix}: shape {A.shape}, dtype {A.dtype}", flush=True)
    start = time.perf_counter()
    try:
        op, info = factorize_core(
            dense_source(A, name=args.matrix),
            **params,
            permutation=_permutation_arg(args.permutation),
            random_state=args.random_state,
            verbose=0 if args.quiet else 1,
            compute_error=True,
        )
    except (TypeError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    elapsed = time.perf_counter() - start
    try:
        op.save(args.output)
    except OSError as exc:
        raise CLIError(f"cannot write {args.output}: {exc}") from None
    print(
        f"depth {op.depth}, {op.n_params} parameters ({A.size / op.n_params:.1f}x "
        f"compression), relative error {info['relative_error']:.3e}, "
        f"fit {elapsed:.3f} s -> {args.output}"
    )
    return EXIT_OK


def run_info(args):
    """Describe a saved operator."""
    try:
        op = ButterflyOperator.load(args.file)
    except FileNotFoundError:
        raise CLIError(f"{args.file}: no such file.") from None
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise CLIError(str(exc)) from None
    m, n = op.shape
    print(f"file: {args.file}")
    pm, pn = op.padded_shape
    print(f"shape: {m} x {n} (factors of size {pm} x {pn})")
    print(f"dtype: {op.dtype}")
    print(f"depth: {op.depth}")
    print(f"chain: {list(op.chain)}")
    print(f"parameters: {op.n_params} ({m * n / op.n_params:.1f}x compression)")
    print(f"column permutation: {'yes' if op.col_perm is not None else 'identity'}")
    print(f"row permutation: {'yes' if op.row_perm is not None else 'identity'}")
    if args.check is not None:
        A = _load_matrix(args.check)
        if A.shape != op.shape:
            raise CLIError(
                f"{args.check} has shape {A.shape}, the operator {op.shape}."
            )
        print(f"relative error vs {args.check}: {relative_error(op, A):.3e}")
    return EXIT_OK


def _parser():
    parser = argparse.ArgumentParser(
        prog="skbutterfly",
        description="Butterfly factorization of dense matrices.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="factorize embedded example matrices")
    demo.add_argument("--n", type=int, default=1024, help="size (power of two)")
    demo.add_argument("--vectors", type=int, default=64, help="vectors for timing")
    demo.set_defaults(func=run_demo)

    fit = sub.add_parser("fit", help="factorize a matrix stored as .npy")
    fit.add_argument("matrix", help="input .npy file holding a 2-D array")
    fit.add_argument("-o", "--output", required=True, help="output .npz file")
    fit.add_argument("--depth", type=int, default=None)
    fit.add_argument("--rank", type=int, default=1)
    fit.add_argument("--tree", choices=TREES, default="balanced")
    fit.add_argument(
        "--permutation",
        default=None,
        help="none, bit-reversal, auto, identify, or a .npy file of column indices",
    )
    fit.add_argument("--svd-solver", choices=SVD_SOLVERS, default="auto")
    fit.add_argument("--no-orthonormalize", action="store_true")
    fit.add_argument("--n-jobs", type=int, default=None)
    fit.add_argument("--random-state", type=int, default=None)
    fit.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    fit.set_defaults(func=run_fit)

    info = sub.add_parser("info", help="describe a saved operator (.npz)")
    info.add_argument("file")
    info.add_argument("--check", default=None, help="a .npy matrix to measure against")
    info.set_defaults(func=run_info)
    return parser


def main(argv=None):
    """Run the command line; return the exit code (0 ok, 1 error, 2 usage)."""
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except CLIError as exc:
        print(f"skbutterfly: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("skbutterfly: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
