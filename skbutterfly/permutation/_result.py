"""The result of an identification, certified by the checker."""

# SPDX-License-Identifier: BSD-3-Clause

import dataclasses

import numpy as np

from skbutterfly.permutation._nested import nested_error
from skbutterfly.permutation._residual import level_ratios

__all__ = ["TOL_DOUBLE", "TOL_SINGLE", "PermutationIdentification", "certify"]

# Default certification tolerance on the checker residual, by input precision.
TOL_DOUBLE = 1e-8
TOL_SINGLE = 1e-4


@dataclasses.dataclass(frozen=True, eq=False)
class PermutationIdentification:
    """Result of :func:`identify_permutations` (its fields are its attributes).

    A frozen dataclass: the permutations found, the checker's certificate and a
    message that explains any outcome other than a certified butterfly.

    Parameters
    ----------
    row_perm : ndarray of shape (n,), dtype int64
        Row permutation: ``A[np.ix_(row_perm, col_perm)]`` is (close to) a
        butterfly.
    col_perm : ndarray of shape (n,), dtype int64
        Column permutation.
    residual : float
        :func:`butterfly_residual` of ``A[np.ix_(row_perm, col_perm)]``: 0 for an
        exact butterfly.
    method : str
        The method that produced the permutations: ``"exact"`` or ``"robust"``
        (the GRETSI'23 baseline of the benchmarks reports ``"paper"``).
    certain : bool
        True when ``residual <= tol``: the permuted matrix is certified to be a
        butterfly. When False the permutations are a best effort and ``message``
        says so.
    degenerate : bool
        True when several tree pairs were found to be valid at some level (the
        Hadamard matrix is the standard example); one of them was returned.
    message : str
        Human-readable summary.
    glued : bool, default=True
        False when no pair of trees was found (``method="exact"`` on input that
        is not an exact butterfly); the permutations are then the identity.
    relative_error : float, default=nan
        Relative Frobenius error ``||A - A_hat||_F / ||A||_F`` of the nested
        rank-one fit built during the identification (an orthonormal
        left-to-right hierarchical factorization under the returned
        permutations); NaN when ``glued`` is False.
    tol : float, default=1e-8
        The certification tolerance used.

    See Also
    --------
    identify_permutations : The function that returns this result.
    butterfly_residual : The checker behind ``residual`` and ``certain``.

    Examples
    --------
    >>> from skbutterfly.datasets import make_hidden_butterfly
    >>> from skbutterfly.permutation import identify_permutations
    >>> A, _, _, _ = make_hidden_butterfly(16, random_state=0)
    >>> found = identify_permutations(A)
    >>> found.certain, found.degenerate, found.row_perm.shape
    (True, False, (16,))
    >>> found.message
    'identified (exact method): checker residual ... <= tol 1e-08'
    """

    row_perm: np.ndarray
    col_perm: np.ndarray
    residual: float
    method: str
    certain: bool
    degenerate: bool
    message: str
    glued: bool = True
    relative_error: float = float("nan")
    tol: float = TOL_DOUBLE


def certify(X, row_perm, col_perm, method, tol, degenerate, note, rel_error=None):
    """Certify permutations with the checker and build the result.

    ``X`` is the (scaled) matrix; ``row_perm`` None means that no tree pair was
    found (identity returned). ``rel_error`` is the nested fit's relative error
    when already known; ``note`` is appended to the message.
    """
    n = X.shape[0]
    glued = row_perm is not None
    if not glued:
        row_perm = col_perm = np.arange(n, dtype=np.int64)
    B = X[np.ix_(row_perm, col_perm)]
    residual = float(level_ratios(B).max(initial=0.0))
    if not glued:
        rel_error = float("nan")
    elif rel_error is None:
        rel_error = nested_error(B)
    certain = bool(glued and residual <= tol)
    if certain:
        message = (
            f"identified ({method} method): checker residual {residual:.2e} <= tol "
            f"{tol:.0e}"
        )
    elif glued:
        message = (
            f"not certain ({method} method): checker residual {residual:.2e} > tol "
            f"{tol:.0e}, so A is not an exact butterfly under the returned "
            "permutations (noise, or no butterfly structure); nested rank-one fit "
            f"error {rel_error:.3g}"
        )
    else:
        message = (
            f"failed ({method} method): no pair of trees was found; the "
            "permutations are the identity"
        )
    if note:
        message += f"; {note}"
    if degenerate and certain:
        message += (
            "; degenerate input: several tree pairs are valid (e.g. Hadamard), one "
            "of them was returned"
        )
    elif degenerate:
        message += "; ambiguous: at some level several choices fit equally well"
    return PermutationIdentification(
        row_perm=np.array(row_perm, dtype=np.int64),
        col_perm=np.array(col_perm, dtype=np.int64),
        residual=residual,
        method=method,
        certain=certain,
        degenerate=bool(degenerate),
        message=message,
        glued=glued,
        relative_error=rel_error,
        tol=tol,
    )
