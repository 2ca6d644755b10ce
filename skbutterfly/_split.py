"""One two-factor split of a twiddle: the cheapest exact path per block shape.

The blocks of a split of ``T`` (shape ``(a, d, B, C)``, ``B = b1*b2``,
``C = c1*c2``) are ``T.reshape(a, d, b1, b2, c1, c2)`` seen as a
``(a, c1, b2, d)`` batch of ``b1 x c2`` matrices. Three paths:

- **thin** (a side of the blocks is at most 2): the small Gram matrix of every
  block is formed on a strided *view* of ``T`` (no copy), its eigenvectors give
  the singular vectors of that side, and one more pass writes the other side's
  factor straight into its twiddle layout. Two passes over ``T``, no transpose
  copy; this is the left-to-right and right-to-left trees' path.
- **iterative** (large blocks at a small rank): the batch is cut into pieces of
  a few MiB, each copied once and solved while it stays in cache by
  :func:`~skbutterfly._subspace.dominant_triplets` (power steps, then a
  Chebyshev-filtered subspace iteration on flat spectra).
- **stacked**: the blocks are copied once into a contiguous stack and go
  through one batched LAPACK SVD.
"""

# SPDX-License-Identifier: BSD-3-Clause

import threading

import numpy as np

from skbutterfly._block_svd import (
    BatchChunks,
    batched_truncated_svd,
    blas_single_thread,
    choose_svd_solver,
    gram_unreliable,
    pivot_phases,
    solve_blocks_exactly,
)
from skbutterfly._diagnostics import probe_products
from skbutterfly._subspace import dominant_triplets, filter_dtype
from skbutterfly._twiddle import split_blocks, split_twiddles

__all__ = [
    "THIN_MAX",
    "assemble_split",
    "block_shape",
    "gathered_root_split",
    "split_group",
    "split_stacked",
]

# Blocks with a side of at most this size that do not settle under power
# iteration finish on the exact Gram path instead of a wider subspace.
THIN_MAX = 8


def block_shape(T, b2, c1):
    """Shape ``(b1, c2)`` of the blocks of the split of ``T``."""
    _, _, B, C = T.shape
    return B // b2, C // c1


def split_group(
    twiddles,
    b2s,
    c1s,
    rank,
    *,
    orthonormalize,
    solver="auto",
    n_jobs=None,
    random_state=None,
):
    """Split twiddles whose blocks share one shape into left and right twiddles.

    The path is chosen once for the group: blocks that the solver handles on
    views (Gram or subspace iteration) are split twiddle by twiddle, each call
    batched over its blocks; otherwise all blocks go through one batched SVD.
    With ``orthonormalize`` the left twiddle gets the singular vectors ``U``
    and the right one ``S Vh``; otherwise each gets ``sqrt(S)``.

    Returns
    -------
    pairs : list of (left, right)
        ``left`` of shape ``(a, b2*d, b1, c1*rank)``, ``right`` of shape
        ``(a*c1, d, rank*b2, c2)``, in the order of ``twiddles``.
    """
    b1, c2 = block_shape(twiddles[0], b2s[0], c1s[0])
    resolved = choose_svd_solver(solver, (b1, c2), rank)
    if resolved in ("gram", "subspace"):
        return [
            _view_split(
                T,
                b2,
                c1,
                rank,
                orthonormalize,
                n_jobs,
                random_state,
                thin=resolved == "gram",
            )
            for T, b2, c1 in zip(twiddles, b2s, c1s)
        ]
    return split_stacked(
        twiddles, b2s, c1s, rank, orthonormalize=orthonormalize, n_jobs=n_jobs
    )


def split_stacked(twiddles, b2s, c1s, rank, *, orthonormalize, n_jobs):
    """Split several twiddles whose blocks share one shape in one batched LAPACK SVD.

    ``b2s`` and ``c1s`` are per-twiddle sequences (or scalars for all).
    """
    n = len(twiddles)
    b2s = [b2s] * n if np.isscalar(b2s) else list(b2s)
    c1s = [c1s] * n if np.isscalar(c1s) else list(c1s)
    stacks = [split_blocks(T, b2, c1) for T, b2, c1 in zip(twiddles, b2s, c1s)]
    shapes = [M.shape for M in stacks]
    flat = [M.reshape(-1, *M.shape[2:]) for M in stacks]
    stack = flat[0] if n == 1 else np.concatenate(flat)
    del stacks, flat
    U, S, Vh = batched_truncated_svd(stack, rank, n_jobs=n_jobs)
    del stack
    out, offset = [], 0
    for T, b2, c1, shape in zip(twiddles, b2s, c1s, shapes):
        count = shape[0] * shape[1]
        part = slice(offset, offset + count)
        offset += count
        out.append(
            assemble_split(T.shape, b2, c1, U[part], S[part], Vh[part], orthonormalize)
        )
    return out


