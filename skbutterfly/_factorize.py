"""``butterfly_factorize``: the function front door of the shared numerical core."""

# SPDX-License-Identifier: BSD-3-Clause

import warnings
from numbers import Integral

import numpy as np
from sklearn.utils import check_random_state

from skbutterfly._chain import chain_shape, resolve_architecture
from skbutterfly._hierarchical import TREES, hierarchical_factorize
from skbutterfly._operator import ButterflyOperator
from skbutterfly._permutation import bit_reversal, candidate_permutations
from skbutterfly._validation import check_finite, check_matrix, max_abs

__all__ = ["butterfly_factorize"]

SVD_SOLVERS = ("auto", "full", "gram", "randomized")

# Columns of the dense reconstruction formed at once when measuring errors.
_ERROR_CHUNK = 256


def _resolve_permutation(permutation, shape):
    """Turn the ``permutation`` parameter into candidates of ``(rows, cols)``.

    Returns a list of ``(name, row_perm, col_perm)``; more than one candidate
    means "keep the best".
    """
    m, n = shape
    if permutation is None:
        return [("identity", None, None)]
    if isinstance(permutation, str):
        if permutation == "bit-reversal":
            return [("bit-reversal", None, bit_reversal(n))]
        if permutation == "auto":
            return [(name, None, p) for name, p in candidate_permutations(n)]
        if permutation == "identify":
            return [("identify", None, None)]
        raise ValueError(
            f"permutation={permutation!r} must be None, 'bit-reversal', 'auto', "
            "'identify', an index array, a (row_perm, col_perm) tuple or a list "
            "of candidates."
        )
    if isinstance(permutation, tuple) and len(permutation) == 2:
        rows, cols = permutation
        return [
            (
                "explicit",
                None if rows is None else _index_array(rows, m, "row permutation"),
                None if cols is None else _index_array(cols, n, "column permutation"),
            )
        ]
    if (
        isinstance(permutation, list)
        and permutation
        and not all(isinstance(p, Integral) for p in permutation)
    ):
        candidates = []
        for i, item in enumerate(permutation):
            for name, rows, cols in _resolve_permutation(item, shape):
                candidates.append((f"candidate {i} ({name})", rows, cols))
        return candidates
    return [("explicit", None, _index_array(permutation, n, "permutation"))]


def _index_array(perm, size, name):
    perm = np.asarray(perm)
    if perm.ndim != 1 or perm.dtype.kind not in "iu" or perm.shape[0] != size:
        raise ValueError(
            f"{name} must be a 1-D integer index array of length {size}, got "
            f"shape {perm.shape} and dtype {perm.dtype}."
        )
    if not np.array_equal(np.sort(perm), np.arange(size)):
        raise ValueError(f"{name} must be a permutation of range({size}).")
    return perm.astype(np.intp)


def relative_error(op, A):
    """Relative Frobenius error ``||A - op||_F / ||A||_F`` (0 when both are zero).

    The dense form of ``op`` is built by merging its factors.
    """
    # Norms are taken on A / 2**e (exact) so that they neither overflow nor
    # underflow for entries near the ends of the floating point range.
    exponent = _exponent(A)
    approx = op.toarray()
    err2 = norm2 = 0.0
    for start in range(0, A.shape[0], _ERROR_CHUNK):
        rows = slice(start, start + _ERROR_CHUNK)
        block = _ldexp(A[rows], -exponent)
        diff = _ldexp(approx[rows], -exponent)
        diff -= block
        err2 += float(np.linalg.norm(diff)) ** 2
        norm2 += float(np.linalg.norm(block)) ** 2
    if norm2 == 0:
        return 0.0 if err2 == 0 else float("inf")
    return float(np.sqrt(err2 / norm2))


def _exponent(A, top=None):
    """Binary exponent ``e`` of ``max|A|`` (``max|A| / 2**e`` in [0.5, 1)); 0 for 0."""
    top = max_abs(A) if top is None else top
    return int(np.frexp(top)[1]) if top > 0 else 0


def scaled(A, exponent=None):
    """``(A / 2**e, e)``, exact; ``e`` defaults to the exponent of ``max|A|``."""
    if exponent is None:
        exponent = _exponent(A)
    return (_ldexp(A, -exponent) if exponent else A), exponent


def frobenius_norm(A):
    """``||A||_F`` without overflow or underflow in the squares."""
    As, exponent = scaled(A)
    return float(np.ldexp(np.linalg.norm(As), exponent))


def _power_of_two_scale(A, top):
    """Exponent ``e`` to divide ``A`` by (exactly, ``2**e``) before factorizing.

    0 unless the magnitudes are so large or small that squares in the block
    Gram matrices could overflow or underflow.
    """
    exponent = _exponent(A, top)
    limit = np.finfo(A.dtype).maxexp // 4
    return exponent if abs(exponent) > limit else 0


