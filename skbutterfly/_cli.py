"""The ``skbutterfly`` command line: ``demo``, ``fit`` and ``info``."""

# SPDX-License-Identifier: BSD-3-Clause

import argparse
import re
import sys
import time
import tokenize
import warnings
import zipfile

import numpy as np

from skbutterfly import __version__
from skbutterfly._approximator import ButterflyApproximator
from skbutterfly._factorize import SVD_SOLVERS, relative_error
from skbutterfly._hierarchical import TREES
from skbutterfly._operator import ButterflyOperator
from skbutterfly._validation import check_matrix
from skbutterfly.datasets import dct_matrix, dft_matrix, hadamard_matrix

__all__ = ["main"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


class CLIError(Exception):
    """An error reported to the user on one line, without a traceback."""


def _median_time(func, repeats=5):
    # One untimed call first: an operator's first products build its fused
    # factors and each product thread's buffers once.
    func()
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


def _fit(A, **params):
    """Fit a :class:`ButterflyApproximator` on ``A``; return it and its warnings.

    Parameter and input errors become a :class:`CLIError`; the fit's warnings
    (a poor fit, a model larger than dense, an uncertain identification) are
    returned as text so that the caller prints them with the result.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            est = ButterflyApproximator(**params).fit(A)
        except (TypeError, ValueError) as exc:
            raise CLIError(str(exc)) from None
    notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    return est, list(dict.fromkeys(notes))


def _as_options(note):
    """Write the parameters a hint names as the options of this command line."""
    return re.sub(
        r'\b(permutation|rank|depth)="?([\w-]+)"?',
        lambda m: f"--{m.group(1)} {m.group(2)}",
        note,
    )


def _print_warnings(notes):
    for note in notes:
        print(f"skbutterfly: warning: {_as_options(note)}", file=sys.stderr)


def _demo_row(name, A, n_vectors, rng, **params):
    start = time.perf_counter()
    est, notes = _fit(A, **params)
    fit_time = time.perf_counter() - start
    _print_warnings(notes)
    op = est.operator_
    X = rng.standard_normal((A.shape[1], n_vectors)).astype(A.dtype)
    dense = _median_time(lambda: A @ X)
    fast = _median_time(lambda: op @ X)
    return {
        "matrix": name,
        "shape": f"{A.shape[0]}x{A.shape[1]}",
        "depth": est.depth_,
        "rank": params.get("rank", 1),
        "rel. error": f"{est.relative_error_:.2e}",
        "params": est.n_params_,
        "compression": f"{est.compression_ratio_:.1f}x",
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
    # A size that is not a power of two: the mixed-radix DFT is exact too.
    odd = 10 ** max(1, round(np.log10(n)))
    print(
        f"skbutterfly {__version__} demo: DFT, Hadamard, DCT-II and a smooth kernel "
        f"of size {n}, and the DFT of size {odd}; apply speed-up measured on "
        f"{args.vectors} vectors against dense numpy."
    )
    rows = [
        _demo_row("DFT", dft_matrix(n), args.vectors, rng, permutation="bit-reversal"),
        _demo_row(
            "DFT", dft_matrix(odd), args.vectors, rng, permutation="digit-reversal"
        ),
        _demo_row("Hadamard", hadamard_matrix(n), args.vectors, rng),
        _demo_row(
            "DCT-II", dct_matrix(n), args.vectors, rng, rank=2, permutation="makhoul"
        ),
    ]
    kernel = _kernel_matrix(n)
    for rank in (1, 2, 4):
        rows.append(_demo_row("Cauchy kernel", kernel, args.vectors, rng, rank=rank))
    _print_table(rows)
    return EXIT_OK


def _npy_header_dtype(path):
    """The dtype in the header of the ``.npy`` file ``path`` (opened, not loaded)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            _, _, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            _, _, dtype = np.lib.format.read_array_header_2_0(f)
    return dtype


def _load_matrix(path):
    """Load a numeric 2-D array from a ``.npy`` file; never unpickle."""
    try:
        with open(path, "rb") as f:
            magic = f.read(len(_NPY_MAGIC))
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise CLIError(f"{path}: is a directory, not a .npy file.") from None
    except OSError as exc:
        raise CLIError(f"{path}: cannot be read ({_reason(exc)}).") from None
    if magic.startswith(_ZIP_MAGIC):
        raise CLIError(f"{path}: is an .npz archive; give one matrix as a .npy file.")
    if magic != _NPY_MAGIC:
        raise CLIError(
            f"{path}: not a .npy file (it does not start with the .npy signature); "
            "save the matrix with numpy.save(path, A)."
        )
    try:
        dtype = _npy_header_dtype(path)
        if dtype.hasobject:
            raise CLIError(
                f"{path}: holds Python objects (dtype {dtype}), not numbers; "
                "skbutterfly reads numeric .npy arrays only and never unpickles."
            )
        A = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError) as exc:
        raise CLIError(f"{path}: damaged .npy file ({_reason(exc)}).") from None
    try:
        return check_matrix(A, name=path)
    except (TypeError, ValueError) as exc:
        raise CLIError(str(exc)) from None


def _reason(exc):
    """The message of ``exc``, or of the exception it replaced, never empty.

    Some errors of damaged files carry no message (a bare ``EOFError`` when
    the data ends early); their type is the reason then.
    """
    text = str(exc).strip()
    if text and not text.endswith(":"):
        return text
    context = exc.__cause__ or exc.__context__
    if isinstance(context, EOFError) or isinstance(exc, EOFError):
        why = "the data ends early: the file is truncated or damaged"
    elif context is not None:
        why = _reason(context)
    else:
        why = f"{type(exc).__name__}, no detail"
    return f"{text} {why}" if text else why


