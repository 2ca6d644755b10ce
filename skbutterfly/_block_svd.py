"""The block solvers of a split, by name, and the one way their batches run in parallel.

Each solver name means one algorithm:

- ``"full"``: LAPACK's SVD of every block of a contiguous stack
  (:func:`batched_truncated_svd`);
- ``"gram"``: the eigendecomposition of each block's small Gram matrix, formed
  on strided views (the thin path of :mod:`skbutterfly._split`);
- ``"subspace"``: power steps, then a Chebyshev-filtered subspace iteration
  (:func:`~skbutterfly._subspace.dominant_triplets`), on pieces of the batch
  that stay in cache.

``"auto"`` picks one per block shape and rank (:func:`choose_svd_solver`).
Batches are cut by :class:`BatchChunks` and run on joblib threads while BLAS is
held to one thread (:func:`blas_single_thread`), so that threads times BLAS
threads never exceed the cores.
"""

# SPDX-License-Identifier: BSD-3-Clause

import threading
import warnings
from contextlib import contextmanager

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.utils import gen_batches, gen_even_slices
from threadpoolctl import ThreadpoolController

__all__ = [
    "SVD_SOLVERS",
    "BatchChunks",
    "batched_truncated_svd",
    "blas_single_thread",
    "canonical_solver",
    "choose_svd_solver",
    "gram_unreliable",
    "pivot_phases",
    "solve_blocks_exactly",
]

# Accepted values of ``svd_solver``; "randomized" is the 0.1 name of
# "subspace", kept as a deprecated alias.
SVD_SOLVERS = ("auto", "full", "gram", "subspace", "randomized")

# Below this many multiply-adds a batch runs serially: joblib's fixed cost
# (about 10 ms here) would exceed the gain.
PARALLEL_MIN_WORK = 4e6

_controller = None
_controller_lock = threading.Lock()
_blas_cap = {"users": 0, "saved": ()}
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
    state in the wrong order). The BLAS libraries' own thread setters are
    called directly: a ``threadpool_limits`` context costs about 13 us, more
    than a small product it would wrap.
    """
    with _blas_cap_lock:
        if _blas_cap["users"] == 0:
            libraries = [
                lib
                for lib in _blas_controller().lib_controllers
                if lib.user_api == "blas"
            ]
            _blas_cap["saved"] = [(lib, lib.get_num_threads()) for lib in libraries]
            for lib in libraries:
                lib.set_num_threads(1)
        _blas_cap["users"] += 1
    try:
        yield
    finally:
        with _blas_cap_lock:
            _blas_cap["users"] -= 1
            if _blas_cap["users"] == 0:
                for lib, n_threads in _blas_cap["saved"]:
                    if n_threads is not None:
                        lib.set_num_threads(n_threads)
                _blas_cap["saved"] = ()


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
        return "subspace"
    return "gram" if small <= 8 else "full"


def canonical_solver(solver):
    """The solver's current name (``"randomized"`` is now ``"subspace"``; warns)."""
    if solver == "randomized":
        warnings.warn(
            "svd_solver='randomized' was renamed 'subspace' in 0.2 (it runs the "
            "subspace iteration of skbutterfly's block solver); the old name "
            "will be removed in 0.4.",
            FutureWarning,
            stacklevel=3,
        )
        return "subspace"
    return solver


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


# A Gram matrix squares the condition number: the eigenvectors of its ``k``
# leading eigenvalues move by about ``eps * lambda_1 / gap`` (``gap`` the
# eigengap at the truncation), which adds about ``eps * lambda_1 / sqrt(gap)``
# to the block's error. The Gram path keeps a block when that is at most
# ``GRAM_MAX_COND * eps`` times its norm (exact to machine precision up to
# that factor) or ``GRAM_TRUNCATION_SHARE`` of the error the truncation
# leaves anyway; other blocks are solved again by LAPACK.
GRAM_MAX_COND = 100.0
GRAM_TRUNCATION_SHARE = 1e-2


