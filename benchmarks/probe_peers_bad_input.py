"""Throw classes of bad or odd input at skbutterfly, pyfaust and lazylinop.

Every (input, library) pair runs in its own subprocess with a timeout, because
pyfaust aborts or segfaults the interpreter on some inputs. Prints a markdown
table (and writes it with ``--output``)::

    python benchmarks/probe_peers_bad_input.py --output benchmarks/results/bad_input.md

skbutterfly is probed three ways: ``butterfly_factorize``,
``ButterflyApproximator().fit`` and the command line ``skbutterfly fit`` (run
in-process through ``skbutterfly._cli.main`` on a ``.npy`` file). The peers are
``pyfaust.fact.butterfly(A, type="bbtree")`` and lazylinop's
``ksd(A, chain, ortho=True, order="balanced")`` with ``Chain.square_dyadic`` for
square power-of-two sizes and ``Chain.chainable`` otherwise.
"""

import argparse
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

TIMEOUT = 120  # seconds per (input, library) subprocess
N = 16

# ----------------------------------------------------------------- the inputs


def _hadamard(n):
    H = np.ones((1, 1))
    while H.shape[0] < n:
        H = np.block([[H, H], [H, -H]])
    return H


def _butterfly(n, seed=0, zero_blocks=False):
    """A random exact product of ``log2 n`` butterfly factors (dense)."""
    rng = np.random.default_rng(seed)
    A = np.eye(n)
    L = n.bit_length() - 1
    for level in range(L):
        d = n >> (level + 1)
        F = np.zeros((n, n))
        for i in range(n // (2 * d)):
            for j in range(2):
                for k in range(2):
                    block = rng.standard_normal(d)
                    if zero_blocks and (i + j + k + level) % 3 == 0:
                        block[:] = 0
                    rows = i * 2 * d + j * d + np.arange(d)
                    cols = i * 2 * d + k * d + np.arange(d)
                    F[rows, cols] = block
        A = A @ F
    return A


def _kron_power(K, times):
    """``K (x) K (x) ... (x) K``: an exact butterfly for a 2 x 2 ``K``."""
    A = np.ones((1, 1))
    for _ in range(times):
        A = np.kron(A, np.asarray(K, dtype=float))
    return A


def _with(A, index, value):
    A = A.astype(np.result_type(A, np.asarray(value)))
    A[index] = value
    return A


def _sparse_huge():
    import scipy.sparse as sp

    n = 10**6
    return sp.csr_array((np.ones(3), ([0, 5, 7], [1, 2, 3])), shape=(n, n))


def _masked():
    A = _hadamard(N)
    mask = np.zeros_like(A, dtype=bool)
    mask[2, 3] = True
    return np.ma.masked_array(A, mask=mask)


def _memmap():
    path = os.path.join(tempfile.mkdtemp(), "A.npy")
    np.save(path, _butterfly(N))
    return np.load(path, mmap_mode="r")


def _frame(nullable=False):
    import pandas as pd

    A = _hadamard(N)
    frame = pd.DataFrame(A, columns=[f"c{i}" for i in range(N)])
    if nullable:
        frame = frame.astype("Int64")
    return frame


def _sparse():
    import scipy.sparse as sp

    return sp.csr_array(_hadamard(N))


CASES = {
    # name: (builder, description)
    "nan": (lambda: _with(_butterfly(N), (3, 5), np.nan), "NaN entry at (3, 5)"),
    "inf": (lambda: _with(_butterfly(N), (7, 1), np.inf), "+inf entry at (7, 1)"),
    "nan-imag": (
        lambda: _with(_butterfly(N).astype(complex), (2, 9), complex(1, np.nan)),
        "complex, NaN in the imaginary part only",
    ),
    "empty": (lambda: np.zeros((0, N)), "empty (0 x 16)"),
    "0d": (lambda: np.array(1.0), "0-d array"),
    "1d": (lambda: np.ones(N), "1-d array (16,)"),
    "3d": (lambda: np.ones((2, N, N)), "3-d array (2, 16, 16)"),
    "object": (
        lambda: np.array([[1, "a"] * (N // 2)] * N, dtype=object),
        "object dtype (numbers and strings)",
    ),
    "string": (lambda: _hadamard(N).astype(str), "string dtype ('<U4')"),
    "int": (lambda: _hadamard(N).astype(np.int64), "int64 (Hadamard)"),
    "bool": (lambda: _kron_power([[1, 1], [0, 1]], 4) > 0, "bool (exact butterfly)"),
    "float16": (lambda: _hadamard(N).astype(np.float16), "float16 (Hadamard)"),
    "complex64": (lambda: _hadamard(N).astype(np.complex64), "complex64 (Hadamard)"),
    "sparse": (_sparse, "scipy.sparse csr_array (Hadamard)"),
    "sparse-huge": (_sparse_huge, "sparse 10^6 x 10^6, 3 nonzeros (7.3 TiB dense)"),
    "frame": (_frame, "pandas DataFrame (Hadamard)"),
    "frame-nullable": (
        lambda: _frame(nullable=True),
        "pandas DataFrame, nullable Int64 columns",
    ),
    "memmap": (_memmap, "np.memmap (.npy opened with mmap_mode='r')"),
    "fortran": (lambda: np.asfortranarray(_butterfly(N)), "Fortran-ordered array"),
    "strided": (
        lambda: np.kron(_butterfly(N), np.ones((2, 2)))[::2, ::2],
        "non-contiguous view A[::2, ::2]",
    ),
    "masked": (_masked, "masked array with a masked entry"),
    "1x1": (lambda: np.array([[3.0]]), "1 x 1"),
    "2x2": (lambda: np.array([[1.0, 2.0], [3.0, 4.0]]), "2 x 2"),
    "zeros": (lambda: np.zeros((N, N)), "zero matrix 16 x 16"),
    "huge": (lambda: _butterfly(N) * 1e300, "butterfly x 1e+300"),
    "tiny": (lambda: _butterfly(N) * 1e-300, "butterfly x 1e-300"),
    "subnormal": (lambda: _hadamard(N) * 1e-310, "Hadamard x 1e-310 (subnormal)"),
    "zero-blocks": (
        lambda: _butterfly(N, zero_blocks=True),
        "butterfly with exactly-zero blocks (rank-deficient)",
    ),
    "ill-conditioned": (
        lambda: _butterfly(N) @ np.diag(np.logspace(0, -15, N)),
        "butterfly x diag(1 .. 1e-15) (cond ~1e15)",
    ),
    "imaginary": (lambda: 1j * _butterfly(N), "purely imaginary (1j x butterfly)"),
    "12x12": (lambda: np.random.default_rng(0).standard_normal((12, 12)), "12 x 12"),
    "13x13": (lambda: np.random.default_rng(0).standard_normal((13, 13)), "13 x 13"),
    "8x32": (lambda: np.random.default_rng(0).standard_normal((8, 32)), "8 x 32"),
}

# ------------------------------------------------------------------ the runners


def _reference(A):
    """Dense complex reference of the input, or None."""
    try:
        import scipy.sparse as sp

        if sp.issparse(A):
            if A.shape[0] * A.shape[1] > 1e8:
                return None
            A = A.toarray()
        if hasattr(A, "to_numpy"):
            A = A.to_numpy(dtype=float)
        if np.ma.isMaskedArray(A):
            A = A.data
        A = np.asarray(A)
        if A.dtype.kind in "USO":
            A = A.astype(float)
        if A.dtype.kind not in "biufc" or A.ndim != 2:
            return None
        return A.astype(np.complex128)
    except Exception:
        return None


def _describe_output(D, A):
    """One short phrase for an accepted input: the relative error of the result."""
    D = np.asarray(D)
    ref = _reference(A)
    finite_out = bool(np.all(np.isfinite(D)))
    if ref is None or ref.shape != D.shape:
        return f"accepted, output shape {D.shape}"
    if not np.all(np.isfinite(ref)):
        return (
            "**accepted silently**: "
            + ("finite output" if finite_out else "NaN/inf output")
            + " from NaN/inf input"
        )
    if not finite_out:
        return "**NaN/inf output** from finite input"
    # Relative error on exactly rescaled copies (no overflow or underflow).
    scale = max(np.abs(ref.real).max(), np.abs(ref.imag).max())
    if scale == 0:
        return "ok, output exactly 0" if not np.any(D) else "**nonzero output**"
    e = -int(np.frexp(scale)[1])
    R, Dc = np.ldexp(ref.real, e) + 1j * np.ldexp(ref.imag, e), D.astype(complex)
    Dc = np.ldexp(Dc.real, e) + 1j * np.ldexp(Dc.imag, e)
    err = np.linalg.norm(Dc - R) / np.linalg.norm(R)
    if np.ma.isMaskedArray(A) and np.ma.is_masked(A):
        return f"**mask ignored**: rel. error {err:.0e} against the hidden data"
    return f"ok, rel. error {err:.0e}"


def _short(exc):
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(msg) > 90:
        msg = msg[:87] + "..."
    return f"{type(exc).__name__}: {msg}".replace("|", "\\|")


def _run_skbutterfly(A, kind):
    from skbutterfly import ButterflyApproximator, butterfly_factorize

    if kind == "function":
        return butterfly_factorize(A).toarray()
    if kind == "estimator":
        return ButterflyApproximator().fit(A).operator_.toarray()
    # command line: the input must be storable as .npy
    import scipy.sparse as sp

    from skbutterfly import ButterflyOperator
    from skbutterfly._cli import main

    if np.ma.isMaskedArray(A):
        raise _NotApplicable(".npy files hold no mask")
    if sp.issparse(A):
        raise _NotApplicable("the CLI reads dense .npy files")
    folder = tempfile.mkdtemp()
    path, out = os.path.join(folder, "A.npy"), os.path.join(folder, "A.npz")
    # object arrays are written with pickle: the CLI must refuse to unpickle
    np.save(path, np.asarray(A), allow_pickle=True)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["fit", path, "-q", "-o", out])
    if code != 0:
        message = err.getvalue().strip().splitlines()[-1]
        message = message.removeprefix("skbutterfly: error: ").replace(path, "A.npy")
        raise _ExitCode(f"exit {code}: {message}")
    return ButterflyOperator.load(out).toarray()


class _NotApplicable(Exception):
    pass


class _ExitCode(Exception):
    pass


def _run_pyfaust(A):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyfaust.fact
    return pyfaust.fact.butterfly(A, type="bbtree").toarray()


def _run_lazylinop(A):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lazylinop.butterfly import Chain, ksd
    shape = getattr(A, "shape", None)
    if shape is None or len(shape) != 2:
        shape = np.shape(A)
    if len(shape) == 2 and shape[0] == shape[1] and shape[0] >= 2:
        n = shape[0]
        chain = (
            Chain.square_dyadic(shape) if n & (n - 1) == 0 else Chain.chainable(shape)
        )
    else:
        chain = Chain.chainable(tuple(shape))
    return ksd(A, chain, ortho=True, order="balanced").toarray()


def child(library, case, result_path):
    """Run one (library, case) and write a JSON result (dict of column: text)."""
    warnings.simplefilter("ignore")
    A = CASES[case][0]()
    kinds = ["function", "estimator", "cli"] if library == "skbutterfly" else [None]
    results = {}
    for kind in kinds:
        start = time.perf_counter()
        try:
            if library == "skbutterfly":
                D = _run_skbutterfly(A, kind)
            elif library == "pyfaust":
                D = _run_pyfaust(A)
            else:
                D = _run_lazylinop(A)
            text = _describe_output(D, A)
        except _NotApplicable as exc:
            text = f"n/a: {exc}"
        except _ExitCode as exc:
            text = f"error, {exc}".replace("|", "\\|")
            if len(text) > 110:
                text = text[:107] + "..."
        except Exception as exc:
            text = "raises " + _short(exc)
        elapsed = time.perf_counter() - start
        if elapsed > 10:
            text += f" ({elapsed:.0f} s)"
        results[kind or library] = text
        with open(result_path, "w") as f:  # partial results survive a crash
            json.dump(results, f)


def _signal_name(code):
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def probe(library, case):
    """Results of one (library, case) run in a subprocess."""
    columns = (
        ["function", "estimator", "cli"] if library == "skbutterfly" else [library]
    )
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "result.json")
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--child",
            library,
            case,
            path,
        ]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                timeout=TIMEOUT,
                env=env,
                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            )
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
        results = {}
        if os.path.exists(path):
            with open(path) as f:
                results = json.load(f)
    for column in columns:
        if column in results:
            continue
        if code == "timeout":
            results[column] = f"**hang** (killed after {TIMEOUT} s)"
        elif isinstance(code, int) and code < 0:
            results[column] = f"**crash**: interpreter killed by {_signal_name(code)}"
        else:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:]
            results[column] = f"**process exit {code}**: {' '.join(tail)[:80]}"
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="also write the markdown table here")
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0

    versions = {}
    for name in ("skbutterfly", "pyfaust", "lazylinop"):
        code = (
            "import warnings; warnings.simplefilter('ignore'); "
            f"from importlib.metadata import version; print(version({name!r}))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True
        ).stdout.strip()
        versions[name] = out or "not installed"
    lines = [
        f"# Bad and odd input: skbutterfly {versions['skbutterfly']}, pyfaust "
        f"{versions['pyfaust']}, lazylinop {versions['lazylinop']}",
        "",
        "Generated by `python benchmarks/probe_peers_bad_input.py`; one subprocess "
        f"per (input, library), {TIMEOUT} s timeout. Default parameters everywhere: "
        "`butterfly_factorize(A)`, `ButterflyApproximator().fit(A)`, `skbutterfly "
        "fit A.npy -o A.npz`, `pyfaust.fact.butterfly(A, type='bbtree')`, "
        "`lazylinop.butterfly.ksd(A, chain, ortho=True, order='balanced')` with "
        "`Chain.square_dyadic` (square power of two) or `Chain.chainable`. "
        "'rel. error' is `||A - A_hat||_F / ||A||_F` of the dense result against "
        "the input (exact butterflies should give ~1e-16).",
        "",
        "| input | skbutterfly `butterfly_factorize` | skbutterfly estimator "
        "| skbutterfly CLI | pyfaust `butterfly` | lazylinop `ksd` |",
        "|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for case in args.cases:
        row = {}
        for library in ("skbutterfly", "pyfaust", "lazylinop"):
            row.update(probe(library, case))
        cells = [
            row["function"],
            row["estimator"],
            row["cli"],
            row["pyfaust"],
            row["lazylinop"],
        ]
        line = f"| {CASES[case][1]} | " + " | ".join(cells) + " |"
        lines.append(line)
        print(line, flush=True)
    if args.output:
        with open(args.output, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
