"""Compact factors ("twiddles") of Kronecker-sparse patterns and their algebra.

A factor with pattern ``(a, b, c, d)`` (support ``I_a (x) 1_{b x c} (x) I_d``) is
stored as its twiddle ``T`` of shape ``(a, d, b, c)``: the nonzero at row
``i*b*d + j*d + l`` and column ``i*c*d + k*d + l`` is ``T[i, l, j, k]``, so every
``T[i, l]`` is a dense ``b x c`` block.
"""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import scipy.sparse as sp

__all__ = [
    "apply_twiddle",
    "dense_to_twiddle",
    "qr_push",
    "split_blocks",
    "split_twiddles",
    "twiddle_to_dense",
    "twiddle_to_sparse",
]


def dense_to_twiddle(A, pattern):
    """Restrict a dense matrix to the support of ``pattern``, as a twiddle."""
    a, b, c, d = pattern
    if a == 1 and d == 1:
        return A.reshape(1, 1, b, c)
    A6 = A.reshape(a, b, d, a, c, d)
    ia, il = np.arange(a), np.arange(d)
    # (a, d, b, c): pick the diagonal in both the a and the d index pairs.
    return A6[ia[:, None], :, il[None, :], ia[:, None], :, il[None, :]]


def twiddle_to_dense(T):
    """Dense matrix of a twiddle ``T`` of shape ``(a, d, b, c)``."""
    a, d, b, c = T.shape
    if a == 1 and d == 1:
        return T.reshape(b, c)
    out = np.zeros((a, b, d, a, c, d), dtype=T.dtype)
    ia, il = np.arange(a), np.arange(d)
    out[ia[:, None], :, il[None, :], ia[:, None], :, il[None, :]] = T
    return out.reshape(a * b * d, a * c * d)


def twiddle_to_sparse(T, format="csr"):
    """Sparse array (``scipy.sparse``) of a twiddle ``T`` of shape ``(a, d, b, c)``."""
    a, d, b, c = T.shape
    i, l, j, k = np.indices((a, d, b, c), sparse=True)
    rows = i * b * d + j * d + l
    cols = i * c * d + k * d + l
    rows, cols = np.broadcast_arrays(rows, cols)
    coo = sp.coo_array(
        (T.ravel(), (rows.ravel(), cols.ravel())), shape=(a * b * d, a * c * d)
    )
    return coo.asformat(format)


def split_blocks(T, b2, c1):
    """Stack the blocks of one two-factor split of the twiddle ``T``.

    ``T`` has shape ``(a, d, B, C)`` with ``B = b1 * b2`` and ``C = c1 * c2``; the
    blocks of the split are ``T.reshape(a, d, b1, b2, c1, c2)`` re-indexed as
    ``(a c1) (b2 d) b1 c2``: ``a*c1*b2*d`` blocks of size ``b1 x c2``.
    """
    a, d, B, C = T.shape
    b1, c2 = B // b2, C // c1
    M = T.reshape(a, d, b1, b2, c1, c2).transpose(0, 4, 3, 1, 2, 5)
    return np.ascontiguousarray(M).reshape(a * c1, b2 * d, b1, c2)


def split_twiddles(U, Vh, a, d, b2, c1):
    """Scatter the truncated factors of the blocks back into two twiddles.

    ``U`` of shape ``(a*c1, b2*d, b1, r)`` and ``Vh`` of shape
    ``(a*c1, b2*d, r, c2)`` become the left twiddle ``(a, b2*d, b1, c1*r)`` and
    the right twiddle ``(a*c1, d, r*b2, c2)``; the contracted middle index is
    ordered ``(a, c1, r, b2, d)`` in both.
    """
    b1, r = U.shape[-2:]
    c2 = Vh.shape[-1]
    left = U.reshape(a, c1, b2 * d, b1, r).transpose(0, 2, 3, 1, 4)
    left = left.reshape(a, b2 * d, b1, c1 * r)
    right = Vh.reshape(a * c1, b2, d, r, c2).transpose(0, 2, 3, 1, 4)
    right = right.reshape(a * c1, d, r * b2, c2)
    return np.ascontiguousarray(left), np.ascontiguousarray(right)


