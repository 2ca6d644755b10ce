"""Fusing adjacent factors for faster products: the plan and the fused twiddles."""

# SPDX-License-Identifier: BSD-3-Clause

from functools import lru_cache
from itertools import pairwise

import numpy as np

from skbutterfly._chain import merged_pattern
from skbutterfly._twiddle import apply_twiddle

__all__ = ["fuse_twiddles", "fusion_plan"]

# Cost model of one factor product with pattern (a, b, c, d) on k vectors, in
# nanoseconds, fitted to batched matmul timings on this machine class: a fixed
# cost per small matrix product (a*d of them), per multiply-add (a*b*c*d*k),
# and per element read or written ((a*b*d + a*c*d) * k).
_NS_PER_CALL = 700.0
_NS_PER_MAC = 0.5
_NS_PER_ELEMENT = 1.0
_NS_PER_FACTOR = 5000.0


def _factor_cost(pattern, k):
    a, b, c, d = pattern
    return (
        _NS_PER_FACTOR
        + _NS_PER_CALL * a * d
        + _NS_PER_MAC * a * b * c * d * k
        + _NS_PER_ELEMENT * (a * b * d + a * c * d) * k
    )


def _left_to_right_chainable(chain):
    """Whether the merge rule applies (``a`` divides forward, ``d`` backward)."""
    return all(
        a2 % a1 == 0 and d1 % d2 == 0
        for (a1, _, _, d1), (a2, _, _, d2) in pairwise(chain)
    )


@lru_cache(maxsize=256)
def fusion_plan(chain, k):
    """Groups ``[(start, end), ...]`` of adjacent factors to fuse for ``k`` vectors.

    Dynamic programming over the cut points minimizes the modelled cost of
    applying the fused factors. The plan depends only on the chain and ``k``, so
    products are deterministic.
    """
    n_factors = len(chain)
    if not _left_to_right_chainable(chain):
        return tuple((i, i) for i in range(n_factors))
    best = [0.0] + [np.inf] * n_factors
    cut = [0] * (n_factors + 1)
    for end in range(1, n_factors + 1):
        for start in range(end):
            cost = best[start] + _factor_cost(merged_pattern(chain, start, end - 1), k)
            if cost < best[end]:
                best[end], cut[end] = cost, start
    groups, end = [], n_factors
    while end > 0:
        groups.append((cut[end], end - 1))
        end = cut[end]
    return tuple(reversed(groups))


def fuse_twiddles(twiddles, chain, start, end):
    """Twiddle of the product of factors ``start..end``.

    All ``(a, d)`` blocks of the merged pattern are independent, so applying the
    factors to ``C`` indicator columns (column ``k`` is 1 at every input index
    with column digit ``k``) reads every block at once.
    """
    if start == end:
        return twiddles[start]
    a, B, C, d = merged_pattern(chain, start, end)
    X = np.zeros((a, C, d, C), dtype=twiddles[start].dtype)
    X[:, np.arange(C), :, np.arange(C)] = 1
    X = X.reshape(a * C * d, C)
    for T in reversed(twiddles[start : end + 1]):
        X = apply_twiddle(T, X)
    return np.ascontiguousarray(X.reshape(a, B, d, C).transpose(0, 2, 1, 3))
