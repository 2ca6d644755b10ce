"""Where the root split's blocks come from: the seam between a matrix and the tree.

Only the root split of a fit reads the whole matrix; every later split works on
the root split's twiddles. A *block source* is what the root split reads. It
stands for the working matrix ``W`` of shape ``padded_shape``::

    W[i, j] = A[row_perm[i], col_perm[j]] / 2**exponent   (i < m, j < n)
    W[i, j] = 0                                           (padding)

and answers these questions:

- ``root_split(b2, c1, rank, ...)``: the rank-``rank`` split of ``W`` whose
  blocks are ``W[i2::b2, j1*c2:(j1+1)*c2]`` (strided rows, contiguous columns;
  ``b1 = M // b2``, ``c2 = N // c1``). It returns the left twiddle
  ``(1, b2, b1, c1*rank)`` and the right twiddle ``(c1, 1, rank*b2, c2)`` of
  :func:`~skbutterfly._twiddle.split_twiddles`, with ``U`` on the left and
  ``S Vh`` on the right when ``orthonormalize`` (each ``sqrt(S)`` otherwise).
- ``root_twiddle()``: ``W`` itself as a ``(1, 1, M, N)`` twiddle (depth-1 chains).
- ``relative_error(op)`` and ``frobenius_norm()``: the fit's error against the
  user's matrix ``A`` (exact or estimated; ``error_is_estimate`` says which).
- ``permuted(row_perm, col_perm, padded_shape)``: the source of another
  working matrix of the same ``A`` (permutation candidates).
- ``fingerprint()``: a key of ``W``'s content for the split cache, or None
  when the source cannot be fingerprinted cheaply (then nothing is cached).

:class:`DenseSource` reads an in-memory array;
:class:`~skbutterfly._sketch.OperatorSource` sketches a ``LinearOperator``
from its products (it also has ``n_products``, the forward and adjoint
products used, which the estimator reports as ``n_products_``). The chunked
source (dask, zarr, HDF5) implements the same methods.
:func:`as_source` picks the source of an input.
"""

# SPDX-License-Identifier: BSD-3-Clause

import hashlib

import numpy as np

from skbutterfly._diagnostics import probe_vectors
from skbutterfly._fusion import dense_row_blocks, is_chainable
from skbutterfly._split import gathered_root_split, split_group
from skbutterfly._twiddle import dense_to_twiddle
from skbutterfly._validation import max_abs

__all__ = [
    "DenseSource",
    "as_source",
    "frobenius_norm",
    "ldexp",
    "matrix_exponent",
    "relative_error",
    "scaled",
]

# Entries of the dense reconstruction formed at once when measuring errors.
_ERROR_ENTRIES = 1 << 17