def gram_unreliable(eigenvalues, k, dtype):
    """Blocks whose rank-``k`` Gram eigenvectors would lose precision.

    Parameters
    ----------
    eigenvalues : ndarray of shape (..., s)
        Eigenvalues of each block's Gram matrix (``M M^H`` or ``M^H M``) in
        ascending order, as :func:`numpy.linalg.eigh` returns them.
    k : int
        Number of leading eigenvectors kept.
    dtype : dtype
        Precision in which the Gram matrices were formed.

    Returns
    -------
    mask : ndarray of bool, shape (...)
        True for the blocks whose leading eigenvectors are not accurate enough:
        their ``k``-th and ``(k+1)``-th eigenvalues are too close compared
        with the largest (``lambda_1 / gap > GRAM_MAX_COND**2``) while the
        energy dropped by the truncation is too small to hide the error. A
        block that keeps all its eigenvectors (``k >= s``) is always exact.
    """
    s = eigenvalues.shape[-1]
    if k >= s:
        return np.zeros(eigenvalues.shape[:-1], dtype=bool)
    eps = np.finfo(dtype).eps
    desc = eigenvalues[..., ::-1].real
    top = desc[..., 0]
    with np.errstate(under="ignore", divide="ignore", invalid="ignore"):
        scale = np.where(top > 0, top, 1)
        # Relative to lambda_1 (no overflow at any scale); eigenvalues carry
        # absolute errors of about s * eps * lambda_1, taken off the dropped
        # energy so that roundoff is not mistaken for truncation.
        gap = np.maximum(desc[..., k - 1] - desc[..., k], 0) / scale
        dropped = np.maximum(desc[..., k:].sum(axis=-1) / scale - s * eps, 0)
        accurate = (gap * GRAM_MAX_COND**2 >= 1) | (
            eps**2 <= GRAM_TRUNCATION_SHARE**2 * dropped * gap
        )
    return ~accurate & (top > 0)


def solve_blocks_exactly(M, rank):
    """Rank-``rank`` LAPACK SVD of a stack, phases fixed (``U``, ``S``, ``Vh``)."""
    return _svd_chunk(M, rank)


def _flip_phases(U, S, Vh):
    phase = pivot_phases(U)
    return U * phase.conj(), S, Vh * np.swapaxes(phase, -1, -2)


def _svd_full(M, rank):
    U, S, Vh = np.linalg.svd(M, full_matrices=False)
    return U[..., :rank], S[..., :rank], Vh[..., :rank, :]


def _svd_chunk(M, rank):
    return _flip_phases(*_svd_full(M, rank))


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


def batched_truncated_svd(M, rank, *, n_jobs=None):
    """Rank-``rank`` LAPACK SVD of every matrix of a stack ``M`` of shape ``(k, p, q)``.

    Parameters
    ----------
    M : ndarray of shape (k, p, q)
        Stack of blocks (any leading batch shape is flattened).
    rank : int
        Number of singular triplets kept per block; blocks smaller than the
        rank are zero-padded.
    n_jobs : int, default=None
        Threads over even chunks of the batch axis. BLAS is held to one thread.

    Returns
    -------
    U : ndarray of shape (k, p, rank)
    S : ndarray of shape (k, rank)
        Real, non-increasing.
    Vh : ndarray of shape (k, rank, q)
        Phases fixed by :func:`pivot_phases`, so results do not depend on the
        chunking.
    """
    batch, (p, q) = M.shape[:-2], M.shape[-2:]
    M = M.reshape(-1, p, q)
    k = M.shape[0]
    parts = {}

    def solve(ix):
        parts[ix[0].start] = _svd_chunk(M[ix], rank)

    with blas_single_thread():
        BatchChunks(0, k, n_jobs, k * p * q * min(p, q)).run(solve)
    U, S, Vh = (np.concatenate(x) for x in zip(*(parts[s] for s in sorted(parts))))
    U, S, Vh = _pad_rank(U, S, Vh, rank)
    r = U.shape[-1]
    return (
        U.reshape(*batch, p, r),
        S.reshape(*batch, r),
        Vh.reshape(*batch, r, q),
    )


class BatchChunks:
    """Slices of one batch axis, run on joblib threads when worth it.

    Without ``piece``, one even slice per job; with it, fixed runs of
    ``piece`` indices (the unit of work, whatever ``n_jobs``), which the jobs
    take in even groups. ``work`` (multiply-adds) below
    :data:`PARALLEL_MIN_WORK` runs serially. Callers hold BLAS to one thread
    (:func:`blas_single_thread`) around :meth:`run`.
    """

    def __init__(self, axis, size, n_jobs, work, piece=None):
        self.axis = axis
        n_jobs = min(effective_n_jobs(n_jobs), size)
        if work < PARALLEL_MIN_WORK:
            n_jobs = 1
        if piece is None:
            slices = list(gen_even_slices(size, n_jobs)) if n_jobs > 1 else None
            self.groups = [[s] for s in slices] if slices else [[slice(0, size)]]
        else:
            pieces = list(gen_batches(size, piece))
            n_groups = min(n_jobs, len(pieces))
            self.groups = [pieces[g] for g in gen_even_slices(len(pieces), n_groups)]

    def run(self, func):
        """Call ``func(index)`` for every slice, ``index`` a tuple for ``V[index]``."""
        lead = (slice(None),) * self.axis

        def run_group(group):
            for sl in group:
                func((*lead, sl))

        if len(self.groups) == 1:
            run_group(self.groups[0])
        else:
            Parallel(n_jobs=len(self.groups), prefer="threads")(
                delayed(run_group)(group) for group in self.groups
            )
