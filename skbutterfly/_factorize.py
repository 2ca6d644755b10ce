"""The numerical core behind every door: a block source in, a fitted operator out.

The estimator, :func:`~skbutterfly.butterfly_factorize` and the command line
validate their parameters with one rule table (the estimator's
``_parameter_constraints``) and call :func:`factorize_core`.
"""

# SPDX-License-Identifier: BSD-3-Clause

import warnings
from numbers import Number

import numpy as np
from sklearn.utils import check_random_state

from skbutterfly._block_svd import SVD_SOLVERS, canonical_solver
from skbutterfly._chain import chain_ranks, chain_shape
from skbutterfly._diagnostics import FitProgress, estimate_relative_error, warn_fit
from skbutterfly._hierarchical import hierarchical_factorize
from skbutterfly._operator import ButterflyOperator
from skbutterfly._sources import (
    DenseSource,
    frobenius_norm,
    ldexp,
    matrix_exponent,
    relative_error,
    scaled,
)
from skbutterfly._transform_permutations import (
    TRANSFORM_PERMUTATIONS,
    Candidate,
    ChainChoice,
    named_candidates,
    shortlist,
)
from skbutterfly._validation import check_finite, max_abs

__all__ = [
    "SVD_SOLVERS",
    "dense_source",
    "factorize_core",
    "frobenius_norm",
    "relative_error",
    "scaled",
]


def _resolve_permutation(permutation, shape, choice):
    """Turn the ``permutation`` parameter into candidates.

    Returns a list of :class:`Candidate` ``(name, rows, cols, chain, padded)``;
    more than one candidate means "keep the best". ``choice`` is the
    :class:`ChainChoice` of the fit (named transform permutations use its
    unpadded chain).
    """
    m, n = shape
    if permutation is None:
        return [Candidate("identity", None, None, *choice.default)]
    if isinstance(permutation, str):
        if permutation in ("bit-reversal", "auto", *TRANSFORM_PERMUTATIONS):
            return named_candidates(permutation, choice)
        if permutation == "identify":
            return [Candidate("identify", None, None, *choice.default)]
        raise ValueError(
            f"permutation={permutation!r} must be None, 'bit-reversal', "
            "'digit-reversal', 'makhoul', 'makhoul-rows', 'auto', 'identify', an "
            "index array, a (row_perm, col_perm) tuple or a list of candidates."
        )
    if _is_row_col_pair(permutation):
        rows, cols = permutation
        return [
            Candidate(
                "explicit",
                None if rows is None else _index_array(rows, m, "row permutation"),
                None if cols is None else _index_array(cols, n, "column permutation"),
                *choice.default,
            )
        ]
    if (
        isinstance(permutation, list)
        and permutation
        and not all(isinstance(p, (Number, np.generic)) for p in permutation)
    ):
        candidates = []
        for i, item in enumerate(permutation):
            for cand in _resolve_permutation(item, shape, choice):
                candidates.append(Candidate(f"candidate {i} ({cand[0]})", *cand[1:]))
        return candidates
    cols = _index_array(permutation, n, "permutation")
    return [Candidate("explicit", None, cols, *choice.default)]


def _is_row_col_pair(permutation):
    """A ``(rows, cols)`` pair is a tuple of two array-likes or None.

    A tuple of two integers, such as ``(1, 0)``, is a column index array.
    """
    return (
        isinstance(permutation, tuple)
        and len(permutation) == 2
        and not any(isinstance(p, (Number, np.generic)) for p in permutation)
    )


def _index_array(perm, size, name):
    perm = np.asarray(perm)
    if perm.ndim == 1 and perm.dtype.kind not in "iu":
        raise ValueError(
            f"{name} must be an integer index array, got dtype {perm.dtype} and "
            f"shape {perm.shape}"
            + (" (cast it with .astype(int))." if perm.dtype.kind == "f" else ".")
        )
    if perm.ndim != 1 or perm.dtype.kind not in "iu" or perm.shape[0] != size:
        raise ValueError(
            f"{name} must be a 1-D integer index array of length {size}, got "
            f"shape {perm.shape} and dtype {perm.dtype}."
        )
    if not np.array_equal(np.sort(perm), np.arange(size)):
        raise ValueError(f"{name} must be a permutation of range({size}).")
    return perm.astype(np.intp)


def _power_of_two_scale(A, top):
    """Exponent ``e`` to divide ``A`` by (exactly, ``2**e``) before factorizing.

    0 unless the magnitudes are so large or small that squares in the block
    Gram matrices could overflow or underflow.
    """
    exponent = matrix_exponent(A, top)
    limit = np.finfo(A.dtype).maxexp // 4
    return exponent if abs(exponent) > limit else 0


# Bytes of rows reduced at once by the max|A| pass (its max and min then
# read the rows from cache: one pass over memory instead of two).
_MAX_ABS_BYTES = 1 << 20


