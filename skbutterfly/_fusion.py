"""Fusing adjacent factors for faster products: the plan and the fused twiddles."""

# SPDX-License-Identifier: BSD-3-Clause

from functools import lru_cache
from itertools import pairwise
from math import prod

import numpy as np

from skbutterfly._chain import _gb_factors, merged_pattern
from skbutterfly._twiddle import merge_twiddles

__all__ = ["fuse_twiddles", "fusion_plan", "is_chainable"]

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


def is_chainable(chain):
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
    if not is_chainable(chain):
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
    """Twiddle of the product of factors ``start..end`` of a chainable chain.

    Adjacent factors are merged pairwise (balanced), each merge a batched
    matmul costing the interface rank per nonzero of its result.
    """
    gb = _gb_factors(chain)
    nodes = [(i, i, twiddles[i]) for i in range(start, end + 1)]
    while len(nodes) > 1:
        merged = []
        for k in range(0, len(nodes) - 1, 2):
            (s, i, left), (_, e, right) = nodes[k], nodes[k + 1]
            c1 = prod(f.cp for f in gb[s : i + 1])
            b2 = prod(f.bp for f in gb[i + 1 : e + 1])
            merged.append((s, e, merge_twiddles(left, right, c1, b2)))
        if len(nodes) % 2:
            merged.append(nodes[-1])
        nodes = merged
    return nodes[0][2]
