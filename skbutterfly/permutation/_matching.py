"""Pairing of the rows of a level: pair costs and minimum-cost perfect matching."""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
from scipy.optimize import linear_sum_assignment

from skbutterfly.permutation._level import gather_halves
from skbutterfly.permutation._residual import abs2

__all__ = ["exchange", "matching", "pair_costs", "two_opt_gains"]


def pair_costs(V, halves):
    """``C[a, a']``: sum over stacks and halves of ``sigma_2^2`` of rows a, a'."""
    Vh = gather_halves(V, halves).transpose(0, 2, 1, 3)  # (K, 2, M, m)
    G = np.matmul(Vh, np.conj(Vh).swapaxes(-1, -2))
    d = np.real(np.diagonal(G, axis1=-2, axis2=-1))
    s = d[..., :, None] + d[..., None, :]
    diff = d[..., :, None] - d[..., None, :]
    lam_min = 0.5 * (s - np.sqrt(diff**2 + 4.0 * abs2(G)))
    C = np.maximum(lam_min, 0.0).sum(axis=(0, 1))
    return 0.5 * (C + C.T)


def matching(C):
    """Minimum-cost perfect matching of the rows of a symmetric cost matrix.

    The assignment relaxation (``linear_sum_assignment`` with a forbidden
    diagonal) is exact when its optimum is an involution; rows left in longer
    cycles are matched greedily; 2-opt exchanges then polish the matching.
    Returns the pairs, shape ``(M // 2, 2)``.
    """
    M = C.shape[0]
    big = 10.0 * (float(C.max()) + 1.0)
    Cd = C.copy()
    np.fill_diagonal(Cd, big)
    _, mate = linear_sum_assignment(Cd)
    idx = np.arange(M)
    good = (mate[mate] == idx) & (mate != idx)
    pairs = [(a, int(mate[a])) for a in idx[good] if a < mate[a]]
    free = idx[~good]
    if free.size:
        sub = C[np.ix_(free, free)]
        iu = np.triu_indices(free.size, 1)
        taken = np.zeros(free.size, dtype=bool)
        for k in np.argsort(sub[iu], kind="stable"):
            i, j = iu[0][k], iu[1][k]
            if not taken[i] and not taken[j]:
                taken[i] = taken[j] = True
                pairs.append((int(free[i]), int(free[j])))
    pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return _two_opt(C, pairs)


def two_opt_gains(C, pairs):
    """Cost decrease of every exchange of partners between pairs p and q.

    Returns ``alt1, alt2, gain`` of shape ``(P, P)``: ``alt1`` pairs
    ``(a_p, a_q), (b_p, b_q)``, ``alt2`` pairs ``(a_p, b_q), (b_p, a_q)``.
    """
    a, b = pairs[:, 0], pairs[:, 1]
    cur = C[a, b]
    base = cur[:, None] + cur[None, :]
    alt1 = C[a[:, None], a[None, :]] + C[b[:, None], b[None, :]]
    alt2 = C[a[:, None], b[None, :]] + C[b[:, None], a[None, :]]
    gain = base - np.minimum(alt1, alt2)
    np.fill_diagonal(gain, -np.inf)
    return alt1, alt2, gain


def exchange(pairs, p, q, first):
    """Pairs after exchanging partners between pairs p and q (a copy)."""
    out = pairs.copy()
    ap, bp, aq, bq = pairs[p, 0], pairs[p, 1], pairs[q, 0], pairs[q, 1]
    if first:
        out[p], out[q] = (ap, aq), (bp, bq)
    else:
        out[p], out[q] = (ap, bq), (bp, aq)
    return out


def _two_opt(C, pairs, max_moves=None):
    """Improve a perfect matching by exchanging partners between two pairs."""
    n_pairs = pairs.shape[0]
    if n_pairs < 2:
        return pairs
    max_moves = 4 * n_pairs if max_moves is None else max_moves
    scale = float(C.max()) + 1e-300
    for _ in range(max_moves):
        alt1, alt2, gain = two_opt_gains(C, pairs)
        p, q = np.unravel_index(np.argmax(gain), gain.shape)
        if not gain[p, q] > 1e-12 * scale:
            break
        pairs = exchange(pairs, p, q, alt1[p, q] <= alt2[p, q])
    return pairs