def _blocked_max_abs(A):
    """:func:`max_abs` of ``A``, a cache-sized block of rows at a time."""
    if A.ndim != 2 or A.nbytes <= 4 * _MAX_ABS_BYTES:
        return max_abs(A)
    step = max(1, _MAX_ABS_BYTES // max(1, A.shape[1] * A.itemsize))
    tops = [max_abs(A[r : r + step]) for r in range(0, A.shape[0], step)]
    # np.max propagates NaN whatever its position.
    return float(np.max(tops))


def dense_source(A, name="A"):
    """The block source of a validated in-memory matrix.

    One ``max|A|`` pass checks that ``A`` is finite (the error names ``name``
    and the first bad entry) and chooses the exact power-of-two scale.
    """
    top = _blocked_max_abs(A)
    if not np.isfinite(top):
        check_finite(A, name=name)  # raises, naming the first bad entry
    return DenseSource(A, exponent=_power_of_two_scale(A, top))


def factorize_core(
    matrix,
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
    cache=None,
    compute_error=False,
):
    """The numerical core shared by ``butterfly_factorize``, the estimator and the CLI.

    ``matrix`` is the block source of the user's matrix (no permutation; see
    :mod:`skbutterfly._sources` and :func:`dense_source`), and the parameters
    have been checked against the estimator's rule table. Returns the operator
    and a dict with the chain, the padded shape, the chosen permutation's name
    and, when asked or when several permutations compete, the relative error.
    """
    svd_solver = canonical_solver(svd_solver)
    m, n = matrix.shape
    choice = ChainChoice((m, n), depth, rank, architecture)
    candidates = _resolve_permutation(permutation, (m, n), choice)
    A = getattr(matrix, "matrix", None)
    if isinstance(permutation, str) and permutation == "auto" and A is not None:
        candidates = shortlist(A, candidates)  # a cheap screen, then 1-2 fits
    # Every split of every candidate counts towards the progress total.
    progress = FitProgress(verbose, sum(len(c[3]) - 1 for c in candidates))
    info = {}
    if candidates[0][0] == "identify":
        chain, padded = candidates[0][3:]
        info = {"chain": chain, "padded_shape": padded}
        progress.say("identifying the row and column permutations")
        candidates, info = _identify_candidates(
            matrix, chain, padded, info, random_state
        )
    best = None
    for name, rows, cols, chain, padded in candidates:
        source = matrix.permuted(rows, cols, padded)
        if (
            not compute_error
            and len(candidates) == 1
            and hasattr(source, "collect_probes")
        ):
            # The error estimate's products with A, formed by the root split.
            source.collect_probes = True
        if len(candidates) > 1:
            progress.say(f"permutation candidate {name}")
        twiddles = hierarchical_factorize(
            source,
            chain,
            tree=tree,
            orthonormalize=orthonormalize,
            svd_solver=svd_solver,
            n_jobs=n_jobs,
            # None means a fixed seed: the same input gives the same factors.
            random_state=check_random_state(
                0 if random_state is None else random_state
            ),
            verbose=verbose,
            cache=cache,
            progress=progress,
        )
        source.release()
        exponent = source.exponent
        if exponent:
            # Give every factor an equal power-of-two share of the scale (exact).
            shares = np.full(len(twiddles), exponent // len(twiddles))
            shares[: exponent % len(twiddles)] += 1
            twiddles = [ldexp(t, int(s)) for t, s in zip(twiddles, shares)]
        op = ButterflyOperator(twiddles, (m, n), col_perm=cols, row_perm=rows)
        error = None
        if compute_error or len(candidates) > 1:
            progress.say("measuring the relative error (dense product)")
            error = matrix.relative_error(op)
        if best is None or error < best[1]:
            best = (op, error, name, chain, padded)
        products = getattr(source, "probe_products", None)
    op, error, name, chain, padded = best
    info.update(
        chain=chain,
        padded_shape=padded,
        permutation=name,
        relative_error=error,
        error_is_estimate=matrix.error_is_estimate,
    )
    A = getattr(matrix, "matrix", None)
    if error is None and A is not None:  # a few random probes, no dense product
        info["estimated_error"] = estimate_relative_error(
            op, A, matrix.exponent, products=products
        )
    shown = info.get("estimated_error", error)
    if shown is not None:
        kind = "estimated relative" if error is None else "relative"
        progress.say(f"done: {kind} error {shown:.3e}")
    warn_fit(
        info,
        shape=(m, n),
        n_params=op.n_params,
        depth=op.depth,
        rank=max(chain_ranks(chain), default=1),
        permutation=permutation,
    )
    return op, info


def _identify_candidates(matrix, chain, padded, info, random_state):
    from skbutterfly.permutation import identify_permutations

    A = getattr(matrix, "matrix", None)
    if A is None:
        raise ValueError(
            "permutation='identify' needs an in-memory matrix (an array), not "
            f"{type(matrix).__name__}; give the permutation explicitly."
        )
    m, n = A.shape
    if m != n or padded != (m, n) or chain_shape(chain) != (n, n):
        raise ValueError(
            "permutation='identify' needs a square matrix whose size is a power "
            f"of two, got shape {A.shape}."
        )
    found = identify_permutations(A, random_state=random_state)
    if not found.certain:
        warnings.warn(
            f"permutation='identify': {found.message}",
            UserWarning,
            stacklevel=4,
        )
    info = {**info, "identification": found}
    return [Candidate("identify", found.row_perm, found.col_perm, chain, padded)], info
