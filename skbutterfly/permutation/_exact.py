"""The exact level solver: ratios of row pairs and a projective hash (no noise)."""

# SPDX-License-Identifier: BSD-3-Clause

from typing import NamedTuple

import numpy as np

from skbutterfly.permutation._level import gather_halves, halves_from_mask
from skbutterfly.permutation._residual import abs2, sqnorm

__all__ = ["ExactLevel", "exact_level"]

# Reference rows and candidate partners tried per level; rows are screened on
# about this many columns before the full check.
_EXACT_REFS = 4
_EXACT_PARTNERS = 8
_EXACT_SCREEN = 64


class ExactLevel(NamedTuple):
    """The outcome of :func:`exact_level`.

    ``pairs`` and ``halves`` are None when no consistent pairing was found;
    ``gathered`` is ``gather_halves(V, halves)``; ``degenerate`` says that a
    reference row had several valid partners.
    """

    pairs: np.ndarray | None
    halves: np.ndarray | None
    gathered: np.ndarray | None
    degenerate: bool


def _hash_pairing(seg, tol, rng):
    """Pair the rows that are colinear on every half, by a projective hash.

    Every segment (row restricted to a half of a stack) is scaled to unit norm
    with its phase fixed by a random functional ``r``; colinear segments become
    equal, and so do their projections on random vectors ``g``. The key of a row
    sums these projections over its segments; partners have equal keys. Rows
    are sorted by the key's first coordinate and paired with a neighbour.
    Returns the pairs, or None when the keys do not pair up uniquely.
    ``seg`` is ``gather_halves(V, halves)``, shape ``(K, M, 2, m)``.
    """
    K, M, _, m = seg.shape
    complex_ = np.iscomplexobj(seg)
    shape = (3, K, 2, m)
    G = rng.standard_normal(shape)
    if complex_:
        G = G + 1j * rng.standard_normal(shape)
    proj = np.einsum("kahc,jkhc->jkah", seg, G / np.sqrt(m))  # (3, K, M, 2)
    norms = np.sqrt(sqnorm(seg))  # (K, M, 2)
    s = proj[0]
    if not np.all(np.abs(s) > 1e-6 * norms):
        return None
    scale = np.conj(s) / (np.abs(s) * norms)
    keys = (proj[1:] * scale).sum(axis=(1, 3))  # (2, M)
    keys = np.concatenate([keys.real, keys.imag]).T  # (M, 4)
    order = np.argsort(keys[:, 0], kind="stable")
    keys = keys[order]
    thresh = tol * np.sqrt(2 * K) * 10

    def close(shift):
        d = np.full(M, False)
        d[: M - shift] = np.all(
            np.abs(keys[shift:] - keys[: M - shift]) <= thresh, axis=1
        )
        return d

    # Partners are adjacent after sorting (up to ties of the first coordinate,
    # checked by looking two places away).
    near1, near2 = close(1), close(2)
    if not (near1[0::2].all() and not near1[1::2].any() and not near2.any()):
        return None
    return np.stack([order[0::2], order[1::2]], axis=1)


def _directions(V, a2, ref, rows, cols, g):
    """Bloch directions of ``(V[b, ref, c], V[b, a, c])`` projected on ``g``.

    ``a2 = |V|^2``; ``rows`` and ``cols`` select the rows ``a`` and columns ``c``.
    Equal values mean equal directions (up to a projection coincidence).
    """
    x, ax = V[:, ref : ref + 1, cols], a2[:, ref : ref + 1, cols]
    y, ay = V[:, rows][:, :, cols], a2[:, rows][:, :, cols]
    xy = np.conj(x) * y if np.iscomplexobj(V) else x * y
    t = g[1] * 2.0 * xy.real + g[0] * (ax - ay)
    if g.size == 3:
        t += g[2] * 2.0 * xy.imag
    return t / (ax + ay)


def _two_values(t, tol):
    """Split values into two clusters: near the minimum and near the maximum.

    Returns the masks of the values within ``tol`` of the smallest and of the
    largest one along the last axis, and whether every value is in one of them.
    """
    low = t - t.min(axis=-1, keepdims=True) <= tol
    high = t.max(axis=-1, keepdims=True) - t <= tol
    return low, high, (low | high).all(axis=-1)


def exact_level(V, tol, rng):
    """One level of the exact (noiseless) identification.

    Reference row ``r``: its partner ``a`` is the row for which the directions of
    ``(V[b, r, c], V[b, a, c])`` take exactly two values, on two halves of every
    stack (the ratio ultrametric: rows merging at a higher level give 4, 8, ...
    directions). Directions are compared through a random projection of their
    Bloch vectors, first on a strided subset of columns to screen the rows, then
    on every column. The halves follow from the partner, the pairing of all rows
    from a projective hash.

    Returns an :class:`ExactLevel`, whose ``pairs`` is None on failure.
    """
    M = V.shape[1]
    m = M // 2
    a2 = abs2(V)
    rms = np.sqrt(a2.mean(axis=2))
    with np.errstate(divide="ignore", invalid="ignore"):
        quality = np.nan_to_num(np.sqrt(a2.min(axis=2)) / rms).min(axis=0)
    order = np.argsort(-quality, kind="stable")
    tol_dir = min(max(tol, 1e-13), 1e-3)
    screen = slice(None, None, max(1, M // _EXACT_SCREEN))
    degenerate = False
    for ref in order[:_EXACT_REFS]:
        if not quality[ref] > 0:
            break
        g = rng.standard_normal(3 if np.iscomplexobj(V) else 2)
        g /= np.linalg.norm(g)
        _, _, ok = _two_values(_directions(V, a2, ref, slice(None), screen, g), tol_dir)
        ok = ok.all(axis=0)
        ok[ref] = False
        rows = np.flatnonzero(ok)
        t = _directions(V, a2, ref, rows, slice(None), g)
        low, high, ok = _two_values(t, tol_dir)
        ok &= (low.sum(axis=2) == m) & (high.sum(axis=2) == m)
        good = ok.all(axis=0)
        candidates, low = rows[good], low[:, good]
        if candidates.size > 1:
            degenerate = True
        for index in range(min(candidates.size, _EXACT_PARTNERS)):
            halves = halves_from_mask(low[:, index, :])
            Vh = gather_halves(V, halves)
            pairs = _hash_pairing(Vh, tol_dir, rng)
            if pairs is not None:
                return ExactLevel(pairs, halves, Vh, degenerate)
    return ExactLevel(None, None, None, degenerate)
