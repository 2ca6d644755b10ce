"""identify_permutations: exact first, certified by the checker, else robust."""

# SPDX-License-Identifier: BSD-3-Clause

import dataclasses
from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state

from skbutterfly.permutation._nested import nested_identify
from skbutterfly.permutation._residual import abs2, check_square_dyadic
from skbutterfly.permutation._result import TOL_DOUBLE, TOL_SINGLE, certify

__all__ = ["identify_permutations"]

METHODS = ("auto", "exact", "robust")


def _check_params(method, tol, verbose):
    if method == "paper":
        raise ValueError(
            "method='paper' is not a method of identify_permutations: the GRETSI'23 "
            "baseline lives in the benchmarks (benchmarks/paper_identify.py, "
            f"function paper_identify). Use one of {list(METHODS)}."
        )
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method={method!r} must be one of {list(METHODS)}.")
    if tol is not None and (
        not isinstance(tol, Real)
        or isinstance(tol, bool)
        or not np.isfinite(tol)
        or not 0 < tol < 1
    ):
        raise ValueError(f"tol={tol!r} must be None or a float in (0, 1).")
    if not isinstance(verbose, Integral) or verbose < 0:
        raise ValueError(f"verbose={verbose!r} must be an integer >= 0.")


def identify_permutations(A, *, method="auto", random_state=None, tol=None, verbose=0):
    """Find row and column permutations that make a matrix a butterfly.

    Given ``A = P_r^T B P_c`` with ``B`` a square-dyadic butterfly (possibly noisy)
    and unknown permutations, return ``row_perm, col_perm`` such that
    ``A[np.ix_(row_perm, col_perm)]`` is a butterfly, and a certificate: the
    checker residual :func:`butterfly_residual` of the permuted matrix.

    Parameters
    ----------
    A : {array-like, sparse matrix} of shape (n, n)
        Real or complex matrix, ``n = 2**L`` with ``L >= 1``, finite. It is not
        modified.
    method : {"auto", "exact", "robust"}, default="auto"
        ``"exact"``: search-free identification for noiseless input (ratios of
        pairs of rows, level by level); it fails (``glued=False``) rather than
        guess. ``"robust"``: nested level-coupled search for noisy or degenerate
        input (reference-pair clustering, minimum-cost matching of rows, balanced
        clustering of columns, swap refinement, several starts, enumeration of
        small levels, lookahead and a polish judged on all later levels).
        ``"auto"``: exact first, verified by the checker; robust search
        (warm-started from the exact levels) when the exact result is missing or
        not certified.
    random_state : int, RandomState instance or None, default=None
        Seed of the random choices (hashing and projection directions, random
        starts of the robust search). None means a fixed seed (0): the same
        input always gives the same result, whatever numpy's global random
        state, which is never used.
    tol : float, default=None
        Certification tolerance on the checker residual (``certain`` is
        ``residual <= tol``); also the direction tolerance of the exact method.
        None means ``1e-8``, or ``1e-4`` for single-precision input.
    verbose : int, default=0
        Print progress when > 0.

    Returns
    -------
    result : PermutationIdentification
        Frozen dataclass with ``row_perm``, ``col_perm``, ``residual``,
        ``method``, ``certain``, ``degenerate``, ``message``, ``glued``,
        ``relative_error`` and ``tol``.

    See Also
    --------
    butterfly_residual : The checker that certifies the result.
    skbutterfly.butterfly_factorize : With ``permutation="identify"``, identifies
        then factorizes.

    Notes
    -----
    ``A`` is a butterfly under ``(row_perm, col_perm)`` iff it is complementary
    low-rank for a pair of dyadic trees (Zheng et al. 2023); the permutations map
    the identified trees onto the canonical ones (even/odd splits for rows,
    contiguous halves for columns), so any tree automorphism gives an equally
    valid answer.

    The exact and robust methods build both trees level by level on compressed
    rows, which is the left-to-right hierarchical algorithm run with an unknown
    pairing at each level: rows merge in pairs, column groups split in halves, so
    the trees are nested by construction and never fail to glue. The exact
    method costs ``O(n^2 log n)`` (about the time of a few factorizations); the
    robust one ``O(n^3)`` (Gram matrices of row pairs per start and level; a few
    seconds at ``n = 1024``). Under noise the robust method returns the trees of
    smallest nested residual it finds, in practice those of the planted
    permutations (or better ones).

    The returned permutations are never silently wrong: ``certain`` is True only
    when the checker certifies the permuted matrix, and ``message`` explains any
    other outcome (noise, no butterfly structure, failed gluing).

    The GRETSI'23 heuristic (independent levels, alternating spectral
    clustering, gluing) is kept as a baseline in the benchmarks
    (``benchmarks/paper_identify.py``), not in the package.

    References
    ----------
    L. Zheng, G. Puy, E. Riccietti, P. Perez, R. Gribonval, "Factorisation
    butterfly par identification algorithmique de blocs de rang un", GRETSI 2023,
    :arxiv:`2307.00820`.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly.datasets import make_hidden_butterfly
    >>> from skbutterfly.permutation import identify_permutations
    >>> A, _, _, _ = make_hidden_butterfly(64, family="dft", random_state=0)
    >>> found = identify_permutations(A, random_state=0)
    >>> found.method, found.certain, found.residual < 1e-10
    ('exact', True, True)
    """
    A, single = check_square_dyadic(A)
    _check_params(method, tol, verbose)
    # None means a fixed seed: never numpy's global generator.
    rng = check_random_state(0 if random_state is None else random_state)
    tol = float((TOL_SINGLE if single else TOL_DOUBLE) if tol is None else tol)
    n = A.shape[0]
    scale = float(np.abs(A).max())
    if n == 2 or scale == 0:
        note = "every 2 x 2 matrix is a butterfly" if scale else "A is zero"
        identity = np.arange(n, dtype=np.int64)
        return certify(A, identity, identity.copy(), "exact", tol, scale == 0, note)
    X = A / scale
    norm2 = abs2(X).sum()

    exact = exact_res = None
    if method in ("auto", "exact"):
        exact = nested_identify(X, "exact", tol, rng, verbose=verbose)
        if exact.row_perm is None:
            if method == "exact":
                note = (
                    "the ratio structure is inconsistent at level "
                    f"{exact.failed_level} (noise or degenerate input: try "
                    "method='robust')"
                )
                return certify(X, None, None, "exact", tol, exact.degenerate, note)
        else:
            res = certify(
                X,
                exact.row_perm,
                exact.col_perm,
                "exact",
                tol,
                exact.degenerate,
                "",
                np.sqrt(exact.cost / norm2),
            )
            if res.certain or method == "exact":
                return res
            exact_res = res
            if verbose:
                print(f"[identify] exact result not certified: {res.message}")
    warm = None if exact is None else exact.history
    robust = nested_identify(X, "robust", tol, rng, warm=warm, verbose=verbose)
    degenerate = robust.degenerate or (exact is not None and exact.degenerate)
    note = ""
    if exact is not None:
        note = "the exact method " + (
            f"failed at level {exact.failed_level}"
            if exact.row_perm is None
            else "was not certified"
        )
    rel_error = np.sqrt(robust.cost / norm2)
    res = certify(
        X,
        robust.row_perm,
        robust.col_perm,
        "robust",
        tol,
        degenerate,
        note,
        rel_error,
    )
    if exact_res is not None and exact_res.relative_error < res.relative_error:
        return exact_res
    if not res.certain:
        res = dataclasses.replace(
            res,
            message=f"{res.message}; the robust search returned the trees with the "
            "smallest nested rank-one residual",
        )
    return res
