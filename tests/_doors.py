"""Helpers shared by the tests that throw inputs at every door.

The doors: ``butterfly_factorize``, ``ButterflyApproximator`` and the command
line (``skbutterfly._cli.main``, run in process).
"""

import contextlib
import io
import warnings

import numpy as np

from skbutterfly import ButterflyFitWarning
from skbutterfly._cli import main


def run_cli(*args):
    """``skbutterfly ARGS`` in process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def cli_fit(tmp_path, A, *options, allow_pickle=False):
    """Save ``A`` as .npy and run ``skbutterfly fit`` on it."""
    path = tmp_path / "A.npy"
    np.save(path, A, allow_pickle=allow_pickle)
    return run_cli("fit", path, "-q", "-o", tmp_path / "A.npz", *options)


def assert_one_line_error(code, err, match=None):
    assert code == 1, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skbutterfly: error: "), err
    if match is not None:
        assert match in lines[0], lines[0]


def rel_error(D, A):
    """``||D - A||_F / ||A||_F`` on exactly rescaled copies (no over/underflow)."""
    A = np.asarray(A).astype(np.complex128)
    D = np.asarray(D).astype(np.complex128)
    top = max(np.abs(A.real).max(), np.abs(A.imag).max())
    if top == 0:
        return float(np.linalg.norm(D))
    e = -int(np.frexp(top)[1])
    A = np.ldexp(A.real, e) + 1j * np.ldexp(A.imag, e)
    D = np.ldexp(D.real, e) + 1j * np.ldexp(D.imag, e)
    return float(np.linalg.norm(D - A) / np.linalg.norm(A))


@contextlib.contextmanager
def strict_numerics(under="ignore"):
    """Warnings are errors; floating point overflow/invalid/division raise."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # a fit that is poor or not smaller than dense says so: not a numerics error
        warnings.simplefilter("ignore", ButterflyFitWarning)
        with np.errstate(over="raise", invalid="raise", divide="raise", under=under):
            yield


def with_value(A, index, value):
    A = A.astype(np.result_type(A, np.asarray(value)))
    A[index] = value
    return A
