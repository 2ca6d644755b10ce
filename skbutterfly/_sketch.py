"""The block source of an operator known by its products: shared probes, Nystrom.

The root split's blocks ``W[i2::b2, j1*c2:(j1+1)*c2]`` (``b1 x c2``) of the
working matrix ``W`` (see :mod:`skbutterfly._sources`) are sketched with probes
shared across blocks, without forming ``W``:

- right sketch: a Gaussian ``Omega_j1`` (``c2 x k``) per column class, placed
  in one block-sparse probe matrix of ``c1*k`` columns; ``W @ X`` holds
  ``block(i2, j1) @ Omega_j1`` for every ``i2`` (blocks of a column class have
  disjoint rows);
- left sketch: a Gaussian ``Psi_i2`` (``b1 x k'``) per row class, ``b2*k'``
  probes; ``W^H @ Z`` holds ``block(i2, j1)^H Psi_i2`` for every ``j1``.

Each block is then recovered by the generalized Nystrom formula
``block ~= Q (Psi^H Q)^+ Psi^H block`` with ``Q`` an orthonormal basis of the
right sketch and an eps-truncated pseudo-inverse (Nakatsukasa, 2020), truncated
to the rank by an SVD of the small factor; all blocks of a chunk of column
classes go through one batched call. Permutations and zero padding are applied
to the probes, never to the operator.
"""

# SPDX-License-Identifier: BSD-3-Clause

from math import ceil

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs

from skbutterfly._block_svd import (
    BatchChunks,
    _pad_rank,
    blas_single_thread,
    pivot_phases,
)
from skbutterfly._probes import (
    CheckedProducts,
    ProbedOperator,
    as_linear_operator,
    working_dtype,
)
from skbutterfly._sources import DenseSource
from skbutterfly._split import assemble_split

__all__ = ["OperatorSource", "operator_source"]

# Seed of the held-back error probes (independent of the fit's probes, and the
# same for every permutation candidate, so their errors compare fairly).
_ERROR_SEED = 0x5EED


def operator_source(A, name="A"):
    """The block source of an operator input (``ProbedOperator`` or not)."""
    if not isinstance(A, ProbedOperator):
        A = ProbedOperator(as_linear_operator(A, name))
    return OperatorSource(A, name=name)


def _inverse(perm):
    """The inverse permutation (None for the identity)."""
    if perm is None:
        return None
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(perm.size)
    return inverse


def _gaussian(rng, shape, dtype):
    """Standard (complex, when ``dtype`` is) Gaussian array of ``dtype``."""
    G = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        G = (G + 1j * rng.standard_normal(shape)) / np.sqrt(2)
    return G.astype(dtype, copy=False)


