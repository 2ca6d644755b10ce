"""Honest fits: warnings with a hint for useless models, and progress lines."""

# SPDX-License-Identifier: BSD-3-Clause

import os
import sys
import time
import warnings

import numpy as np

__all__ = [
    "POOR_FIT_ERROR",
    "ButterflyFitWarning",
    "FitProgress",
    "estimate_relative_error",
    "oversized_message",
    "permutation_kind",
    "poor_fit_message",
    "probe_products",
    "probe_vectors",
    "warn_fit",
]

# Above this relative error the approximation keeps less than half of the
# matrix: for the user's purpose it has failed.
POOR_FIT_ERROR = 0.5

# Random probes of the error estimate used when the exact error is not computed.
_N_PROBES = 8
_PROBE_SEED = 0
_ROW_CHUNK = 1024

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class ButterflyFitWarning(UserWarning):
    """Warning issued when a butterfly fit is useless as it stands.

    Raised by :class:`ButterflyApproximator`, :func:`butterfly_factorize` and the
    ``skbutterfly fit`` command when the relative error is above 0.5 (the
    matrix is far from a butterfly in this order and at this rank), or when the
    model stores at least as many numbers as the dense matrix. The message says
    what to try, naming the parameter.

    Examples
    --------
    >>> import warnings
    >>> from scipy.linalg import dft
    >>> from skbutterfly import ButterflyApproximator, ButterflyFitWarning
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     est = ButterflyApproximator().fit(dft(64))
    >>> [issubclass(w.category, ButterflyFitWarning) for w in caught]
    [True]
    >>> "permutation=" in str(caught[0].message)
    True
    """