def assemble_split(shape, b2, c1, U, S, Vh, orthonormalize):
    """Left and right twiddles of a split from its blocks' truncated SVDs.

    ``U``, ``S``, ``Vh`` are stacked in the block order of
    :func:`~skbutterfly._twiddle.split_blocks` (``(a c1) (b2 d)`` flattened).
    """
    a, d, B, C = shape
    b1, c2 = B // b2, C // c1
    rank = S.shape[-1]
    S = S.astype(U.dtype, copy=False)
    if orthonormalize:
        Vh = S[..., :, None] * Vh
    else:
        root = np.sqrt(S)
        U = U * root[..., None, :]
        Vh = root[..., :, None] * Vh
    u = U.reshape(a * c1, b2 * d, b1, rank)
    vh = Vh.reshape(a * c1, b2 * d, rank, c2)
    return split_twiddles(u, vh, a, d, b2, c1)


def _top_eigvecs(G, rank):
    """Eigenvalues (ascending) and the eigenvectors of the ``rank`` largest."""
    values, vecs = np.linalg.eigh(G)
    k = min(rank, G.shape[-1])
    return values, vecs[..., ::-1][..., :k]


def _view_split(T, b2, c1, rank, orthonormalize, n_jobs, random_state, thin):
    a, d, B, C = T.shape
    b1, c2 = B // b2, C // c1
    # Block (i, k, j, l) = V[i, k, j, l] of shape (b1, c2); a view, not a copy.
    V = T.reshape(a, d, b1, b2, c1, c2).transpose(0, 4, 3, 1, 2, 5)
    k = min(rank, b1, c2)
    left6 = np.zeros((a, b2, d, b1, c1, rank), dtype=T.dtype)
    right6 = np.zeros((a, c1, d, rank, b2, c2), dtype=T.dtype)
    # Views of the outputs in the block order (a, c1, b2, d, ...).
    left_v = left6.transpose(0, 4, 1, 2, 3, 5)[..., :k]
    right_v = right6.transpose(0, 1, 4, 2, 3, 5)[..., :k, :]
    with blas_single_thread():
        if thin:
            wide = b1 <= c2
            axis = int(np.argmax([a, c1, b2, d]))
            work = V.size * min(b1, c2)
            # Fixed pieces, whatever n_jobs: a block's Gram matrix and products
            # are then computed on the same slice (the same memory alignment,
            # hence the same rounding) for any number of threads.
            size = V.shape[axis]
            piece = max(1, _PIECE_BYTES // (V.size // size * V.itemsize))
            BatchChunks(axis, size, n_jobs, work, piece=piece).run(
                lambda ix: _thin_chunk(
                    V[ix], left_v[ix], right_v[ix], k, wide, orthonormalize
                )
            )
        else:
            _iterative_split(
                V, left_v, right_v, k, orthonormalize, n_jobs, random_state
            )
    left = left6.reshape(a, b2 * d, b1, c1 * rank)
    right = right6.reshape(a * c1, d, rank * b2, c2)
    return left, right


# Bytes of blocks that one piece of the iterative path solves while they stay
# in cache (the machine's L2 is 1-2 MiB per core, L3 tens of MiB).
_PIECE_BYTES = 4 << 20


def _piece_axis(shape, itemsize):
    """Batch axis of blocks of shape ``(a, c1, b2, d, b1, c2)`` to cut pieces along.

    The outermost axis in memory order (``a``, ``d``, then ``b2``, whose
    slices are groups of whole rows of the twiddle) that has more than one
    index and whose index fits in a piece, so that a piece is a few compact
    regions of memory; returns it and the number of its indices per piece.
    """
    sizes = shape[:4]
    size = int(np.prod(shape))
    per_index = [size // n * itemsize for n in sizes]
    for axis in (0, 3, 2, 1):
        if sizes[axis] > 1 and per_index[axis] <= _PIECE_BYTES:
            return axis, _PIECE_BYTES // per_index[axis]
    axis = int(np.argmax(sizes))
    return axis, 1


def _blas_strided(V):
    """Whether every block of ``V`` is a matrix BLAS reads in place (unit stride)."""
    row, col = V.strides[-2:]
    return col == V.itemsize and row % V.itemsize == 0 and row >= col * V.shape[-1]


def _iterative_split(V, left_v, right_v, k, orthonormalize, n_jobs, rng, read=None):
    """Rank-``k`` split of the blocks ``V`` by pieces that fit in cache.

    Every piece (a fixed run of indices along one batch axis, a few MiB of
    blocks) is solved by :func:`dominant_triplets` while it stays in cache,
    with its own random stream; pieces are the same for any ``n_jobs``, so
    the factors are too. A piece is read in place when its blocks are
    matrices BLAS takes with their strides (the first product brings it into
    cache), else copied once into a reused contiguous buffer. ``read(ix,
    buffers)``, when given, returns the blocks of the piece ``ix`` instead
    (``V`` then only gives the shape and dtype, e.g. a gathered root split).
    """
    shape = V.shape
    b1, c2 = shape[-2:]
    axis, piece = _piece_axis(shape, V.itemsize)
    rng = rng if rng is not None else np.random.RandomState(0)
    draw = getattr(rng, "integers", None) or rng.randint
    seed = int(draw(0, 2**31 - 1))
    small = min(b1, c2) <= THIN_MAX
    in_place = read is None and _blas_strided(V)
    # Each thread reuses its buffers: fresh pages would cost page faults on
    # every piece.
    local = threading.local()

    def solve(ix):
        start = ix[axis].start or 0
        buffers = getattr(local, "buffers", None)
        if buffers is None:
            buffers = local.buffers = {}
        if read is not None:
            blocks = read(ix, buffers)
        elif in_place:
            blocks = V[ix]
        else:
            blocks = _reused(buffers, "piece", V[ix].shape, V.dtype)
            np.copyto(blocks, V[ix])
        U, R = dominant_triplets(
            blocks,
            k,
            np.random.default_rng([seed, start]),
            small=small,
            filter_buffer=_reused(
                buffers, "filter", blocks.shape, filter_dtype(V.dtype)
            ),
        )
        _store(left_v[ix], right_v[ix], U, R, orthonormalize)

    work = int(np.prod(shape)) * min(b1, c2)
    BatchChunks(axis, shape[axis], n_jobs, work, piece=piece).run(solve)


def _reused(buffers, name, shape, dtype):
    """A C-contiguous buffer of ``shape``, kept in ``buffers`` for the next piece."""
    held = buffers.get(name)
    if held is None or held.shape != tuple(shape) or held.dtype != dtype:
        held = buffers[name] = np.empty(shape, dtype)
    return held


# Bytes of whole rows one gather of the root split reads at once.
_GATHER_BYTES = 4 << 20


def gathered_root_split(
    A,
    row_perm,
    col_perm,
    b2,
    c1,
    rank,
    *,
    orthonormalize,
    solver,
    n_jobs,
    random_state,
    exponent=0,
    probes=None,
):
    """Root split of ``W = A[row_perm][:, col_perm] / 2**exponent``, read from ``A``.

    The permuted matrix is never formed. The blocks of the split are
    ``W[i2::b2, j1*c2:(j1+1)*c2]``; a gather reads whole rows of ``A`` (the
    rows ``i2 + b2 t`` of a run of ``i2``, contiguous in memory whatever the
    column permutation) into a reused buffer, permuting their columns in
    cache, and the blocks of the buffer are solved by
    :func:`dominant_triplets` a cache-sized batch at a time. Gathers and
    batches are fixed by the shapes (not by ``n_jobs``), each batch with its
    own random stream. With ``probes`` (real, shape ``(N, p)``), the rows
    in cache also give ``A @ probes / 2**exponent`` (the fit's error
    estimate), at no extra pass over ``A``.

    Returns
    -------
    pair : tuple of ndarray, or None
        ``(left, right)``, or None when the blocks do not take the iterative
        path (the caller then splits the permuted matrix).
    products : ndarray of shape (M, p) or None
        ``A @ probes / 2**exponent`` when ``probes`` is given.
    """
    M, N = A.shape
    b1, c2 = M // b2, N // c1
    if choose_svd_solver(solver, (b1, c2), rank) != "subspace":
        return None, None
    k = min(rank, b1, c2)
    small = min(b1, c2) <= THIN_MAX
    itemsize = A.dtype.itemsize
    left6 = np.zeros((1, b2, 1, b1, c1, rank), dtype=A.dtype)
    right6 = np.zeros((1, c1, 1, rank, b2, c2), dtype=A.dtype)
    # (c1, b2, b1, ...): the block order of the gather buffer.
    left_v = left6.transpose(0, 4, 1, 2, 3, 5)[0, :, :, 0, :, :k]
    right_v = right6.transpose(0, 1, 4, 2, 3, 5)[0, :, :, 0, :k, :]
    rows = np.arange(M) if row_perm is None else row_perm
    rows = rows.reshape(b1, b2)
    split = _column_split(col_perm, c1, c2)
    products = None
    if probes is not None and not exponent:  # (extreme values: estimated apart)
        # Row q of a gather buffer holds A's columns ``columns[q]``.
        if col_perm is None:
            columns = np.arange(N)
        elif split is None:
            columns = col_perm
        else:
            columns = (np.arange(c1)[:, None] + c1 * np.arange(c2)[None, :]).ravel()
        probes_buf = np.ascontiguousarray(probes[columns])
        products = np.empty((M, probes.shape[1]), dtype=A.dtype)
    # Small matrices gather less at once: the buffers then stay a small share
    # of the input (the estimator's fit peaks under 1.3x its input).
    gather_bytes = min(_GATHER_BYTES, max(1 << 20, A.nbytes // 16))
    groups = max(1, min(b2, gather_bytes // (b1 * N * itemsize)))
    batch = max(1, _PIECE_BYTES // (groups * b1 * c2 * itemsize))
    rng = random_state if random_state is not None else np.random.RandomState(0)
    draw = getattr(rng, "integers", None) or rng.randint
    seed = int(draw(0, 2**31 - 1))
    local = threading.local()

    def gather(group, buffers):
        """Blocks ``(c1, count, b1, c2)`` of the rows ``i2 + b2 t`` (``i2`` in group).

        Without a column permutation the blocks are copied contiguous (the
        iterative solver reads them many times on flat spectra). With one,
        the buffer keeps the rows in order (``(b1, count, N)``, each row's
        columns permuted) and the blocks are a BLAS-strided view of it.
        """
        count = group.stop - group.start
        if row_perm is None:
            A_rows = A.reshape(b1, b2, N)[:, group]
        else:
            A_rows = np.take(A, rows[:, group], axis=0)
        if col_perm is None:
            buf = _reused(buffers, "gather", (c1, count, b1, c2), A.dtype)
            np.copyto(buf, A_rows.reshape(b1, count, c1, c2).transpose(2, 1, 0, 3))
            blocks = buf
            rows_in_cache = A_rows  # just read: the probes find it in cache
        else:
            buf = _reused(buffers, "gather", (b1, count, c1, c2), A.dtype)
            if split is None:
                flat = buf.reshape(b1, count, N)
                np.take(A_rows, col_perm, axis=2, out=flat, mode="clip")
            else:
                # W's column j1*c2 + t is A's outer[j1] + c1*inner[t]: buffer
                # block outer[j1] holds A's columns j' + c1*s, a transpose of
                # each row's (c2, c1) tile (the row stays in cache).
                tiles = A_rows.reshape(b1, count, c2, c1).transpose(0, 1, 3, 2)
                np.copyto(buf, tiles)
            blocks = buf.transpose(2, 1, 0, 3)
            rows_in_cache = buf.reshape(b1, count, N)
        if exponent:  # exact: W = A / 2**exponent
            flat = buf.view(np.finfo(A.dtype).dtype)
            np.ldexp(flat, -exponent, out=flat)
        if products is not None:
            products[rows[:, group]] = probe_products(rows_in_cache, probes_buf)
        return blocks

    def solve(ix):
        group = ix[0]
        buffers = getattr(local, "buffers", None)
        if buffers is None:
            buffers = local.buffers = {}
        blocks = gather(group, buffers)
        for j in range(0, c1, batch):
            part = blocks[j : j + batch]
            U, R = dominant_triplets(
                part,
                k,
                np.random.default_rng([seed, group.start, j]),
                small=small,
                filter_buffer=_reused(
                    buffers, "filter", part.shape, filter_dtype(A.dtype)
                ),
            )
            if split is None:
                target = slice(j, j + batch)
            else:
                outer_inv, inner = split
                target = outer_inv[j : j + batch]
                R = np.take(R, inner, axis=-1)
            left_part = np.empty(U.shape, A.dtype)
            right_part = np.empty(R.shape, A.dtype)
            _store(left_part, right_part, U, R, orthonormalize)
            left_v[target, group] = left_part
            right_v[target, group] = right_part

    work = M * N * k
    with blas_single_thread():
        BatchChunks(0, b2, n_jobs, work, piece=groups).run(solve)
    pair = left6.reshape(1, b2, b1, c1 * rank), right6.reshape(c1, 1, rank * b2, c2)
    return pair, products


def _column_split(col_perm, c1, c2):
    """``(outer_inv, inner)`` when ``col_perm[j1*c2 + t] = outer[j1] + c1*inner[t]``.

    Digit reversals (bit reversal, the DFT's mixed-radix orders) have this
    form for every split of the chain: the columns of a block of ``W`` are
    then a strided set of ``A``'s, read by a transpose of tiles rather than a
    gather of single entries. None otherwise (or for the identity).
    """
    if col_perm is None:
        return None
    P = col_perm.reshape(c1, c2)
    outer, inner = P[:, 0] % c1, P[0] // c1
    if not np.array_equal(P, outer[:, None] + c1 * inner[None, :]):
        return None
    return np.argsort(outer), inner


def _store(left_v, right_v, U, R, orthonormalize):
    """Write a split's factors: ``U`` and ``R = S Vh``, or both times ``sqrt(S)``."""
    if orthonormalize:
        left_v[...] = U
        right_v[...] = R
        return
    root = np.sqrt(np.sqrt(np.vecdot(R, R).real))
    left_v[...] = U * root[..., None, :]
    right_v[...] = R / np.where(root > 0, root, 1)[..., :, None]


def _thin_chunk(V, left_v, right_v, k, wide, orthonormalize):
    """Fill the left/right factor views for the blocks ``V`` (..., b1, c2).

    Blocks whose Gram eigenvectors would lose precision
    (:func:`~skbutterfly._block_svd.gram_unreliable`) are solved again, all
    at once, by LAPACK's SVD.
    """
    if wide:
        # G = M M^H (b1 x b1); U from its eigenvectors; then W = U^H M = S Vh.
        G = np.vecdot(V[..., None, :, :], V[..., :, None, :])
        values, U = _top_eigvecs(G, k)
        U = U * pivot_phases(U).conj()
        np.matmul(np.swapaxes(U, -1, -2).conj(), V, out=right_v)
        S = np.linalg.norm(right_v, axis=-1)
        if orthonormalize:
            left_v[...] = U
        else:
            root = np.sqrt(S)
            left_v[...] = U * root[..., None, :]
            right_v /= np.where(root > 0, root, 1)[..., :, None]
    else:
        # G = M^H M (c2 x c2); V_r from its eigenvectors; then P = M V_r = U S.
        Vt = np.swapaxes(V, -1, -2)
        G = np.vecdot(Vt[..., :, None, :], Vt[..., None, :, :])
        values, Vr = _top_eigvecs(G, k)
        np.matmul(V, Vr, out=left_v)
        S = np.linalg.norm(left_v, axis=-2)
        left_v /= np.where(S > 0, S, 1)[..., None, :]
        phase = pivot_phases(left_v)
        left_v *= phase.conj()
        Vh = np.swapaxes(Vr, -1, -2).conj() * np.swapaxes(phase, -1, -2)
        if orthonormalize:
            right_v[...] = S[..., :, None] * Vh
        else:
            root = np.sqrt(S)
            left_v *= root[..., None, :]
            right_v[...] = root[..., :, None] * Vh
    bad = gram_unreliable(values, k, G.dtype)
    if bad.any():
        _solve_exactly(V, left_v, right_v, np.nonzero(bad), k, orthonormalize)


def _solve_exactly(V, left_v, right_v, index, k, orthonormalize):
    """Overwrite the factors of the blocks ``V[index]`` with LAPACK's SVD."""
    U, S, Vh = solve_blocks_exactly(V[index], k)
    S = S.astype(U.dtype, copy=False)
    if orthonormalize:
        left_v[index] = U
        right_v[index] = S[..., :, None] * Vh
    else:
        root = np.sqrt(S)
        left_v[index] = U * root[..., None, :]
        right_v[index] = root[..., :, None] * Vh