def _permutation_arg(value):
    """``none`` -> None; an existing ``.npy`` file -> its index array; else the name.

    Names are checked by the estimator, which lists the valid ones.
    """
    if value in (None, "none"):
        return None
    if value.endswith(".npy"):
        try:
            return np.load(value, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise CLIError(
                f"--permutation {value}: cannot read this .npy file of column "
                f"indices ({_reason(exc)})."
            ) from None
    return value


def run_fit(args):
    """Factorize a matrix from a ``.npy`` file and save the operator."""
    print(f"reading {args.matrix}", flush=True)
    A = _load_matrix(args.matrix)
    print(f"fitting {args.matrix}: shape {A.shape}, dtype {A.dtype}", flush=True)
    start = time.perf_counter()
    est, notes = _fit(
        A,
        depth=args.depth,
        rank=args.rank,
        tree=args.tree,
        orthonormalize=not args.no_orthonormalize,
        permutation=_permutation_arg(args.permutation),
        svd_solver=args.svd_solver,
        n_jobs=args.n_jobs,
        random_state=args.random_state,
        verbose=0 if args.quiet else 1,
    )
    elapsed = time.perf_counter() - start
    try:
        est.operator_.save(args.output)
    except OSError as exc:
        raise CLIError(f"cannot write {args.output}: {_reason(exc)}") from None
    print(
        f"depth {est.depth_}, {est.n_params_} parameters "
        f"({est.compression_ratio_:.1f}x compression), relative error "
        f"{est.relative_error_:.3e}, fit {elapsed:.3f} s -> {args.output}"
    )
    _print_warnings(notes)
    return EXIT_OK


def run_info(args):
    """Describe a saved operator."""
    try:
        op = ButterflyOperator.load(args.file)
    except FileNotFoundError:
        raise CLIError(f"{args.file}: no such file.") from None
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise CLIError(_reason(exc)) from None
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


def _int_at_least(low):
    def parse(value):
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
        if number < low:
            raise argparse.ArgumentTypeError(f"{number} is not an integer >= {low}")
        return number

    parse.__name__ = f"integer >= {low}"
    return parse


def _power_of_two(value):
    number = _int_at_least(4)(value)
    if number & (number - 1):
        raise argparse.ArgumentTypeError(f"{number} is not a power of two")
    return number


def _npz_path(value):
    if not value.endswith(".npz"):
        raise argparse.ArgumentTypeError(
            f"{value!r} does not end in .npz: the operator is saved as an .npz "
            "archive, give a name ending in .npz"
        )
    return value


def _parser():
    parser = argparse.ArgumentParser(
        prog="skbutterfly",
        description="Butterfly factorization of dense matrices.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="factorize embedded example matrices")
    demo.add_argument(
        "--n",
        type=_power_of_two,
        default=1024,
        help="size of the example matrices, a power of two >= 4 (default 1024)",
    )
    demo.add_argument(
        "--vectors",
        type=_int_at_least(1),
        default=64,
        help="number of vectors the apply speed-up is timed on, >= 1 (default 64)",
    )
    demo.set_defaults(func=run_demo)

    fit = sub.add_parser(
        "fit",
        help="factorize a matrix stored as .npy",
        description="Factorize a matrix stored as .npy and save the operator "
        "(.npz); progress lines run to the end of the fit. Warnings with a hint "
        "are printed when the fit is poor or the model is not smaller than the "
        "dense matrix.",
    )
    fit.add_argument("matrix", help="input .npy file holding a 2-D numeric array")
    fit.add_argument(
        "-o",
        "--output",
        required=True,
        type=_npz_path,
        help="output file, a name ending in .npz",
    )
    fit.add_argument(
        "--depth",
        type=_int_at_least(1),
        default=None,
        help="number of sparse factors (default: the finest butterfly)",
    )
    fit.add_argument(
        "--rank",
        type=_int_at_least(1),
        default=1,
        help="rank of the blocks at every interface (default 1)",
    )
    fit.add_argument(
        "--tree",
        choices=TREES,
        default="balanced",
        help="order of the two-factor splits (default balanced)",
    )
    fit.add_argument(
        "--permutation",
        default=None,
        help="none (default), digit-reversal (the DFT of any composite size), "
        "bit-reversal (the same, powers of two), makhoul or makhoul-rows (DCT/DST "
        "at --rank 2), auto (screen these), identify, or a .npy file of column "
        "indices",
    )
    fit.add_argument(
        "--svd-solver",
        choices=SVD_SOLVERS,
        default="auto",
        help="solver of the block SVDs: auto, full, gram or subspace (default auto; "
        "randomized is the deprecated name of subspace)",
    )
    fit.add_argument(
        "--no-orthonormalize",
        action="store_true",
        help="skip the orthonormalization that carries the error guarantee",
    )
    fit.add_argument(
        "--n-jobs",
        type=int,
        default=None,
        help="threads over the block SVDs (-1: all processors; default 1)",
    )
    fit.add_argument(
        "--random-state",
        type=int,
        default=None,
        help="seed of the iterative solver and of identify (default: a fixed seed)",
    )
    fit.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    fit.set_defaults(func=run_fit)

    info = sub.add_parser("info", help="describe a saved operator (.npz)")
    info.add_argument("file", help="an operator .npz file saved by skbutterfly fit")
    info.add_argument(
        "--check",
        default=None,
        help="a .npy matrix to measure the relative error against",
    )
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
