"""Dominant singular triplets of a contiguous stack of blocks, solved in cache.

The blocks ``M`` (shape ``(..., b1, c2)``) of one cache-sized piece of a split
go through the whole iteration while they sit in cache:

1. **Power steps** with ``k`` vectors. Blocks of exact butterflies have rank
   ``<= k`` and settle at once; the captured energy ``||Q^H M||_F^2`` is then
   steady to roundoff.
2. Blocks that did not settle (flat spectra: Gaussian, noisy or trained
   matrices) go on with **Chebyshev-filtered subspace iteration** on
   ``H = M^H M`` with a few more vectors. Each round applies the polynomial
   ``T_d(2 H / c - 1)``, which keeps the eigenvalues below the cut-off ``c``
   in ``[-1, 1]`` and amplifies the dominant ones, then a Rayleigh-Ritz step.
   It converges like a Krylov method but only needs products with
   ``M`` and ``M^H`` (batched GEMMs on the stack) and ``w x w`` problems.
3. A round stops the piece when the estimated shortfall of captured energy,
   from the Ritz residuals, is below ``tol`` times the energy the rank-``k``
   blocks leave out: the split's error is then within that relative margin
   of the exact block SVD's. A piece that has not converged after
   ``_MAX_ROUNDS`` rounds is finished by LAPACK's SVD.

Vectors are kept as rows (``X[..., i, :]`` is ``x_i^T``) so that the products
run as ``X @ M^T`` and ``Y @ M`` on contiguous operands.
"""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np

from skbutterfly._block_svd import gram_unreliable, pivot_phases

__all__ = ["dominant_triplets", "filter_dtype", "settle_tolerance"]

# Extra vectors of the filtered iteration, its largest polynomial degree, how
# many rounds run before the exact SVD takes over, the margin on the predicted
# gain of a round when its degree is lowered, and the least gain of a round
# (below it the exact SVD takes over at once).
_OVERSAMPLE = 3
_MAX_DEGREE = 8
_MAX_ROUNDS = 6
_SAFETY = 100.0
_MIN_GAIN = 10.0
_FILTER_DTYPE = {
    np.dtype(np.float64): np.dtype(np.float32),
    np.dtype(np.complex128): np.dtype(np.complex64),
}


def filter_dtype(dtype):
    """Precision of the Chebyshev filter for blocks of ``dtype``."""
    return _FILTER_DTYPE.get(np.dtype(dtype), np.dtype(dtype))


def settle_tolerance(dtype):
    """Relative change of captured energy under which power steps have settled."""
    return max(1e-12, 100 * np.finfo(dtype).eps)


def _accuracy(dtype):
    """Stopping tolerance and amplification cap of the filtered iteration.

    ``tol`` is the energy shortfall allowed, relative to the energy the
    rank-``k`` blocks leave out; ``cap`` is the largest amplification of one
    filter round (it bounds the condition number of the filtered block, which
    the Cholesky-based Rayleigh-Ritz step squares).
    """
    eps = np.finfo(dtype).eps
    return max(1e-8, 100 * eps), eps**-0.25


