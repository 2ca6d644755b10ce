"""Integer arithmetic of the size search: factorizations, divisors, smooth sizes.

Choosing a chain needs the prime factors of the matrix sizes, their divisors,
and the sizes between ``n`` and the next power of two whose prime factors are
all small (the sizes a matrix can be zero-padded to). Sizes can be anything a
shape holds (``2**40 + 1`` rows of a thin matrix), so nothing here walks over
the integers up to ``n`` or its square root: factors come from trial division
by small primes, then Miller-Rabin and Pollard-Brent on the rest; smooth sizes
are generated as products of prime powers.
"""

# SPDX-License-Identifier: BSD-3-Clause

from functools import lru_cache
from math import gcd, isqrt

__all__ = [
    "MAX_RADIX",
    "deepest_size",
    "depth_bound",
    "divisors",
    "factorize",
    "is_smooth",
    "largest_prime",
    "n_divisors",
    "omega",
    "padded_sizes",
    "padding_candidates",
    "search_order",
    "smooth_sizes",
]

# Sizes whose prime factors are all <= this radix are factorized as they are
# (mixed radix); other sizes are zero-padded to the next such size.
MAX_RADIX = 7

_SMALL_PRIMES = tuple(
    p for p in range(2, 1000) if all(p % q for q in range(2, isqrt(p) + 1))
)
# Deterministic Miller-Rabin bases for every n < 3.3e24; beyond, the test is
# probabilistic with an error below 4**-12 per composite.
_MR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def _is_prime(n):
    if n < 2:
        return False
    for p in _SMALL_PRIMES[:12]:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in _MR_BASES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _pollard_brent(n):
    """A nontrivial factor of the odd composite ``n`` (Brent's variant)."""
    for c in range(1, n):
        y, r, q, g, m = 2, 1, 1, 1, 128
        x = ys = y
        while g == 1:
            x = y
            for _ in range(r):
                y = (y * y + c) % n
            k = 0
            while k < r and g == 1:
                ys = y
                for _ in range(min(m, r - k)):
                    y = (y * y + c) % n
                    q = q * abs(x - y) % n
                g = gcd(q, n)
                k += m
            r *= 2
        if g == n:
            g = 1
            while g == 1:
                ys = (ys * ys + c) % n
                g = gcd(abs(x - ys), n)
        if g != n:
            return g
    raise ArithmeticError(f"no factor found for {n}")  # pragma: no cover


@lru_cache(maxsize=1024)
def factorize(n):
    """Prime factorization of the positive integer ``n``.

    Returns
    -------
    factors : tuple of (int, int)
        ``(prime, exponent)`` pairs in increasing order of the prime
        (``()`` for 1).
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"n={n} must be a positive integer.")
    found = {}
    for p in _SMALL_PRIMES:
        if p * p > n:
            break
        while n % p == 0:
            found[p] = found.get(p, 0) + 1
            n //= p
    stack = [n] if n > 1 else []
    while stack:
        m = stack.pop()
        if _is_prime(m):
            found[m] = found.get(m, 0) + 1
        else:
            d = _pollard_brent(m)
            stack.extend((d, m // d))
    return tuple(sorted(found.items()))


def omega(n):
    """Number of prime factors of ``n`` counted with multiplicity."""
    return sum(e for _, e in factorize(n))


def largest_prime(n):
    """Largest prime factor of ``n`` (1 for ``n = 1``)."""
    factors = factorize(n)
    return factors[-1][0] if factors else 1


@lru_cache(maxsize=1024)
def divisors(n):
    """Every divisor of ``n``, in increasing order."""
    out = [1]
    for p, e in factorize(n):
        out = [d * p**i for d in out for i in range(e + 1)]
    return tuple(sorted(out))


@lru_cache(maxsize=256)
def smooth_sizes(low, high, max_prime):
    """The integers in ``[low, high]`` whose prime factors are ``<= max_prime``.

    Generated as products of prime powers (a few thousand even for
    ``high = 2**41``), never by testing the integers one by one.
    """
    primes = [p for p in _SMALL_PRIMES if p <= max_prime]
    values = [1]
    for p in primes:
        grown = []
        for v in values:
            while v <= high:
                grown.append(v)
                v *= p
        values = grown
    return tuple(sorted(v for v in values if v >= low))


def is_smooth(n):
    """Whether every prime factor of ``n`` is at most :data:`MAX_RADIX`."""
    return largest_prime(n) <= MAX_RADIX


def padded_sizes(n):
    """Sizes ``n' >= n`` with prime factors <= 7, up to the next power of two."""
    top = 1 << max(int(n - 1).bit_length(), 0)
    return list(smooth_sizes(n, max(top, n), MAX_RADIX))


def deepest_size(n):
    """The padded size with the most prime factors (the smallest on ties)."""
    return max(padded_sizes(n), key=lambda k: (omega(k), -k))


def padding_candidates(m, n):
    """Every pair of padded sizes, by increasing area."""
    pairs = [(mm, nn) for mm in padded_sizes(m) for nn in padded_sizes(n)]
    return sorted(pairs, key=lambda s: (s[0] * s[1], s))


def depth_bound(m, n):
    """An upper bound of the depth of a chain: one more than the fewer prime factors."""
    return min(omega(m), omega(n)) + 1


def search_order(pairs):
    """``pairs`` with the sizes of fewest divisors (cheapest to search) first."""
    return sorted(pairs, key=lambda s: (n_divisors(s[0]) * n_divisors(s[1]), s))


def n_divisors(n):
    """Number of divisors of ``n``, from its prime exponents."""
    count = 1
    for _, e in factorize(n):
        count *= e + 1
    return count
