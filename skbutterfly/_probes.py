"""Operators given by their products: settings of their probes, checked products.

A matrix given as a :class:`scipy.sparse.linalg.LinearOperator` (forward and
adjoint products only) is fitted from random probes (see
:mod:`skbutterfly._sketch`). :class:`ProbedOperator` wraps an operator with the
settings of those probes; every product goes through :class:`CheckedProducts`,
which counts it and turns a wrong shape, dtype, NaN/inf, a missing adjoint or
an exception of the operator into an error naming the parameter and the batch.
"""

# SPDX-License-Identifier: BSD-3-Clause

import threading
from numbers import Real

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, aslinearoperator

from skbutterfly._validation import check_int

__all__ = ["CheckedProducts", "ProbedOperator", "is_operator_input"]


def is_operator_input(A):
    """Whether ``A`` is an operator known by its products (not an array).

    A :class:`~scipy.sparse.linalg.LinearOperator`, or an object that
    :func:`~scipy.sparse.linalg.aslinearoperator` accepts for its ``shape``
    and ``matvec`` (arrays, sparse matrices and array-likes keep the dense path).
    """
    if isinstance(A, LinearOperator):
        return True
    if sp.issparse(A) or isinstance(A, np.ndarray) or hasattr(A, "__array__"):
        return False
    return hasattr(A, "shape") and callable(getattr(A, "matvec", None))


class ProbedOperator(LinearOperator):
    """A linear operator to be fitted from its products, with probe settings.

    Any :class:`~scipy.sparse.linalg.LinearOperator` given to
    :func:`~skbutterfly.butterfly_factorize` or
    :class:`~skbutterfly.ButterflyApproximator` is fitted from random probes
    with the defaults below; wrap it in this class to change them. Products
    pass through unchanged, so the wrapper is also an ordinary operator.

    The root split of a chain cuts the matrix into blocks of ``b2`` row
    classes and ``c1`` column classes. For every block of rank ``r``, one
    Gaussian probe of ``k = r + oversampling`` columns per column class
    sketches its range (``c1 * k`` forward products for all blocks) and one of
    ``k' = ceil(adjoint_ratio * k)`` columns per row class its co-range
    (``b2 * k'`` adjoint products); a generalized Nystrom step per block
    recovers its factors. A balanced split of an ``n x n`` matrix has about
    ``sqrt(n)`` classes of each kind: ``(1 + adjoint_ratio) (r + oversampling)
    sqrt(n)`` products, far fewer than the ``n`` needed to form the matrix.

    Parameters
    ----------
    operator : LinearOperator or object accepted by ``aslinearoperator``
        The matrix, known by ``matmat`` and ``rmatmat`` (or ``matvec`` and
        ``rmatvec``) products. Its ``dtype`` sets the dtype of the probes: a
        real operator gets real probes.
    oversampling : int, default=4
        Extra probe columns per block beyond the rank. Exact butterflies are
        recovered with any value; noisy blocks come within about
        ``1 + rank / (oversampling - 1)`` of the best truncation.
    adjoint_ratio : float, default=2.0
        Size of the adjoint (co-range) sketch relative to the forward one; it
        keeps the Nystrom core well conditioned.
    n_error_probes : int, default=10
        Held-back Gaussian vectors (forward products) on which the fit's
        relative error and the operator's Frobenius norm are estimated.
    max_probe_bytes : int, default=67108864
        Memory budget (bytes) of the probe batches in flight: probes are
        applied through ``matmat``/``rmatmat`` in batches of as many columns
        as fit.

    Attributes
    ----------
    n_products : dict
        Forward and adjoint products applied to ``operator`` by the fits that
        used this wrapper, ``{"forward": int, "adjoint": int}``.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.fft import fft, ifft
    >>> from scipy.sparse.linalg import LinearOperator
    >>> from skbutterfly import ProbedOperator, butterfly_factorize
    >>> n = 1024
    >>> dft = LinearOperator(
    ...     (n, n), dtype=complex,
    ...     matvec=lambda x: fft(x), rmatvec=lambda y: n * ifft(y),
    ...     matmat=lambda X: fft(X, axis=0), rmatmat=lambda Y: n * ifft(Y, axis=0))
    >>> probed = ProbedOperator(dft, oversampling=2)
    >>> op = butterfly_factorize(probed, permutation="bit-reversal")
    >>> probed.n_products["forward"] + probed.n_products["adjoint"] < n
    True
    """

    def __init__(
        self,
        operator,
        *,
        oversampling=4,
        adjoint_ratio=2.0,
        n_error_probes=10,
        max_probe_bytes=64 << 20,
    ):
        inner = as_linear_operator(operator, "operator")
        check_int(oversampling, "oversampling", 0)
        check_int(n_error_probes, "n_error_probes", 1)
        check_int(max_probe_bytes, "max_probe_bytes", 1)
        if (
            not isinstance(adjoint_ratio, Real)
            or isinstance(adjoint_ratio, bool)
            or not adjoint_ratio >= 1
        ):
            raise ValueError(
                f"adjoint_ratio={adjoint_ratio!r} must be a real number >= 1."
            )
        self.operator = inner
        self.oversampling = int(oversampling)
        self.adjoint_ratio = float(adjoint_ratio)
        self.n_error_probes = int(n_error_probes)
        self.max_probe_bytes = int(max_probe_bytes)
        self.n_products = {"forward": 0, "adjoint": 0}
        super().__init__(inner.dtype, inner.shape)

    def _matmat(self, X):
        return self.operator.matmat(X)

    def _rmatmat(self, X):
        return self.operator.rmatmat(X)

    def _matvec(self, x):
        return self.operator.matvec(x)

    def _rmatvec(self, x):
        return self.operator.rmatvec(x)

    def _adjoint(self):
        return self.operator.H