def dominant_triplets(M, k, rng, *, small=False, filter_buffer=None):
    """Rank-``k`` truncated SVD of every block of ``M``, as ``U`` and ``U^H M``.

    Parameters
    ----------
    M : ndarray of shape (..., b1, c2)
        C-contiguous stack of blocks, small enough to stay in cache.
    k : int
        Number of triplets, ``k <= min(b1, c2)``.
    rng : numpy.random.Generator
        Source of the starting vectors.
    small : bool, default=False
        The blocks have a side of at most a few entries: blocks that do not
        settle under power steps then take the exact Gram path rather than the
        filtered iteration.
    filter_buffer : ndarray of shape M.shape, optional
        Where to put the single-precision copy of ``M`` used by the filter (a
        reused buffer spares page faults); its dtype is
        :func:`filter_dtype` of ``M``'s.

    Returns
    -------
    U : ndarray of shape (..., b1, k)
        Orthonormal columns, phases fixed by :func:`pivot_phases`.
    R : ndarray of shape (..., k, c2)
        ``U^H M``: the singular values times the right singular vectors.
    """
    b1, c2 = M.shape[-2:]
    batch = M.shape[:-2]
    complex_ = M.dtype.kind == "c"
    Mt = np.swapaxes(M, -1, -2)
    row_energy = _sq_norms(M)
    total = row_energy.sum(axis=-1)
    settle = settle_tolerance(M.dtype)
    if k == 1:
        # A block of rank 1 (exact rank-1 butterflies) is u s v^H: its largest
        # row is along v^H, so one step from it gives u to roundoff, and the
        # block holds all its energy there, to roundoff (the energy left out
        # is the squared error of the split: a block that leaves out more
        # than roundoff is not exact). Other blocks go on below, as if this
        # step had not been taken.
        top = np.argmax(row_energy, axis=-1)[..., None, None]
        start = _unit_rows(np.take_along_axis(M, top, axis=-2).conj())
        Q, Z, held = _power_step(M, Mt, start, complex_)
        if np.all(total - held <= 16 * np.finfo(M.dtype).eps * total):
            return _finish(M, Q, Z)
    Z = _orth_rows(_uniform(rng, (*batch, k, c2), M.dtype))
    Q, Z, before = _power_step(M, Mt, Z, complex_)
    Q, Z, after = _power_step(M, Mt, _orth_rows(Z), complex_)
    if np.all(np.abs(after - before) <= settle * after):
        return _finish(M, Q, Z)
    if small:
        return _gram_triplets(M, Mt, k)
    width = min(k + _OVERSAMPLE, b1, c2)
    if width == k:  # no room for extra vectors (a forced solver at a high rank)
        return _lapack(M, k)
    # The extra vectors are M^H r for random r, after one more power step and
    # kept orthogonal to the k settled-so-far ones: their Rayleigh quotients,
    # hence the first cut-off, are then fair and the block well conditioned.
    Z = _orth_rows(Z)
    extra = _times_m(_uniform(rng, (*batch, width - k, b1), M.dtype), M, complex_)
    extra = _unit_rows(_project_out(extra, Z))
    extra = _project_out(_times_m(_times_mt(extra, Mt), M, complex_), Z)
    X = np.concatenate([Z, _unit_rows(extra)], axis=-2)
    Y = _times_mt(X, Mt)
    HX = _times_m(Y, M, complex_)
    tol, cap = _accuracy(M.dtype)
    # The filter only has to point the block at the dominant subspace: it runs
    # in single precision (twice the GEMM speed); the Rayleigh-Ritz steps, which
    # give the answer and the stopping test, use M itself.
    if filter_buffer is None:
        M_filter = M.astype(filter_dtype(M.dtype))
    else:
        M_filter = filter_buffer
        np.copyto(M_filter, M, casting="same_kind")
    Mt_filter = np.swapaxes(M_filter, -1, -2)
    previous = np.inf
    for round_ in range(_MAX_ROUNDS):
        try:
            theta, X, Y, HX, shortfall = _rayleigh_ritz(X, Y, HX, k)
        except np.linalg.LinAlgError:  # a filtered block lost its rank
            break
        left_out = np.maximum(total - theta[..., :k].sum(axis=-1), 0)
        floor = settle_tolerance(M.dtype) * theta[..., :k].sum(axis=-1)
        target = np.sum(tol * left_out + floor)
        if np.sum(shortfall) <= target:
            Q = _orth_rows(Y[..., :k, :])
            return _finish(M, Q, _times_m(Q, M, complex_))
        if round_ >= 2 and np.sum(shortfall) * _MIN_GAIN > previous:
            # After the first filter round (whose start is rough), some blocks
            # still barely improve (a capped filter on a wide spread of leading
            # values): more rounds would cost more than LAPACK.
            break
        previous = np.sum(shortfall)
        X = _chebyshev_filter(
            M_filter,
            Mt_filter,
            X.astype(M_filter.dtype),
            HX.astype(M_filter.dtype),
            theta,
            cap,
            complex_,
            shortfall,
            target,
        ).astype(M.dtype)
        Y = _times_mt(X, Mt)
        HX = _times_m(Y, M, complex_)
    return _lapack(M, k)


def _uniform(rng, shape, dtype):
    """Uniform entries in [-1, 1) (real and imaginary parts for complex)."""
    real = np.finfo(dtype).dtype
    X = rng.random(shape, dtype=real) * 2 - 1
    if np.dtype(dtype).kind == "c":
        X = X + 1j * (rng.random(shape, dtype=real) * 2 - 1)
    return X.astype(dtype, copy=False)


def _sq_norms(X):
    """Squared norms along the last axis (real, for real or complex rows)."""
    return np.vecdot(X, X).real


def _unit_rows(X):
    """Rows scaled to unit norm (zero rows stay zero)."""
    norm = np.sqrt(_sq_norms(X))[..., None]
    return X / np.where(norm > 0, norm, 1)


def _project_out(X, Z):
    """Rows of ``X`` minus their components along the orthonormal rows ``Z``."""
    coef = np.matmul(X, np.swapaxes(Z, -1, -2).conj())  # x_i^T conj(z_j)
    return X - np.matmul(coef, Z)


