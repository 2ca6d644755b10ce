"""One level of the nested construction: its state, solutions and compression.

State before level ``s``: ``V`` of shape ``(K, M, M)`` with ``K = 2**(s-1)``
column groups ("stacks") and ``M = n / 2**(s-1)`` row groups; ``V[b, a]`` is the
compressed row of row group ``a`` on column group ``b`` (the right factor of the
left-to-right hierarchical algorithm). Level ``s`` pairs the row groups (the same
pairing for all stacks) and halves every stack's columns so that each pair is
colinear on each half; each ``2 x (M/2)`` block is then compressed to its top
singular direction, giving ``2K`` stacks of ``M/2`` row groups.

A level solution is ``pairs`` (shape ``(M/2, 2)``, row groups merged) and
``halves`` (shape ``(K, 2, M/2)``, the columns of each half of each stack).
"""

# SPDX-License-Identifier: BSD-3-Clause

from typing import NamedTuple

import numpy as np

from skbutterfly.permutation._residual import abs2

__all__ = [
    "LevelChoice",
    "LevelSolution",
    "ambiguous",
    "bloch",
    "canonical",
    "canonical_halves",
    "compress",
    "gather_halves",
    "halves_from_mask",
    "level_cost",
    "split_norms",
    "top_mask",
]

# A choice is ambiguous (degenerate input) when the best relative residual is at
# most this and the runner-up within 10 % of it.
_STRUCTURED = 1e-2


class LevelChoice(NamedTuple):
    """The pairing of the rows and the halving of the columns chosen at a level."""

    pairs: np.ndarray
    halves: np.ndarray


class LevelSolution(NamedTuple):
    """A candidate level solution and its residual energy ``sum sigma_2^2``."""

    pairs: np.ndarray
    halves: np.ndarray
    cost: float


def ambiguous(best, second):
    """Whether two relative residuals reveal several valid choices.

    The best choice must reveal structure (relative residual at most
    ``_STRUCTURED``) and the runner-up be as good (within 10 %): an
    unstructured matrix, whose choices are all equally bad, is not degenerate.
    """
    return bool(best <= _STRUCTURED and second <= 1.1 * best + 1e-12)


def bloch(x, y, axis=-1):
    """Weighted Bloch vectors of the lines spanned by the 2-vectors ``(x, y)``.

    Returns ``W`` with the components ``(|x|^2 - |y|^2, 2 Re(conj(x) y),
    2 Im(conj(x) y))`` stacked along ``axis`` (the last one is omitted for real
    input) and the weights ``n = |x|^2 + |y|^2 = ||W||``. Two 2-vectors span the
    same line iff their normalized Bloch vectors ``W / n`` coincide; for a set
    S of 2-vectors, the smallest eigenvalue of ``sum w w^H`` is
    ``(sum n - ||sum W||) / 2``.
    """
    complex_ = np.iscomplexobj(x) or np.iscomplexobj(y)
    xy = np.conj(x) * y if complex_ else x * y
    ax, ay = abs2(x), abs2(y)
    comps = [ax - ay, 2.0 * xy.real]
    if complex_:
        comps.append(2.0 * xy.imag)
    comps = np.broadcast_arrays(*comps)
    return np.stack(comps, axis=axis), ax + ay


def split_norms(R, D):
    """Norms of the ``D``-vectors stored as ``R[..., d * P + p]``: shape (..., P)."""
    return np.sqrt((R.reshape((*R.shape[:-1], D, -1)) ** 2).sum(axis=-2))


def top_mask(score, m):
    """Boolean mask of the ``m`` largest entries along the last axis."""
    idx = np.argpartition(-score, m - 1, axis=-1)[..., :m]
    mask = np.zeros(score.shape, dtype=bool)
    np.put_along_axis(mask, idx, True, axis=-1)
    return mask


def halves_from_mask(mask):
    """Column indices ``(..., 2, m)``: the True columns first, then the others."""
    m = mask.shape[-1] // 2
    order = np.argsort(~mask, axis=-1, kind="stable")
    return order.reshape((*mask.shape[:-1], 2, m))


def canonical_halves(halves):
    """A hashable key of the halves of every stack, invariant to their order."""
    h = np.sort(halves, axis=-1)
    swap = h[:, 0, 0] > h[:, 1, 0]
    h[swap] = h[swap, ::-1]
    return h.tobytes()


def canonical(pairs, halves):
    """A hashable key of a level solution, invariant to the order of its parts."""
    p = np.sort(pairs, axis=1)
    p = p[np.argsort(p[:, 0])]
    return p.tobytes() + canonical_halves(halves)


def gather_halves(V, halves):
    """``V[b][:, halves[b]]`` for all stacks: shape ``(K, M, 2, m)``."""
    K, M, _ = V.shape
    idx = np.broadcast_to(halves.reshape(K, 1, M), (K, M, M))
    return np.take_along_axis(V, idx, axis=2).reshape(K, M, 2, M // 2)


def compress(V, pairs, halves, Vh=None):
    """Rank-one compression of the level's 2 x (M/2) blocks.

    Returns the next state ``(2K, M/2, M/2)`` (stack ``2b + h`` is half ``h`` of
    stack ``b``; row ``p`` is pair ``p``) and the residual energies
    ``sigma_2^2`` of the blocks, shape ``(K, 2, M/2)``. ``Vh`` is
    ``gather_halves(V, halves)`` when already computed.
    """
    K, M, _ = V.shape
    P = M // 2
    if Vh is None:
        Vh = gather_halves(V, halves)  # (K, M, 2, m)
    X0 = Vh[:, pairs[:, 0]].transpose(0, 2, 1, 3)  # (K, 2, P, m)
    X1 = Vh[:, pairs[:, 1]].transpose(0, 2, 1, 3)
    g00 = abs2(X0).sum(axis=-1)
    g11 = abs2(X1).sum(axis=-1)
    g01 = (X0 * np.conj(X1)).sum(axis=-1)
    half_diff = 0.5 * (g00 - g11)
    lam = 0.5 * (g00 + g11) + np.sqrt(half_diff**2 + abs2(g01))
    # Top eigenvector of [[g00, g01], [conj(g01), g11]], in its stable form.
    first = g00 >= g11
    u0 = np.where(first, lam - g11, g01)
    u1 = np.where(first, np.conj(g01), lam - g00)
    norm = np.sqrt(abs2(u0) + abs2(u1))
    zero = norm == 0
    u0 = np.where(zero, 1.0, u0 / np.where(zero, 1.0, norm))
    u1 = np.where(zero, 0.0, u1 / np.where(zero, 1.0, norm))
    new = np.conj(u0)[..., None] * X0 + np.conj(u1)[..., None] * X1
    rest = -u1[..., None] * X0 + u0[..., None] * X1
    return new.reshape(2 * K, P, P), abs2(rest).sum(axis=-1)


def level_cost(V, pairs, halves):
    """Residual energy ``sum sigma_2^2`` of a level solution."""
    return float(compress(V, pairs, halves)[1].sum())
