"""One two-factor split of a twiddle: the cheapest exact path per block shape.

The blocks of a split of ``T`` (shape ``(a, d, B, C)``, ``B = b1*b2``,
``C = c1*c2``) are ``T.reshape(a, d, b1, b2, c1, c2)`` seen as a
``(a, c1, b2, d)`` batch of ``b1 x c2`` matrices. Two paths:

- **thin** (a side of the blocks is small): the small Gram matrix of every block
  is formed on a strided *view* of ``T`` (no copy), its eigenvectors give the
  singular vectors of that side, and one more pass writes the other side's
  factor straight into its twiddle layout. Two passes over ``T``, no transpose
  copy; this is the left-to-right and right-to-left trees' path.
- **stacked**: the blocks are copied once into a contiguous stack and go
  through one batched truncated SVD (LAPACK, or power/subspace iteration for
  large blocks at a small rank).
"""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.utils import gen_even_slices

from skbutterfly._svd import (
    batched_truncated_svd,
    blas_single_thread,
    choose_svd_solver,
    pivot_phases,
)
from skbutterfly._twiddle import split_blocks, split_twiddles

__all__ = ["THIN_MAX", "block_shape", "split_group", "split_stacked"]

# Blocks with a side of at most this size that do not settle under power
# iteration finish on the exact Gram path instead of a wider subspace.
THIN_MAX = 8

# Below this many multiply-adds the thin path runs serially.
_PARALLEL_MIN_WORK = 4e6


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
    if resolved in ("gram", "randomized"):
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
        twiddles,
        b2s,
        c1s,
        rank,
        orthonormalize=orthonormalize,
        solver=solver,
        n_jobs=n_jobs,
        random_state=random_state,
    )


