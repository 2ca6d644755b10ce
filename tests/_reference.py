"""Reference helpers shared by the tests (independent of the package's code)."""

import numpy as np


def place_like_operator(op, padded):
    """The operator's dense matrix from the dense product of its padded factors.

    ``padded`` is ``F_1 ... F_L`` (padded shape); it is cropped to ``op.shape``
    and its rows and columns are put where the operator's permutations send them.
    """
    m, n = op.shape
    B = np.asarray(padded)[:m, :n]
    out = np.empty_like(B)
    rows = np.arange(m) if op.row_perm is None else op.row_perm
    cols = np.arange(n) if op.col_perm is None else op.col_perm
    out[np.ix_(rows, cols)] = B
    return out


def scaled_butterfly(n, depth, rank, scaling, dtype, seed=0):
    """Exact butterfly whose every interior interface is scaled by ``scaling``.

    The factors of ``make_butterfly`` are drawn, then the ``rank`` columns of
    every interface (the last axis of a twiddle is the column digit, then the
    interface index) are multiplied by ``scaling``: the blocks of every split
    then have singular values spread like ``scaling``.
    """
    from skbutterfly import ButterflyOperator
    from skbutterfly.datasets import make_butterfly

    complex_ = np.dtype(dtype).kind == "c"
    _, op = make_butterfly(
        n,
        depth=depth,
        rank=rank,
        complex=complex_,
        random_state=seed,
        return_operator=True,
    )
    twiddles = [t.copy() for t in op.twiddles]
    scale = np.asarray(scaling, dtype=float)
    for i in range(len(twiddles) - 1):
        twiddles[i] = twiddles[i] * np.tile(scale, twiddles[i].shape[-1] // rank)
    return ButterflyOperator(twiddles).toarray().astype(dtype)
