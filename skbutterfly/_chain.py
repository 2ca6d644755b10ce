"""Kronecker-sparse patterns, chains of patterns (architectures) and their builders."""

# SPDX-License-Identifier: BSD-3-Clause

from dataclasses import dataclass
from functools import lru_cache
from math import prod
from numbers import Integral

import numpy as np

from skbutterfly._integers import (
    deepest_size,
    depth_bound,
    divisors,
    factorize,
    is_smooth,
    omega,
    padding_candidates,
    search_order,
)
from skbutterfly._validation import check_int

__all__ = [
    "butterfly_chain",
    "chain_n_params",
    "chain_shape",
    "feasible_depth_rank",
    "low_rank_chain",
    "max_depth",
    "monarch_chain",
    "resolve_architecture",
    "square_dyadic_chain",
    "unpadded_architecture",
    "validate_chain",
]


@dataclass(frozen=True)
class GBFactor:
    """A pattern ``(a, b, c, d)`` split as ``b = p * bp`` and ``c = cp * q``.

    ``p`` and ``q`` are the ranks at the left and right interfaces of the factor
    (1 at the ends of the chain); ``bp`` and ``cp`` are the sizes that the factor
    contributes to the row and column digits of the product.
    """

    a: int
    bp: int
    cp: int
    d: int
    p: int
    q: int


def _as_pattern(pattern, index):
    try:
        values = tuple(pattern)
    except TypeError:
        values = None
    if (
        values is None
        or len(values) != 4
        or not all(isinstance(v, Integral) and not isinstance(v, bool) for v in values)
        or min(values) < 1
    ):
        raise ValueError(
            f"architecture[{index}]={pattern!r} is not a pattern: expected a tuple "
            "(a, b, c, d) of four integers >= 1."
        )
    return tuple(int(v) for v in values)


def validate_chain(chain, shape=None):
    """Check that ``chain`` is a valid chainable architecture.

    Parameters
    ----------
    chain : sequence of (a, b, c, d)
        Kronecker-sparse patterns, leftmost factor first. The support of a factor
        is ``I_a (x) 1_{b x c} (x) I_d``.
    shape : tuple of int, default=None
        When given, the shape that the product of the chain must have.

    Returns
    -------
    chain : tuple of tuple of int
        The chain as a tuple of 4-tuples of Python ints.

    Raises
    ------
    ValueError
        Naming the first factor or interface that is not valid.

    Examples
    --------
    >>> from skbutterfly import validate_chain
    >>> validate_chain([(1, 2, 2, 2), (2, 2, 2, 1)], shape=(4, 4))
    ((1, 2, 2, 2), (2, 2, 2, 1))
    >>> validate_chain([(1, 2, 2, 2), (2, 2, 2, 2)])
    Traceback (most recent call last):
    ...
    ValueError: architecture[0]=(1, 2, 2, 2) has 4 columns but architecture[1]=...
    """
    if isinstance(chain, np.ndarray):
        chain = chain.tolist()
    try:
        patterns = list(chain)
    except TypeError:
        raise ValueError(
            f"architecture must be a sequence of (a, b, c, d) patterns, got {chain!r}."
        ) from None
    if not patterns:
        raise ValueError("architecture must contain at least one pattern, got [].")
    patterns = tuple(_as_pattern(p, i) for i, p in enumerate(patterns))
    for i in range(len(patterns) - 1):
        a1, _, c1, d1 = patterns[i]
        a2, b2, _, d2 = patterns[i + 1]
        if a1 * c1 * d1 != a2 * b2 * d2:
            raise ValueError(
                f"architecture[{i}]={patterns[i]} has {a1 * c1 * d1} columns but "
                f"architecture[{i + 1}]={patterns[i + 1]} has {a2 * b2 * d2} rows: "
                "consecutive factors must have matching sizes."
            )
        if a2 % a1 or d1 % d2 or (a1 * c1) % a2 or (b2 * d2) % d1:
            raise ValueError(
                f"architecture[{i}]={patterns[i]} and architecture[{i + 1}]="
                f"{patterns[i + 1]} are not chainable: need a{i} | a{i + 1}, "
                f"d{i + 1} | d{i} and an integer rank a{i}*c{i}/a{i + 1} = "
                f"b{i + 1}*d{i + 1}/d{i}."
            )
        if (a1 * c1) // a2 != (b2 * d2) // d1:
            raise ValueError(
                f"architecture[{i}]={patterns[i]} and architecture[{i + 1}]="
                f"{patterns[i + 1]} are not chainable: the interface rank "
                f"a*c/a'={(a1 * c1) // a2} differs from b'*d'/d={(b2 * d2) // d1}."
            )
    gb = _gb_factors(patterns)
    for i, (pattern, f) in enumerate(zip(patterns, gb)):
        if pattern[1] % f.p or pattern[2] % f.q:
            raise ValueError(
                f"architecture[{i}]={pattern} is not chainable with its neighbours: "
                f"b={pattern[1]} must be a multiple of the rank {f.p} on its left and "
                f"c={pattern[2]} a multiple of the rank {f.q} on its right."
            )
    if shape is not None:
        got = chain_shape(patterns)
        if tuple(got) != tuple(shape):
            raise ValueError(
                f"architecture has shape {got} but the matrix has shape {tuple(shape)}."
            )
    return patterns


