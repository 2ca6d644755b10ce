"""The GRETSI'23 identification heuristic, kept as a baseline for the benchmarks.

A re-implementation of the method of Zheng et al. (GRETSI 2023): every level
``s`` of the butterfly's trees is searched independently by alternating
equal-size spectral clusterings of the rows and of the columns (affinity
``|cos|**alpha`` over an alpha grid, random restarts), the partition of smallest
rank-one residual ``J_s`` is kept, and the levels are glued into trees when they
nest. ``O(n^3)`` per clustering and thousands of clusterings per level: it is
compared with ``skbutterfly.permutation.identify_permutations`` in
``benchmarks/bench_identify.py`` and is not part of the package.

    >>> from benchmarks.paper_identify import paper_identify
    >>> from skbutterfly.datasets import make_hidden_butterfly
    >>> A, _, _, _ = make_hidden_butterfly(8, family="dft", random_state=1)
    >>> found = paper_identify(A, random_state=0)  # doctest: +SKIP
"""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn import config_context
from sklearn.cluster import kmeans_plusplus
from sklearn.utils import check_random_state

from skbutterfly._block_svd import blas_single_thread
from skbutterfly.permutation._nested import perms_from_dfs
from skbutterfly.permutation._residual import abs2, check_square_dyadic
from skbutterfly.permutation._result import TOL_DOUBLE, TOL_SINGLE, certify

__all__ = ["glue", "paper_identify"]

# The GRETSI'23 experimental settings (experiments/*.sh of the authors' code).
PAPER_ALPHAS = (1e-2, 1e-1, 1.0, 1e1, 1e2)
PAPER_N_RESTARTS = 5
PAPER_N_ITER = 50
PAPER_KMEANS_N_INIT = 10
PAPER_KMEANS_MAX_ITER = 300


def _random_equal_labels(n, k, rng):
    """Uniformly random partition of ``range(n)`` into ``k`` groups of ``n / k``."""
    return (rng.permutation(n) % k).astype(np.int64)


def _groups(labels, k):
    """Index matrix ``(k, n / k)`` of a balanced labelling."""
    return np.argsort(labels, kind="stable").reshape(k, -1)


def _monarch_cost(A, row_labels, col_labels, n_row_groups, n_col_groups):
    """``J = sum_{i, j} sum_{k >= 2} sigma_k(A[R_i, C_j])^2`` of one level."""
    R = _groups(row_labels, n_row_groups)
    C = _groups(col_labels, n_col_groups)
    blocks = A[R[:, None, :, None], C[None, :, None, :]]
    s = np.linalg.svd(blocks, compute_uv=False)
    return float((s[..., 1:] ** 2).sum())


def _affinity(X, col_labels, k, alpha):
    """``W_kl = sum_j |cos(X[k, C_j], X[l, C_j])|^alpha`` (GRETSI'23)."""
    C = _groups(col_labels, k)
    S = X[:, C].transpose(1, 0, 2)  # (k, n, g)
    norms = np.sqrt(abs2(S).sum(axis=2, keepdims=True))
    S = S / np.maximum(norms, 1e-12)
    cos = np.abs(np.matmul(S, np.conj(S).swapaxes(1, 2)))
    return (np.clip(cos, 0.0, 1.0) ** alpha).sum(axis=0)


def _balanced_kmeans(F, k, rng, n_init, max_iter, tol=1e-4):
    """k-means with exactly ``n / k`` points per cluster (k-means-constrained).

    Lloyd iterations whose assignment step is an exact balanced assignment (a
    linear assignment onto ``n / k`` copies of every center), scikit-learn's
    k-means++ starts, best inertia of ``n_init`` runs (run side by side).
    """
    n, _dim = F.shape
    size = n // k
    tol_abs = tol * float(np.mean(np.var(F, axis=0)))
    sq = (F**2).sum(axis=1)
    # Tens of thousands of tiny seedings per level: scikit-learn's parameter
    # validation would cost more than the seeding itself.
    with config_context(skip_parameter_validation=True, assume_finite=True):
        centers = np.stack(
            [
                kmeans_plusplus(F, k, x_squared_norms=sq, random_state=rng)[0]
                for _ in range(n_init)
            ]
        )  # (n_init, k, dim)
    labels = np.full((n_init, n), -1, dtype=np.int64)
    active = np.ones(n_init, dtype=bool)
    inits, points = np.arange(n_init)[:, None], np.arange(n)[None, :]
    for _ in range(max_iter):
        D = sq[None, :, None] + (centers**2).sum(axis=2)[:, None, :]
        D -= 2.0 * np.matmul(F[None], centers.swapaxes(1, 2))
        for i in np.flatnonzero(active):
            new = linear_sum_assignment(np.repeat(D[i], size, axis=1))[1] // size
            if (new == labels[i]).all():
                active[i] = False
            labels[i] = new
        onehot = np.zeros((n_init, n, k))
        onehot[inits, points, labels] = 1.0
        new_centers = np.matmul(onehot.swapaxes(1, 2), F) / size
        shift = ((new_centers - centers) ** 2).sum(axis=(1, 2))
        centers = np.where(active[:, None, None], new_centers, centers)
        active &= shift > tol_abs
        if not active.any():
            break
    inertia = ((F[None] - centers[inits, labels]) ** 2).sum(axis=(1, 2))
    return labels[int(np.argmin(inertia))]


def _spectral_labels(W, k, rng, n_init, max_iter):
    """Equal-size spectral clustering with the authors' features ``V[:, 1:k+1]``."""
    lap = np.diag(W.sum(axis=1)) - W
    _, vecs = np.linalg.eigh(lap)
    return _balanced_kmeans(vecs[:, 1 : k + 1], k, rng, n_init, max_iter)


