"""The butterfly checker: rank-one residual of the blocks of every level."""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np

from skbutterfly._validation import check_matrix

__all__ = [
    "abs2",
    "butterfly_residual",
    "check_square_dyadic",
    "level_ratios",
    "sqnorm",
]

# Blocks whose top singular value is below this fraction of the largest one of
# their level are treated as numerically zero by the checker.
_BLOCK_FLOOR = 1e-12
# The checker refines blocks whose short side is at most this by an exact SVD.
_SVD_SIDE = 16


def check_square_dyadic(A, name="A"):
    """Validate a square matrix of size ``2**L`` and return it in double precision.

    Parameters
    ----------
    A : {array-like, sparse matrix} of shape (n, n)
        Finite numeric matrix, ``n = 2**L`` with ``L >= 1``.
    name : str, default="A"
        The parameter's name, for the error messages.

    Returns
    -------
    A : ndarray of shape (n, n), dtype float64 or complex128
        C-contiguous (a view of the input when no conversion is needed; the input
        is never modified).
    single : bool
        Whether the input was in single (or half) precision.
    """
    A = check_matrix(A, name)
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
    single = A.dtype in (np.float32, np.complex64)
    dtype = np.complex128 if A.dtype.kind == "c" else np.float64
    return A.astype(dtype, copy=False), single


def abs2(X):
    """Squared modulus, real output."""
    if np.iscomplexobj(X):
        return X.real**2 + X.imag**2
    return X * X


def sqnorm(X, n_axes=1):
    """Squared Euclidean norm over the last ``n_axes`` axes (fast, real output)."""
    X = np.ascontiguousarray(X)
    lead = X.shape[: X.ndim - n_axes]
    flat = X.reshape(-1, int(np.prod(X.shape[X.ndim - n_axes :], dtype=np.int64)))
    if np.iscomplexobj(flat):
        flat = flat.view(flat.real.dtype)
    return np.einsum("ij,ij->i", flat, flat).reshape(lead)


def _float_view(X):
    """``X`` (contiguous) as reals: complex entries become (re, im) on the last axis."""
    if np.iscomplexobj(X):
        return X.view(X.real.dtype)
    return X


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
    row_norms = sqnorm(blocks)
    top = np.argmax(row_norms, axis=1)
    v = blocks[np.arange(n_blocks), top, :]
    v = (np.conj(v) if complex_ else v.copy()) / np.maximum(
        np.sqrt(row_norms[np.arange(n_blocks), top]), tiny
    )[:, None]

    def bound(X, v):
        u = np.einsum("bpq,bq->bp", X, v)
        sigma1 = np.sqrt(sqnorm(u))
        R = u[:, :, None] * (np.conj(v) if complex_ else v)[:, None, :]
        np.subtract(X, R, out=R)
        return np.sqrt(sqnorm(R, 2)) / np.maximum(sigma1, floor), u

    ratio, u = bound(blocks, v)
    active = np.arange(n_blocks)
    for _ in range(max_iter):
        if active.size == 0:
            break
        X = blocks[active]
        w = np.einsum("bpq,bp->bq", np.conj(X) if complex_ else X, u[active])
        v = w / np.maximum(np.sqrt(sqnorm(w)), tiny)[:, None]
        new, u_new = bound(X, v)
        settled = np.abs(new - ratio[active]) <= rtol * new
        ratio[active] = np.minimum(ratio[active], new)
        u[active] = u_new
        active = active[~settled]
    return ratio


def level_ratios(B, accept=1e-6):
    """Largest block tail ratio of each level ``s = 1 .. L-1`` of a square ``B``.

    The blocks of a level are read in place from the view
    ``B.reshape(p, h, p, h)[k, i, j, c] = B[i::h, j*h:(j+1)*h][k, c]``: one rank-one
    bound per block from its largest row (or column, for tall blocks), exact for
    rank-one blocks; only the blocks whose bound exceeds ``accept`` are copied
    out and refined by :func:`_tail_ratios`. Returns an array of ``L - 1`` ratios.
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
            sigma1 = np.sqrt(abs2(u).sum(axis=0))
        else:
            # Tall blocks: w is the largest column, s = w^H X.
            col2 = abs2(B4).sum(axis=0)
            top = np.argmax(col2, axis=2)
            w = B4[:, ii, jj, top] / np.maximum(np.sqrt(col2[ii, jj, top]), tiny)
            s_ = np.einsum("kij,kijc->ijc", np.conj(w) if complex_ else w, B4)
            R = w[..., None] * s_[None]
            sigma1 = np.sqrt(abs2(s_).sum(axis=2))
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
    B : {array-like, sparse matrix} of shape (n, n)
        Finite real or complex matrix, ``n = 2**L`` with ``L >= 1``.

    Returns
    -------
    residual : float
        The largest block ratio; blocks whose top singular value is below
        ``1e-12`` times the largest one of their level count as zero.

    See Also
    --------
    identify_permutations : Find the permutations that make a matrix a butterfly.

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
    >>> from skbutterfly.permutation import butterfly_residual
    >>> H = np.array([[1.0, 1.0], [1.0, -1.0]])
    >>> H4 = np.kron(H, H)
    >>> float(butterfly_residual(H4)) < 1e-12
    True
    >>> float(butterfly_residual(H4[:, [0, 2, 1, 3]])) > 0.5
    True
    """
    B, _ = check_square_dyadic(B, "B")
    scale = np.abs(B).max()
    if scale == 0:
        return 0.0
    return float(level_ratios(B / scale).max(initial=0.0))