def _orth_rows(X):
    """Orthonormal rows spanning the rows of every matrix of a stack."""
    if X.shape[-2] == 1:
        return _unit_rows(X)
    return np.swapaxes(np.linalg.qr(np.swapaxes(X, -1, -2))[0], -1, -2)


def _times_mt(X, Mt):
    """Rows ``(M x)^T`` of the rows ``x^T`` of ``X``."""
    return np.matmul(X, Mt)


def _times_m(Y, M, complex_):
    """Rows ``(M^H y)^T`` of the rows ``y^T`` of ``Y``."""
    if complex_:
        return np.matmul(Y.conj(), M).conj()
    return np.matmul(Y, M)


def _power_step(M, Mt, Z, complex_):
    """``Q = orth(M z)``, ``Z = M^H Q`` (rows) and the captured energy."""
    Q = _orth_rows(_times_mt(Z, Mt))
    Z = _times_m(Q, M, complex_)
    return Q, Z, _sq_norms(Z).sum(axis=-1)


def _small_precision(A):
    return A.astype(np.complex128 if A.dtype.kind == "c" else np.float64)


def _rayleigh_ritz(X, Y, HX, k):
    """Ritz pairs of ``H`` on the row space of ``X``, given ``Y = M X``, ``HX``.

    Solves ``T c = theta B c`` with ``B = X^H X`` and ``T = Y^H Y = X^H H X``
    through the Cholesky factor of ``B``, in double precision. Returns the
    Ritz values in decreasing order, the rotated ``X`` and ``HX``, the first
    ``k`` rows of the rotated ``Y``, and the
    estimated energy shortfall of the ``k`` leading Ritz vectors,
    ``sum_i min(rho_i, rho_i^2 / (theta_i - theta_{k+1}))`` with ``rho_i`` the
    residual norm ``||H x_i - theta_i x_i||``.
    """
    B = _small_precision(np.matmul(X.conj(), np.swapaxes(X, -1, -2)))
    T = _small_precision(np.matmul(Y.conj(), np.swapaxes(Y, -1, -2)))
    # A shift of a few units of roundoff keeps B definite when rows of X are
    # zero (zero blocks) without moving the leading Ritz pairs.
    finfo = np.finfo(X.dtype)
    mean = np.trace(B, axis1=-2, axis2=-1).real / B.shape[-1]
    B += (10 * finfo.eps * mean + finfo.tiny)[..., None, None] * np.eye(B.shape[-1])
    L_inv = np.linalg.inv(np.linalg.cholesky(B))
    L_inv_h = np.swapaxes(L_inv, -1, -2).conj()
    theta, W = np.linalg.eigh(L_inv @ T @ L_inv_h)
    theta, W = theta[..., ::-1], W[..., ::-1]
    # Row i of the new block is sum_j C[j, i] x_j^T: X <- C^T X.
    Ct = np.swapaxes(L_inv_h @ W, -1, -2).astype(X.dtype)
    X, HX = Ct @ X, Ct @ HX
    Y = Ct[..., :k, :] @ Y  # only the leading rows are used (for U)
    R = HX[..., :k, :] - theta[..., :k, None].astype(X.dtype) * X[..., :k, :]
    rho = np.sqrt(_sq_norms(R))
    gap = theta[..., :k] - theta[..., k : k + 1]
    tiny = np.finfo(np.float64).tiny
    shortfall = np.minimum(rho, rho**2 / np.maximum(gap, tiny)).sum(axis=-1)
    return theta, X, Y, HX, shortfall