class DenseSource:
    """The working matrix of a fit, read from an in-memory ndarray.

    Parameters
    ----------
    A : ndarray of shape (m, n)
        The validated matrix (see :func:`~skbutterfly._validation.check_matrix`).
        It is read, never modified.
    row_perm, col_perm : ndarray of int or None
        Row and column permutations of the model ``A ~= P_r^T B P_c``.
    padded_shape : tuple of int, default=None
        Shape of the chain (zero padding below and right of ``A``); None means
        ``A.shape``.
    exponent : int, default=0
        ``W`` is ``A / 2**exponent`` (exact), to keep block Gram matrices away
        from overflow and underflow.
    """

    error_is_estimate = False

    def __init__(
        self, A, *, row_perm=None, col_perm=None, padded_shape=None, exponent=0
    ):
        self.matrix = A
        self.shape = A.shape
        self.dtype = A.dtype
        self.row_perm = row_perm
        self.col_perm = col_perm
        self.padded_shape = tuple(padded_shape or A.shape)
        self.exponent = int(exponent)
        self._work = None
        self._fingerprint = None
        # Whether the root split forms ``A @ probe_vectors(A) / 2**exponent``
        # for the error estimate (kept in ``probe_products``).
        self.collect_probes = False
        self.probe_products = None

    def permuted(self, row_perm, col_perm, padded_shape):
        """The source of ``A[row_perm][:, col_perm]``, padded to ``padded_shape``."""
        return DenseSource(
            self.matrix,
            row_perm=row_perm,
            col_perm=col_perm,
            padded_shape=padded_shape,
            exponent=self.exponent,
        )

    def _working_matrix(self):
        """``W`` (``A`` itself, not a copy, when nothing applies)."""
        if self._work is None:
            A, (m, n) = self.matrix, self.shape
            work = A
            # np.take gathers about 3x faster than fancy indexing here.
            if self.row_perm is not None:
                work = np.take(work, self.row_perm, axis=0)
            if self.col_perm is not None:
                work = np.take(work, self.col_perm, axis=1)
            if self.padded_shape != (m, n):
                padded = np.zeros(self.padded_shape, dtype=A.dtype)
                padded[:m, :n] = work
                work = padded
            if self.exponent:
                work = ldexp(work, -self.exponent, out=None if work is A else work)
            self._work = work
        return self._work

    def release(self):
        """Drop the working copy (the fit no longer needs it)."""
        self._work = None

    def root_twiddle(self):
        """``W`` as the twiddle ``(1, 1, M, N)`` of the one-factor chain."""
        M, N = self.padded_shape
        return dense_to_twiddle(self._working_matrix(), (1, M, N, 1))

    def root_split(self, b2, c1, rank, *, orthonormalize, solver, n_jobs, random_state):
        """Rank-``rank`` split of ``W`` into a left and a right twiddle."""
        if self.padded_shape == self.shape and self._work is None:
            # The iterative path reads the permuted blocks straight from A
            # (and forms the error estimate's probe products on the way).
            probes = probe_vectors(self.matrix) if self.collect_probes else None
            pair, self.probe_products = gathered_root_split(
                self.matrix,
                self.row_perm,
                self.col_perm,
                b2,
                c1,
                rank,
                orthonormalize=orthonormalize,
                solver=solver,
                n_jobs=n_jobs,
                random_state=random_state,
                exponent=self.exponent,
                probes=probes,
            )
            if pair is not None:
                return pair
        ((left, right),) = split_group(
            [self.root_twiddle()],
            [b2],
            [c1],
            rank,
            orthonormalize=orthonormalize,
            solver=solver,
            n_jobs=n_jobs,
            random_state=random_state,
        )
        return left, right

    def fingerprint(self):
        """Digest of ``W``'s bytes, shape and dtype."""
        if self._fingerprint is None:
            W = np.ascontiguousarray(self._working_matrix())
            digest = hashlib.blake2b(digest_size=16)
            digest.update(W.view(np.uint8).reshape(-1))
            self._fingerprint = (digest.hexdigest(), W.shape, W.dtype.str)
        return self._fingerprint

    def relative_error(self, op):
        """``||A - op||_F / ||A||_F`` against the user's matrix."""
        return relative_error(op, self.matrix)

    def frobenius_norm(self):
        """``||A||_F`` without overflow or underflow."""
        return frobenius_norm(self.matrix)


def as_source(A, name="A"):
    """The block source of the matrix ``A`` given by the user, whatever its kind.

    Chunked arrays (dask, zarr, h5py; recognized by their type's module, so
    without importing them) are read chunk by chunk by
    :class:`~skbutterfly._chunked.ChunkedSource`; operators known by their
    products (a ``LinearOperator``, or what ``aslinearoperator`` accepts that is
    not an array) are sketched by :class:`~skbutterfly._sketch.OperatorSource`;
    everything else is validated into an in-memory ndarray
    (:func:`~skbutterfly._factorize.dense_source`).
    """
    from skbutterfly._chunked import chunked_source, is_chunked
    from skbutterfly._factorize import dense_source
    from skbutterfly._probes import is_operator_input
    from skbutterfly._sketch import operator_source
    from skbutterfly._validation import check_matrix

    if is_chunked(A):
        return chunked_source(A, name=name)
    if is_operator_input(A):
        return operator_source(A, name=name)
    return dense_source(check_matrix(A, name=name, finite=False), name=name)


