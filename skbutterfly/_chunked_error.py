"""The relative error of a fit against a chunked matrix, chunk by chunk."""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np

from skbutterfly._fusion import fuse_twiddles, is_chainable
from skbutterfly._sources import ldexp
from skbutterfly._twiddle import twiddle_to_sparse

__all__ = ["RowsOf", "chunk_error"]


class RowsOf:
    """Rows of a butterfly operator's dense form, without forming it.

    The chain is cut in two: ``B = L R`` with ``L`` and ``R`` the fused
    halves as sparse matrices (about ``rank * n**1.5`` nonzeros each), so
    ``k`` rows cost about ``k * rank * n`` multiply-adds.
    """

    def __init__(self, op):
        twiddles, chain = op.twiddles, op.chain
        if len(chain) == 1:
            self.left = twiddle_to_sparse(twiddles[0], "csr")
            self.right = None
        elif is_chainable(chain):
            half = len(chain) // 2
            self.left = twiddle_to_sparse(fuse_twiddles(twiddles, chain, 0, half - 1))
            self.right = twiddle_to_sparse(
                fuse_twiddles(twiddles, chain, half, len(chain) - 1)
            )
        else:  # pragma: no cover - every fitted chain is chainable
            self.left = twiddle_to_sparse(twiddles[0], "csr")
            self.right = twiddle_to_sparse(twiddles[1])
            for T in twiddles[2:]:
                self.right = self.right @ twiddle_to_sparse(T)
        row_perm, col_perm = op.row_perm, op.col_perm
        self.row_of = None if row_perm is None else np.argsort(row_perm)
        self.col_of = None if col_perm is None else np.argsort(col_perm)

    def columns(self, c0, c1):
        """The factor giving the columns ``c0:c1`` (sliced once per chunk)."""
        right = self.left if self.right is None else self.right
        if self.col_of is None and (c0, c1) == (0, right.shape[1]):
            return right
        cols = slice(c0, c1) if self.col_of is None else self.col_of[c0:c1]
        return right[:, cols]

    def rows(self, r0, r1, columns):
        """Entries ``[r0:r1]`` of the operator's ``columns``, a dense array."""
        rows = slice(r0, r1) if self.row_of is None else self.row_of[r0:r1]
        if self.right is None:
            return columns[rows].toarray()
        return (self.left[rows] @ columns).toarray()


def chunk_error(block, rows_of, sub, exponent, block_info=None):
    """``[[||A_chunk - A_hat_chunk||^2, ||A_chunk||^2]]`` on ``A / 2**exponent``.

    The chunk is compared with the same entries of ``A_hat``, ``sub`` rows at
    a time.
    """
    (r0, r1), (c0, c1) = block_info[0]["array-location"]
    columns = rows_of.columns(c0, c1)
    err2 = norm2 = 0.0
    for start in range(0, r1 - r0, sub):
        stop = min(start + sub, r1 - r0)
        diff = rows_of.rows(r0 + start, r0 + stop, columns)
        ldexp(diff, -exponent, out=diff)
        part = ldexp(np.asarray(block[start:stop]), -exponent)
        diff -= part
        err2 += _squared_norm(diff)
        norm2 += _squared_norm(part)
    return np.array([[err2, norm2]])


def _squared_norm(X):
    # einsum's own loop, not BLAS: waking OpenBLAS threads for this small
    # reduction costs a scheduler time slice (20 ms) on a busy machine.
    flat = np.ascontiguousarray(X).reshape(-1)
    if flat.dtype.kind == "c":
        flat = flat.view(flat.real.dtype)
    return float(np.einsum("i,i->", flat, flat))