def as_linear_operator(A, name):
    """``aslinearoperator(A)`` with a supported float dtype, or a named error."""
    try:
        op = aslinearoperator(A)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} must be an array, a sparse matrix or a linear operator "
            f"(shape, matvec and rmatvec), got {type(A).__name__}: {exc}"
        ) from None
    if len(op.shape) != 2 or 0 in op.shape:
        raise ValueError(f"{name} must be a non-empty 2-D operator, got {op.shape}.")
    dtype = np.dtype(op.dtype) if op.dtype is not None else np.dtype(np.float64)
    if dtype.kind not in "biufc":
        raise TypeError(
            f"{name} must have a numeric dtype (float or complex), got {dtype}."
        )
    return op


def working_dtype(dtype):
    """The float dtype in which an operator of ``dtype`` is probed."""
    dtype = np.dtype(dtype)
    if dtype in (np.float32, np.float64, np.complex64, np.complex128):
        return dtype
    return np.dtype(np.complex128 if dtype.kind == "c" else np.float64)


class CheckedProducts:
    """Forward and adjoint products of one operator, counted and checked.

    Parameters
    ----------
    operator : LinearOperator
        The user's operator ``A``.
    name : str
        Name of the parameter that holds it (for errors).
    dtype : dtype
        Working dtype: products are returned in it; a complex product of a
        real operator is an error.
    counters : list of dict
        Dicts ``{"forward": int, "adjoint": int}``, each incremented per probe
        column.
    """

    def __init__(self, operator, name, dtype, counters):
        self.operator = operator
        self.name = name
        self.dtype = np.dtype(dtype)
        self.counters = counters
        self._lock = threading.Lock()

    def forward(self, X, batch):
        """``A @ X`` (shape ``(m, k)``) for the probe batch ``batch`` (a label)."""
        return self._apply("forward", X, batch)

    def adjoint(self, X, batch):
        """``A^H @ X`` (shape ``(n, k)``)."""
        return self._apply("adjoint", X, batch)

    def _apply(self, side, X, batch):
        m, n = self.operator.shape
        rows = m if side == "forward" else n
        method = "matmat" if side == "forward" else "rmatmat"
        where = f"{self.name}.{method} on {side} probe batch {batch}"
        if side == "adjoint" and not _has_adjoint(self.operator):
            raise TypeError(self._no_adjoint("rmatvec and rmatmat are not defined"))
        with self._lock:
            for counter in self.counters:
                counter[side] += X.shape[1]
        try:
            Y = getattr(self.operator, method)(X)
        except NotImplementedError as exc:
            if side == "adjoint":
                raise TypeError(self._no_adjoint(exc)) from exc
            raise TypeError(f"{where} is not implemented: {exc}") from exc
        except Exception as exc:
            raise ValueError(f"{where} raised {type(exc).__name__}: {exc}") from exc
        Y = np.asarray(Y.toarray() if sp.issparse(Y) else Y)
        if Y.ndim == 1 and X.shape[1] == 1:
            Y = Y[:, None]
        if Y.shape != (rows, X.shape[1]):
            raise ValueError(
                f"{where} returned shape {Y.shape}, expected {(rows, X.shape[1])}."
            )
        if Y.dtype.kind not in "biufc":
            raise TypeError(f"{where} returned dtype {Y.dtype}, not a numeric one.")
        if Y.dtype.kind == "c" and self.dtype.kind != "c":
            if np.any(Y.imag):
                raise TypeError(
                    f"{where} returned complex values ({Y.dtype}) but {self.name} "
                    f"has the real dtype {self.operator.dtype}; give the operator "
                    "a complex dtype."
                )
            Y = Y.real
        Y = Y.astype(self.dtype, copy=False)
        if not np.isfinite(Y).all():
            col = int(np.argwhere(~np.isfinite(Y))[0][1])
            raise ValueError(
                f"{where} returned NaN or infinity (first in column {col} of the "
                "batch)."
            )
        return Y

    def _no_adjoint(self, why):
        return (
            f"{self.name} has no adjoint product ({why}); fitting an operator "
            "without forming it needs rmatvec or rmatmat. Define them, or form "
            "the matrix (A @ np.eye(n)) and fit that."
        )


def _has_adjoint(op):
    """False for a ``LinearOperator(shape, matvec)`` built without an adjoint."""
    impls = [
        getattr(op, f"_CustomLinearOperator__{name}_impl", True)
        for name in ("rmatvec", "rmatmat")
    ]
    return any(impl is not None for impl in impls)
