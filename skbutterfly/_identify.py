"""Identify a butterfly hidden behind unknown row and column permutations.

A square matrix ``B`` of size ``N = 2**L`` is a square-dyadic butterfly (a product
``X_1 ... X_L`` of butterfly factors, ``X_1 = 1_{2x2} (x) I_{N/2}`` leftmost) if and
only if, for every level ``s = 1 .. L-1`` and ``h = N / 2**s``, every block
``B[i::h, j*h:(j+1)*h]`` has rank at most one (the complementary low-rank, CLR,
characterization of Zheng et al., GRETSI 2023). Given ``A`` whose rows and columns
were shuffled, this module finds ``row_perm, col_perm`` such that
``A[np.ix_(row_perm, col_perm)]`` is a butterfly.

Three methods are implemented:

* ``"exact"``: a search-free method for noiseless input, based on the ratios of
  pairs of rows (the "ratio ultrametric"), run level by level on compressed rows.
* ``"robust"``: the same nested, level-coupled construction with a noise-aware
  search at every level (two-line clustering of reference pairs, minimum-cost
  perfect matching of rows, balanced two-line clustering of columns, swaps,
  several starts, enumeration of small levels), a lookahead on small problems and
  a polish that re-pairs rows when the later levels gain from it.
* ``"paper"``: a re-implementation of the GRETSI'23 heuristic (independent levels,
  alternating spectral clustering, alpha grid, restarts, gluing).
"""

# SPDX-License-Identifier: BSD-3-Clause

import dataclasses
import threading
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from sklearn.utils import check_random_state
from threadpoolctl import ThreadpoolController

from skbutterfly._permutation import bit_reversal

__all__ = [
    "PermutationIdentification",
    "butterfly_residual",
    "identify_permutations",
]

METHODS = ("auto", "exact", "robust", "paper")

# The GRETSI'23 experimental settings (experiments/*.sh of the authors' code).
PAPER_ALPHAS = (1e-2, 1e-1, 1.0, 1e1, 1e2)
PAPER_N_RESTARTS = 5
PAPER_N_ITER = 50
PAPER_KMEANS_N_INIT = 10
PAPER_KMEANS_MAX_ITER = 300

# Default certification tolerance on the checker residual, by input precision.
_TOL_DOUBLE = 1e-8
_TOL_SINGLE = 1e-4
# Blocks whose top singular value is below this fraction of the largest one of
# their level are treated as numerically zero by the checker.
_BLOCK_FLOOR = 1e-12
# The checker refines blocks whose short side is at most this by an exact SVD.
_SVD_SIDE = 16
# Exact method: reference rows and candidate partners tried per level; rows are
# screened on about this many columns before the full check.
_EXACT_REFS = 4
_EXACT_PARTNERS = 8
_EXACT_SCREEN = 64
# Robust method, per level: seed pairs (reference rows and their best partner),
# starts refined from them, pairs trusted by the halving step (fit at most this
# many times the median), candidates of the Lloyd refinement of a partner fit,
# alternation rounds, Lloyd iterations, borderline columns tried in single swaps.
_SEED_PAIRS = 8
_ROBUST_REFS = 3
_TRUST = 3.0
_PARTNER_REFINE = 8
_ROBUST_ROUNDS = 8
_LLOYD_ITER = 30
_SWAP_CANDIDATES = 6
# Small levels: solved by enumeration (at most 8 row groups; or one stack of at
# most 16 columns); extra random starts and joint swaps while K * M**3 (the size
# of the level's search) is below the budget.
_EXHAUSTIVE_ROWS = 8
_ENUMERATED_COLUMNS = 16
_START_BUDGET = 2.0**17
_RANDOM_STARTS = 32
_SWAP_EVALS = 48
# Lookahead: while K * M**3 is at most this, the best few level solutions are each
# completed greedily and judged on the total residual.
_LOOKAHEAD_SIZE = 2**13
_LOOKAHEAD_CANDIDATES = 6
# Polish: partner exchanges tried per round and evaluated per level; below this
# many pairs every pair is a candidate, above it only badly fitting ones.
_POLISH_MOVES = 16
_POLISH_EVALS = 64
_POLISH_ALL = 16
# A choice is ambiguous (degenerate input) when the best relative residual is at
# most this and the runner-up within 10 % of it.
_STRUCTURED = 1e-2


