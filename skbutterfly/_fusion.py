"""Fusing adjacent factors for faster products: the plan and the fused twiddles."""

# SPDX-License-Identifier: BSD-3-Clause

from functools import lru_cache
from itertools import pairwise
from math import prod

import numpy as np

from skbutterfly._chain import (
    _gb_factors,
    chain_n_params,
    chain_shape,
    merged_pattern,
)
from skbutterfly._products import PARALLEL_MIN_MACS, block_width
from skbutterfly._twiddle import merge_twiddles, twiddle_to_dense

__all__ = [
    "candidate_features",
    "dense_row_blocks",
    "fuse_twiddles",
    "fusion_plan",
    "is_chainable",
    "is_dense_plan",
    "plan_bucket",
    "product_plan",
]

# Cost model of one factor product with pattern (a, b, c, d) on k vectors, in
# nanoseconds, fitted to batched matmul timings on a shared 2-core x86-64
# machine (one BLAS thread, operands in cache; ``python -m
# benchmarks.calibrate_products``), the per-element cost then doubled: whole
# plans on complex data measured 1.4-1.9x the fitted sum, most for the plans
# with more passes. A fixed cost per factor, a cost per small matrix product
# (a*d of them), per real multiply-add (a*b*c*d*k, four per complex one) and
# per 8 bytes read or written ((a*b*d + a*c*d) * k elements). The constants
# only have to rank plans.
_NS_PER_FACTOR = 2500.0
_NS_PER_CALL = 28.0
_NS_PER_MAC = 0.047
_NS_PER_ELEMENT = 0.15
# The blocked product: a fixed cost per block (Python and gathers), a scale
# of the modelled factor costs and a cost per 8 bytes gathered or scattered
# (permutations, padding, transposes).
_BLOCK_COSTS = np.array([8000.0, 1.0, 0.3])
# The dense form's GEMM: a fixed cost, per real multiply-add, per 8 bytes of
# the input and the output, of the matrix read and of the matrix packed.
_DENSE_COSTS = np.array([1000.0, 0.049, 0.034, 0.034, 0.0])
# Threads the dense form is modelled with, from the GEMM size at which
# OpenBLAS threads (its 65536 * GEMM_MULTITHREAD_THRESHOLD), and the speedup
# of blocks on two product threads (measured 1.2-1.5x: the blocks' transposes
# and small GEMMs share the memory bus).
_MODEL_THREADS = 2
_BLOCKS_SPEEDUP = 1.3
_BLAS_THREADED_MACS = 2**18
# Largest dense form (entries) the plan considers.
_DENSE_MAX = 2**24

# Products on k vectors use the fusion plan made for the bucket holding k.
_PLAN_BUCKETS = (1, 16, 64, 1024)


def plan_bucket(k):
    """The bucket of ``k`` vectors whose fusion plan products use."""
    for bucket in _PLAN_BUCKETS:
        if k <= bucket:
            return bucket
    return _PLAN_BUCKETS[-1]


def _factor_cost(pattern, k, itemsize=8):
    """Modelled nanoseconds of one factor product on ``k`` vectors."""
    a, b, c, d = pattern
    words = itemsize / 8
    # 16-byte items are complex128; the model takes complex64 as float64.
    macs = 4 if itemsize == 16 else 1
    return (
        _NS_PER_FACTOR
        + _NS_PER_CALL * (a * d if c > 1 else 1)
        + _NS_PER_MAC * macs * a * b * c * d * k
        + _NS_PER_ELEMENT * words * (a * b * d + a * c * d) * k
    )


def is_chainable(chain):
    """Whether the merge rule applies (``a`` divides forward, ``d`` backward)."""
    return all(
        a2 % a1 == 0 and d1 % d2 == 0
        for (a1, _, _, d1), (a2, _, _, d2) in pairwise(chain)
    )


@lru_cache(maxsize=256)
def fusion_plan(chain, k, itemsize=8):
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
            pattern = merged_pattern(chain, start, end - 1)
            cost = best[start] + _factor_cost(pattern, k, itemsize)
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


def _plan_cost(chain, plan, k, itemsize):
    return sum(_factor_cost(merged_pattern(chain, s, e), k, itemsize) for s, e in plan)


def _chain_height(chain):
    """Most rows a block of vectors has between two factors."""
    return max(chain_shape(chain)[1], *(a * b * d for a, b, _, d in chain))


def is_dense_plan(chain, k, itemsize):
    """Whether ``k`` vectors are best multiplied by the dense form (one GEMM).

    The dense form (all factors multiplied out, permutations applied) is one
    candidate of the plan: it is chosen when its modelled cost is below the
    fused factors' on blocks of vectors, so a product is never much slower
    than the dense matrix's; it is never chosen above :data:`_DENSE_MAX`
    entries.
    """
    return product_plan(chain, k, itemsize)[0]