def merge_twiddles(left, right, c1, b2):
    """Twiddle of the product of two adjacent factors: the inverse of a split.

    ``left`` has shape ``(a, b2*d, b1, c1*r)`` and ``right`` ``(a*c1, d, r*b2, c2)``;
    the product's blocks are ``a*c1*b2*d`` matmuls ``(b1 x r) @ (r x c2)``, so the
    cost is ``r`` multiply-adds per nonzero of the result.

    Returns
    -------
    T : ndarray of shape (a, d, b1*b2, c1*c2)
    """
    a, D, b1, cr = left.shape
    ac1, d, _, c2 = right.shape
    r = cr // c1
    L = left.reshape(a, D, b1, c1, r).transpose(0, 3, 1, 2, 4).reshape(ac1, D, b1, r)
    R = right.reshape(ac1, d, r, b2, c2).transpose(0, 3, 1, 2, 4).reshape(ac1, D, r, c2)
    M = np.matmul(L, R).reshape(a, c1, b2, d, b1, c2)
    T = M.transpose(0, 3, 4, 2, 1, 5).reshape(a, d, b1 * b2, c1 * c2)
    return np.ascontiguousarray(T)


def qr_push(left, right, c1, b2, side):
    """Move the non-orthonormal part between two adjacent twiddles.

    ``left`` has shape ``(a1, d1, B1, c1*r)`` and ``right`` ``(a2, d2, r*b2, C2)``
    with ``a2 = a1*c1`` and ``b2*d2 = d1``. With ``side="left"`` the left
    twiddle is made column-orthonormal block by block (``Q``) and ``R`` is pushed
    into the right twiddle; with ``side="right"`` the right twiddle is made
    row-orthonormal and the factor is pushed into the left one. The product of
    the two factors is unchanged.
    """
    a1, d1, B1, cr = left.shape
    a2, d2, rb, C2 = right.shape
    r = cr // c1
    L = left.reshape(a1, d1, B1, c1, r).transpose(0, 3, 1, 2, 4)
    L = L.reshape(a2, d1, B1, r)
    R = right.reshape(a2, d2, r, b2, C2).transpose(0, 3, 1, 2, 4)
    R = R.reshape(a2, d1, r, C2)
    if side == "left":
        Q, Rm = _qr_padded(L)
        L, R = Q, Rm @ R
    else:
        Q, Rm = _qr_padded(np.swapaxes(R, -1, -2).conj())
        R = np.swapaxes(Q, -1, -2).conj()
        L = L @ np.swapaxes(Rm, -1, -2).conj()
    left = L.reshape(a1, c1, d1, B1, r).transpose(0, 2, 3, 1, 4).reshape(a1, d1, B1, cr)
    right = (
        R.reshape(a2, b2, d2, r, C2).transpose(0, 2, 3, 1, 4).reshape(a2, d2, rb, C2)
    )
    return np.ascontiguousarray(left), np.ascontiguousarray(right)


def _qr_padded(X):
    """Reduced QR of a stack, zero-padded to square ``R`` when a block is wide."""
    p, r = X.shape[-2:]
    Q, Rm = np.linalg.qr(X)
    if p >= r:
        return Q, Rm
    Q = np.concatenate([Q, np.zeros((*Q.shape[:-1], r - p), Q.dtype)], axis=-1)
    Rm = np.concatenate([Rm, np.zeros((*Rm.shape[:-2], r - p, r), Rm.dtype)], axis=-2)
    return Q, Rm


def apply_twiddle(T, X, dtype=None, out=None):
    """Product of the factor of twiddle ``T`` with the columns of ``X``.

    One batched matmul over the ``(a, d)`` blocks, reading ``X`` and writing
    the result through strided views (BLAS takes the strides as leading
    dimensions): no transpose copies. Blocks of one column are a broadcast
    product.

    Parameters
    ----------
    T : ndarray of shape (a, d, b, c)
    X : ndarray of shape (a*c*d, k)
        C-contiguous, or rows of unit stride a fixed distance apart (a view of
        a padded buffer).
    dtype : dtype, default=None
        Dtype of the result; None means ``np.result_type(T, X)``.
    out : ndarray of shape (a*b*d, k), default=None
        Where to write the result (a reused buffer spares the page faults of
        a fresh one), laid out like ``X``; its dtype is the result's.

    Returns
    -------
    Y : ndarray of shape (a*b*d, k)
    """
    a, d, b, c = T.shape
    k = X.shape[1]
    if out is None:
        out = np.empty((a * b * d, k), dtype=dtype or np.result_type(T, X))
    Y = out
    if c == 1:
        # One column per block (a factor that expands its input): a broadcast
        # product written in the output's own order is 2-3x faster than a * d
        # outer-product GEMMs.
        np.multiply(
            T[..., 0].transpose(0, 2, 1)[..., None],
            X.reshape(a, 1, d, k),
            out=Y.reshape(a, b, d, k),
        )
        return Y
    Xv = X.reshape(a, c, d, k).transpose(0, 2, 1, 3)
    Yv = Y.reshape(a, b, d, k).transpose(0, 2, 1, 3)
    np.matmul(T, Xv, out=Yv)
    return Y