def _same_size_svd_rank(n_params, shape):
    """Rank of the truncated SVD holding about ``n_params`` numbers (>= 1)."""
    m, n = shape
    return max(1, int(n_params // (m + n)))


def poor_fit_message(error, *, shape, n_params, rank, permutation, estimated=False):
    """The warning text for a fit whose relative error is above 0.5, else None.

    Parameters
    ----------
    error : float
        Relative Frobenius error (measured, or estimated when ``estimated``).
    shape : tuple of int
        Shape ``(m, n)`` of the matrix.
    n_params : int
        Number of parameters of the fitted factors.
    rank : int
        The ``rank`` that was fitted.
    permutation : {"identity", "auto", "identify", "explicit"}
        The kind of ``permutation`` parameter the fit was given.
    estimated : bool, default=False
        Whether ``error`` is a random-probe estimate.

    Returns
    -------
    message : str or None
    """
    if not np.isfinite(error) or error <= POOR_FIT_ERROR:
        return None
    m, n = shape
    what = "estimated relative error" if estimated else "relative error"
    tries = []
    if permutation == "identity":
        tries.append(
            'a permutation: permutation="auto" (the classical orders of the DFT '
            'and other transforms) or permutation="identify" (finds unknown row '
            "and column orders)"
        )
    elif permutation == "identify":
        tries.append("a known permutation (permutation=index array)")
    else:
        tries.append(
            f'permutation="identify" (the permutation given, {permutation}, did '
            "not make the matrix a butterfly)"
        )
    if rank < min(m, n):
        tries.append(f"a larger rank (rank={rank} now; rank={2 * rank} or more)")
    k = _same_size_svd_rank(n_params, shape)
    tries.append(
        "a low-rank model such as sklearn.decomposition.TruncatedSVD "
        f"(n_components={k} holds about as many numbers), which wins on smooth "
        'kernels and trained weights (user guide: "Butterfly or low rank?")'
    )
    return (
        f"the butterfly fit has {what} {error:.3g} (above {POOR_FIT_ERROR}): the "
        f"{m}x{n} matrix is far from a butterfly in this order at this rank. "
        "Try " + "; or ".join(tries) + "."
    )


def oversized_message(n_params, shape, depth):
    """The warning text for a model at least as large as the dense matrix, else None.

    The depth-1 model is the dense matrix itself, exact: it never warns.
    """
    m, n = shape
    if depth <= 1 or n_params < m * n:
        return None
    return (
        f"the butterfly model stores {n_params} numbers, at least as many as the "
        f"dense {m}x{n} matrix ({m * n}): it compresses nothing and is not faster "
        "to apply. Use a smaller rank, another depth (see "
        "skbutterfly.feasible_depth_rank, which lists only models smaller than "
        "dense), or keep the dense matrix."
    )


def _user_stacklevel():
    """Stack level of the first caller outside skbutterfly, scikit-learn, joblib."""
    skip = [_PACKAGE_DIR]
    for name in ("sklearn", "joblib"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            skip.append(os.path.dirname(os.path.abspath(module.__file__)))
    # Level 1 is the function calling warnings.warn (the caller of this one).
    frame, level = sys._getframe(1), 1
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not any(path.startswith(s + os.sep) for s in skip):
            return level
        frame, level = frame.f_back, level + 1
    return 1


def permutation_kind(permutation):
    """``"identity"``, ``"auto"``, ``"identify"`` or ``"explicit"``."""
    if permutation is None or isinstance(permutation, str):
        return permutation or "identity"
    return "explicit"


def warn_fit(info, *, shape, n_params, depth, rank, permutation):
    """Issue the :class:`ButterflyFitWarning` s a fit deserves.

    Parameters
    ----------
    info : dict
        The core's fit information: ``relative_error`` (or None),
        and ``estimated_error`` (optional).
    shape : tuple of int
        Shape of the matrix.
    n_params : int
        Number of parameters of the model.
    depth : int
        Number of factors.
    rank : int
        The fitted rank.
    permutation : object
        The ``permutation`` parameter of the fit.
    """
    error, estimated = info.get("relative_error"), False
    if error is None:
        error, estimated = info.get("estimated_error"), True
    messages = [oversized_message(n_params, shape, depth)]
    if error is not None:
        messages.append(
            poor_fit_message(
                error,
                shape=shape,
                n_params=n_params,
                rank=rank,
                permutation=permutation_kind(permutation),
                estimated=estimated,
            )
        )
    for message in messages:
        if message is not None:
            warnings.warn(message, ButterflyFitWarning, stacklevel=_user_stacklevel())


def probe_vectors(A, n_probes=_N_PROBES):
    """The estimate's fixed Gaussian probes ``G`` (real, ``(n, n_probes)``)."""
    rng = np.random.default_rng(_PROBE_SEED)
    return rng.standard_normal((A.shape[1], n_probes)).astype(np.finfo(A.dtype).dtype)


def probe_products(rows, G):
    """``rows @ G`` for real ``G``: half the multiply-adds of a complex GEMM.

    ``rows`` is a C-contiguous stack of rows ``(..., n)``; complex rows are
    read as ``(n, 2)`` real matrices (real and imaginary parts).
    """
    if rows.dtype.kind != "c":
        return rows @ G
    pairs = rows.view(G.dtype).reshape(*rows.shape, 2)
    out = np.matmul(G.T, pairs)  # (..., n_probes, 2)
    return out.view(rows.dtype)[..., 0]


def estimate_relative_error(op, A, exponent=0, n_probes=_N_PROBES, products=None):
    """Estimate ``||A - op||_F / ||A||_F`` from random probes, without a dense product.

    With a Gaussian ``G`` of ``n_probes`` columns, ``E ||M G||_F^2 = n_probes
    ||M||_F^2`` for any ``M``; the estimate is ``||(A - op) G||_F / ||A G||_F``
    with a fixed seed (deterministic). Costs ``n_probes`` products with ``A``
    and with the factors.

    Parameters
    ----------
    op : ButterflyOperator
        The fitted operator.
    A : ndarray of shape (m, n)
        The matrix.
    exponent : int, default=0
        Both sides are divided by ``2**exponent`` (exactly) so that products
        of extreme matrices neither overflow nor underflow.
    n_probes : int, default=8
        Number of random probe vectors.
    products : ndarray of shape (m, n_probes), default=None
        ``A G / 2**exponent`` with ``G = probe_vectors(A, n_probes)``, when
        the fit already formed it (the root split reads every row of ``A``
        once); None forms it here, one more pass over ``A``.

    Returns
    -------
    error : float
        The estimate; 0 when ``A G`` and ``op G`` are both 0, nan when it is
        not finite. When a side of ``A`` has at most ``n_probes`` entries, the
        error itself (as many products as that side, on the identity).
    """
    if min(A.shape) <= n_probes:
        return _thin_relative_error(op, A, exponent)
    G = probe_vectors(A, n_probes)
    rows = range(0, A.shape[0], _ROW_CHUNK)
    # Half of the scale on the probes, half on the product: neither the probes
    # nor the products leave the floating point range for extreme matrices.
    half = exponent // 2
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        if products is None:
            AG = np.concatenate(
                [
                    probe_products(
                        np.ascontiguousarray(_ldexp(A[r : r + _ROW_CHUNK], -exponent)),
                        G,
                    )
                    for r in rows
                ]
            )
        else:
            AG = products
        BG = _ldexp(op.matmat(_ldexp(G, -half)), half - exponent)
    norm = float(np.linalg.norm(AG))
    err = float(np.linalg.norm(BG - AG))
    if not (np.isfinite(norm) and np.isfinite(err)):
        return float("nan")
    if norm == 0:
        return 0.0 if err == 0 else float("inf")
    return err / norm


def _thin_relative_error(op, A, exponent):
    """``||A - op||_F / ||A||_F`` of a matrix with a short side, exactly.

    ``op`` is applied to the identity of the short side (from the right when it
    is the number of columns, from the left through the adjoint otherwise):
    fewer products than the probes, and the dense form is the size of ``A``.
    """
    m, n = A.shape
    half = exponent // 2
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        if n <= m:
            eye = _ldexp(np.eye(n, dtype=A.dtype), -half)
            B = _ldexp(op.matmat(eye), half - exponent)
        else:
            eye = _ldexp(np.eye(m, dtype=A.dtype), -half)
            B = _ldexp(op.rmatmat(eye), half - exponent).conj().T
        As = _ldexp(A, -exponent)
        norm = float(np.linalg.norm(As))
        err = float(np.linalg.norm(B - As))
    if not (np.isfinite(norm) and np.isfinite(err)):
        return float("nan")
    if norm == 0:
        return 0.0 if err == 0 else float("inf")
    return err / norm


def _ldexp(X, exponent):
    """``X * 2**exponent`` exactly (a new array), real or complex."""
    X = np.asarray(X)
    if not exponent:
        return X
    if X.dtype.kind == "c":
        return np.ldexp(X.real, exponent) + 1j * np.ldexp(X.imag, exponent)
    return np.ldexp(X, exponent)


def _seconds(t):
    return f"{t:.2f} s" if t < 10 else f"{t:.1f} s"


class FitProgress:
    """Progress lines through a whole fit: ``[skbutterfly] split 5 of 13, 1.20 s``.

    The total counts every two-factor split of every permutation candidate;
    the elapsed time runs from the start of the fit, and the closing lines
    cover the error measurement, so the last line comes at the end of the fit.

    Parameters
    ----------
    verbose : int
        Nothing is printed when 0.
    n_splits : int
        Splits of one fit (the depth minus one).
    n_fits : int, default=1
        Number of fits (permutation candidates).
    """

    def __init__(self, verbose, n_splits, n_fits=1):
        self.verbose = int(verbose)
        self.total = int(n_splits) * int(n_fits)
        self.done = 0
        self.start = time.perf_counter()

    @property
    def elapsed(self):
        """Seconds since the start of the fit."""
        return time.perf_counter() - self.start

    def say(self, text):
        """Print ``[skbutterfly] text, <elapsed>`` when verbose."""
        if self.verbose > 0:
            print(f"[skbutterfly] {text}, {_seconds(self.elapsed)}", flush=True)

    def splits_done(self, count=1, detail=""):
        """Count ``count`` finished splits and print where the fit stands."""
        self.done += count
        self.say(f"split {self.done} of {self.total}{detail}")
