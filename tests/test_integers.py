"""Integer arithmetic of the size search (issue 16, item 3): no walk over integers."""

from math import prod

import numpy as np
import pytest

from skbutterfly import butterfly_factorize, feasible_depth_rank
from skbutterfly._chain import max_depth, max_rank, resolve_architecture
from skbutterfly._integers import (
    deepest_size,
    divisors,
    factorize,
    is_smooth,
    n_divisors,
    omega,
    padded_sizes,
    padding_candidates,
    smooth_sizes,
)


def _trial_factors(n):
    out, p = [], 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out + ([n] if n > 1 else [])


@pytest.mark.parametrize("n", [*range(1, 400), 2**31 - 1, 600851475143, 2**40 + 1])
def test_factorize_matches_trial_division(n):
    expected = _trial_factors(n)
    factors = factorize(n)
    assert [p for p, e in factors for _ in range(e)] == expected
    assert prod(p**e for p, e in factors) == n
    assert omega(n) == len(expected)
    assert n_divisors(n) == len(divisors(n))
    if n <= 400:
        assert divisors(n) == tuple(d for d in range(1, n + 1) if n % d == 0)


@pytest.mark.parametrize(
    "n", [2**61 - 1, (2**31 - 1) * (2**61 - 1), 1000003 * 1000033, 3**40 * 5 + 2]
)
def test_factorize_large_numbers(n):
    """Pollard-Brent and Miller-Rabin: large primes and semiprimes."""
    factors = factorize(n)
    assert prod(p**e for p, e in factors) == n
    for p, _ in factors:
        assert p > 1 and factorize(p) == ((p, 1),)


def test_smooth_sizes_match_a_scan():
    for low, high in [(1, 1), (1, 300), (97, 128), (257, 512), (1000, 1024)]:
        scan = [k for k in range(low, high + 1) if max(_trial_factors(k) or [1]) <= 7]
        assert list(smooth_sizes(low, high, 7)) == scan
        assert all(is_smooth(k) == (k in scan) for k in range(low, high + 1))


def test_padded_sizes_and_deepest():
    assert padded_sizes(1) == [1]
    assert padded_sizes(17) == [18, 20, 21, 24, 25, 27, 28, 30, 32]
    assert deepest_size(17) == 32
    assert deepest_size(2**20 + 1) == 2**21
    assert len(padding_candidates(9, 5)) == len(padded_sizes(9)) * len(padded_sizes(5))


def _exhaustive_feasible_depth_rank(shape):
    """The definition: every padded shape searched in full (small shapes only)."""
    m, n = shape
    best = {}
    for mm, nn in padding_candidates(m, n):
        for depth in range(1, max_depth(mm, nn, 1) + 1):
            best[depth] = max(best.get(depth, 0), max_rank(mm, nn, depth))
    pairs = []
    for depth in sorted(best):
        for rank in range(1, min(best[depth], m, n) + 1):
            chain, _ = resolve_architecture((m, n), depth, rank)
            if depth > 1 and sum(a * b * c * d for a, b, c, d in chain) > m * n:
                break
            pairs.append((depth, rank))
    return pairs


@pytest.mark.parametrize("m", [1, 2, 3, 5, 7, 11, 13, 17, 24, 31, 33, 49, 60])
def test_pruned_search_lists_what_the_exhaustive_one_does(m):
    for n in [1, 2, 6, 9, 13, 16, 23, 40]:
        assert feasible_depth_rank((m, n)) == _exhaustive_feasible_depth_rank((m, n))
        for cap in (1, 2):
            expected = [
                p for p in _exhaustive_feasible_depth_rank((m, n)) if p[1] <= cap
            ]
            assert feasible_depth_rank((m, n), max_rank_per_depth=cap) == expected


def test_issue_reproducers_finish():
    """Were 28 s, > 120 s and a hang (each integer trial-divided in Python)."""
    assert feasible_depth_rank((2**40 + 1, 3)) == [(1, 1), (2, 1), (2, 2), (3, 1)]
    for n in (2**20 + 1, 4194305):
        A = np.ones((1, n))
        op = butterfly_factorize(A)
        assert op.shape == (1, n)
        assert np.array_equal(op.matvec(np.ones(n)), [n])
    chain, padded = resolve_architecture((2**40 + 1, 3), depth=2, rank=2)
    assert padded[0] >= 2**40 + 1 and len(chain) == 2


def _exhaustive_resolve(m, n, depth, rank):
    """The first skeleton over every candidate shape, non-redundant ones first."""
    from skbutterfly._chain import _skeleton

    for strict in (True, False):
        for mm, nn in [(m, n), *padding_candidates(m, n)]:
            if rank <= min(mm, nn) and _skeleton(mm, nn, depth, rank, strict):
                return mm, nn
    return None


@pytest.mark.parametrize("m", [2, 3, 8, 12, 21, 64, 100])
def test_pruned_resolution_picks_what_the_exhaustive_one_does(m):
    """The prime-factor bound only skips non-redundant searches that must fail."""
    for n in [2, 5, 16, 64]:
        for depth in range(2, 6):
            for rank in (1, 2, 4):
                expected = _exhaustive_resolve(m, n, depth, rank)
                if expected is None or rank > min(m, n):
                    with pytest.raises(ValueError):
                        resolve_architecture((m, n), depth, rank)
                else:
                    _, padded = resolve_architecture((m, n), depth, rank)
                    assert padded == expected, (m, n, depth, rank)