def _paper_level(A, level, rng, alphas, n_restarts, n_iter, n_init, max_iter, zero):
    """Best (J, row labels, column labels) of all alternating searches of a level."""
    n = A.shape[0]
    n_row_groups, n_col_groups = n >> level, 1 << level
    AT = A.T

    def cost(rows, cols):
        return _monarch_cost(A, rows, cols, n_row_groups, n_col_groups)

    best = None
    for alpha in alphas:
        for _ in range(n_restarts):
            rows = _random_equal_labels(n, n_row_groups, rng)
            cols = _random_equal_labels(n, n_col_groups, rng)
            run_best = (cost(rows, cols), rows, cols)
            for _ in range(n_iter):
                affinity = _affinity(A, cols, n_col_groups, alpha)
                rows = _spectral_labels(affinity, n_row_groups, rng, n_init, max_iter)
                J = cost(rows, cols)
                if J < run_best[0]:
                    run_best = (J, rows, cols)
                affinity = _affinity(AT, rows, n_row_groups, alpha)
                cols = _spectral_labels(affinity, n_col_groups, rng, n_init, max_iter)
                J = cost(rows, cols)
                if J < run_best[0]:
                    run_best = (J, rows, cols)
                if run_best[0] <= zero:
                    break
            if best is None or run_best[0] < best[0]:
                best = run_best
            if best[0] <= zero:
                return best
    return best


def glue(row_labels, col_labels, n):
    """Glue per-level partitions into trees; DFS leaf orders, or None if not nested.

    ``row_labels[s]`` / ``col_labels[s]`` (``s = 1 .. L-1``) label the rows into
    ``n / 2**s`` groups and the columns into ``2**s`` groups.
    """
    n_levels = n.bit_length() - 1
    for level in range(2, n_levels):
        finer, coarser = row_labels[level - 1], row_labels[level]
        n_fine = n >> (level - 1)
        if np.unique(finer * n + coarser).size != n_fine:
            return None
        finer, coarser = col_labels[level], col_labels[level - 1]
        if np.unique(finer * n + coarser).size != 1 << level:
            return None
    levels = range(1, n_levels)
    row_dfs = np.lexsort(tuple(row_labels[s] for s in levels))
    col_dfs = np.lexsort(tuple(col_labels[s] for s in reversed(levels)))
    return row_dfs, col_dfs


def paper_levels(
    A,
    rng,
    *,
    alphas=PAPER_ALPHAS,
    n_restarts=PAPER_N_RESTARTS,
    n_iter=PAPER_N_ITER,
    kmeans_n_init=PAPER_KMEANS_N_INIT,
    kmeans_max_iter=PAPER_KMEANS_MAX_ITER,
    verbose=0,
):
    """The GRETSI'23 pipeline; returns the DFS orders or None, and the level costs.

    Every level ``s`` is searched independently: ``len(alphas) * n_restarts``
    alternating runs of ``n_iter`` row and column spectral clusterings from random
    balanced partitions, the state of smallest ``J_s`` kept. A run stops early
    only when ``J_s`` is zero to rounding (no state can do better).
    """
    n = A.shape[0]
    norm2 = float(abs2(A).sum())
    zero = 1e-24 * norm2
    row_labels, col_labels, costs = {}, {}, []
    for level in range(1, n.bit_length() - 1):
        J, rows, cols = _paper_level(
            A,
            level,
            rng,
            alphas,
            n_restarts,
            n_iter,
            kmeans_n_init,
            kmeans_max_iter,
            zero,
        )
        row_labels[level], col_labels[level] = rows, cols
        costs.append(J / norm2 if norm2 > 0 else 0.0)
        if verbose:
            print(
                f"[identify] paper: level {level} relative J {np.sqrt(costs[-1]):.3e}"
            )
    return glue(row_labels, col_labels, n), costs


def paper_identify(A, *, random_state=None, tol=None, verbose=0, **settings):
    """Identify the permutations of a hidden butterfly with the GRETSI'23 method.

    Parameters
    ----------
    A : {array-like, sparse matrix} of shape (n, n)
        Finite real or complex matrix, ``n = 2**L`` with ``L >= 1``.
    random_state : int, RandomState instance or None, default=None
        Seed of the random starts and of k-means++; None means a fixed seed (0).
    tol : float, default=None
        Certification tolerance on the checker residual; None means ``1e-8``, or
        ``1e-4`` for single-precision input.
    verbose : int, default=0
        Print the cost of each level when > 0.
    **settings
        ``alphas``, ``n_restarts``, ``n_iter``, ``kmeans_n_init``,
        ``kmeans_max_iter`` (default: the paper's experimental settings).

    Returns
    -------
    result : skbutterfly.permutation.PermutationIdentification
        With ``method="paper"``; ``glued`` is False (and the permutations the
        identity) when the levels do not nest into trees.
    """
    A, single = check_square_dyadic(A)
    rng = check_random_state(0 if random_state is None else random_state)
    tol = float((TOL_SINGLE if single else TOL_DOUBLE) if tol is None else tol)
    n = A.shape[0]
    scale = float(np.abs(A).max())
    if n == 2 or scale == 0:
        identity = np.arange(n, dtype=np.int64)
        return certify(A, identity, identity.copy(), "paper", tol, scale == 0, "")
    X = A / scale
    # Thousands of tiny eigh and SVD calls: multithreaded BLAS only slows them.
    with blas_single_thread():
        found, _ = paper_levels(X, rng, verbose=verbose, **settings)
    if found is None:
        note = "the levels did not nest into trees (gluing failed)"
        return certify(X, None, None, "paper", tol, False, note)
    return certify(X, *perms_from_dfs(*found), "paper", tol, False, "")