def _chebyshev_filter(M, Mt, X, HX, theta, cap, complex_, shortfall, target):
    """``T_d(2 H / c - 1) X`` with a cut-off ``c`` and a degree ``d`` per block.

    ``c`` is the smallest Ritz value ``theta_w``: every direction of the block
    is amplified (at least by 1), and the eigenvalues below, those the block
    must not keep, stay within ``[-1, 1]``. ``d`` is the largest degree (up to
    ``_MAX_DEGREE``) that amplifies the leading Ritz value at most ``cap``
    times, which keeps the filtered block well conditioned. A block whose
    spread ``theta_1 / theta_w`` exceeds that even at degree 1 (a few strong
    directions over a numerically null rest) takes one step with the cut-off
    that amplifies ``theta_1`` exactly ``cap`` times instead; its weakest
    directions are then damped too, which only the Rayleigh-Ritz step's shift
    has to absorb. Zero blocks are left as they are.
    """
    top, last = theta[..., 0], theta[..., -1]
    spread = np.full_like(top, np.inf)
    np.divide(2 * top, last, out=spread, where=last > 0)
    spread -= 1
    with np.errstate(divide="ignore", invalid="ignore"):
        degree = np.arccosh(cap) / np.arccosh(np.maximum(spread, 1))
    degree = np.clip(np.nan_to_num(degree, nan=1.0), 1, _MAX_DEGREE).astype(int)
    degree[top <= 0] = 0
    degree = np.minimum(degree, _enough_degree(degree, spread, shortfall, target))
    capped = 2 * top / (np.cosh(np.arccosh(cap) / np.maximum(degree, 1)) + 1)
    cut = np.maximum(last, capped)
    scale = np.divide(2, cut, out=np.zeros_like(cut), where=degree > 0)
    scale = scale[..., None, None].astype(X.real.dtype)
    # T_1 = scale H - 1, then T_{d+1} = 2 (scale H - 1) T_d - T_{d-1}; every
    # block keeps the iterate of its own degree.
    top_degree = int(degree.max(initial=0))
    if top_degree == 0 or np.any(degree == 0):
        filtered = X.copy()
    else:
        filtered = None  # until some block's degree is reached
    previous, current = X, scale * HX - X
    for d in range(1, top_degree + 1):
        if d > 1:
            H_current = _times_m(_times_mt(current, Mt), M, complex_)
            H_current *= 2 * scale
            H_current -= current
            H_current -= current
            H_current -= previous
            previous, current = current, H_current
        done = degree == d
        if d == top_degree and filtered is None:
            filtered = current
        elif done.any():
            if filtered is None:
                filtered = X.copy()
            np.copyto(filtered, current, where=done[..., None, None])
    return filtered


def _enough_degree(degree, spread, shortfall, target):
    """Lowest degree expected to bring the total shortfall under ``target``.

    A round of degree ``d`` divides a block's shortfall by about
    ``T_d(spread)^2``; the prediction is trusted up to ``_SAFETY``.
    """
    rate = np.arccosh(np.clip(spread, 1, np.finfo(spread.dtype).max))
    for d in range(1, _MAX_DEGREE):
        steps = np.minimum(d, degree)
        with np.errstate(over="ignore"):
            gain = np.cosh(np.where(steps > 0, steps * rate, 0)) ** 2
        if _SAFETY * np.sum(shortfall / gain) <= target:
            return d
    return _MAX_DEGREE


def _finish(M, Q, Z):
    """``U`` and ``U^H M`` from orthonormal rows ``Q`` and ``Z`` = rows of ``M^H Q``.

    Row ``i`` of ``Q^H M`` is ``conj(Z[i])``; a Rayleigh-Ritz step on ``Q``
    turns the basis into left singular vectors.
    """
    R = Z.conj()  # Q^H M
    U = np.swapaxes(Q, -1, -2)
    if Q.shape[-2] > 1:
        _, W = np.linalg.eigh(np.matmul(R, np.swapaxes(R, -1, -2).conj()))
        W = W[..., ::-1]
        U = np.matmul(U, W)
        R = np.matmul(np.swapaxes(W, -1, -2).conj(), R)
    phase = pivot_phases(U)
    return U * phase.conj(), R * np.swapaxes(phase, -1, -2)


def _gram_triplets(M, Mt, k):
    """Exact triplets from the Gram matrix of the smaller side (small blocks).

    Blocks whose Gram eigenvectors would lose precision
    (:func:`~skbutterfly._block_svd.gram_unreliable`) are solved again, all
    at once, by LAPACK's SVD.
    """
    b1, c2 = M.shape[-2:]
    if b1 <= c2:
        G = np.matmul(M, Mt.conj())  # M M^H
        values, U = np.linalg.eigh(G)
        U = U[..., ::-1][..., :k]
    else:
        G = np.matmul(Mt.conj(), M)  # M^H M
        values, V = np.linalg.eigh(G)
        P = np.matmul(M, V[..., ::-1][..., :k])  # U S
        S = np.sqrt(_sq_norms(np.swapaxes(P, -1, -2)))
        U = P / np.where(S > 0, S, 1)[..., None, :]
    bad = gram_unreliable(values, k, G.dtype)
    if bad.any():
        U[bad] = _lapack_vectors(M[bad], k)
    phase = pivot_phases(U)
    U = U * phase.conj()
    return U, np.matmul(np.swapaxes(U, -1, -2).conj(), M)


def _lapack_vectors(M, k):
    """The ``k`` leading left singular vectors of every block, by LAPACK."""
    return np.linalg.svd(M, full_matrices=False)[0][..., :k]


def _lapack(M, k):
    """Exact triplets from LAPACK's SVD."""
    U, _, _ = np.linalg.svd(M, full_matrices=False)
    U = U[..., :k]
    U = U * pivot_phases(U).conj()
    return U, np.matmul(np.swapaxes(U, -1, -2).conj(), M)