@dataclasses.dataclass(frozen=True, eq=False)
class PermutationIdentification:
    """Result of :func:`identify_permutations` (its fields are its attributes).

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
    method : {"exact", "robust", "paper"}
        The method that produced the permutations.
    certain : bool
        True when ``residual <= tol``: the permuted matrix is certified to be a
        butterfly. When False the permutations are a best effort and ``message``
        says so.
    degenerate : bool
        True when several tree pairs were found to be valid at some level (the
        Hadamard matrix is the standard example); one of them was returned.
    message : str
        Human-readable summary.
    glued : bool
        False when no pair of trees was found (the exact method failed, or the
        paper method's levels did not nest); the permutations are then the
        identity.
    relative_error : float
        Relative Frobenius error ``||A - A_hat||_F / ||A||_F`` of the nested
        rank-one fit built during the identification (an orthonormal
        left-to-right hierarchical factorization under the returned
        permutations); NaN when ``glued`` is False.
    tol : float
        The certification tolerance used.
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
    tol: float = _TOL_DOUBLE


_controller = None
_controller_lock = threading.Lock()


def _single_thread_blas():
    """Context manager holding BLAS to one thread (for many tiny LAPACK calls).

    Multithreaded OpenBLAS makes a 32 x 32 ``eigh`` about 50 times slower when
    the cores are busy; the paper method runs thousands of them.
    """
    global _controller
    with _controller_lock:
        if _controller is None:
            _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


def _check_square_dyadic(A, name="A"):
    """Return ``A`` as a float64/complex128 array and whether it was single precision.

    ``A`` must be a finite numeric 2-D square array of size ``2**L``, ``L >= 1``.
    """
    if sp.issparse(A):
        A = A.toarray()
    try:
        A = np.asarray(A)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} cannot be converted to an array: {exc}") from None
    if A.dtype.kind not in "biufc":
        raise ValueError(
            f"{name} must have a numeric dtype (bool, integer, float or complex), "
            f"got dtype {A.dtype}."
        )
    if A.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array, got a {A.ndim}-D array of shape {A.shape}."
        )
    n_rows, n_cols = A.shape
    if n_rows != n_cols:
        raise ValueError(
            f"{name} must be square (n x n with n = 2**L, L >= 1), got shape {A.shape}."
        )
    if n_rows < 2 or n_rows & (n_rows - 1):
        raise ValueError(
            f"{name} must have a size n = 2**L with L >= 1 (2, 4, 8, ...), got "
            f"n={n_rows}."
        )
    single = A.dtype.kind in "fc" and A.dtype.itemsize <= (
        4 if A.dtype.kind == "f" else 8
    )
    A = A.astype(np.complex128 if A.dtype.kind == "c" else np.float64, copy=False)
    if not np.isfinite(A).all():
        raise ValueError(f"{name} must not contain NaN or infinity.")
    return A, single


def _check_params(method, tol, verbose):
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


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def _abs2(X):
    """Squared modulus, real output."""
    if np.iscomplexobj(X):
        return X.real**2 + X.imag**2
    return X * X


def _perms_from_dfs(row_dfs, col_dfs):
    """Permutations mapping identified trees onto the canonical ones.

    ``row_dfs`` and ``col_dfs`` are the leaf orders of a depth-first traversal of
    the identified row and column trees. The canonical column tree (contiguous
    halves) has the identity as DFS order; the canonical row tree (even/odd
    splits) has the bit reversal.
    """
    n = len(row_dfs)
    row_perm = np.empty(n, dtype=np.int64)
    row_perm[bit_reversal(n)] = row_dfs
    return row_perm, np.asarray(col_dfs, dtype=np.int64)


def _bloch(x, y, axis=-1):
    """Weighted Bloch vectors of the lines spanned by the 2-vectors ``(x, y)``.

    Returns ``W`` with the components ``(|x|^2 - |y|^2, 2 Re(conj(x) y),
    2 Im(conj(x) y))`` stacked along ``axis`` (the last one is omitted for real
    input) and the weights ``n = |x|^2 + |y|^2 = ||W||``. Two 2-vectors span the
    same line iff their normalized Bloch vectors ``W / n`` coincide; for a set
    S of 2-vectors, the smallest eigenvalue of ``sum w w^H`` is
    ``(sum n - ||sum W||) / 2``.
    """
    complex_ = np.iscomplexobj(x) or np.iscomplexobj(y)
    xy = np.conj(x) * y if complex_ else x * y
    ax, ay = _abs2(x), _abs2(y)
    comps = [ax - ay, 2.0 * xy.real]
    if complex_:
        comps.append(2.0 * xy.imag)
    comps = np.broadcast_arrays(*comps)
    return np.stack(comps, axis=axis), ax + ay


def _top_mask(score, m):
    """Boolean mask of the ``m`` largest entries along the last axis."""
    idx = np.argpartition(-score, m - 1, axis=-1)[..., :m]
    mask = np.zeros(score.shape, dtype=bool)
    np.put_along_axis(mask, idx, True, axis=-1)
    return mask


def _halves_from_mask(mask):
    """Column indices ``(..., 2, m)``: the True columns first, then the others."""
    m = mask.shape[-1] // 2
    order = np.argsort(~mask, axis=-1, kind="stable")
    return order.reshape((*mask.shape[:-1], 2, m))


def _canonical_halves(halves):
    """A hashable key of the halves of every stack, invariant to their order."""
    h = np.sort(halves, axis=-1)
    swap = h[:, 0, 0] > h[:, 1, 0]
    h[swap] = h[swap, ::-1]
    return h.tobytes()


def _canonical(pairs, halves):
    """A hashable key of a level solution, invariant to the order of its parts."""
    p = np.sort(pairs, axis=1)
    p = p[np.argsort(p[:, 0])]
    return p.tobytes() + _canonical_halves(halves)


def _gather_halves(V, halves):
    """``V[b][:, halves[b]]`` for all stacks: shape ``(K, M, 2, m)``."""
    K, M, _ = V.shape
    idx = np.broadcast_to(halves.reshape(K, 1, M), (K, M, M))
    return np.take_along_axis(V, idx, axis=2).reshape(K, M, 2, M // 2)


# --------------------------------------------------------------------------
# The checker
# --------------------------------------------------------------------------


def _sqnorm(X, n_axes=1):
    """Squared Euclidean norm over the last ``n_axes`` axes (fast, real output)."""
    X = np.ascontiguousarray(X)
    lead = X.shape[: X.ndim - n_axes]
    flat = X.reshape(-1, int(np.prod(X.shape[X.ndim - n_axes :], dtype=np.int64)))
    if np.iscomplexobj(flat):
        flat = flat.view(flat.real.dtype)
    return np.einsum("ij,ij->i", flat, flat).reshape(lead)


def _tail_ratios(blocks, floor, max_iter=30, rtol=1e-3):
    """Per block ``sqrt(sigma_2^2 + sigma_3^2 + ...) / max(sigma_1, floor)``.

    ``blocks`` has shape ``(n_blocks, p, q)`` with ``p <= q``. Blocks with
    ``p <= _SVD_SIDE`` get a batched SVD (cost ``O(p)`` per entry). Larger ones
    get power iterations from their largest row: for any unit vector ``v``,
    ``||X - (X v) v^H||_F / ||X v||`` bounds the ratio from above, free of
    cancellation, and is exact once ``v`` is the top right singular vector; the
    iterations stop when the bound settles (relative change below ``rtol``),
    which can leave blocks far from rank one (``sigma_2`` close to ``sigma_1``)
    somewhat above their exact ratio.
    """
    n_blocks, p, _ = blocks.shape
    tiny = np.finfo(float).tiny
    if p <= _SVD_SIDE:
        sv = np.linalg.svd(blocks, compute_uv=False)
        tail = np.sqrt((sv[:, 1:] ** 2).sum(axis=1))
        return tail / np.maximum(sv[:, 0], floor)
    complex_ = np.iscomplexobj(blocks)
    row_norms = _sqnorm(blocks)
    top = np.argmax(row_norms, axis=1)
    v = blocks[np.arange(n_blocks), top, :]
    v = (np.conj(v) if complex_ else v.copy()) / np.maximum(
        np.sqrt(row_norms[np.arange(n_blocks), top]), tiny
    )[:, None]

    def bound(X, v):
        u = np.einsum("bpq,bq->bp", X, v)
        sigma1 = np.sqrt(_sqnorm(u))
        R = u[:, :, None] * (np.conj(v) if complex_ else v)[:, None, :]
        np.subtract(X, R, out=R)
        return np.sqrt(_sqnorm(R, 2)) / np.maximum(sigma1, floor), u

    ratio, u = bound(blocks, v)
    active = np.arange(n_blocks)
    for _ in range(max_iter):
        if active.size == 0:
            break
        X = blocks[active]
        w = np.einsum("bpq,bp->bq", np.conj(X) if complex_ else X, u[active])
        v = w / np.maximum(np.sqrt(_sqnorm(w)), tiny)[:, None]
        new, u_new = bound(X, v)
        settled = np.abs(new - ratio[active]) <= rtol * new
        ratio[active] = np.minimum(ratio[active], new)
        u[active] = u_new
        active = active[~settled]
    return ratio


def _float_view(X):
    """``X`` (contiguous) as reals: complex entries become (re, im) on the last axis."""
    if np.iscomplexobj(X):
        return X.view(X.real.dtype)
    return X


def _level_ratios(B, accept=1e-6):
    """Largest block tail ratio of each level ``s = 1 .. L-1`` of a square ``B``.

    The blocks of a level are read in place from the view
    ``B.reshape(p, h, p, h)[k, i, j, c] = B[i::h, j*h:(j+1)*h][k, c]``: one rank-one
    bound per block from its largest row (or column, for tall blocks), exact for
    rank-one blocks; only the blocks whose bound exceeds ``accept`` are copied
    out and refined by :func:`_tail_ratios`.
    """
    B = np.ascontiguousarray(B)
    n = B.shape[0]
    n_levels = n.bit_length() - 1
    complex_ = np.iscomplexobj(B)
    tiny = np.finfo(float).tiny
    out = np.zeros(max(n_levels - 1, 0))
    for level in range(1, n_levels):
        h, p = n >> level, 1 << level
        B4 = B.reshape(p, h, p, h)
        F4 = _float_view(B).reshape(p, h, p, -1)
        ii, jj = np.meshgrid(np.arange(h), np.arange(p), indexing="ij")
        if p <= h:
            # Wide blocks: v is the conjugate of the largest row, u = X v.
            row2 = np.einsum("kijc,kijc->kij", F4, F4)
            top = np.argmax(row2, axis=0)
            v = (
                B4[top, ii, jj, :]
                / np.maximum(np.sqrt(row2[top, ii, jj]), tiny)[..., None]
            )
            if complex_:
                v = np.conj(v)
            u = np.einsum("kijc,ijc->kij", B4, v)
            R = u[..., None] * (np.conj(v) if complex_ else v)[None]
            sigma1 = np.sqrt(_abs2(u).sum(axis=0))
        else:
            # Tall blocks: w is the largest column, s = w^H X.
            col2 = _abs2(B4).sum(axis=0)
            top = np.argmax(col2, axis=2)
            w = B4[:, ii, jj, top] / np.maximum(np.sqrt(col2[ii, jj, top]), tiny)
            s_ = np.einsum("kij,kijc->ijc", np.conj(w) if complex_ else w, B4)
            R = w[..., None] * s_[None]
            sigma1 = np.sqrt(_abs2(s_).sum(axis=2))
        np.subtract(B4, R, out=R)
        RF = _float_view(R).reshape(p, h, p, -1)
        tail = np.sqrt(np.einsum("kijc,kijc->ij", RF, RF))
        floor = max(_BLOCK_FLOOR * float(sigma1.max(initial=0.0)), tiny)
        ratio = tail / np.maximum(sigma1, floor)
        bad_i, bad_j = np.nonzero(ratio > accept)
        if bad_i.size:
            blocks = B4[:, bad_i, bad_j, :].transpose(1, 0, 2)
            if p > h:
                blocks = blocks.transpose(0, 2, 1)
            refined = _tail_ratios(np.ascontiguousarray(blocks), floor)
            ratio[bad_i, bad_j] = np.minimum(ratio[bad_i, bad_j], refined)
        out[level - 1] = ratio.max(initial=0.0)
    return out


def butterfly_residual(B):
    """Distance of a square matrix to the butterfly class, by its rank-one blocks.

    ``B`` (size ``n = 2**L``) is a square-dyadic butterfly iff every block
    ``B[i::h, j*h:(j+1)*h]``, ``h = n / 2**s``, ``s = 1 .. L-1``, has rank at most
    one. The residual is the largest ratio ``sigma_2 / sigma_1`` over all these
    blocks, measured with the Frobenius tail ``sqrt(sigma_2^2 + sigma_3^2 + ...)``
    in place of ``sigma_2`` (equal for blocks of rank <= 2, an upper bound
    otherwise): 0 for an exact butterfly, about machine precision for a
    butterfly computed in floating point.

    Parameters
    ----------
    B : array-like of shape (n, n)
        Real or complex matrix, ``n = 2**L`` with ``L >= 1``.

    Returns
    -------
    residual : float
        The largest block ratio; blocks whose top singular value is below
        ``1e-12`` times the largest one of their level count as zero.

    Notes
    -----
    Each level has ``n`` blocks of ``n`` entries in total, read in place. A
    first bound per block, ``||X - (X v) v^H||_F / ||X v||`` with ``v`` its
    largest row, is exact for rank-one blocks and free of cancellation, so an
    exact butterfly costs ``O(n^2 log n)`` with no SVD. Only the blocks whose
    bound exceeds ``1e-6`` are refined: by a batched SVD when their short side
    is at most 16, else by power iterations (whose value can stay somewhat above
    the exact ratio for blocks far from rank one: the residual never
    under-reports).

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly._identify import butterfly_residual
    >>> H = np.array([[1.0, 1.0], [1.0, -1.0]])
    >>> H4 = np.kron(H, H)
    >>> float(butterfly_residual(H4)) < 1e-12
    True
    >>> float(butterfly_residual(H4[:, [0, 2, 1, 3]])) > 0.5
    True
    """
    B, _ = _check_square_dyadic(B, "B")
    scale = np.abs(B).max()
    if scale == 0:
        return 0.0
    return float(_level_ratios(B / scale).max(initial=0.0))


# --------------------------------------------------------------------------
# Nested construction shared by the exact and robust methods
# --------------------------------------------------------------------------
#
# State before level s: ``V`` of shape (K, M, M) with K = 2**(s-1) column groups
# ("stacks") and M = n / 2**(s-1) row groups; V[b, a] is the compressed row of
# row group a on column group b (the right factor of the left-to-right
# hierarchical algorithm). Level s pairs the row groups (the same pairing for all
# stacks) and halves every stack's columns so that each pair is colinear on each
# half; each 2 x (M/2) block is then compressed to its top singular direction,
# giving 2K stacks of M/2 row groups.


def _compress(V, pairs, halves, Vh=None):
    """Rank-one compression of the level's 2 x (M/2) blocks.

    Returns the next state ``(2K, M/2, M/2)`` (stack ``2b + h`` is half ``h`` of
    stack ``b``; row ``p`` is pair ``p``) and the residual energies
    ``sigma_2^2`` of the blocks, shape ``(K, 2, M/2)``. ``Vh`` is
    ``_gather_halves(V, halves)`` when already computed.
    """
    K, M, _ = V.shape
    P = M // 2
    if Vh is None:
        Vh = _gather_halves(V, halves)  # (K, M, 2, m)
    X0 = Vh[:, pairs[:, 0]].transpose(0, 2, 1, 3)  # (K, 2, P, m)
    X1 = Vh[:, pairs[:, 1]].transpose(0, 2, 1, 3)
    g00 = _abs2(X0).sum(axis=-1)
    g11 = _abs2(X1).sum(axis=-1)
    g01 = (X0 * np.conj(X1)).sum(axis=-1)
    half_diff = 0.5 * (g00 - g11)
    lam = 0.5 * (g00 + g11) + np.sqrt(half_diff**2 + _abs2(g01))
    # Top eigenvector of [[g00, g01], [conj(g01), g11]], in its stable form.
    first = g00 >= g11
    u0 = np.where(first, lam - g11, g01)
    u1 = np.where(first, np.conj(g01), lam - g00)
    norm = np.sqrt(_abs2(u0) + _abs2(u1))
    zero = norm == 0
    u0 = np.where(zero, 1.0, u0 / np.where(zero, 1.0, norm))
    u1 = np.where(zero, 0.0, u1 / np.where(zero, 1.0, norm))
    new = np.conj(u0)[..., None] * X0 + np.conj(u1)[..., None] * X1
    rest = -u1[..., None] * X0 + u0[..., None] * X1
    return new.reshape(2 * K, P, P), _abs2(rest).sum(axis=-1)


def _hash_pairing(seg, tol, rng):
    """Pair the rows that are colinear on every half, by a projective hash.

    Every segment (row restricted to a half of a stack) is scaled to unit norm
    with its phase fixed by a random functional ``r``; colinear segments become
    equal, and so do their projections on random vectors ``g``. The key of a row
    sums these projections over its segments; partners have equal keys. Rows
    are sorted by the key's first coordinate and paired with a neighbour.
    Returns the pairs, or None when the keys do not pair up uniquely.
    ``seg`` is ``_gather_halves(V, halves)``, shape ``(K, M, 2, m)``.
    """
    K, M, _, m = seg.shape
    complex_ = np.iscomplexobj(seg)
    shape = (3, K, 2, m)
    G = rng.standard_normal(shape)
    if complex_:
        G = G + 1j * rng.standard_normal(shape)
    proj = np.einsum("kahc,jkhc->jkah", seg, G / np.sqrt(m))  # (3, K, M, 2)
    norms = np.sqrt(_sqnorm(seg))  # (K, M, 2)
    s = proj[0]
    if not np.all(np.abs(s) > 1e-6 * norms):
        return None
    scale = np.conj(s) / (np.abs(s) * norms)
    keys = (proj[1:] * scale).sum(axis=(1, 3))  # (2, M)
    keys = np.concatenate([keys.real, keys.imag]).T  # (M, 4)
    order = np.argsort(keys[:, 0], kind="stable")
    keys = keys[order]
    thresh = tol * np.sqrt(2 * K) * 10

    def close(shift):
        d = np.full(M, False)
        d[: M - shift] = np.all(
            np.abs(keys[shift:] - keys[: M - shift]) <= thresh, axis=1
        )
        return d

    # Partners are adjacent after sorting (up to ties of the first coordinate,
    # checked by looking two places away).
    near1, near2 = close(1), close(2)
    if not (near1[0::2].all() and not near1[1::2].any() and not near2.any()):
        return None
    return np.stack([order[0::2], order[1::2]], axis=1)


def _directions(V, a2, ref, rows, cols, g):
    """Bloch directions of ``(V[b, ref, c], V[b, a, c])`` projected on ``g``.

    ``a2 = |V|^2``; ``rows`` and ``cols`` select the rows ``a`` and columns ``c``.
    Equal values mean equal directions (up to a projection coincidence).
    """
    x, ax = V[:, ref : ref + 1, cols], a2[:, ref : ref + 1, cols]
    y, ay = V[:, rows][:, :, cols], a2[:, rows][:, :, cols]
    xy = np.conj(x) * y if np.iscomplexobj(V) else x * y
    t = g[1] * 2.0 * xy.real + g[0] * (ax - ay)
    if g.size == 3:
        t += g[2] * 2.0 * xy.imag
    return t / (ax + ay)


def _two_values(t, tol):
    """Split values into two clusters: near the minimum and near the maximum.

    Returns the masks of the values within ``tol`` of the smallest and of the
    largest one along the last axis, and whether every value is in one of them.
    """
    low = t - t.min(axis=-1, keepdims=True) <= tol
    high = t.max(axis=-1, keepdims=True) - t <= tol
    return low, high, (low | high).all(axis=-1)


def _exact_level(V, tol, rng):
    """One level of the exact (noiseless) identification.

    Reference row ``r``: its partner ``a`` is the row for which the directions of
    ``(V[b, r, c], V[b, a, c])`` take exactly two values, on two halves of every
    stack (the ratio ultrametric: rows merging at a higher level give 4, 8, ...
    directions). Directions are compared through a random projection of their
    Bloch vectors, first on a strided subset of columns to screen the rows, then
    on every column. The halves follow from the partner, the pairing of all rows
    from a projective hash.

    Returns ``(pairs, halves, Vh, degenerate)`` (``Vh`` the gathered halves);
    ``pairs`` is None on failure.
    """
    M = V.shape[1]
    m = M // 2
    a2 = _abs2(V)
    rms = np.sqrt(a2.mean(axis=2))
    with np.errstate(divide="ignore", invalid="ignore"):
        quality = np.nan_to_num(np.sqrt(a2.min(axis=2)) / rms).min(axis=0)
    order = np.argsort(-quality, kind="stable")
    tol_dir = min(max(tol, 1e-13), 1e-3)
    screen = slice(None, None, max(1, M // _EXACT_SCREEN))
    degenerate = False
    for ref in order[:_EXACT_REFS]:
        if not quality[ref] > 0:
            break
        g = rng.standard_normal(3 if np.iscomplexobj(V) else 2)
        g /= np.linalg.norm(g)
        _, _, ok = _two_values(_directions(V, a2, ref, slice(None), screen, g), tol_dir)
        ok = ok.all(axis=0)
        ok[ref] = False
        rows = np.flatnonzero(ok)
        t = _directions(V, a2, ref, rows, slice(None), g)
        low, high, ok = _two_values(t, tol_dir)
        ok &= (low.sum(axis=2) == m) & (high.sum(axis=2) == m)
        good = ok.all(axis=0)
        candidates, low = rows[good], low[:, good]
        if candidates.size > 1:
            degenerate = True
        for index in range(min(candidates.size, _EXACT_PARTNERS)):
            halves = _halves_from_mask(low[:, index, :])
            Vh = _gather_halves(V, halves)
            pairs = _hash_pairing(Vh, tol_dir, rng)
            if pairs is not None:
                return pairs, halves, Vh, degenerate
    return None, None, None, degenerate


def _ambiguous(best, second):
    """Whether two relative residuals reveal several valid choices.

    The best choice must reveal structure (relative residual at most
    ``_STRUCTURED``) and the runner-up be as good (within 10 %): an
    unstructured matrix, whose choices are all equally bad, is not degenerate.
    """
    return bool(best <= _STRUCTURED and second <= 1.1 * best + 1e-12)


def _split_norms(R, D):
    """Norms of the ``D``-vectors stored as ``R[..., d * P + p]``: shape (..., P)."""
    return np.sqrt((R.reshape((*R.shape[:-1], D, -1)) ** 2).sum(axis=-2))


def _ref_partner_fits(V, ref):
    """Best two-line fit of the pair (ref, a) on every stack, for every row ``a``.

    The principal axis of each candidate's Bloch points gives a first balanced
    split; the best candidates are then refined by balanced Lloyd steps. Returns
    the fit cost (sum over stacks of ``sigma_2^2`` on the two halves), shape
    ``(M,)``, and the half-0 masks, shape ``(K, M, M)``.
    """
    _K, M, _ = V.shape
    m = M // 2
    W, n = _bloch(V[:, ref : ref + 1, :], V, axis=2)  # (K, M, D, Mc), (K, M, Mc)
    n_tot = n.sum(axis=-1)
    W_tot = W.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        P = np.nan_to_num(W / n[:, :, None, :])
        mean = np.nan_to_num(W_tot / n_tot[..., None])
    cov = np.matmul(W, P.swapaxes(-1, -2)) - n_tot[..., None, None] * (
        mean[..., :, None] * mean[..., None, :]
    )
    axis = np.linalg.eigh(cov)[1][..., -1]
    mask = _top_mask((P * axis[..., None]).sum(axis=2), m)
    R0 = (W * mask[:, :, None, :]).sum(axis=-1)
    value = np.linalg.norm(R0, axis=-1) + np.linalg.norm(W_tot - R0, axis=-1)
    cost = 0.5 * (n_tot - value).sum(axis=0)
    cost[ref] = np.inf
    cand = np.argsort(cost, kind="stable")[: min(_PARTNER_REFINE, M - 1)]
    Wc, Wt, mk = W[:, cand], W_tot[:, cand], mask[:, cand]
    value = value[:, cand]
    for _ in range(_LLOYD_ITER):
        R0 = (Wc * mk[:, :, None, :]).sum(axis=-1)
        R1 = Wt - R0
        n0 = np.linalg.norm(R0, axis=-1, keepdims=True)
        n1 = np.linalg.norm(R1, axis=-1, keepdims=True)
        e = R0 / np.maximum(n0, 1e-300) - R1 / np.maximum(n1, 1e-300)
        new_mask = _top_mask((Wc * e[..., None]).sum(axis=2), m)
        R0n = (Wc * new_mask[:, :, None, :]).sum(axis=-1)
        new_value = np.linalg.norm(R0n, axis=-1) + np.linalg.norm(Wt - R0n, axis=-1)
        better = new_value > value * (1 + 1e-13)
        if not better.any():
            break
        mk = np.where(better[..., None], new_mask, mk)
        value = np.where(better, new_value, value)
    cost[cand] = 0.5 * (n_tot[:, cand] - value).sum(axis=0)
    mask[:, cand] = mk
    return cost, mask


def _pair_costs(V, halves):
    """``C[a, a']``: sum over stacks and halves of ``sigma_2^2`` of rows a, a'."""
    Vh = _gather_halves(V, halves).transpose(0, 2, 1, 3)  # (K, 2, M, m)
    G = np.matmul(Vh, np.conj(Vh).swapaxes(-1, -2))
    d = np.real(np.diagonal(G, axis1=-2, axis2=-1))
    s = d[..., :, None] + d[..., None, :]
    diff = d[..., :, None] - d[..., None, :]
    lam_min = 0.5 * (s - np.sqrt(diff**2 + 4.0 * _abs2(G)))
    C = np.maximum(lam_min, 0.0).sum(axis=(0, 1))
    return 0.5 * (C + C.T)


def _matching(C):
    """Minimum-cost perfect matching of the rows of a symmetric cost matrix.

    The assignment relaxation (``linear_sum_assignment`` with a forbidden
    diagonal) is exact when its optimum is an involution; rows left in longer
    cycles are matched greedily; 2-opt exchanges then polish the matching.
    """
    M = C.shape[0]
    big = 10.0 * (float(C.max()) + 1.0)
    Cd = C.copy()
    np.fill_diagonal(Cd, big)
    _, mate = linear_sum_assignment(Cd)
    idx = np.arange(M)
    good = (mate[mate] == idx) & (mate != idx)
    pairs = [(a, int(mate[a])) for a in idx[good] if a < mate[a]]
    free = idx[~good]
    if free.size:
        sub = C[np.ix_(free, free)]
        iu = np.triu_indices(free.size, 1)
        taken = np.zeros(free.size, dtype=bool)
        for k in np.argsort(sub[iu], kind="stable"):
            i, j = iu[0][k], iu[1][k]
            if not taken[i] and not taken[j]:
                taken[i] = taken[j] = True
                pairs.append((int(free[i]), int(free[j])))
    pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return _two_opt(C, pairs)


def _two_opt_gains(C, pairs):
    """Cost decrease of every exchange of partners between pairs p and q.

    Returns ``alt1, alt2, gain`` of shape ``(P, P)``: ``alt1`` pairs
    ``(a_p, a_q), (b_p, b_q)``, ``alt2`` pairs ``(a_p, b_q), (b_p, a_q)``.
    """
    a, b = pairs[:, 0], pairs[:, 1]
    cur = C[a, b]
    base = cur[:, None] + cur[None, :]
    alt1 = C[a[:, None], a[None, :]] + C[b[:, None], b[None, :]]
    alt2 = C[a[:, None], b[None, :]] + C[b[:, None], a[None, :]]
    gain = base - np.minimum(alt1, alt2)
    np.fill_diagonal(gain, -np.inf)
    return alt1, alt2, gain


def _exchange(pairs, p, q, first):
    """Pairs after exchanging partners between pairs p and q (a copy)."""
    out = pairs.copy()
    ap, bp, aq, bq = pairs[p, 0], pairs[p, 1], pairs[q, 0], pairs[q, 1]
    if first:
        out[p], out[q] = (ap, aq), (bp, bq)
    else:
        out[p], out[q] = (ap, bq), (bp, aq)
    return out


def _two_opt(C, pairs, max_moves=None):
    """Improve a perfect matching by exchanging partners between two pairs."""
    n_pairs = pairs.shape[0]
    if n_pairs < 2:
        return pairs
    max_moves = 4 * n_pairs if max_moves is None else max_moves
    scale = float(C.max()) + 1e-300
    for _ in range(max_moves):
        alt1, alt2, gain = _two_opt_gains(C, pairs)
        p, q = np.unravel_index(np.argmax(gain), gain.shape)
        if not gain[p, q] > 1e-12 * scale:
            break
        pairs = _exchange(pairs, p, q, alt1[p, q] <= alt2[p, q])
    return pairs


def _refine_halves(V, pairs, halves):
    """Balanced two-line clustering of every stack's columns, given the pairs.

    Maximizes ``sum_p ||R_p0|| + ||R_p1||`` (``R_ph``: sum of the weighted Bloch
    vectors of pair p on half h), which minimizes the level's
    ``sum sigma_2^2``, by balanced Lloyd steps and single swaps of borderline
    columns. Returns the halves and the level cost.
    """
    K, M, _ = V.shape
    m = M // 2
    W, n = _bloch(V[:, pairs[:, 0], :], V[:, pairs[:, 1], :], axis=1)  # (K, D, P, M)
    D = W.shape[1]
    W = W.reshape(K, -1, M)
    W_tot = W.sum(axis=-1)
    n_tot = n.sum(axis=(1, 2))
    mask = np.zeros((K, M), dtype=bool)
    np.put_along_axis(mask, halves[:, 0, :], True, axis=1)

    def objective(mask):
        R0 = np.matmul(W, mask[:, :, None].astype(W.dtype))[:, :, 0]
        R1 = W_tot - R0
        n0, n1 = _split_norms(R0, D), _split_norms(R1, D)
        return (n0 + n1).sum(axis=1), R0, R1, n0, n1

    value, R0, R1, n0, n1 = objective(mask)
    q = min(m, _SWAP_CANDIDATES)
    for _ in range(_LLOYD_ITER):
        changed = False
        # Balanced Lloyd step on the linearized objective.
        e = R0 / np.tile(np.maximum(n0, 1e-300), D) - R1 / np.tile(
            np.maximum(n1, 1e-300), D
        )
        score = np.matmul(e[:, None, :], W)[:, 0, :]
        new_mask = _top_mask(score, m)
        new = objective(new_mask)
        better = new[0] > value * (1 + 1e-13)
        if better.any():
            changed = True
            mask[better] = new_mask[better]
            value, R0, R1, n0, n1 = objective(mask)
        # Single swaps between the borderline columns of the two halves.
        in0 = np.argpartition(np.where(mask, score, np.inf), q - 1, axis=1)[:, :q]
        in1 = np.argpartition(np.where(mask, np.inf, -score), q - 1, axis=1)[:, :q]
        W0 = np.take_along_axis(W, in0[:, None, :], axis=2)  # (K, DP, q)
        W1 = np.take_along_axis(W, in1[:, None, :], axis=2)
        delta = W1[:, :, None, :] - W0[:, :, :, None]  # (K, DP, q0, q1)
        shape = (K, D, -1, q, q)
        swapped = np.sqrt(((R0[:, :, None, None] + delta).reshape(shape) ** 2).sum(1))
        swapped += np.sqrt(((R1[:, :, None, None] - delta).reshape(shape) ** 2).sum(1))
        swapped = swapped.sum(axis=1).reshape(K, q * q)
        best = np.argmax(swapped, axis=1)
        gain = swapped[np.arange(K), best] - value
        do = gain > 1e-13 * np.maximum(value, 1e-300)
        if do.any():
            changed = True
            ks = np.flatnonzero(do)
            mask[ks, in0[ks, best[ks] // q]] = False
            mask[ks, in1[ks, best[ks] % q]] = True
            value, R0, R1, n0, n1 = objective(mask)
        if not changed:
            break
    cost = float(0.5 * (n_tot - value).sum())
    return _halves_from_mask(mask), max(cost, 0.0)


def _level_cost(V, pairs, halves):
    """Residual energy ``sum sigma_2^2`` of a level solution."""
    return float(_compress(V, pairs, halves)[1].sum())


def _alternate(V, halves):
    """Alternate matching (given halves) and halving (given pairs) to a fixed point.

    The halving step trusts only the pairs that fit well (matched cost at most
    ``_TRUST`` times the median): a badly fitting pair is likely wrong and would
    pull the columns towards a self-consistent wrong solution.
    """
    key = _canonical_halves(halves)
    for _ in range(_ROBUST_ROUNDS):
        C = _pair_costs(V, halves)
        pairs = _matching(C)
        fit = C[pairs[:, 0], pairs[:, 1]]
        trusted = fit <= _TRUST * np.median(fit) + 1e-300
        halves, _ = _refine_halves(V, pairs[trusted], halves)
        new_key = _canonical_halves(halves)
        if new_key == key:
            break
        key = new_key
    return pairs, halves, _level_cost(V, pairs, halves)


def _column_scores(V, pairs, halves):
    """Per column, how strongly it belongs to its half (Lloyd score, shape (K, M))."""
    K, M, _ = V.shape
    W, _ = _bloch(V[:, pairs[:, 0], :], V[:, pairs[:, 1], :], axis=1)
    D = W.shape[1]
    W = W.reshape(K, -1, M)
    mask = np.zeros((K, M), dtype=bool)
    np.put_along_axis(mask, halves[:, 0, :], True, axis=1)
    R0 = np.matmul(W, mask[:, :, None].astype(W.dtype))[:, :, 0]
    R1 = W.sum(axis=-1) - R0
    e = R0 / np.tile(np.maximum(_split_norms(R0, D), 1e-300), D) - R1 / np.tile(
        np.maximum(_split_norms(R1, D), 1e-300), D
    )
    score = np.matmul(e[:, None, :], W)[:, 0, :]
    return np.where(mask, score, -score), mask


def _joint_swaps(V, pairs, halves, cost, max_evals, record=None):
    """Swap two columns of a stack and re-match all rows; keep improvements.

    Escapes the self-consistent states of the alternation, where a misplaced
    column and a few wrong pairs justify each other. Candidates are the weakest
    columns of each half (by their Lloyd score).
    """
    _K, M, _ = V.shape
    q = min(M // 2, 3)
    n_evals = 0
    while n_evals < max_evals:
        score, mask = _column_scores(V, pairs, halves)
        weak0 = np.argsort(np.where(mask, score, np.inf), axis=1)[:, :q]
        weak1 = np.argsort(np.where(mask, np.inf, score), axis=1)[:, :q]
        loss = (
            np.take_along_axis(score, weak0, axis=1)[:, :, None]
            + np.take_along_axis(score, weak1, axis=1)[:, None, :]
        )
        improved = False
        for flat in np.argsort(loss, axis=None, kind="stable"):
            b, i, j = np.unravel_index(flat, loss.shape)
            new_mask = mask.copy()
            new_mask[b, weak0[b, i]] = False
            new_mask[b, weak1[b, j]] = True
            new_halves = _halves_from_mask(new_mask)
            new_pairs = _matching(_pair_costs(V, new_halves))
            new_halves, _ = _refine_halves(V, new_pairs, new_halves)
            new_cost = _level_cost(V, new_pairs, new_halves)
            n_evals += 1
            if record is not None:
                record.append((new_pairs, new_halves, new_cost))
            if new_cost < cost * (1 - 1e-12):
                pairs, halves, cost, improved = new_pairs, new_halves, new_cost, True
                break
            if n_evals >= max_evals:
                break
        if not improved:
            break
    return pairs, halves, cost


def _all_pairings(M):
    """All perfect matchings of ``range(M)``: shape ``(n_pairings, M // 2, 2)``."""
    if M == 0:
        return np.zeros((1, 0, 2), dtype=np.int64)
    out = []
    for partner in range(1, M):
        rest = [i for i in range(1, M) if i != partner]
        for sub in _all_pairings(M - 2):
            out.append([(0, partner)] + [(rest[a], rest[b]) for a, b in sub])
    return np.array(out, dtype=np.int64).reshape(-1, M // 2, 2)


def _all_halvings(M):
    """All halvings of ``range(M)`` up to order: shape ``(n_halvings, 2, M // 2)``."""
    from itertools import combinations

    out = []
    for first in combinations(range(1, M), M // 2 - 1):
        half0 = (0, *first)
        out.append([half0, tuple(i for i in range(M) if i not in half0)])
    return np.array(out, dtype=np.int64)


def _exhaustive_level(V, n_candidates=1):
    """Global optimum of one level for ``M <= 8`` rows (all pairings and halvings).

    Given a pairing the stacks' halvings are independent, so the cost of a
    pairing is the sum over stacks of its best halving. Returns the
    ``n_candidates`` best ``(pairs, halves, cost)`` and the degeneracy flag.
    """
    _K, M, _ = V.shape
    pairings, halvings = _all_pairings(M), _all_halvings(M)
    Vh = V[:, :, halvings].transpose(0, 2, 3, 1, 4)  # (K, H, 2, M, m)
    G = np.matmul(Vh, np.conj(Vh).swapaxes(-1, -2))
    d = np.real(np.diagonal(G, axis1=-2, axis2=-1))
    lam = 0.5 * (
        d[..., :, None]
        + d[..., None, :]
        - np.sqrt((d[..., :, None] - d[..., None, :]) ** 2 + 4.0 * _abs2(G))
    )
    L = np.maximum(lam, 0.0).sum(axis=2)  # (K, H, M, M)
    cost = L[:, :, pairings[..., 0], pairings[..., 1]].sum(axis=-1)  # (K, H, n_pair)
    best_h = np.argmin(cost, axis=1)  # (K, n_pair)
    total = np.take_along_axis(cost, best_h[:, None, :], axis=1)[:, 0].sum(axis=0)
    ranked = np.argsort(total, kind="stable")
    scale = float(_abs2(V).sum())
    degenerate = total.size > 1 and _ambiguous(
        total[ranked[0]] / scale, total[ranked[1]] / scale
    )
    candidates = [
        (pairings[pn].copy(), halvings[best_h[:, pn]], float(total[pn]))
        for pn in ranked[:n_candidates]
    ]
    return candidates, degenerate


def _enumerated_level(V, n_candidates=1):
    """Level search over all halvings of a single stack (``K = 1``, ``M <= 16``).

    For each halving the pair costs are exact; the assignment relaxation gives a
    lower bound of the matching cost, and halvings are matched in order of their
    bound until no better one can exist. Returns the ``n_candidates`` best
    ``(pairs, halves, cost)`` and the degeneracy flag.
    """
    _, M, _ = V.shape
    halvings = _all_halvings(M)
    Vh = V[0][:, halvings].transpose(1, 2, 0, 3)  # (H, 2, M, m)
    G = np.matmul(Vh, np.conj(Vh).swapaxes(-1, -2))
    d = np.real(np.diagonal(G, axis1=-2, axis2=-1))
    lam = 0.5 * (
        d[..., :, None]
        + d[..., None, :]
        - np.sqrt((d[..., :, None] - d[..., None, :]) ** 2 + 4.0 * _abs2(G))
    )
    L = np.maximum(lam, 0.0).sum(axis=1)  # (H, M, M)
    big = 10.0 * (float(L.max()) + 1.0)
    idx = np.arange(M)
    L[:, idx, idx] = big
    bounds = np.empty(len(halvings))
    for h in range(len(halvings)):
        rows, cols = linear_sum_assignment(L[h])
        bounds[h] = 0.5 * L[h][rows, cols].sum()
    L[:, idx, idx] = 0.0
    found = []
    n_keep = max(n_candidates, 2)
    for h in np.argsort(bounds, kind="stable"):
        if len(found) >= n_keep and bounds[h] >= found[-1][2]:
            break
        pairs = _matching(L[h])
        halves = halvings[h][None]
        found.append((pairs, halves, float(L[h][pairs[:, 0], pairs[:, 1]].sum())))
        found = sorted(found, key=lambda sol: sol[2])[:n_keep]
    scale = float(_abs2(V).sum())
    degenerate = len(found) > 1 and _ambiguous(found[0][2] / scale, found[1][2] / scale)
    return found[:n_candidates], degenerate


def _robust_level(V, rng, init_halves=None, n_candidates=1):
    """One level of the robust search.

    Levels with at most ``_EXHAUSTIVE_ROWS`` row groups are solved exactly by
    enumeration. Otherwise, seed pairs are the best two-line partners of several
    reference rows (the rows with the most even energy over the stacks), and the
    starts are: the halving of a seed pair refined by the balanced clustering of
    all seed pairs, each seed pair's own halving, random halvings while the level
    is small, and ``init_halves`` when given. Each start alternates matching and
    halving; joint column swaps polish the best state while the level is small.

    Returns the ``n_candidates`` best distinct ``(pairs, halves, cost)`` found
    and the degeneracy flag.
    """
    K, M, _ = V.shape
    if M <= _EXHAUSTIVE_ROWS:
        return _exhaustive_level(V, n_candidates)
    if K == 1 and M <= _ENUMERATED_COLUMNS:
        return _enumerated_level(V, n_candidates)
    m = M // 2
    energy = _abs2(V).sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        quality = np.nan_to_num(energy / energy.mean(axis=1, keepdims=True)).min(axis=0)
    order = np.argsort(-quality, kind="stable")
    n_seeds = min(m, _SEED_PAIRS)
    used = np.zeros(M, dtype=bool)
    seeds, masks, degenerate = [], [], False
    for ref in order:
        if len(seeds) == n_seeds:
            break
        if used[ref]:
            continue
        cost, mask = _ref_partner_fits(V, ref)
        cost[used] = np.inf
        # Residual relative to the pair's energy: ~eps^2 for a true pair.
        rel = cost / np.maximum(energy[:, ref].sum() + energy.sum(axis=0), 1e-300)
        ranked = np.argsort(rel, kind="stable")
        partner = int(ranked[0])
        degenerate |= _ambiguous(rel[ranked[0]], rel[ranked[1]])
        used[ref] = used[partner] = True
        seeds.append((int(ref), partner))
        masks.append(mask[:, partner, :])
    seeds = np.array(seeds, dtype=np.int64)
    inits = [] if init_halves is None else [init_halves]
    for mask in masks[:_ROBUST_REFS]:
        inits.append(_refine_halves(V, seeds, _halves_from_mask(mask))[0])
    n_random = int(min(_RANDOM_STARTS, _START_BUDGET / (K * M**3)))
    if n_random > 0:
        inits.extend(_halves_from_mask(mask) for mask in masks)
        for _ in range(n_random):
            inits.append(np.argsort(rng.random_sample((K, M)), axis=1).reshape(K, 2, m))
    found, seen = [], set()
    for halves in inits:
        key = _canonical_halves(halves)
        if key in seen:
            continue
        seen.add(key)
        found.append(_alternate(V, halves))
    best = min(found, key=lambda sol: sol[2])
    n_swaps = int(min(_SWAP_EVALS, _START_BUDGET / (K * M**3)))
    if n_swaps > 0:
        found.append(_joint_swaps(V, *best, n_swaps, record=found))
    found.sort(key=lambda sol: sol[2])
    candidates, keys = [], set()
    for sol in found:
        key = _canonical(sol[0], sol[1])
        if key not in keys:
            keys.add(key)
            candidates.append(sol)
        if len(candidates) == n_candidates:
            break
    return candidates, degenerate


def _greedy(V, mode, tol, rng, warm=None, verbose=0, lookahead=True):
    """Level-by-level construction; returns the levels' states and solutions.

    ``states[i]`` is the input of level ``i + 1``, ``history[i]`` its
    ``(pairs, halves)`` and ``costs[i]`` its residual energy. ``failed_level`` is
    the first level without a solution (exact mode), else None. In robust mode,
    while the remaining problem is small, the best few solutions of a level are
    each completed greedily and the one of smallest total residual is kept (the
    best solution of a level alone can ruin the later levels under noise).
    """
    n_levels = V.shape[1].bit_length() - 1
    out = {"states": [], "history": [], "costs": [], "degenerate": False}
    out["failed_level"] = None
    on_track = warm is not None
    for level in range(1, n_levels):
        K, M, _ = V.shape
        Vh = None
        if mode == "exact":
            pairs, halves, Vh, deg = _exact_level(V, tol, rng)
            out["degenerate"] |= deg
            if pairs is None:
                out["failed_level"] = level
                if verbose:
                    print(f"[identify] exact: no consistent pairing at level {level}")
                return out
        else:
            init = None
            if on_track and level - 1 < len(warm):
                init = warm[level - 1][1]
            n_cand = 1
            if lookahead and level < n_levels - 1 and K * M**3 <= _LOOKAHEAD_SIZE:
                n_cand = _LOOKAHEAD_CANDIDATES
            candidates, deg = _robust_level(V, rng, init, n_cand)
            out["degenerate"] |= deg
            pairs, halves, _ = candidates[0]
            if len(candidates) > 1:
                best_total = np.inf
                for cand_pairs, cand_halves, cand_cost in candidates:
                    V_next, _ = _compress(V, cand_pairs, cand_halves)
                    sub = _greedy(V_next, mode, tol, rng, lookahead=False)
                    total = cand_cost + sum(sub["costs"])
                    if total < best_total:
                        best_total, pairs, halves = total, cand_pairs, cand_halves
            on_track = (
                on_track
                and level - 1 < len(warm)
                and _canonical(pairs, halves) == _canonical(*warm[level - 1])
            )
        V_next, blocks = _compress(V, pairs, halves, Vh)
        out["states"].append(V)
        out["history"].append((pairs, halves))
        out["costs"].append(float(blocks.sum()))
        if verbose > 1:
            print(f"[identify] {mode}: level {level}, residual {out['costs'][-1]:.3e}")
        V = V_next
    return out


def _downstream(V, history):
    """Re-solve the given levels from ``V``, warm-started from their halves.

    Small levels are solved exactly (enumeration), the others by alternation
    from the previous halves.
    """
    states, new_history, costs = [], [], []
    for _, halves in history:
        if V.shape[1] <= _EXHAUSTIVE_ROWS:
            (pairs, halves, _), *_ = _exhaustive_level(V)[0]
        else:
            pairs, halves, _ = _alternate(V, halves)
        V_next, blocks = _compress(V, pairs, halves)
        states.append(V)
        new_history.append((pairs, halves))
        costs.append(float(blocks.sum()))
        V = V_next
    return states, new_history, costs


def _resolve_later(out, rng):
    """Re-run the full level search on every level after the first, keep gains."""
    states, history, costs = out["states"], out["history"], out["costs"]
    for level in range(1, len(history)):
        V = states[level]
        candidates, _ = _robust_level(V, rng, history[level][1])
        pairs, halves, _ = candidates[0]
        V_next, blocks = _compress(V, pairs, halves)
        d_states, d_history, d_costs = _downstream(V_next, history[level + 1 :])
        new_total = float(blocks.sum()) + sum(d_costs)
        if new_total < sum(costs[level:]) * (1 - 1e-12):
            history[level] = (pairs, halves)
            costs[level] = float(blocks.sum())
            states[level + 1 :] = d_states
            history[level + 1 :] = d_history
            costs[level + 1 :] = d_costs
    return out


def _polish(out, verbose=0):
    """Exchange partners at a level when the later levels gain more than it costs.

    Under noise a row pair can be ambiguous at its own level (e.g. rows whose
    energy sits almost entirely in one half) while a wrong choice ruins every
    later level. Candidate exchanges involve pairs whose compressed rows fit badly
    at the next level, cheapest first; each is scored by re-solving all later
    levels (warm-started) and kept if the total residual decreases.
    """
    states, history, costs = out["states"], out["history"], out["costs"]
    n_accepted = 0
    for level in range(len(history) - 1):
        n_evals = 0
        while n_evals < _POLISH_EVALS:
            V = states[level]
            pairs, halves = history[level]
            later = sum(costs[level + 1 :])
            if later <= 1e-14 * (sum(costs) + 1e-300):
                break
            # Blame of each pair: residual of its block at the next level.
            nxt_pairs, nxt_halves = history[level + 1]
            _, nxt_blocks = _compress(states[level + 1], nxt_pairs, nxt_halves)
            per_pair = nxt_blocks.sum(axis=(0, 1))
            blame = np.empty(pairs.shape[0])
            blame[nxt_pairs[:, 0]] = per_pair
            blame[nxt_pairs[:, 1]] = per_pair
            suspect = blame > 2.0 * np.median(blame) + 1e-300
            if pairs.shape[0] <= _POLISH_ALL:
                suspect[:] = True
            if not suspect.any():
                break
            C = _pair_costs(V, halves)
            alt1, alt2, gain = _two_opt_gains(C, pairs)
            delta = -gain
            allowed = suspect[:, None] & suspect[None, :]
            if suspect.sum() < 2:
                allowed = suspect[:, None] | suspect[None, :]
            delta = np.where(np.triu(allowed, 1), delta, np.inf)
            order = np.argsort(delta, axis=None, kind="stable")[:_POLISH_MOVES]
            accepted = False
            for flat in order:
                if not delta.flat[flat] < later:
                    break
                p, q = np.unravel_index(flat, delta.shape)
                new_pairs = _exchange(pairs, p, q, alt1[p, q] <= alt2[p, q])
                new_halves, _ = _refine_halves(V, new_pairs, halves)
                V_next, blocks = _compress(V, new_pairs, new_halves)
                d_states, d_history, d_costs = _downstream(V_next, history[level + 1 :])
                n_evals += 1
                new_total = float(blocks.sum()) + sum(d_costs)
                if new_total < costs[level] + later - 1e-12 * (costs[level] + later):
                    history[level] = (new_pairs, new_halves)
                    costs[level] = float(blocks.sum())
                    states[level + 1 :] = d_states
                    history[level + 1 :] = d_history
                    costs[level + 1 :] = d_costs
                    accepted = True
                    n_accepted += 1
                    break
                if n_evals >= _POLISH_EVALS:
                    break
            if not accepted:
                break
    if verbose > 1:
        print(f"[identify] robust: {n_accepted} exchanges accepted by the polish")
    return out, n_accepted


def _replay(n, history):
    """Permutations of the trees described by the levels' pairs and halves."""
    members = np.arange(n, dtype=np.int64)[:, None]
    cols = np.arange(n, dtype=np.int64)[None, :]
    for pairs, halves in history:
        K, M = cols.shape
        members = np.concatenate([members[pairs[:, 0]], members[pairs[:, 1]]], axis=1)
        cols = np.take_along_axis(cols, halves.reshape(K, M), axis=1)
        cols = cols.reshape(2 * K, M // 2)
    return _perms_from_dfs(members.reshape(-1), cols.reshape(-1))


def _nested_identify(A, mode, tol, rng, warm=None, verbose=0):
    """Identify both trees level by level on compressed rows (exact or robust).

    Returns a dict with ``row_perm``, ``col_perm`` (None if a level failed),
    ``history`` (the per-level ``(pairs, halves)``), ``cost`` (total residual
    energy of the nested rank-one fit), ``degenerate`` and ``failed_level``.
    """
    out = _greedy(A[None], mode, tol, rng, warm=warm, verbose=verbose)
    if out["failed_level"] is not None:
        return {**out, "row_perm": None, "col_perm": None, "cost": np.nan}
    if mode == "robust":
        out, n_accepted = _polish(out, verbose=verbose)
        if n_accepted:
            out = _resolve_later(out, rng)
    row_perm, col_perm = _replay(A.shape[0], out["history"])
    return {
        **out,
        "row_perm": row_perm,
        "col_perm": col_perm,
        "cost": sum(out["costs"]),
    }


def _nested_error(B):
    """Relative error of the nested rank-one fit of ``B`` with the canonical trees.

    This is the error of the orthonormal left-to-right hierarchical
    factorization of ``B`` (a small reference for benchmarks).
    """
    n = B.shape[0]
    V = np.asarray(B)[None]
    total = 0.0
    while V.shape[1] > 2:
        K, M, _ = V.shape
        pairs = np.stack([np.arange(M // 2), np.arange(M // 2, M)], axis=1)
        halves = np.broadcast_to(np.arange(M).reshape(1, 2, M // 2), (K, 2, M // 2))
        V, blocks = _compress(V, pairs, halves)
        total += float(blocks.sum())
    norm2 = float(_abs2(np.asarray(B)).sum())
    return float(np.sqrt(total / norm2)) if norm2 > 0 and n > 2 else 0.0


# --------------------------------------------------------------------------
# The GRETSI'23 method ("paper")
# --------------------------------------------------------------------------


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
    norms = np.sqrt(_abs2(S).sum(axis=2, keepdims=True))
    S = S / np.maximum(norms, 1e-12)
    cos = np.abs(np.matmul(S, np.conj(S).swapaxes(1, 2)))
    return (np.clip(cos, 0.0, 1.0) ** alpha).sum(axis=0)


def _kmeans_plusplus(F, k, n_init, rng):
    """``n_init`` independent greedy k-means++ seedings (as scikit-learn's).

    Returns the indices of the chosen data points, shape ``(n_init, k)``.
    """
    n = F.shape[0]
    n_trials = 2 + int(np.log(k))
    sq = (F**2).sum(axis=1)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (F @ F.T), 0.0)
    chosen = np.empty((n_init, k), dtype=np.int64)
    chosen[:, 0] = rng.randint(n, size=n_init)
    closest = dist[chosen[:, 0]]  # (n_init, n)
    for c in range(1, k):
        total = closest.sum(axis=1)
        cum = np.cumsum(closest, axis=1)
        draws = rng.uniform(size=(n_init, n_trials)) * total[:, None]
        cand = np.minimum((cum[:, None, :] < draws[:, :, None]).sum(axis=2), n - 1)
        new_closest = np.minimum(closest[:, None, :], dist[cand])  # (n_init, trials, n)
        best = np.argmin(new_closest.sum(axis=2), axis=1)
        chosen[:, c] = cand[np.arange(n_init), best]
        closest = new_closest[np.arange(n_init), best]
    return chosen


def _balanced_kmeans(F, k, rng, n_init, max_iter, tol=1e-4):
    """k-means with exactly ``n / k`` points per cluster (k-means-constrained).

    Lloyd iterations whose assignment step is an exact balanced assignment (a
    linear assignment onto ``n / k`` copies of every center), k-means++ starts,
    best inertia of ``n_init`` runs (run side by side).
    """
    n, _dim = F.shape
    size = n // k
    tol_abs = tol * float(np.mean(np.var(F, axis=0)))
    centers = F[_kmeans_plusplus(F, k, n_init, rng)]  # (n_init, k, dim)
    labels = np.full((n_init, n), -1, dtype=np.int64)
    active = np.ones(n_init, dtype=bool)
    sq = (F**2).sum(axis=1)
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
    best = None
    for alpha in alphas:
        for _ in range(n_restarts):
            rows = _random_equal_labels(n, n_row_groups, rng)
            cols = _random_equal_labels(n, n_col_groups, rng)
            state = (
                _monarch_cost(A, rows, cols, n_row_groups, n_col_groups),
                rows,
                cols,
            )
            run_best = state
            for _ in range(n_iter):
                rows = _spectral_labels(
                    _affinity(A, cols, n_col_groups, alpha),
                    n_row_groups,
                    rng,
                    n_init,
                    max_iter,
                )
                J = _monarch_cost(A, rows, cols, n_row_groups, n_col_groups)
                if J < run_best[0]:
                    run_best = (J, rows, cols)
                cols = _spectral_labels(
                    _affinity(AT, rows, n_row_groups, alpha),
                    n_col_groups,
                    rng,
                    n_init,
                    max_iter,
                )
                J = _monarch_cost(A, rows, cols, n_row_groups, n_col_groups)
                if J < run_best[0]:
                    run_best = (J, rows, cols)
                if run_best[0] <= zero:
                    break
            if best is None or run_best[0] < best[0]:
                best = run_best
            if best[0] <= zero:
                return best
    return best


def _glue(row_labels, col_labels, n):
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


def _paper_identify(
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
    norm2 = float(_abs2(A).sum())
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
    return _glue(row_labels, col_labels, n), costs


# --------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------


def _result(X, row_perm, col_perm, method, tol, degenerate, note, rel_error=None):
    """Certify the permutations with the checker and build the result.

    ``row_perm`` None means that no tree pair was found (identity returned).
    ``rel_error`` is the nested fit's relative error when already known.
    """
    n = X.shape[0]
    glued = row_perm is not None
    if not glued:
        row_perm = col_perm = np.arange(n, dtype=np.int64)
    B = X[np.ix_(row_perm, col_perm)]
    residual = float(_level_ratios(B).max(initial=0.0))
    if not glued:
        rel_error = float("nan")
    elif rel_error is None:
        rel_error = _nested_error(B)
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


def identify_permutations(A, *, method="auto", random_state=None, tol=None, verbose=0):
    """Find row and column permutations that make a matrix a butterfly.

    Given ``A = P_r^T B P_c`` with ``B`` a square-dyadic butterfly (possibly noisy)
    and unknown permutations, return ``row_perm, col_perm`` such that
    ``A[np.ix_(row_perm, col_perm)]`` is a butterfly, and a certificate: the
    checker residual :func:`butterfly_residual` of the permuted matrix.

    Parameters
    ----------
    A : {array-like, sparse matrix} of shape (n, n)
        Real or complex matrix, ``n = 2**L`` with ``L >= 1``, finite.
    method : {"auto", "exact", "robust", "paper"}, default="auto"
        ``"exact"``: search-free identification for noiseless input (ratios of
        pairs of rows, level by level); it fails (``glued=False``) rather than
        guess. ``"robust"``: nested level-coupled search for noisy or degenerate
        input (reference-pair clustering, minimum-cost matching of rows, balanced
        clustering of columns, swap refinement, several starts, enumeration of
        small levels, lookahead and a polish judged on all later levels).
        ``"auto"``: exact first, verified by the checker; robust search
        (warm-started from the exact levels) when the exact result is missing or
        not certified. ``"paper"``: the GRETSI'23 heuristic (independent levels,
        alternating spectral clustering with the alpha grid
        ``(1e-2, 1e-1, 1, 10, 100)``, 5 restarts, 50 alternations, gluing);
        ``O(n^3)`` per clustering, thousands of clusterings per level: use it
        for comparisons at small ``n``.
    random_state : int, RandomState instance or None, default=None
        Seed of the random choices (reference rows, hashing directions, the
        paper method's random starts and k-means).
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

    References
    ----------
    L. Zheng, G. Puy, E. Riccietti, P. Perez, R. Gribonval, "Factorisation
    butterfly par identification algorithmique de blocs de rang un", GRETSI 2023,
    :arxiv:`2307.00820`.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly._hidden import make_hidden_butterfly
    >>> from skbutterfly._identify import identify_permutations
    >>> A, _, _, _ = make_hidden_butterfly(64, family="dft", random_state=0)
    >>> found = identify_permutations(A, random_state=0)
    >>> found.method, found.certain, found.residual < 1e-10
    ('exact', True, True)
    """
    A, single = _check_square_dyadic(A)
    _check_params(method, tol, verbose)
    rng = check_random_state(random_state)
    tol = float((_TOL_SINGLE if single else _TOL_DOUBLE) if tol is None else tol)
    n = A.shape[0]
    scale = float(np.abs(A).max())
    if n == 2 or scale == 0:
        note = "every 2 x 2 matrix is a butterfly" if scale else "A is zero"
        identity = np.arange(n, dtype=np.int64)
        return _result(A, identity, identity.copy(), "exact", tol, scale == 0, note)
    X = A / scale

    if method == "paper":
        with _single_thread_blas():
            found, _ = _paper_identify(X, rng, verbose=verbose)
        if found is None:
            note = "the levels did not nest into trees (gluing failed)"
            return _result(X, None, None, "paper", tol, False, note)
        return _result(X, *_perms_from_dfs(*found), "paper", tol, False, "")

    exact = exact_res = None
    if method in ("auto", "exact"):
        exact = _nested_identify(X, "exact", tol, rng, verbose=verbose)
        if exact["row_perm"] is None:
            if method == "exact":
                note = (
                    "the ratio structure is inconsistent at level "
                    f"{exact['failed_level']} (noise or degenerate input: try "
                    "method='robust')"
                )
                return _result(X, None, None, "exact", tol, exact["degenerate"], note)
        else:
            res = _result(
                X,
                exact["row_perm"],
                exact["col_perm"],
                "exact",
                tol,
                exact["degenerate"],
                "",
                np.sqrt(exact["cost"] / _abs2(X).sum()),
            )
            if res.certain or method == "exact":
                return res
            exact_res = res
            if verbose:
                print(f"[identify] exact result not certified: {res.message}")
    warm = None if exact is None else exact["history"]
    robust = _nested_identify(X, "robust", tol, rng, warm=warm, verbose=verbose)
    degenerate = robust["degenerate"] or (exact is not None and exact["degenerate"])
    note = ""
    if exact is not None:
        failed = exact["row_perm"] is None
        note = "the exact method " + (
            f"failed at level {exact['failed_level']}"
            if failed
            else "was not certified"
        )
    rel_error = np.sqrt(robust["cost"] / _abs2(X).sum())
    res = _result(
        X,
        robust["row_perm"],
        robust["col_perm"],
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
