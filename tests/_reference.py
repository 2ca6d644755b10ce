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