def candidate_features(chain, k, itemsize):
    """Cost features of the two candidates for ``k`` vectors, and the block width.

    ``dense`` holds the dense form's GEMM call, real multiply-adds, 8-byte
    words of the input and the output, of the matrix read, and of the matrix
    packed (by GEMM, not GEMV); ``blocks`` the fused products' blocks,
    their modelled factor costs (:func:`fusion_plan`'s, in ns) and the words
    gathered and scattered. Each side is divided by its modelled parallel
    speedup (fixed, so that the plan, and hence the rounding of products, is
    the same on every machine): BLAS threads a GEMM from
    :data:`_BLAS_THREADED_MACS` multiply-adds, the product threads take
    blocks of products of :data:`~skbutterfly._products.PARALLEL_MIN_MACS`.
    """
    m, n = chain_shape(chain)
    macs_per_vector = chain_n_params(chain)
    width = block_width(_chain_height(chain), itemsize, k, macs=macs_per_vector * k)
    words = itemsize / 8
    macs = 4 if itemsize == 16 else 1
    plan = fusion_plan(chain, plan_bucket(width), itemsize)
    n_blocks = -(-k // width)
    parallel = n_blocks > 1 and macs_per_vector * k >= PARALLEL_MIN_MACS
    per_block = n_blocks / (_BLOCKS_SPEEDUP if parallel else 1)
    blocks = per_block * np.array(
        [1.0, _plan_cost(chain, plan, width, itemsize), words * (m + n) * width]
    )
    dense_macs = m * n * k
    threads = _MODEL_THREADS if dense_macs >= _BLAS_THREADED_MACS else 1
    # A GEMV reads the matrix once; a GEMM also packs it (not threaded).
    dense = np.array(
        [
            1.0,
            macs * dense_macs / threads,
            words * (m + n) * k / threads,
            words * m * n,
            words * m * n * (k > 1),
        ]
    )
    return dense, blocks, width


@lru_cache(maxsize=1024)
def product_plan(chain, k, itemsize):
    """``(dense, width)``: the dense form or fused factors by blocks of ``width``.

    ``width`` is the number of vectors per block of the fused products
    (:func:`~skbutterfly._products.block_width`); the fused factors are those of
    :func:`fusion_plan` for that width. The dense form is chosen when its
    modelled cost (:func:`candidate_features` times the constants above) is
    the lower.
    """
    m, n = chain_shape(chain)
    dense, blocks, width = candidate_features(chain, k, itemsize)
    if m * n > _DENSE_MAX or not is_chainable(chain):
        # (An unchainable chain builds its dense form by products.)
        return False, width
    return bool(dense @ _DENSE_COSTS <= blocks @ _BLOCK_COSTS), width


def dense_row_blocks(twiddles, chain, max_entries):
    """Blocks of rows of the dense product of a chainable chain, one at a time.

    The chain is cut in two halves, each fused once; every block merges a
    slice of the left half with the right half, so no more than about
    ``max_entries`` entries of the dense matrix exist at once (plus the two
    halves, of ``O(n sqrt(n) rank)`` entries for a square butterfly).

    Yields
    ------
    rows : slice
        Rows of the padded product covered by the block.
    cols : slice
        Columns of the block's nonzeros (all of them unless the product is
        block diagonal); the other columns of these rows are zero.
    block : ndarray of shape (rows, cols)
    """
    a, B, C, d = merged_pattern(chain, 0, len(chain) - 1)
    if len(chain) == 1:
        left, right, c1, b2 = twiddles[0], None, 1, 1
    else:
        half = len(chain) // 2
        gb = _gb_factors(chain)
        left = fuse_twiddles(twiddles, chain, 0, half - 1)
        right = fuse_twiddles(twiddles, chain, half, len(chain) - 1)
        c1 = prod(f.cp for f in gb[:half])
        b2 = prod(f.bp for f in gb[half:])
    if a == 1:
        # Slices of the left half's rows (its b axis): contiguous rows.
        b1 = left.shape[2]
        step = max(1, max_entries // (b2 * d * C * d))
        for j in range(0, b1, step):
            part = left[:, :, j : j + step]
            T = part if right is None else merge_twiddles(part, right, c1, b2)
            rows = slice(j * b2 * d, (j + part.shape[2]) * b2 * d)
            yield rows, slice(0, C * d), twiddle_to_dense(T)
        return
    # Block diagonal: slices of the diagonal blocks.
    step = max(1, max_entries // (B * d * C * d))
    for i in range(0, a, step):
        stop = min(i + step, a)
        part = left[i:stop]
        T = (
            part
            if right is None
            else merge_twiddles(part, right[i * c1 : stop * c1], c1, b2)
        )
        yield (
            slice(i * B * d, stop * B * d),
            slice(i * C * d, stop * C * d),
            twiddle_to_dense(T),
        )
