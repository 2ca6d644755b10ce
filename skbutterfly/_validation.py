"""Validation of the matrices given to the factorization."""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import scipy.sparse as sp

__all__ = ["check_matrix", "max_abs"]

_SUPPORTED_DTYPES = (np.float32, np.float64, np.complex64, np.complex128)


def check_matrix(A, name="A"):
    """Validate a matrix to factorize and return it as a supported ndarray.

    Integers and booleans become float64, float16 becomes float32; NaN, inf,
    empty arrays, arrays that are not 2-D and non-numeric dtypes raise.
    Sparse input is densified.
    """
    if sp.issparse(A):
        A = A.toarray()
    elif hasattr(A, "__array__") or isinstance(A, (list, tuple)):
        try:
            A = np.asarray(A)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name} cannot be converted to an array: {exc}") from None
    else:
        raise TypeError(
            f"{name} must be an array-like or a scipy sparse matrix, got "
            f"{type(A).__name__}."
        )
    if A.dtype.kind in "OUSV" or A.dtype.kind == "M" or A.dtype.kind == "m":
        raise TypeError(
            f"{name} must have a numeric dtype (bool, integer, float or complex), "
            f"got dtype {A.dtype}."
        )
    if A.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array, got {A.ndim}-D with shape {A.shape}."
        )
    if 0 in A.shape:
        raise ValueError(f"{name} must be non-empty, got shape {A.shape}.")
    if A.dtype.kind in "biu":
        A = A.astype(np.float64)
    elif A.dtype == np.float16:
        A = A.astype(np.float32)
    elif A.dtype.type not in _SUPPORTED_DTYPES:
        A = A.astype(np.complex128 if A.dtype.kind == "c" else np.float64)
    if not np.isfinite(max_abs(A)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(A))[0])
        raise ValueError(
            f"{name} contains NaN or infinity; the first is at index {bad}: {A[bad]!r}."
        )
    return A


def max_abs(A):
    """``max(|Re A|, |Im A|)`` by reductions on views (no temporary array).

    NaN and infinity propagate, so this is also a finiteness check.
    """
    parts = (A.real, A.imag) if A.dtype.kind == "c" else (A,)
    return max(max(float(p.max()), -float(p.min())) for p in parts)