def factorize_core(
    A,
    *,
    depth=None,
    rank=1,
    architecture=None,
    tree="balanced",
    orthonormalize=True,
    permutation=None,
    svd_solver="auto",
    n_jobs=None,
    random_state=None,
    verbose=0,
    compute_error=False,
    matrix_name="A",
):
    """The numerical core shared by ``butterfly_factorize`` and the estimator.

    ``A`` must already be validated (see :func:`check_matrix`; the NaN/inf
    check may be left to this function, whose error names ``matrix_name``) and the
    scalar parameters checked. Returns the operator and a dict with the chosen
    permutation's name and, when asked or when several permutations compete,
    the relative error.
    """
    top = max_abs(A)
    if not np.isfinite(top):
        check_finite(A, name=matrix_name)  # raises, naming the first bad entry
    m, n = A.shape
    chain, padded = resolve_architecture((m, n), depth, rank, architecture)
    candidates = _resolve_permutation(permutation, (m, n))
    # None means a fixed seed: the same input gives the same factors.
    rng = check_random_state(0 if random_state is None else random_state)
    info = {"chain": chain, "padded_shape": padded}
    if candidates[0][0] == "identify":
        candidates, info = _identify_candidates(A, chain, padded, info, random_state)
    exponent = _power_of_two_scale(A, top)
    best = None
    for name, rows, cols in candidates:
        work = _working_matrix(A, rows, cols, padded, exponent)
        if verbose > 0 and len(candidates) > 1:
            print(f"[skbutterfly] permutation candidate {name}")
        twiddles = hierarchical_factorize(
            work,
            chain,
            tree=tree,
            orthonormalize=orthonormalize,
            svd_solver=svd_solver,
            n_jobs=n_jobs,
            random_state=rng,
            verbose=verbose,
        )
        del work
        if exponent:
            # Give every factor an equal power-of-two share of the scale (exact).
            shares = np.full(len(twiddles), exponent // len(twiddles))
            shares[: exponent % len(twiddles)] += 1
            twiddles = [_ldexp(t, int(s)) for t, s in zip(twiddles, shares)]
        op = ButterflyOperator(twiddles, (m, n), col_perm=cols, row_perm=rows)
        error = (
            relative_error(op, A) if (compute_error or len(candidates) > 1) else None
        )
        if best is None or error < best[1]:
            best = (op, error, name)
    op, error, name = best
    info.update(permutation=name, relative_error=error)
    if error is None and compute_error:
        info["relative_error"] = relative_error(op, A)
    return op, info


def _working_matrix(A, rows, cols, padded, exponent):
    """``A[rows][:, cols]``, zero-padded and scaled by ``2**-exponent``.

    ``A`` itself (no copy) when nothing applies: the factorization only reads it.
    """
    m, n = A.shape
    work = A
    # np.take gathers about 3x faster than fancy indexing here.
    if rows is not None:
        work = np.take(work, rows, axis=0)
    if cols is not None:
        work = np.take(work, cols, axis=1)
    if padded != (m, n):
        padded_work = np.zeros(padded, dtype=A.dtype)
        padded_work[:m, :n] = work
        work = padded_work
    if exponent:
        work = _ldexp(work, -exponent, out=None if work is A else work)
    return work


def _ldexp(X, exponent, out=None):
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


def _identify_candidates(A, chain, padded, info, random_state):
    from skbutterfly._identify import identify_permutations

    m, n = A.shape
    if m != n or padded != (m, n) or chain_shape(chain) != (n, n):
        raise ValueError(
            "permutation='identify' needs a square matrix whose size is a power "
            f"of two, got shape {A.shape}."
        )
    found = identify_permutations(A, random_state=random_state)
    if not found.certain:
        warnings.warn(
            f"permutation='identify' is not certain: {found.message}",
            UserWarning,
            stacklevel=4,
        )
    info = {**info, "identification": found}
    return [("identify", found.row_perm, found.col_perm)], info


def check_factorize_params(
    depth, rank, tree, orthonormalize, svd_solver, n_jobs, verbose
):
    """Validate the scalar parameters of :func:`butterfly_factorize`."""
    if depth is not None and (
        not isinstance(depth, Integral) or isinstance(depth, bool) or depth < 1
    ):
        raise ValueError(f"depth={depth!r} must be None or an integer >= 1.")
    if not isinstance(rank, Integral) or isinstance(rank, bool) or rank < 1:
        raise ValueError(f"rank={rank!r} must be an integer >= 1.")
    if tree not in TREES:
        raise ValueError(f"tree={tree!r} must be one of {list(TREES)}.")
    if not isinstance(orthonormalize, (bool, np.bool_)):
        raise TypeError(f"orthonormalize={orthonormalize!r} must be a bool.")
    if svd_solver not in SVD_SOLVERS:
        raise ValueError(
            f"svd_solver={svd_solver!r} must be one of {list(SVD_SOLVERS)}."
        )
    if n_jobs is not None and (
        not isinstance(n_jobs, Integral) or isinstance(n_jobs, bool) or n_jobs == 0
    ):
        raise ValueError(f"n_jobs={n_jobs!r} must be None or a non-zero integer.")
    if not isinstance(verbose, (Integral, bool)) or verbose < 0:
        raise ValueError(f"verbose={verbose!r} must be an integer >= 0.")


def butterfly_factorize(
    A,
    depth=None,
    rank=1,
    *,
    architecture=None,
    tree="balanced",
    orthonormalize=True,
    permutation=None,
    svd_solver="auto",
    n_jobs=None,
    random_state=None,
    verbose=0,
):
    """Approximate a matrix by a product of sparse butterfly factors.

    The hierarchical algorithm splits the chain of factors in two, again and
    again, along a tree; every split is solved exactly by one batch of small
    truncated SVDs. Products of butterfly factors (Hadamard, the DFT with
    bit reversal, random butterflies) are recovered to machine precision; with
    ``orthonormalize=True`` other matrices get an error within a constant of
    the best butterfly approximation.

    Parameters
    ----------
    A : {array-like, sparse matrix} of shape (m, n)
        Matrix to factorize: real or complex, any ``m, n >= 1``. Integer and
        boolean input is converted to float64; float32, float64, complex64 and
        complex128 are kept.
    depth : int, default=None
        Number of factors. None means the finest butterfly for the shape and
        ``rank``. Shapes whose sizes have a prime factor larger than 7 are
        zero-padded (invisibly) to a size that factorizes.
    rank : int, default=1
        Rank of the blocks at every interior interface (1 is the classical
        butterfly).
    architecture : sequence of (a, b, c, d), default=None
        Expert override: an explicit chain of Kronecker-sparse patterns of
        shape ``(m, n)``.
    tree : {"balanced", "left-to-right", "right-to-left"}, default="balanced"
        Order of the two-factor splits.
    orthonormalize : bool, default=True
        Use the orthonormalized variant (error guarantee).
    permutation : None, str, array-like, tuple or list, default=None
        Permutation model ``A ~= P_r^T B P_c``: None (identity);
        ``"bit-reversal"`` (columns; the DFT); ``"auto"`` (the best of the
        identity and the eight permutations of Dao et al., one of which is the
        bit reversal); ``"identify"``
        (find row and column permutations, for square power-of-two sizes); a
        column index array ``p`` (``B ~= A[:, p]``); a tuple
        ``(row_perm, col_perm)`` (``B ~= A[row_perm][:, col_perm]``); or a list
        of such candidates (best kept).
    svd_solver : {"auto", "full", "gram", "randomized"}, default="auto"
        Solver of the block SVDs: LAPACK, Gram eigendecomposition (blocks with
        a side <= 2), the iterative solver (power steps, then a
        Chebyshev-filtered subspace iteration that matches the exact SVD to
        about eight digits), or chosen per split.
    n_jobs : int, default=None
        Number of threads over chunks of each SVD batch. None means 1 unless
        in a :obj:`joblib.parallel_config` context; -1 means all processors.
    random_state : int, RandomState instance or None, default=None
        Seed of the starting vectors of the iterative block solver. None means
        a fixed seed (0), so that the same input always gives the same factors;
        exact butterflies do not depend on it at all.
    verbose : int, default=0
        Print progress per tree level when > 0.

    Returns
    -------
    op : ButterflyOperator
        The fitted operator (a ``scipy.sparse.linalg.LinearOperator``).

    See Also
    --------
    ButterflyApproximator : The same factorization as a scikit-learn estimator.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import butterfly_factorize
    >>> from skbutterfly.datasets import dft_matrix
    >>> F = dft_matrix(64)
    >>> op = butterfly_factorize(F, permutation="bit-reversal")
    >>> op.depth, op.n_params
    (6, 768)
    >>> bool(np.linalg.norm(op.toarray() - F) < 1e-10 * np.linalg.norm(F))
    True
    """
    check_factorize_params(
        depth, rank, tree, orthonormalize, svd_solver, n_jobs, verbose
    )
    A = check_matrix(A, finite=False)  # the core checks it in its max|A| pass
    op, _ = factorize_core(
        A,
        depth=depth,
        rank=rank,
        architecture=architecture,
        tree=tree,
        orthonormalize=orthonormalize,
        permutation=permutation,
        svd_solver=svd_solver,
        n_jobs=n_jobs,
        random_state=random_state,
        verbose=verbose,
    )
    return op
