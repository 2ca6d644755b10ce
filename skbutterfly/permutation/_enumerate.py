"""Small levels solved by enumeration: all pairings, or all halvings of one stack."""

# SPDX-License-Identifier: BSD-3-Clause

from itertools import combinations

import numpy as np
from scipy.optimize import linear_sum_assignment

from skbutterfly.permutation._level import LevelSolution, ambiguous
from skbutterfly.permutation._matching import matching
from skbutterfly.permutation._residual import abs2

__all__ = ["enumerated_level", "exhaustive_level"]


def _all_pairings(M):
    """All perfect matchings of ``range(M)``: shape ``(n_pairings, M // 2, 2)``."""
    if M == 0:
        return np.zeros((1, 0, 2), dtype=np.int64)
    out = []
    for partner in range(1, M):
        rest = [i for i in range(1, M) if i != partner]
        for sub in _all_pairings(M - 2):
            out.append([(0, partner)] + [(rest[a], rest[b]) for a, b in sub])
    return np.array(out, dtype=np.int64).reshape(-1, M // 2, 2)


def _all_halvings(M):
    """All halvings of ``range(M)`` up to order: shape ``(n_halvings, 2, M // 2)``."""
    out = []
    for first in combinations(range(1, M), M // 2 - 1):
        half0 = (0, *first)
        out.append([half0, tuple(i for i in range(M) if i not in half0)])
    return np.array(out, dtype=np.int64)


def _min_pair_energies(Vh):
    """``sigma_2^2`` of every row pair on every half: ``Vh`` is ``(..., 2, M, m)``.

    Returns the smallest eigenvalue of each 2 x 2 Gram matrix of rows, summed over
    the two halves: shape ``(..., M, M)``.
    """
    G = np.matmul(Vh, np.conj(Vh).swapaxes(-1, -2))
    d = np.real(np.diagonal(G, axis1=-2, axis2=-1))
    lam = 0.5 * (
        d[..., :, None]
        + d[..., None, :]
        - np.sqrt((d[..., :, None] - d[..., None, :]) ** 2 + 4.0 * abs2(G))
    )
    return np.maximum(lam, 0.0).sum(axis=-3)


def exhaustive_level(V, n_candidates=1):
    """Global optimum of one level for ``M <= 8`` rows (all pairings and halvings).

    Given a pairing the stacks' halvings are independent, so the cost of a
    pairing is the sum over stacks of its best halving. Returns the
    ``n_candidates`` best :class:`LevelSolution` and the degeneracy flag.
    """
    _K, M, _ = V.shape
    pairings, halvings = _all_pairings(M), _all_halvings(M)
    Vh = V[:, :, halvings].transpose(0, 2, 3, 1, 4)  # (K, H, 2, M, m)
    L = _min_pair_energies(Vh)  # (K, H, M, M)
    cost = L[:, :, pairings[..., 0], pairings[..., 1]].sum(axis=-1)  # (K, H, n_pair)
    best_h = np.argmin(cost, axis=1)  # (K, n_pair)
    total = np.take_along_axis(cost, best_h[:, None, :], axis=1)[:, 0].sum(axis=0)
    ranked = np.argsort(total, kind="stable")
    scale = float(abs2(V).sum())
    degenerate = total.size > 1 and ambiguous(
        total[ranked[0]] / scale, total[ranked[1]] / scale
    )
    candidates = [
        LevelSolution(pairings[pn].copy(), halvings[best_h[:, pn]], float(total[pn]))
        for pn in ranked[:n_candidates]
    ]
    return candidates, degenerate


def enumerated_level(V, n_candidates=1):
    """Level search over all halvings of a single stack (``K = 1``, ``M <= 16``).

    For each halving the pair costs are exact; the assignment relaxation gives a
    lower bound of the matching cost, and halvings are matched in order of their
    bound until no better one can exist. Returns the ``n_candidates`` best
    :class:`LevelSolution` and the degeneracy flag.
    """
    _, M, _ = V.shape
    halvings = _all_halvings(M)
    Vh = V[0][:, halvings].transpose(1, 2, 0, 3)  # (H, 2, M, m)
    L = _min_pair_energies(Vh)  # (H, M, M)
    big = 10.0 * (float(L.max()) + 1.0)
    idx = np.arange(M)
    L[:, idx, idx] = big
    bounds = np.empty(len(halvings))
    for h in range(len(halvings)):
        rows, cols = linear_sum_assignment(L[h])
        bounds[h] = 0.5 * L[h][rows, cols].sum()
    L[:, idx, idx] = 0.0
    found = []
    n_keep = max(n_candidates, 2)
    for h in np.argsort(bounds, kind="stable"):
        if len(found) >= n_keep and bounds[h] >= found[-1].cost:
            break
        pairs = matching(L[h])
        halves = halvings[h][None]
        cost = float(L[h][pairs[:, 0], pairs[:, 1]].sum())
        found.append(LevelSolution(pairs, halves, cost))
        found = sorted(found, key=lambda sol: sol.cost)[:n_keep]
    scale = float(abs2(V).sum())
    degenerate = len(found) > 1 and ambiguous(
        found[0].cost / scale, found[1].cost / scale
    )
    return found[:n_candidates], degenerate