class OperatorSource:
    """The working matrix of a fit, known by the products of an operator.

    Parameters
    ----------
    probed : ProbedOperator
        The user's operator ``A`` with the probe settings.
    name : str, default="A"
        Name of the parameter that holds it (for errors).
    row_perm, col_perm : ndarray of int or None
        Permutations of the model ``A ~= P_r^T B P_c``.
    padded_shape : tuple of int, default=None
        Shape of the chain; None means ``A.shape``.

    Attributes
    ----------
    n_products : dict
        ``{"forward": int, "adjoint": int}`` products used by this source and
        its permuted copies (shared).
    """

    error_is_estimate = True
    exponent = 0

    def __init__(
        self,
        probed,
        *,
        name="A",
        row_perm=None,
        col_perm=None,
        padded_shape=None,
        _shared=None,
    ):
        self.probed = probed
        self.name = name
        self.shape = tuple(probed.shape)
        self.dtype = working_dtype(probed.dtype)
        self.row_perm = row_perm
        self.col_perm = col_perm
        self.padded_shape = tuple(padded_shape or self.shape)
        if _shared is None:
            counter = {"forward": 0, "adjoint": 0}
            _shared = {
                "counter": counter,
                "products": CheckedProducts(
                    probed.operator, name, self.dtype, [counter, probed.n_products]
                ),
            }
        self._shared = _shared
        self._inverses = [_inverse(row_perm), _inverse(col_perm)]
        self.n_products = _shared["counter"]
        self._products = _shared["products"]

    def permuted(self, row_perm, col_perm, padded_shape):
        """The source of ``A[row_perm][:, col_perm]``, padded to ``padded_shape``."""
        return OperatorSource(
            self.probed,
            name=self.name,
            row_perm=row_perm,
            col_perm=col_perm,
            padded_shape=padded_shape,
            _shared=self._shared,
        )

    def fingerprint(self):
        """None: an operator's content cannot be fingerprinted without probing it."""
        return None

    def release(self):
        """Nothing to release (no working copy is held)."""

    # Products with the working matrix W (permuted, zero-padded A).

    # Products with the working matrix W (permuted, zero-padded A). Probe
    # batches are held transposed, ``(k, N)`` C-ordered: the operator gets
    # column-major arrays (contiguous columns, as an FFT along axis 0 likes).

    def _forward(self, Xt, batch):
        """``(W @ Xt.T).T`` for probes ``Xt`` of shape ``(k, N)``."""
        return self._apply(Xt, batch, "forward")

    def _adjoint(self, Zt, batch):
        """``(W^H @ Zt.T).T`` for probes ``Zt`` of shape ``(k, M)``."""
        return self._apply(Zt, batch, "adjoint")

    def _apply(self, Xt, batch, side):
        m, n = self.shape
        size_in, size_out = (n, m) if side == "forward" else (m, n)
        out_perm = self.row_perm if side == "forward" else self.col_perm
        # W = A[row_perm][:, col_perm] padded: the user's input entry
        # ``perm[j]`` is the probe's entry ``j``; padded entries meet zeros.
        inverse = self._inverses[0 if side == "adjoint" else 1]
        Zt = Xt[:, :size_in] if inverse is None else np.take(Xt, inverse, axis=1)
        apply = self._products.forward if side == "forward" else self._products.adjoint
        Yt = apply(Zt.T, batch).T
        if out_perm is not None:
            Yt = np.take(Yt, out_perm, axis=1)
        padded = self.padded_shape[0 if side == "forward" else 1]
        if padded == size_out:
            return np.ascontiguousarray(Yt)
        out = np.zeros((Xt.shape[0], padded), self.dtype)
        out[:, :size_out] = Yt
        return out

    def _batched(self, side, n_cols, build, store, n_jobs):
        """Apply ``n_cols`` probe columns in batches within the memory budget.

        ``build(start, stop)`` returns the probe columns ``[start, stop)``;
        ``store(start, stop, product)`` keeps their product. Batches run on
        joblib threads (the operator's own threads, e.g. an FFT, release the
        GIL); they depend on the budget only, never on ``n_jobs``.
        """
        M, N = self.padded_shape
        m, n = self.shape
        workers = max(1, min(effective_n_jobs(n_jobs), n_cols))
        per_col = 2 * (M + N + m + n) * self.dtype.itemsize
        width = max(1, self.probed.max_probe_bytes // (workers * per_col))
        starts = list(range(0, n_cols, width))
        apply = self._forward if side == "forward" else self._adjoint

        def run(i, start):
            stop = min(start + width, n_cols)
            store(
                start, stop, apply(build(start, stop), f"{i} (columns {start}:{stop})")
            )

        if workers == 1 or len(starts) == 1:
            for i, start in enumerate(starts):
                run(i, start)
        else:
            Parallel(n_jobs=workers, prefer="threads")(
                delayed(run)(i, start) for i, start in enumerate(starts)
            )

    def _form(self, n_jobs):
        """``W`` itself, from ``N`` forward products (small matrices only)."""
        M, N = self.padded_shape
        W = np.empty((M, N), self.dtype)

        def build(start, stop):
            Xt = np.zeros((stop - start, N), self.dtype)
            Xt[np.arange(stop - start), np.arange(start, stop)] = 1
            return Xt

        def store(start, stop, Yt):
            W[:, start:stop] = Yt.T

        self._batched("forward", N, build, store, n_jobs)
        return W

    def _dense_small(self, cost, what, n_jobs):
        """The dense source of ``W`` when probing costs about as much as forming it.

        Small operators are formed once (``n`` forward products, shared by
        the permutation candidates); larger ones get an error that names the
        alternatives.
        """
        M, N = self.padded_shape
        if M * N * self.dtype.itemsize <= self.probed.max_probe_bytes:
            if "dense" not in self._shared:
                plain = OperatorSource(
                    self.probed, name=self.name, _shared=self._shared
                )
                self._shared["dense"] = plain._form(n_jobs)
            return DenseSource(self._shared["dense"]).permuted(
                self.row_perm, self.col_perm, self.padded_shape
            )
        raise ValueError(
            f"{self.name} is an operator of shape {self.shape}, and {what} needs "
            f"{cost} products, about as many as forming the matrix ({min(M, N)}). "
            "Fit it with tree='balanced' and a chain whose root split has about "
            "sqrt(n) row and column classes (square_dyadic_chain, monarch_chain), "
            "or form the matrix (A @ np.eye(n)) and fit that; a larger "
            "ProbedOperator(max_probe_bytes=...) forms small ones automatically."
        )

    def root_twiddle(self):
        """``W`` as the twiddle ``(1, 1, M, N)`` (the one-factor chain)."""
        N = self.padded_shape[1]
        dense = self._dense_small(N, "a one-factor chain (depth=1)", None)
        return dense.root_twiddle()

    def root_split(self, b2, c1, rank, *, orthonormalize, solver, n_jobs, random_state):
        """Rank-``rank`` split of ``W``: shared probes, then a batched Nystrom step."""
        M, N = self.padded_shape
        b1, c2 = M // b2, N // c1
        k = min(rank + self.probed.oversampling, c2)
        kl = min(ceil(self.probed.adjoint_ratio * k), b1)
        cost = c1 * k + b2 * kl
        if 2 * cost >= min(M, N):
            dense = self._dense_small(
                cost,
                f"sketching the root split ({b2} row and {c1} column classes)",
                n_jobs,
            )
            return dense.root_split(
                b2,
                c1,
                rank,
                orthonormalize=orthonormalize,
                solver=solver,
                n_jobs=n_jobs,
                random_state=random_state,
            )
        rng = random_state if random_state is not None else np.random.RandomState(0)
        omega = _gaussian(rng, (c1, c2, k), self.dtype)
        psi = _gaussian(rng, (b2, b1, kl), self.dtype)
        # Adjoint products first: an operator without one fails before any work.
        left_sketch = self._left_sketch(psi, c1, n_jobs)
        right_sketch = self._right_sketch(omega, b2, n_jobs)
        U, S, Vh = _nystrom(
            right_sketch, left_sketch, psi, rank, self.probed.max_probe_bytes, n_jobs
        )
        del left_sketch, right_sketch
        M, N = self.padded_shape
        return assemble_split((1, 1, M, N), b2, c1, U, S, Vh, orthonormalize)

    def _right_sketch(self, omega, b2, n_jobs):
        """``block(i2, j1) @ Omega_j1`` for all blocks, shape ``(c1, b2, b1, k)``."""
        c1, c2, k = omega.shape
        M, N = self.padded_shape
        sketch = np.empty((c1 * k, M), self.dtype)

        def build(start, stop):
            cols = np.arange(start, stop)
            Xt = np.zeros((stop - start, c1, c2), self.dtype)
            # Column ``j1*k + t`` holds Omega_j1[:, t] in the rows of class j1.
            Xt[cols - start, cols // k] = omega[cols // k, :, cols % k]
            return Xt.reshape(stop - start, N)

        def store(start, stop, Yt):
            sketch[start:stop] = Yt

        self._batched("forward", c1 * k, build, store, n_jobs)
        # Row i1*b2 + i2 of W is row i1 of the blocks of row class i2.
        return sketch.reshape(c1, k, M // b2, b2).transpose(0, 3, 2, 1)

    def _left_sketch(self, psi, c1, n_jobs):
        """``block(i2, j1)^H @ Psi_i2`` for all blocks, shape ``(c1, b2, c2, k')``."""
        b2, b1, kl = psi.shape
        M, N = self.padded_shape
        sketch = np.empty((b2 * kl, N), self.dtype)

        def build(start, stop):
            cols = np.arange(start, stop)
            Zt = np.zeros((stop - start, b1, b2), self.dtype)
            # Column ``i2*k' + t`` holds Psi_i2[:, t] in the rows i1*b2 + i2.
            Zt[cols - start, :, cols // kl] = psi[cols // kl, :, cols % kl]
            return Zt.reshape(stop - start, M)

        def store(start, stop, Vt):
            sketch[start:stop] = Vt

        self._batched("adjoint", b2 * kl, build, store, n_jobs)
        return sketch.reshape(b2, kl, c1, N // c1).transpose(2, 0, 3, 1)

    def _error_probes(self):
        """Held-back Gaussian probes ``G`` and ``A @ G`` (drawn once, shared)."""
        if "error_probes" not in self._shared:
            n = self.shape[1]
            rng = np.random.default_rng(_ERROR_SEED)
            G = _gaussian(rng, (n, self.probed.n_error_probes), self.dtype)
            AG = self._products.forward(np.asfortranarray(G), "of the error estimate")
            self._shared["error_probes"] = (G, AG)
        return self._shared["error_probes"]

    def relative_error(self, op):
        """Estimate of ``||A - op||_F / ||A||_F`` from held-back Gaussian probes.

        ``E ||(A - op) g||^2 = ||A - op||_F^2`` for a standard Gaussian ``g``:
        the ratio on ``n_error_probes`` vectors is within about
        ``1 / sqrt(n_error_probes)`` of the true error (relative).
        """
        G, AG = self._error_probes()
        norm = float(np.linalg.norm(AG))
        err = float(np.linalg.norm(AG - op.matmat(G)))
        if norm == 0:
            return 0.0 if err == 0 else float("inf")
        return err / norm

    def frobenius_norm(self):
        """Estimate of ``||A||_F`` from the held-back probes."""
        G, AG = self._error_probes()
        return float(np.linalg.norm(AG)) / np.sqrt(G.shape[1])


def _nystrom(right, left, psi, rank, budget, n_jobs):
    """Rank-``rank`` SVD factors of every block from its two sketches.

    ``right`` (``(c1, b2, b1, k)``) and ``left`` (``(c1, b2, c2, k')``) are the
    sketches, ``psi`` (``(b2, b1, k')``) the left probes. Chunks of column
    classes (sized by ``budget``) go through one batched call each, on joblib
    threads; the chunks do not depend on ``n_jobs``.

    Returns
    -------
    U : ndarray of shape (c1, b2, b1, rank)
    S : ndarray of shape (c1, b2, rank)
    Vh : ndarray of shape (c1, b2, rank, c2)
    """
    c1, b2, b1, k = right.shape
    c2, kl = left.shape[-2:]
    dtype = right.dtype
    U = np.zeros((c1, b2, b1, rank), dtype)
    S = np.zeros((c1, b2, rank), np.finfo(dtype).dtype)
    Vh = np.zeros((c1, b2, rank, c2), dtype)
    per_class = 6 * b2 * (b1 * k + c2 * kl) * dtype.itemsize
    width = max(1, budget // per_class)
    psi_h = np.conj(np.swapaxes(psi, -1, -2))

    def solve(chunk):
        u, s, vh = _nystrom_chunk(right[chunk], left[chunk], psi_h, rank)
        U[chunk], S[chunk], Vh[chunk] = _pad_rank(u, s, vh, rank)

    work = c1 * b2 * (b1 + c2) * k * kl  # multiply-adds, roughly
    with blas_single_thread():
        BatchChunks(0, c1, n_jobs, work, piece=width).run(lambda ix: solve(ix[0]))
    return U, S, Vh


def _nystrom_chunk(Y, Wt, psi_h, rank):
    """Generalized Nystrom on a stack: ``block ~= Q (Psi^H Q)^+ (block^H Psi)^H``."""
    Q, _ = np.linalg.qr(Y)  # (.., b1, ky), an orthonormal basis of the range
    D = psi_h @ Q  # (.., k', ky): Psi^H Q, well conditioned for Gaussian Psi
    Ud, Sd, Vdh = np.linalg.svd(D, full_matrices=False)
    # eps-truncated pseudo-inverse: directions with tiny Sd are dropped.
    rcond = 10 * max(D.shape[-2:]) * np.finfo(Sd.dtype).eps
    keep = Sd > rcond * Sd[..., :1]
    inv = np.where(keep, 1 / np.where(keep, Sd, 1), 0)
    # X = D^+ Psi^H block (ky x c2); its adjoint is Wt Ud diag(inv) Vdh.
    Xh = (Wt @ (Ud * inv[..., None, :])) @ Vdh
    P, s, Rh = np.linalg.svd(Xh, full_matrices=False)  # Xh = P diag(s) Rh
    r = min(rank, s.shape[-1])
    # block ~= Q Xh^H = (Q Rh^H) diag(s) P^H
    U = Q @ np.conj(np.swapaxes(Rh[..., :r, :], -1, -2))
    Vh = np.conj(np.swapaxes(P[..., :r], -1, -2))
    phase = pivot_phases(U)
    return U * phase.conj(), s[..., :r], Vh * np.swapaxes(phase, -1, -2)