def _gb_factors(chain):
    """Split every pattern of a chainable chain into its ``GBFactor`` form."""
    ranks = [
        chain[i][0] * chain[i][2] // chain[i + 1][0] for i in range(len(chain) - 1)
    ]
    factors = []
    for i, (a, b, c, d) in enumerate(chain):
        p = ranks[i - 1] if i > 0 else 1
        q = ranks[i] if i < len(chain) - 1 else 1
        factors.append(GBFactor(a, b // p, c // q, d, p, q))
    return tuple(factors)


def merged_pattern(chain, start, end):
    """Pattern ``(a, b, c, d)`` of the product of factors ``start..end``.

    Adjacent patterns merge as ``(a1, b1 d1 / d2, a2 c2 / a1, d2)``.
    """
    a, b, _, d = chain[start]
    for a2, _, c2, d2 in chain[start + 1 : end + 1]:
        b, c, d = b * d // d2, a2 * c2 // a, d2
    if start == end:
        c = chain[start][2]
    return (a, b, c, d)


def chain_shape(chain):
    """Return the shape ``(m, n)`` of the product of a chain."""
    a, b, _, d = chain[0]
    a2, _, c2, d2 = chain[-1]
    return (a * b * d, a2 * c2 * d2)


def chain_ranks(chain):
    """Return the ranks at the interior interfaces of a chain."""
    return tuple(
        chain[i][0] * chain[i][2] // chain[i + 1][0] for i in range(len(chain) - 1)
    )


def chain_n_params(chain):
    """Return the number of parameters (nonzeros) of a chain: sum of ``a*b*c*d``."""
    return int(sum(a * b * c * d for a, b, c, d in chain))


def square_dyadic_chain(n, depth=None):
    """Square dyadic butterfly chain for ``n = 2**L`` with ``depth`` factors.

    Adjacent levels of the classical butterfly are merged as evenly as possible,
    so ``depth=L`` gives the ``L`` factors ``(2**(l-1), 2, 2, n/2**l)`` and
    ``depth=1`` the dense matrix.

    Parameters
    ----------
    n : int
        Size, a power of two >= 2.
    depth : int, default=None
        Number of factors, from 1 to ``log2(n)``; None means ``log2(n)``.

    Returns
    -------
    chain : tuple of tuple of int
        The patterns ``(a, b, c, d)`` of the factors, leftmost first.

    Examples
    --------
    >>> from skbutterfly import square_dyadic_chain
    >>> square_dyadic_chain(8)
    ((1, 2, 2, 4), (2, 2, 2, 2), (4, 2, 2, 1))
    >>> square_dyadic_chain(16, depth=2)
    ((1, 4, 4, 4), (4, 4, 4, 1))
    """
    if not isinstance(n, Integral) or n < 2 or n & (n - 1):
        raise ValueError(f"n={n!r} must be a power of two >= 2.")
    levels = int(n).bit_length() - 1
    if depth is None:
        depth = levels
    if not isinstance(depth, Integral) or not 1 <= depth <= levels:
        raise ValueError(
            f"depth={depth!r} must be an integer in [1, {levels}] for n={n}."
        )
    exponents = [levels // depth + (i < levels % depth) for i in range(depth)]
    chain, before = [], 0
    for e in exponents:
        after = levels - before - e
        chain.append((2**before, 2**e, 2**e, 2**after))
        before += e
    return tuple(chain)


def low_rank_chain(m, n, rank):
    """Rank-``rank`` chain ``[(1, m, rank, 1), (1, rank, n, 1)]``: ``A ~= U V``.

    Parameters
    ----------
    m, n : int
        Shape of the matrix.
    rank : int
        Inner dimension.

    Returns
    -------
    chain : tuple of tuple of int
        The two patterns.

    Examples
    --------
    >>> from skbutterfly import low_rank_chain
    >>> low_rank_chain(6, 8, 2)
    ((1, 6, 2, 1), (1, 2, 8, 1))
    """
    m, n = check_int(m, "m"), check_int(n, "n")
    rank = check_int(rank, "rank")
    return ((1, m, rank, 1), (1, rank, n, 1))


def monarch_chain(m, n, rank=1):
    """Monarch chain (two factors) for an ``m x n`` matrix.

    The same as ``butterfly_chain(m, n, 2, rank)``.

    Parameters
    ----------
    m, n : int
        Shape of the matrix.
    rank : int, default=1
        Rank at the interface.

    Returns
    -------
    chain : tuple of tuple of int
        The two patterns: a block-diagonal-with-diagonal-blocks factor and a
        block-diagonal one.

    Examples
    --------
    >>> from skbutterfly import monarch_chain
    >>> monarch_chain(16, 16)
    ((1, 4, 4, 4), (4, 4, 4, 1))
    """
    return butterfly_chain(m, n, 2, rank)


def _rect_skeleton(m, n, depth, rank, strict=True):
    """Cheapest skeleton by dynamic programming over prefix products.

    A chain of ``depth`` factors is fixed by ``bp`` (product ``m``) and ``cp``
    (product ``n``). With prefix products ``Pb_l = bp_1...bp_l`` and ``Pc_l``,
    factor ``l`` has ``(m / Pb_{l-1}) * Pc_l * p_l * q_l`` nonzeros, so the cost of a
    step only depends on ``Pb`` before it and ``Pc`` after it; each step is done
    as a ``cp`` half-step followed by a ``bp`` half-step.
    Constraints: ``bp_l >= 2`` for ``l < depth`` and ``cp_l >= 2`` for ``l > 1``
    (otherwise the rank at an interface is vacuous), ``bp_1 > rank`` and
    ``cp_depth > rank``, and the rank-one skeleton keeps at least ``min(m, n)``
    rows at every interface (``m * Pc_l / Pb_l >= min(m, n)``), so that the
    digits alone can represent a full-rank matrix and the rank only adds
    capacity on top (as DebflyGen's monotone chains do). Feasibility is then
    monotone in the rank.
    """
    lo = min(m, n)
    weights = [1] + [rank] * (depth - 1) + [1]  # p_l = weights[l], q_l = weights[l+1]
    # best[(Pb, Pc)] = (cost, bps, cps)
    best = {(1, 1): (0, (), ())}
    for step in range(depth):
        last = step == depth - 1
        half = {}
        for (pb, pc), (cost, bps, cps) in best.items():
            for cp in divisors(n // pc):
                if last and cp != n // pc:
                    continue
                if step > 0 and cp < 2:
                    continue
                if last and depth > 1 and cp <= (rank if strict else 1):
                    continue
                pc2 = pc * cp
                new = cost + (m // pb) * pc2 * weights[step] * weights[step + 1]
                key = (pb, pc2)
                if key not in half or new < half[key][0]:
                    half[key] = (new, bps, (*cps, cp))
        best = {}
        for (pb, pc), (cost, bps, cps) in half.items():
            for bp in divisors(m // pb):
                if last and bp != m // pb:
                    continue
                if not last and bp < 2:
                    continue
                if step == 0 and depth > 1 and bp <= (rank if strict else 1):
                    continue
                pb2 = pb * bp
                if not last and m * pc < lo * pb2:
                    continue
                key = (pb2, pc)
                if key not in best or cost < best[key][0]:
                    best[key] = (cost, (*bps, bp), cps)
    return best.get((m, n))


@lru_cache(maxsize=1024)
def _skeleton(m, n, depth, rank, strict=True):
    """Digits ``(bps, cps)`` of the cheapest chain, or None.

    ``strict`` chains are non-redundant: the rank at every interface is smaller
    than the blocks it cuts. Non-strict chains may have redundant interfaces
    (the rank constraint is vacuous there: same approximation, more parameters).
    """
    if depth == 1:
        return ((m,), (n,)) if rank == 1 or not strict else None
    if m == n:
        # Square: the same digits on both sides (b = c), as for the classical
        # butterfly; the cheapest split of the exponents is found by the DP too.
        found = _square_skeleton(n, depth, rank, strict)
        if found is not None:
            return found
    found = _rect_skeleton(m, n, depth, rank, strict)
    return None if found is None else (found[1], found[2])


def _any_skeleton(m, n, depth, rank):
    """A non-redundant skeleton when one exists, else a redundant one."""
    if rank > min(m, n):
        return None
    found = _skeleton(m, n, depth, rank)
    return found if found is not None else _skeleton(m, n, depth, rank, False)


def _square_skeleton(n, depth, rank, strict=True):
    best = {1: (0, ())}
    weights = [1] + [rank] * (depth - 1) + [1]
    for step in range(depth):
        last = step == depth - 1
        nxt = {}
        for pb, (cost, bps) in best.items():
            for bp in divisors(n // pb):
                if (last and bp != n // pb) or (not last and bp < 2):
                    continue
                if depth > 1 and (step == 0 or last) and bp <= (rank if strict else 1):
                    continue
                pb2 = pb * bp
                new = cost + (n // pb) * pb2 * weights[step] * weights[step + 1]
                if pb2 not in nxt or new < nxt[pb2][0]:
                    nxt[pb2] = (new, (*bps, bp))
        best = nxt
    found = best.get(n)
    return None if found is None else (found[1], found[1])


def _chain_from_skeleton(m, bps, cps, rank):
    depth = len(bps)
    chain, pb, pc = [], 1, 1
    for i in range(depth):
        p = rank if i > 0 else 1
        q = rank if i < depth - 1 else 1
        pb *= bps[i]
        chain.append((pc, bps[i] * p, cps[i] * q, m // pb))
        pc *= cps[i]
    return tuple(chain)


def butterfly_chain(m, n, depth, rank=1):
    """Cheapest non-redundant chain of ``depth`` factors for an ``m x n`` matrix.

    The row size ``m`` and the column size ``n`` are split into ``depth`` digits
    each (mixed radix); interior interfaces carry rank ``rank``. For ``n = m = 2**L``
    and ``rank=1`` this is :func:`square_dyadic_chain`.

    Parameters
    ----------
    m, n : int
        Shape of the matrix.
    depth : int
        Number of factors.
    rank : int, default=1
        Rank at every interior interface.

    Returns
    -------
    chain : tuple of tuple of int
        The patterns ``(a, b, c, d)`` of the factors, leftmost first.

    Raises
    ------
    ValueError
        If no such chain exists, naming the valid depths or ranks.

    Examples
    --------
    >>> from skbutterfly import butterfly_chain
    >>> butterfly_chain(128, 128, 4, rank=2)
    ((1, 4, 8, 32), (4, 4, 4, 16), (8, 4, 4, 8), (16, 16, 8, 1))
    >>> butterfly_chain(12, 20, 3)
    ((1, 2, 2, 6), (2, 2, 2, 3), (4, 3, 5, 1))
    """
    m, n = check_int(m, "m"), check_int(n, "n")
    depth = check_int(depth, "depth")
    rank = check_int(rank, "rank")
    skeleton = _any_skeleton(m, n, depth, rank)
    if skeleton is None:
        raise ValueError(_infeasible_message(m, n, depth, rank))
    return _chain_from_skeleton(m, *skeleton, rank)


def max_depth(m, n, rank=1):
    """Largest depth of a non-redundant chain for ``(m, n)`` at ``rank`` (no padding).

    Returns 0 when no chain exists (a rank > 1 only fits depths >= 2).
    """
    upper = min(omega(m), omega(n)) + 1
    for depth in range(upper, 1, -1):
        if _skeleton(m, n, depth, rank) is not None:
            return depth
    return 1 if rank == 1 else 0


def max_rank(m, n, depth, upper=None):
    """Largest rank of a non-redundant chain of ``depth`` factors (0 if none).

    ``upper`` caps the search (the answer is then ``min(rank, upper)``).
    """
    if depth == 1:
        return 1
    lo, hi = 0, min(m, n, _rank_bound(m, n, depth))
    if upper is not None:
        hi = min(hi, upper)
    while lo < hi:  # feasibility is monotone in the rank
        mid = (lo + hi + 1) // 2
        if _skeleton(m, n, depth, mid) is not None:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _rank_bound(m, n, depth):
    """An upper bound of :func:`max_rank` from the prime factors alone.

    A non-redundant chain has a first row digit and a last column digit larger
    than the rank, and ``depth - 2`` interior digits of at least 2 on each
    side, which take at least the ``depth - 2`` smallest prime factors.
    """
    if depth == 1:
        return 1
    bound = min(m, n)
    for size in (m, n):
        primes = [p for p, e in factorize(size) for _ in range(e)]
        if len(primes) < depth - 1:
            return 0
        bound = min(bound, size // prod(primes[: depth - 2]) - 1)
    return bound


def _shape_text(m, n):
    return f"shape ({m}, {n}) (n_samples={m}, n_features={n})"


def _infeasible_message(m, n, depth, rank):
    msg = f"depth={depth} with rank={rank} is not feasible for {_shape_text(m, n)}: "
    if rank > min(m, n):
        return msg + f"valid ranks are 1..{min(m, n)}."
    return msg + f"valid depths are 1..{max_depth(m, n, 1)}."


def feasible_depth_rank(shape, max_rank_per_depth=None):
    """List the feasible ``(depth, rank)`` pairs for a matrix shape.

    Zero padding is taken into account: a depth is feasible when it is feasible
    for the shape or for a padded shape up to the next powers of two. Pairs
    whose model would hold more numbers than the dense ``m * n`` matrix are
    left out (depth 1 is the dense matrix itself).

    Parameters
    ----------
    shape : tuple of int
        ``(m, n)``.
    max_rank_per_depth : int, default=None
        Cap on the ranks listed per depth (None lists them all).

    Returns
    -------
    pairs : list of tuple of int
        ``(depth, rank)`` pairs sorted by depth then rank.

    Examples
    --------
    >>> from skbutterfly import feasible_depth_rank
    >>> feasible_depth_rank((16, 16), max_rank_per_depth=3)
    [(1, 1), (2, 1), (2, 2), (3, 1), (4, 1)]
    """
    m, n = (check_int(s, "shape") for s in shape)
    cap = min(m, n)  # ranks never exceed the unpadded shape
    if max_rank_per_depth is not None:
        cap = min(cap, max_rank_per_depth)
    best = {}
    # The largest rank per depth over the padded shapes. Bounds from the prime
    # factors skip every shape that cannot raise it, so that only a few chains
    # are searched even when there are thousands of padded shapes.
    for mm, nn in search_order(padding_candidates(m, n)):
        for depth in range(1, depth_bound(mm, nn) + 1):
            if best.get(depth, 0) >= min(cap, _rank_bound(mm, nn, depth)):
                continue
            rank = max_rank(mm, nn, depth, upper=cap)
            if rank:
                best[depth] = max(best.get(depth, 0), rank)
    pairs = []
    for depth in sorted(best):
        for rank in range(1, best[depth] + 1):
            # Models larger than the dense matrix are left out; their size
            # grows with the rank, so the first one ends the depth.
            if depth > 1 and _resolved_n_params(m, n, depth, rank) > m * n:
                break
            pairs.append((depth, rank))
    return pairs


def _resolved_n_params(m, n, depth, rank):
    """Parameters of the chain a fit with ``depth`` and ``rank`` would use."""
    chain, _ = resolve_architecture((m, n), depth, rank)
    return chain_n_params(chain)


def resolve_architecture(shape, depth=None, rank=1, architecture=None):
    """Choose the chain and the (possibly zero-padded) shape it factorizes.

    Parameters
    ----------
    shape : tuple of int
        Shape ``(m, n)`` of the matrix.
    depth : int or None
        Number of factors; None means the finest butterfly for ``rank``.
    rank : int
        Rank at the interior interfaces.
    architecture : sequence of (a, b, c, d) or None
        Explicit chain; it must have shape ``shape`` and then ``depth`` and
        ``rank`` must be left at their defaults or agree with it.

    Returns
    -------
    chain : tuple of tuple of int
        The chain, of shape ``padded_shape``.
    padded_shape : tuple of int
        ``shape`` itself, or the larger shape the matrix is zero-padded to.
    """
    m, n = (int(s) for s in shape)
    rank = check_int(rank, "rank")
    if architecture is not None:
        chain = validate_chain(architecture, shape=(m, n))
        if depth is not None and depth != len(chain):
            raise ValueError(
                f"depth={depth} disagrees with the architecture, which has "
                f"{len(chain)} factors; leave depth=None with an architecture."
            )
        ranks = set(chain_ranks(chain))
        if rank != 1 and ranks != {rank}:
            raise ValueError(
                f"rank={rank} disagrees with the architecture, whose interface "
                f"ranks are {sorted(ranks)}; leave rank=1 with an architecture."
            )
        return chain, (m, n)
    if depth is not None:
        depth = check_int(depth, "depth")
        if rank > min(m, n):
            raise ValueError(_padded_infeasible_message(m, n, depth, rank))
        candidates = [(m, n), *padding_candidates(m, n)]
        candidates = [
            (mm, nn)
            for mm, nn in candidates
            if depth <= depth_bound(mm, nn) and rank <= min(mm, nn)
        ]
        # A non-redundant chain (padded if need be) first, then a redundant one.
        for strict in (True, False):
            for mm, nn in candidates:
                if strict and rank > _rank_bound(mm, nn, depth):
                    continue  # no non-redundant chain there
                skeleton = _skeleton(mm, nn, depth, rank, strict)
                if skeleton is not None:
                    return _chain_from_skeleton(mm, *skeleton, rank), (mm, nn)
        raise ValueError(_padded_infeasible_message(m, n, depth, rank))
    # depth=None: the finest butterfly. Smooth sizes are factorized as they are
    # (mixed radix); other sizes are padded to the smooth size (up to the next
    # power of two) that allows the most factors, the smallest on ties.
    mm = m if is_smooth(m) else deepest_size(m)
    nn = n if is_smooth(n) else deepest_size(n)
    if rank > min(m, n):
        raise ValueError(
            f"rank={rank} is not feasible for {_shape_text(m, n)}: valid ranks "
            f"are 1..{min(m, n)}."
        )
    deepest = max_depth(mm, nn, rank)
    if (mm, nn) != (m, n) and deepest <= max_depth(m, n, rank):
        mm, nn, deepest = m, n, max_depth(m, n, rank)  # padding would not help
    # The finest non-redundant chain; a rank too large for any depth >= 2 gives
    # the dense matrix (depth 1, where the rank is vacuous).
    deepest = max(deepest, 1)
    skeleton = _any_skeleton(mm, nn, deepest, rank)
    return _chain_from_skeleton(mm, *skeleton, rank), (mm, nn)


def _padded_infeasible_message(m, n, depth, rank):
    msg = f"depth={depth} with rank={rank} is not feasible for {_shape_text(m, n)}: "
    if rank > min(m, n):
        return msg + f"valid ranks are 1..{min(m, n)}."
    deepest = 1
    pairs = [(m, n), *padding_candidates(m, n)]
    for mm, nn in sorted(pairs, key=lambda s: -depth_bound(*s)):
        if depth_bound(mm, nn) <= deepest:
            break
        deepest = max(deepest, max_depth(mm, nn, 1))
    return msg + f"valid depths are 1..{deepest}."


def unpadded_architecture(shape, depth=None, rank=1):
    """The chain of ``shape`` with its exact radices, never zero-padded.

    :func:`resolve_architecture` pads sizes with a prime factor larger than 7 to
    a smooth size; permutations that make a transform exact need the size itself
    (a large prime factor ``p`` then gives one dense ``p x p`` block per group).

    Parameters
    ----------
    shape : tuple of int
        ``(m, n)``.
    depth : int or None, default=None
        Number of factors; None means the deepest non-redundant chain.
    rank : int, default=1
        Rank at the interior interfaces.

    Returns
    -------
    chain : tuple of tuple of int or None
        The cheapest chain of shape ``shape`` (non-redundant when one exists),
        or None when there is none.
    """
    m, n = (check_int(s, "shape") for s in shape)
    rank = check_int(rank, "rank")
    if depth is None:
        depth = max(max_depth(m, n, rank), 1)
    skeleton = _any_skeleton(m, n, depth, rank)
    return None if skeleton is None else _chain_from_skeleton(m, *skeleton, rank)
