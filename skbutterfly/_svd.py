"""Batched truncated SVDs of stacks of small blocks, chunked over joblib threads."""

# SPDX-License-Identifier: BSD-3-Clause

import threading
from contextlib import contextmanager

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.utils import gen_even_slices
from threadpoolctl import ThreadpoolController

__all__ = ["batched_truncated_svd", "choose_svd_solver"]

# Below this many floating point operations a batch runs serially: joblib's
# fixed cost (about 10 ms here) would exceed the gain.
_PARALLEL_MIN_FLOPS = 2e7

_controller = None
_controller_lock = threading.Lock()
_blas_cap = {"users": 0, "limiter": None}
_blas_cap_lock = threading.Lock()


def _blas_controller():
    """A lazily built, process-wide threadpoolctl controller (it scans libraries)."""
    global _controller
    with _controller_lock:
        if _controller is None:
            _controller = ThreadpoolController()
    return _controller


@contextmanager
def blas_single_thread():
    """Hold BLAS to one thread while any thread of the process is inside.

    threadpoolctl limits are process-wide, so concurrent fits share one limit:
    the first to enter sets it and the last to leave restores the original
    (nested or overlapping limits would otherwise restore each other's saved
    state in the wrong order).
    """
    with _blas_cap_lock:
        if _blas_cap["users"] == 0:
            _blas_cap["limiter"] = _blas_controller().limit(limits=1, user_api="blas")
        _blas_cap["users"] += 1
    try:
        yield
    finally:
        with _blas_cap_lock:
            _blas_cap["users"] -= 1
            if _blas_cap["users"] == 0:
                _blas_cap["limiter"].restore_original_limits()
                _blas_cap["limiter"] = None


def choose_svd_solver(solver, block_shape, rank):
    """Resolve ``solver="auto"`` for blocks of ``block_shape`` truncated at ``rank``.

    Small blocks, or ranks that are a large share of the block, use LAPACK's
    full SVD; large blocks at a small rank use the iterative solver.
    """
    if solver != "auto":
        return solver
    small = min(block_shape)
    if small <= 2:
        return "gram"
    if 8 * rank <= small:
        # Iterative path (power steps, then a Chebyshev filter) on pieces that
        # stay in cache; it settles at once on butterfly blocks, and falls
        # back to the Gram path for small blocks that do not. With fewer than
        # eight dimensions per wanted vector its filter gains too little per
        # round on noisy low-rank blocks: LAPACK is faster there.
        return "randomized"
    return "gram" if small <= 8 else "full"


def pivot_phases(U):
    """Phases (shape ``(..., 1, k)``) of the largest-magnitude entry of each column.

    SVD signs (phases, for complex data) are arbitrary; dividing every left
    singular vector by its pivot's phase fixes them per block, which makes
    results independent of the solver path and of the chunking.
    """
    idx = np.argmax(np.abs(U), axis=-2)[..., None, :]
    pivot = np.take_along_axis(U, idx, axis=-2)
    mag = np.abs(pivot)
    return np.where(mag > 0, pivot / np.where(mag > 0, mag, 1), 1)


def _flip_phases(U, S, Vh):
    phase = pivot_phases(U)
    return U * phase.conj(), S, Vh * np.swapaxes(phase, -1, -2)


def _svd_full(M, rank):
    U, S, Vh = np.linalg.svd(M, full_matrices=False)
    return U[..., :rank], S[..., :rank], Vh[..., :rank, :]


def _svd_gram(M, rank):
    """SVD through the eigendecomposition of the small Gram matrix.

    For blocks with one side of size <= 2 this is several times faster than
    LAPACK's SVD; the small side's Gram matrix is formed in full precision.
    """
    p, q = M.shape[-2:]
    if p <= q:
        G = M @ np.swapaxes(M, -1, -2).conj()
        w, U = np.linalg.eigh(G)
        w, U = w[..., ::-1], U[..., ::-1]
        U = U[..., :, :rank]
        W = np.swapaxes(U, -1, -2).conj() @ M  # = S Vh
        S = np.linalg.norm(W, axis=-1)
        Vh = W / np.where(S > 0, S, 1)[..., None]
    else:
        G = np.swapaxes(M, -1, -2).conj() @ M
        w, V = np.linalg.eigh(G)
        w, V = w[..., ::-1], V[..., ::-1]
        V = V[..., :, :rank]
        W = M @ V  # = U S
        S = np.linalg.norm(W, axis=-2)
        U = W / np.where(S > 0, S, 1)[..., None, :]
        Vh = np.swapaxes(V, -1, -2).conj()
    return U, S, Vh


