"""The relative error of a fit against a chunked matrix, chunk by chunk."""

# SPDX-License-Identifier: BSD-3-Clause

from contextlib import closing

import numpy as np

from skbutterfly._chain import chain_shape, merged_pattern
from skbutterfly._chunked_panels import read_ahead
from skbutterfly._fusion import fuse_twiddles, is_chainable
from skbutterfly._sources import ldexp
from skbutterfly._twiddle import twiddle_to_sparse

__all__ = ["RowsOf", "chunk_error", "panel_files_error"]


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


def _root_halves(op, b2, c1, c2):
    """The fitted chain fused into the two halves of the root split, or None.

    The halves have the twiddle shapes of the root split that cut the panels,
    ``(1, b2, b1, c1*r)`` and ``(c1, 1, r*b2, c2)``, so a panel of the fitted
    operator is a batch of small products of their slices.
    """
    chain = op.chain
    if len(chain) < 2 or not is_chainable(chain):
        return None
    M = chain_shape(chain)[0]
    last = len(chain) - 1
    for k in range(last):
        a, b, c, d = merged_pattern(chain, 0, k)
        a2, b2_, c2_, d2 = merged_pattern(chain, k + 1, last)
        if (a, b, d, a2, c2_, d2) != (1, M // b2, b2, c1, c2, 1) or c % c1:
            continue
        if b2_ != (c // c1) * b2:
            continue
        left = fuse_twiddles(op.twiddles, chain, 0, k)
        right = fuse_twiddles(op.twiddles, chain, k + 1, last)
        return left, right, c // c1
    return None


def panel_files_error(spill, op, m, exponent):
    """``(||A - A_hat||^2, ||A||^2)`` on ``A / 2**exponent``, from the panel files.

    ``spill`` holds the matrix's stored columns panel by panel (in the working
    column order of ``op``, whose column permutation it was cut for) and rows
    in storage order. Each panel of ``A_hat`` is formed from the fitted
    factors' root halves (``r`` multiply-adds per entry, dense matmuls) and
    compared with the file, the next file read meanwhile. Returns None when
    the fitted chain does not split like the panels (then the store is read).
    """
    b2, c1, padded_shape = spill.split
    if chain_shape(op.chain) != padded_shape:
        return None
    halves = _root_halves(op, b2, c1, spill.c2)
    if halves is None:
        return None
    left, right, rank = halves
    M = padded_shape[0]
    row_of = None if op.row_perm is None else np.argsort(op.row_perm)
    # The scale only guards against overflow and underflow in the squares.
    dtype = np.result_type(spill.dtype, op.dtype)
    if abs(exponent) <= np.finfo(dtype).maxexp // 4:
        exponent = 0
    panels = [(p0, p1) for p0, p1 in spill.panels if p0 in spill.widths]
    err2 = norm2 = 0.0
    with closing(read_ahead(lambda p: spill.read(p[0]), panels)) as reads:
        for (p0, p1), block in zip(panels, reads):
            hat = _panel_product(left, right, p0, p1, rank, b2)
            hat = hat.reshape(M, -1)[:, : block.shape[1]]
            # Working rows back to storage order (the padding rows dropped).
            hat = hat[: block.shape[0]] if row_of is None else hat[row_of]
            if exponent:
                hat = ldexp(hat, -exponent)
                block = ldexp(block, -exponent, out=block)
            hat = np.subtract(hat, block, out=hat)
            err2 += _squared_norm(hat)
            norm2 += _squared_norm(block)
            del hat, block
    return err2, norm2


def _panel_product(left, right, p0, p1, rank, b2):
    """Column classes ``p0:p1`` of the product of the root halves, ``(b1, b2, w, c2)``.

    The same entries as :func:`merge_twiddles` of the slices, written in
    place: the blocks' ``(b1 x r) @ (r x c2)`` products go straight to their
    strided rows (rank one: an outer product, one broadcast multiply).
    """
    b1 = left.shape[2]
    w, c2 = p1 - p0, right.shape[-1]
    L = left[0, :, :, p0 * rank : p1 * rank].reshape(b2, b1, w, rank)
    R = right[p0:p1, 0].reshape(w, rank, b2, c2)
    out = np.empty((b1, b2, w, c2), dtype=np.result_type(left, right))
    if rank == 1:
        np.multiply(
            L[..., 0].transpose(1, 0, 2)[..., None],
            R[:, 0].transpose(1, 0, 2)[None],
            out=out,
        )
    else:
        np.matmul(
            L.transpose(0, 2, 1, 3),
            R.transpose(2, 0, 1, 3),
            out=out.transpose(1, 2, 0, 3),
        )
    return out


def _squared_norm(X):
    # einsum's own loop, not BLAS: waking OpenBLAS threads for this small
    # reduction costs a scheduler time slice (20 ms) on a busy machine.
    flat = np.ascontiguousarray(X).reshape(-1)
    if flat.dtype.kind == "c":
        flat = flat.view(flat.real.dtype)
    return float(np.einsum("i,i->", flat, flat))