def relative_error(op, A):
    """Relative Frobenius error ``||A - op||_F / ||A||_F`` (0 when both are zero).

    The dense form of ``op`` is built by blocks of rows (merging its factors),
    each compared with the same rows of ``A`` and dropped: the extra memory is
    a few MiB and the two fused halves of the chain, never a copy of ``A``.
    """
    # Norms are taken on A / 2**e (exact) so that they neither overflow nor
    # underflow for entries near the ends of the floating point range.
    exponent = matrix_exponent(A)
    m, n = A.shape
    err2 = norm2 = 0.0
    for rows, cols, block in _approximation_rows(op):
        start, stop = rows.start, min(rows.stop, m)
        if start >= stop:
            continue
        index = np.arange(start, stop)
        if op.row_perm is not None:
            index = op.row_perm[index]
        block_a = np.take(A, index, axis=0)
        if op.col_perm is not None:
            # A_hat[:, col_perm[j]] = B[:, j]: compare B with A[:, col_perm].
            block_a = np.take(block_a, op.col_perm, axis=1)
        block_a = ldexp(block_a, -exponent, out=block_a)
        norm2 += float(np.linalg.norm(block_a)) ** 2
        # block_a -= the approximation's rows (zero outside ``cols``).
        width = min(cols.stop, n) - cols.start
        if width > 0:
            approx = ldexp(block[: stop - start, :width], -exponent)
            block_a[:, cols.start : cols.start + width] -= approx
            del approx
        err2 += float(np.linalg.norm(block_a)) ** 2
    if norm2 == 0:
        return 0.0 if err2 == 0 else float("inf")
    return float(np.sqrt(err2 / norm2))


def _approximation_rows(op):
    """``(rows, cols, block)`` of the chain's dense product, a few MiB at a time."""
    if op._source is None and is_chainable(op.chain):
        yield from dense_row_blocks(op.twiddles, op.chain, _ERROR_ENTRIES)
        return
    # A transpose (or an unchainable chain): the dense form, without padding.
    dense = op.toarray()
    if op.row_perm is not None:
        dense = dense[op.row_perm]
    if op.col_perm is not None:
        dense = dense[:, op.col_perm]
    yield slice(0, dense.shape[0]), slice(0, dense.shape[1]), dense


def matrix_exponent(A, top=None):
    """Binary exponent ``e`` of ``max|A|`` (``max|A| / 2**e`` in [0.5, 1)); 0 for 0."""
    top = max_abs(A) if top is None else top
    return int(np.frexp(top)[1]) if top > 0 else 0


def scaled(A, exponent=None):
    """``(A / 2**e, e)``, exact; ``e`` defaults to the exponent of ``max|A|``."""
    if exponent is None:
        exponent = matrix_exponent(A)
    return (ldexp(A, -exponent) if exponent else A), exponent


def frobenius_norm(A):
    """``||A||_F`` without overflow or underflow in the squares.

    Matrices whose magnitudes could overflow or underflow when squared are
    scaled by an exact power of two, a few MiB of rows at a time (never a
    copy of ``A``).
    """
    exponent = matrix_exponent(A)
    if A.dtype.kind not in "fc" or abs(exponent) <= np.finfo(A.dtype).maxexp // 4:
        return float(np.linalg.norm(A))
    step = max(1, _ERROR_ENTRIES // max(1, A.shape[-1]))
    total = 0.0
    for start in range(0, A.shape[0], step):
        total += float(np.linalg.norm(ldexp(A[start : start + step], -exponent))) ** 2
    return float(np.ldexp(np.sqrt(total), exponent))


def ldexp(X, exponent, out=None):
    """``X * 2**exponent`` exactly, for real or complex ``X``, any exponent.

    ``np.ldexp`` scales the values themselves, so no factor ``2**exponent``
    (which may not be representable) is formed.
    """
    if out is None:
        out = np.empty_like(X)
    if X.dtype.kind == "c":
        np.ldexp(X.real, exponent, out=out.real)
        np.ldexp(X.imag, exponent, out=out.imag)
    else:
        np.ldexp(X, exponent, out=out)
    return out