def _svd_randomized(M, rank, omega, n_iter):
    """Randomized subspace iteration on a stack, with a given test matrix."""
    Q, _ = np.linalg.qr(M @ omega)
    Mh = np.swapaxes(M, -1, -2).conj()
    for _ in range(n_iter):
        Z, _ = np.linalg.qr(Mh @ Q)
        Q, _ = np.linalg.qr(M @ Z)
    B = np.swapaxes(Q, -1, -2).conj() @ M
    Ub, S, Vh = np.linalg.svd(B, full_matrices=False)
    U = Q @ Ub
    return U[..., :rank], S[..., :rank], Vh[..., :rank, :]


def _svd_chunk(M, rank, solver, omega, n_iter):
    if solver == "full":
        out = _svd_full(M, rank)
    elif solver == "gram":
        out = _svd_gram(M, rank)
    else:
        out = _svd_randomized(M, rank, omega, n_iter)
    return _flip_phases(*out)


def _pad_rank(U, S, Vh, rank):
    """Zero-pad to ``rank`` components when a block is smaller than the rank."""
    k = S.shape[-1]
    if k >= rank:
        return U, S, Vh
    pad = rank - k
    U = np.concatenate([U, np.zeros((*U.shape[:-1], pad), U.dtype)], axis=-1)
    S = np.concatenate([S, np.zeros((*S.shape[:-1], pad), S.dtype)], axis=-1)
    Vh = np.concatenate(
        [Vh, np.zeros((*Vh.shape[:-2], pad, Vh.shape[-1]), Vh.dtype)], -2
    )
    return U, S, Vh


def batched_truncated_svd(
    M, rank, *, solver="auto", n_jobs=None, random_state=None, n_iter=4, oversample=8
):
    """Rank-``rank`` SVD of every matrix of a stack ``M`` of shape ``(k, p, q)``.

    Parameters
    ----------
    M : ndarray of shape (k, p, q)
        Stack of blocks (any leading batch shape is flattened).
    rank : int
        Number of singular triplets kept per block.
    solver : {"auto", "full", "gram", "randomized"}, default="auto"
        ``"full"``: LAPACK SVD; ``"gram"``: eigendecomposition of the small
        Gram matrix (blocks with a side <= 2); ``"randomized"``: subspace
        iteration; ``"auto"``: chosen by block shape and rank.
    n_jobs : int, default=None
        Threads over chunks of the batch axis. BLAS is held to one thread.
    random_state : numpy.random.Generator, default=None
        Source of the test matrices of the randomized solver. They are drawn for
        the whole batch before chunking, so results do not depend on ``n_jobs``.
    n_iter : int, default=4
        Power iterations of the randomized solver.
    oversample : int, default=8
        Extra columns of the randomized test matrix.

    Returns
    -------
    U : ndarray of shape (k, p, rank)
    S : ndarray of shape (k, rank)
        Real, non-increasing.
    Vh : ndarray of shape (k, rank, q)
    """
    batch, (p, q) = M.shape[:-2], M.shape[-2:]
    M = M.reshape(-1, p, q)
    k = M.shape[0]
    solver = choose_svd_solver(solver, (p, q), rank)
    omega = None
    if solver == "randomized":
        width = min(rank + oversample, p, q)
        if random_state is None:
            random_state = np.random.default_rng(0)
        omega = random_state.standard_normal((k, q, width)).astype(M.dtype, copy=False)
        if np.iscomplexobj(M):
            omega = omega + 1j * random_state.standard_normal((k, q, width))
            omega = omega.astype(M.dtype, copy=False)
    flops = k * p * q * min(p, q) * (4 if solver == "full" else 2 * (2 + n_iter))
    n_chunks = min(effective_n_jobs(n_jobs), k)
    with blas_single_thread():
        if n_chunks <= 1 or flops < _PARALLEL_MIN_FLOPS:
            U, S, Vh = _svd_chunk(M, rank, solver, omega, n_iter)
        else:
            parts = Parallel(n_jobs=n_chunks, prefer="threads")(
                delayed(_svd_chunk)(
                    M[s], rank, solver, None if omega is None else omega[s], n_iter
                )
                for s in gen_even_slices(k, n_chunks)
            )
            U, S, Vh = (np.concatenate(x) for x in zip(*parts))
    U, S, Vh = _pad_rank(U, S, Vh, rank)
    r = U.shape[-1]
    return (
        U.reshape(*batch, p, r),
        S.reshape(*batch, r),
        Vh.reshape(*batch, r, q),
    )