def split_stacked(
    twiddles, b2s, c1s, rank, *, orthonormalize, solver, n_jobs, random_state
):
    """Split several twiddles whose blocks share one shape in one batched SVD.

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
    U, S, Vh = batched_truncated_svd(
        stack, rank, solver=solver, n_jobs=n_jobs, random_state=random_state
    )
    del stack
    out, offset = [], 0
    for T, b2, c1, shape in zip(twiddles, b2s, c1s, shapes):
        count = shape[0] * shape[1]
        part = slice(offset, offset + count)
        offset += count
        out.append(
            assemble_split(T, b2, c1, U[part], S[part], Vh[part], orthonormalize)
        )
    return out


def assemble_split(T, b2, c1, U, S, Vh, orthonormalize):
    """Left and right twiddles of a split from its blocks' truncated SVDs.

    ``U``, ``S``, ``Vh`` are stacked in the block order of
    :func:`~skbutterfly._twiddle.split_blocks` (``(a c1) (b2 d)`` flattened).
    """
    a, d, B, C = T.shape
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
    """Eigenvectors of the ``rank`` largest eigenvalues of Hermitian stacks."""
    _, vecs = np.linalg.eigh(G)
    k = min(rank, G.shape[-1])
    return vecs[..., ::-1][..., :k]


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
    axis = int(np.argmax([a, c1, b2, d]))
    chunks = _Chunks(axis, V.shape[axis], n_jobs, V.size * min(b1, c2))
    with blas_single_thread():
        if thin:
            wide = b1 <= c2
            chunks.run(
                lambda ix: _thin_chunk(
                    V[ix], left_v[ix], right_v[ix], k, wide, orthonormalize
                )
            )
        else:
            _subspace_split(V, left_v, right_v, k, orthonormalize, chunks, random_state)
    left = left6.reshape(a, b2 * d, b1, c1 * rank)
    right = right6.reshape(a * c1, d, rank * b2, c2)
    return left, right


class _Chunks:
    """Even slices of one batch axis, run on joblib threads when worth it."""

    def __init__(self, axis, size, n_jobs, work):
        self.axis = axis
        n_chunks = min(effective_n_jobs(n_jobs), size)
        if n_chunks <= 1 or work < _PARALLEL_MIN_WORK:
            self.slices = [slice(None)]
        else:
            self.slices = list(gen_even_slices(size, n_chunks))

    def run(self, func):
        index = [(slice(None),) * self.axis + (sl,) for sl in self.slices]
        if len(index) == 1:
            func(index[0])
        else:
            Parallel(n_jobs=len(index), prefer="threads")(
                delayed(func)(ix) for ix in index
            )


# Subspace iterations of the large-block view path: plain power steps first,
# then extra vectors and more steps if needed; the relative change of captured
# energy that stops them.
_POWER_ITER = 1
_SUBSPACE_OVERSAMPLE = 4
_SUBSPACE_MAX_ITER = 5
_SUBSPACE_TOL = 1e-12


def _orth(Y):
    """Orthonormal basis of the columns of every matrix of a stack."""
    if Y.shape[-1] == 1:
        norm = np.linalg.norm(Y, axis=-2, keepdims=True)
        return Y / np.where(norm > 0, norm, 1)
    return np.linalg.qr(Y)[0]


def _random_columns(rng, shape, dtype):
    X = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        X = X + 1j * rng.standard_normal(shape)
    return X.astype(dtype, copy=False)


def _subspace_split(V, left_v, right_v, k, orthonormalize, chunks, random_state):
    """Rank-``k`` split of the blocks ``V`` (..., b1, c2) by subspace iteration.

    ``Q`` spans an approximate dominant column space of every block; each step
    maps it through ``M^H`` then ``M``. It starts with ``k`` vectors (plain power
    iteration, which settles at once on exact and well-separated blocks such as
    those of butterflies) and, if some block has not settled after
    ``_POWER_ITER`` steps, goes on with ``_SUBSPACE_OVERSAMPLE`` more vectors,
    which converges much faster on flat spectra. Stops are decided on the
    whole batch (captured energy ``||Q^H M||_F`` steady for every block), so
    results do not depend on the chunking. A Rayleigh-Ritz step on
    ``Z = M^H Q`` then gives ``U`` and the right factor ``U^H M``, the best one
    for that ``U``.
    """
    b1, c2 = V.shape[-2:]
    batch = V.shape[:-2]
    rng = random_state if random_state is not None else np.random.default_rng(0)
    Vt = np.swapaxes(V, -1, -2)
    state = {"X": _random_columns(rng, (*batch, c2, k), V.dtype)}
    energy = np.empty(batch, dtype=V.real.dtype)

    def start(ix):  # Q = orth(M X), Z = M^H Q, and the captured energy
        state["Q"][ix] = _orth(np.matmul(V[ix], state["X"][ix]))
        project(ix)

    def project(ix):
        z = np.matmul(Vt[ix], state["Q"][ix].conj()).conj()
        state["Z"][ix] = z
        energy[ix] = np.einsum("...ij,...ij->...", z.real, z.real)
        if V.dtype.kind == "c":
            energy[ix] += np.einsum("...ij,...ij->...", z.imag, z.imag)

    def step(ix):
        state["Q"][ix] = _orth(np.matmul(V[ix], _orth(state["Z"][ix])))
        project(ix)

    def iterate(width, n_steps):
        state["Q"] = np.empty((*batch, b1, width), V.dtype)
        state["Z"] = np.empty((*batch, c2, width), V.dtype)
        chunks.run(start)
        for _ in range(n_steps):
            previous = energy.copy()
            chunks.run(step)
            # Steady energy: 1e-12 relative, or a few units of roundoff in float32.
        tol = max(_SUBSPACE_TOL, 100 * np.finfo(V.dtype).eps)
        if np.all(np.abs(energy - previous) <= tol * energy):
            return True
        return False

    width = min(k + _SUBSPACE_OVERSAMPLE, b1, c2)
    settled = iterate(k, _POWER_ITER)
    if not settled and min(b1, c2) <= THIN_MAX:
        # Small blocks that did not settle: their exact Gram path is cheaper
        # than more iterations.
        wide = b1 <= c2
        chunks.run(
            lambda ix: _thin_chunk(
                V[ix], left_v[ix], right_v[ix], k, wide, orthonormalize
            )
        )
        return
    if not settled and width > k:
        extra = _random_columns(rng, (*batch, c2, width - k), V.dtype)
        state["X"] = np.concatenate([state["Z"], extra], axis=-1)
        iterate(width, _SUBSPACE_MAX_ITER)

    Q, Z = state["Q"], state["Z"]

    def finish(ix):
        z = Z[ix]  # Z^H = Q^H M (width x c2)
        _, W = np.linalg.eigh(np.matmul(np.swapaxes(z, -1, -2).conj(), z))
        W = W[..., ::-1][..., :k]
        U = np.matmul(Q[ix], W)
        phase = pivot_phases(U)
        U = U * phase.conj()
        W = W * phase.conj()
        R = np.swapaxes(np.matmul(z, W), -1, -2).conj()  # U^H M = W^H Q^H M
        if orthonormalize:
            left_v[ix] = U
            right_v[ix] = R
        else:
            root = np.sqrt(np.linalg.norm(R, axis=-1))
            left_v[ix] = U * root[..., None, :]
            right_v[ix] = R / np.where(root > 0, root, 1)[..., :, None]

    chunks.run(finish)


def _thin_chunk(V, left_v, right_v, k, wide, orthonormalize):
    """Fill the left/right factor views for the blocks ``V`` (..., b1, c2)."""
    if wide:
        # G = M M^H (b1 x b1); U from its eigenvectors; then W = U^H M = S Vh.
        G = np.vecdot(V[..., None, :, :], V[..., :, None, :])
        U = _top_eigvecs(G, k)
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
        Vr = _top_eigvecs(G, k)
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
