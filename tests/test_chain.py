"""Architectures: Kronecker-sparse patterns, chains, builders and their errors."""

import numpy as np
import pytest

from skbutterfly import (
    butterfly_chain,
    feasible_depth_rank,
    low_rank_chain,
    monarch_chain,
    square_dyadic_chain,
    validate_chain,
)
from skbutterfly._chain import (
    chain_n_params,
    chain_ranks,
    chain_shape,
    resolve_architecture,
)

# --------------------------------------------------------------------------- helpers


def _support(pattern):
    """Dense 0/1 support ``I_a (x) 1_{b x c} (x) I_d`` of a pattern."""
    a, b, c, d = pattern
    return np.kron(np.kron(np.eye(a), np.ones((b, c))), np.eye(d))


def _redundant_interfaces(chain):
    """Interfaces ``l`` whose rank is >= min(b_l, c_{l+1}) (vacuous constraint)."""
    ranks = chain_ranks(chain)
    return [i for i, r in enumerate(ranks) if r >= min(chain[i][1], chain[i + 1][2])]


def _ordered_factorizations(n, k):
    """All ordered ``k``-tuples of positive integers whose product is ``n``."""
    if k == 1:
        yield (n,)
        return
    for first in range(1, n + 1):
        if n % first == 0:
            for rest in _ordered_factorizations(n // first, k - 1):
                yield (first, *rest)


def _brute_force_feasible(m, n, depth, rank):
    """Whether a non-redundant chain of ``depth`` factors and uniform ``rank`` exists.

    Reference implementation of the documented rules, independent of the
    engine's dynamic programming: digits ``bp`` (product ``m``) and ``cp``
    (product ``n``); interface ``l`` carries ``rank`` and must be non-redundant
    (``rank < min(b_l, c_{l+1})`` with ``b``, ``c`` including the ranks); the
    rank-one skeleton keeps at least ``min(m, n)`` rows at every interface,
    i.e. ``m * Pc_l / Pb_l >= min(m, n)`` (the rank adds capacity on top).
    """
    if depth == 1:
        return rank == 1
    weights = [1] + [rank] * (depth - 1) + [1]
    for bps in _ordered_factorizations(m, depth):
        for cps in _ordered_factorizations(n, depth):
            ok, pb, pc = True, 1, 1
            for i in range(depth - 1):
                pb, pc = pb * bps[i], pc * cps[i]
                b_left = weights[i] * bps[i]
                c_right = cps[i + 1] * weights[i + 2]
                interface_rows = pc * (m // pb)
                if rank >= min(b_left, c_right) or interface_rows < min(m, n):
                    ok = False
                    break
            if ok:
                return True
    return False


def _is_smooth(k):
    for p in (2, 3, 5, 7):
        while k % p == 0:
            k //= p
    return k == 1


# --------------------------------------------------------------- patterns, supports


@pytest.mark.parametrize(
    "pattern", [(1, 2, 2, 4), (2, 3, 5, 2), (4, 1, 3, 1), (1, 6, 6, 1), (3, 2, 2, 5)]
)
def test_single_pattern_shape_and_params(pattern):
    a, b, c, d = pattern
    chain = validate_chain([pattern])
    assert chain == (pattern,)
    assert chain_shape(chain) == (a * b * d, a * c * d)
    assert chain_n_params(chain) == a * b * c * d == int(_support(pattern).sum())
    assert chain_ranks(chain) == ()


def test_validate_chain_returns_tuple_of_python_ints():
    chain = validate_chain(np.array([[1, 2, 2, 2], [2, 2, 2, 1]], dtype=np.int64))
    assert chain == ((1, 2, 2, 2), (2, 2, 2, 1))
    assert all(type(v) is int for p in chain for v in p)
    chain = validate_chain([[np.int32(1), 2, 2, 2], (np.int64(2), 2, 2, 1)])
    assert chain == ((1, 2, 2, 2), (2, 2, 2, 1))
    assert validate_chain(chain, shape=(4, 4)) == chain


# ----------------------------------------------------------- validation with errors


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        # not a sequence / empty
        (5, "architecture must be a sequence"),
        ([], "at least one pattern"),
        # malformed patterns: the bad index and value are named
        ([(1, 2, 2)], r"architecture\[0\]=\(1, 2, 2\) is not a pattern"),
        ([(1, 2, 2, 2), (2, 2, 2)], r"architecture\[1\]=\(2, 2, 2\) is not a pattern"),
        ([(1, 2, 2, 2), (0, 2, 2, 1)], r"architecture\[1\]=\(0, 2, 2, 1\)"),
        ([(1, 2.0, 2, 2)], r"architecture\[0\]=\(1, 2.0, 2, 2\)"),
        ([(1, 2, 2, -2)], r"architecture\[0\]=\(1, 2, 2, -2\)"),
        ([(1, True, 2, 2)], r"architecture\[0\]=\(1, True, 2, 2\)"),
        ([(1, 2, 2, 2), "abcd"], r"architecture\[1\]='abcd'"),
        # sizes do not match: the two factors and the sizes are named
        (
            [(1, 2, 2, 2), (1, 2, 2, 1)],
            r"architecture\[0\]=\(1, 2, 2, 2\) has 4 columns but "
            r"architecture\[1\]=\(1, 2, 2, 1\) has 2 rows",
        ),
        (
            [(1, 2, 2, 4), (2, 2, 2, 2), (4, 2, 2, 2)],
            r"architecture\[1\]=\(2, 2, 2, 2\) has 8 columns but "
            r"architecture\[2\]=\(4, 2, 2, 2\) has 16 rows",
        ),
        # sizes match but the pair is not chainable (a_0 does not divide a_1)
        (
            [(2, 1, 3, 1), (3, 2, 1, 1)],
            r"architecture\[0\]=\(2, 1, 3, 1\) and architecture\[1\]=\(3, 2, 1, 1\) "
            r"are not chainable",
        ),
        # sizes match but d_1 does not divide d_0
        (
            [(1, 2, 6, 2), (1, 4, 1, 3)],
            r"architecture\[0\]=\(1, 2, 6, 2\) and architecture\[1\]=\(1, 4, 1, 3\) "
            r"are not chainable",
        ),
        (
            [(1, 4, 2, 3), (1, 3, 4, 2)],
            r"architecture\[0\]=\(1, 4, 2, 3\) and architecture\[1\]=\(1, 3, 4, 2\) "
            r"are not chainable",
        ),
    ],
)
def test_validate_chain_errors_name_the_bad_factor(chain, expected):
    with pytest.raises(ValueError, match=expected):
        validate_chain(chain)


def test_validate_chain_shape_mismatch_names_both_shapes():
    chain = square_dyadic_chain(8)
    with pytest.raises(ValueError, match=r"\(8, 8\).*\(4, 8\)"):
        validate_chain(chain, shape=(4, 8))


def test_validate_chain_chainability_rules():
    # Valid iff a_l | a_{l+1}, d_{l+1} | d_l and
    # a_l c_l / a_{l+1} = b_{l+1} d_{l+1} / d_l is an integer.
    rng = np.random.default_rng(0)
    n_valid = n_invalid = 0
    for _ in range(400):
        p1 = tuple(int(v) for v in rng.integers(1, 5, size=4))
        p2 = tuple(int(v) for v in rng.integers(1, 5, size=4))
        a1, _, c1, d1 = p1
        a2, b2, _, d2 = p2
        ok = (
            a1 * c1 * d1 == a2 * b2 * d2
            and a2 % a1 == 0
            and d1 % d2 == 0
            and (a1 * c1) % a2 == 0
        )
        if ok:
            n_valid += 1
            assert validate_chain([p1, p2]) == (p1, p2)
            assert chain_ranks((p1, p2)) == ((a1 * c1) // a2,)
            assert (a1 * c1) // a2 == (b2 * d2) // d1
        else:
            n_invalid += 1
            with pytest.raises(ValueError, match=r"architecture\[0\]"):
                validate_chain([p1, p2])
    assert n_valid > 5 and n_invalid > 5


# ------------------------------------------------------------ square dyadic builder


@pytest.mark.parametrize("levels", range(1, 11))
def test_square_dyadic_chain_all_depths(levels):
    n = 2**levels
    assert square_dyadic_chain(n) == square_dyadic_chain(n, levels)
    finest = square_dyadic_chain(n, levels)
    assert finest == tuple(
        (2 ** (i - 1), 2, 2, n // 2**i) for i in range(1, levels + 1)
    )
    assert chain_n_params(finest) == 2 * n * levels
    for depth in range(1, levels + 1):
        chain = square_dyadic_chain(n, depth)
        assert validate_chain(chain, shape=(n, n)) == chain
        assert len(chain) == depth
        assert chain_ranks(chain) == (1,) * (depth - 1)
        exponents = [int(np.log2(b)) for _, b, _, _ in chain]
        # merged as evenly as possible, square blocks b = c
        assert all(b == c for _, b, c, _ in chain)
        assert sum(exponents) == levels
        assert max(exponents) - min(exponents) <= 1
        assert chain_n_params(chain) == n * sum(b for _, b, _, _ in chain)
        if n <= 64:  # the support of the product is the full matrix
            support = np.linalg.multi_dot([_support(p) for p in chain] + [np.eye(n)])
            assert (support > 0).all()
    assert square_dyadic_chain(n, 1) == ((1, n, n, 1),)


@pytest.mark.parametrize(
    ("n", "depth", "match"),
    [
        (6, None, "n=6"),
        (0, None, "n=0"),
        (1, None, "n=1"),
        (2.0, None, "n=2.0"),
        (16, 0, r"depth=0 .*\[1, 4\]"),
        (16, 5, r"depth=5 .*\[1, 4\]"),
        (16, 2.5, r"depth=2.5 .*\[1, 4\]"),
    ],
)
def test_square_dyadic_chain_errors(n, depth, match):
    with pytest.raises(ValueError, match=match):
        square_dyadic_chain(n, depth)


# --------------------------------------------------------- general builders, refs


@pytest.mark.parametrize(
    ("shape", "depth", "rank", "expected", "n_params"),
    [
        # DebflyGen references of ALGORITHM.md section 1.6
        (
            (1024, 1024),
            4,
            4,
            ((1, 8, 32, 128), (8, 8, 8, 64), (16, 16, 16, 16), (64, 64, 16, 1)),
            196_608,
        ),
        (
            (128, 128),
            4,
            2,
            ((1, 4, 8, 32), (4, 4, 4, 16), (8, 4, 4, 8), (16, 16, 8, 1)),
            5_120,
        ),
        (
            (8192, 8192),
            4,
            4,
            ((1, 16, 64, 512), (16, 16, 16, 128), (64, 16, 16, 32), (256, 128, 32, 1)),
            2_621_440,
        ),
        # rank 1: the reference chain's parameter count (ties between digit orders)
        ((128, 128), 4, 1, None, 1_792),
        ((50, 50), 3, 1, None, 600),
    ],
)
def test_butterfly_chain_references(shape, depth, rank, expected, n_params):
    chain = butterfly_chain(*shape, depth, rank)
    if expected is not None:
        assert chain == expected
    assert chain_n_params(chain) == n_params
    assert validate_chain(chain, shape=shape) == chain
    assert len(chain) == depth
    assert chain_ranks(chain) == (rank,) * (depth - 1)
    assert _redundant_interfaces(chain) == []


@pytest.mark.parametrize("levels", range(1, 11))
def test_butterfly_chain_rank_one_matches_square_dyadic(levels):
    n = 2**levels
    assert butterfly_chain(n, n, levels, 1) == square_dyadic_chain(n, levels)
    for depth in range(1, levels + 1):
        chain = butterfly_chain(n, n, depth, 1)
        assert chain_shape(chain) == (n, n)
        # the cheapest chain: no more parameters than the evenly merged one
        assert chain_n_params(chain) == chain_n_params(square_dyadic_chain(n, depth))


@pytest.mark.parametrize(
    ("m", "n", "depth", "rank"),
    [
        (256, 512, 4, 2),
        (512, 256, 4, 2),
        (64, 16, 3, 1),
        (16, 64, 3, 2),
        (12, 12, 3, 1),
        (12, 18, 3, 1),
        (36, 48, 2, 2),
        (60, 60, 3, 1),
        (24, 40, 2, 3),
        (21, 16, 2, 1),
        (81, 27, 3, 1),
    ],
)
def test_butterfly_chain_rectangular_and_mixed_radix(m, n, depth, rank):
    chain = butterfly_chain(m, n, depth, rank)
    assert validate_chain(chain, shape=(m, n)) == chain
    assert len(chain) == depth
    assert chain_ranks(chain) == (rank,) * (depth - 1)
    assert _redundant_interfaces(chain) == []
    assert chain_n_params(chain) == sum(a * b * c * d for a, b, c, d in chain)
    assert chain_n_params(chain) == sum(int(_support(p).sum()) for p in chain)


def test_monarch_chain_references():
    # lazylinop Chain.monarch examples (ALGORITHM.md section 1.5)
    assert monarch_chain(32, 32) == ((1, 4, 4, 8), (4, 8, 8, 1))
    assert monarch_chain(21, 16) == ((1, 3, 4, 7), (4, 7, 4, 1))
    # square n = p^2 at rank 1: 2 n^1.5 parameters
    assert chain_n_params(monarch_chain(256, 256)) == 2 * 256 * 16


@pytest.mark.parametrize("rank", [1, 2, 3, 4])
@pytest.mark.parametrize("shape", [(64, 64), (128, 128), (256, 256), (48, 96)])
def test_monarch_chain_ranks(shape, rank):
    chain = monarch_chain(*shape, rank)
    assert validate_chain(chain, shape=shape) == chain
    assert len(chain) == 2
    assert chain_ranks(chain) == (rank,)
    assert _redundant_interfaces(chain) == []
    assert chain == butterfly_chain(*shape, 2, rank)


@pytest.mark.parametrize(
    ("m", "n", "rank"), [(8, 8, 1), (8, 8, 3), (5, 7, 2), (1, 9, 1)]
)
def test_low_rank_chain(m, n, rank):
    chain = low_rank_chain(m, n, rank)
    assert chain == ((1, m, rank, 1), (1, rank, n, 1))
    assert validate_chain(chain, shape=(m, n)) == chain
    assert chain_ranks(chain) == (rank,)
    assert chain_n_params(chain) == rank * (m + n)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((8, 8, 0), "rank=0"),
        ((8, 0, 1), "n=0"),
        ((0, 8, 1), "m=0"),
        ((8, 8, 1.5), "1.5"),
    ],
)
def test_low_rank_chain_invalid(args, match):
    with pytest.raises(ValueError, match=match):
        low_rank_chain(*args)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0, 8, 2), "m=0"),
        ((8, -1, 2), "n=-1"),
        ((8, 8, 0), "depth=0"),
        ((8, 8, 2, 0), "rank=0"),
        ((8, 8, 2.0), r"depth=2\.0"),
        ((8, 8, True), "depth=True"),
        ((8, 8, 2, 1.5), r"rank=1\.5"),
        # depth beyond the number of prime factors: the valid depths are named
        ((8, 8, 4), r"depth=4 .*valid depths are 1\.\.3"),
        ((16, 16, 5, 1), r"depth=5 .*valid depths are 1\.\.4"),
        ((7, 7, 2), r"depth=2 .*valid depths are 1\.\.1"),
        ((12, 18, 4), r"depth=4 .*valid depths are 1\.\.3"),
        # rank above the matrix size: the valid ranks are named
        ((8, 8, 2, 9), r"rank=9 .*valid ranks are 1\.\.8"),
        ((4, 16, 2, 5), r"rank=5 .*valid ranks are 1\.\.4"),
    ],
)
def test_butterfly_chain_invalid(args, match):
    with pytest.raises(ValueError, match=match):
        butterfly_chain(*args)


# --------------------------------------------------------------- feasible pairs


@pytest.mark.parametrize(
    "shape", [(1, 1), (2, 2), (8, 8), (16, 16), (7, 7), (13, 17), (12, 18), (1, 64)]
)
def test_feasible_depth_rank_structure(shape):
    pairs = feasible_depth_rank(shape)
    assert pairs == sorted(pairs)
    assert len(set(pairs)) == len(pairs)
    depths = sorted({d for d, _ in pairs})
    assert depths == list(range(1, len(depths) + 1))
    assert (1, 1) in pairs
    for depth in depths:
        ranks = [r for d, r in pairs if d == depth]
        assert ranks == list(range(1, len(ranks) + 1))
        assert max(ranks) <= min(shape) or depth == 1
    assert [(d, r) for d, r in pairs if d == 1] == [(1, 1)]
    capped = feasible_depth_rank(shape, max_rank_per_depth=2)
    assert capped == [(d, r) for d, r in pairs if r <= 2]


@pytest.mark.parametrize("levels", range(1, 8))
def test_feasible_depths_of_powers_of_two(levels):
    n = 2**levels
    pairs = feasible_depth_rank((n, n))
    assert max(d for d, _ in pairs) == levels
    assert [r for d, r in pairs if d == levels] == [1]


def _deepest_resolvable(shape):
    depth = 1
    while True:
        try:
            resolve_architecture(shape, depth + 1, 1)
        except ValueError:
            return depth
        depth += 1


def _larger_than_dense(shape, depth, rank):
    chain, _ = resolve_architecture(shape, depth, rank)
    return depth > 1 and chain_n_params(chain) > shape[0] * shape[1]


def test_feasible_depth_rank_small_shapes_resolve():
    """Every listed pair builds a chain of that depth and rank; nothing beyond does
    (depths beyond the listed ones only give models larger than dense)."""
    for m in range(1, 13):
        for n in range(1, 13):
            pairs = feasible_depth_rank((m, n))
            deepest = _deepest_resolvable((m, n))
            listed = max(d for d, _ in pairs)
            assert all(
                _larger_than_dense((m, n), d, 1) for d in range(listed + 1, deepest + 1)
            )
            for depth, rank in pairs:
                chain, padded = resolve_architecture((m, n), depth, rank)
                assert len(chain) == depth, (m, n, depth, rank)
                assert chain_ranks(chain) == (rank,) * (depth - 1)
                assert chain_shape(chain) == padded
                assert padded[0] >= m and padded[1] >= n
            with pytest.raises(ValueError, match=rf"valid depths are 1\.\.{deepest}"):
                resolve_architecture((m, n), deepest + 1, 1)


@pytest.mark.parametrize(
    "shape", [(4, 8), (8, 4), (8, 8), (8, 16), (16, 8), (16, 16), (4, 16), (2, 16)]
)
def test_feasible_depth_rank_matches_brute_force(shape):
    """Power-of-two shapes (no padding): the listed pairs are exactly those with a
    non-redundant chain (documented rules, checked by exhaustive search)."""
    m, n = shape
    expected = [
        (depth, rank)
        for depth in range(1, min(m, n).bit_length() + 1)
        for rank in range(1, min(m, n) + 1)
        if _brute_force_feasible(m, n, depth, rank)
        and not _larger_than_dense(shape, depth, rank)
    ]
    assert feasible_depth_rank(shape) == expected


def test_non_redundant_chain_chosen_when_one_exists():
    # [(1, 8, 32, 8), (8, 32, 8, 1)]: 64 x 64, rank 4 at 8 x 8 blocks.
    reference = ((1, 8, 32, 8), (8, 32, 8, 1))
    assert validate_chain(reference, shape=(64, 64)) == reference
    assert _redundant_interfaces(reference) == []
    chain, padded = resolve_architecture((64, 64), 2, 4)
    assert padded == (64, 64)
    assert _redundant_interfaces(chain) == [], chain
    assert chain_n_params(chain) <= chain_n_params(reference)


# ---------------------------------------------- invalid (shape, depth, rank) values


def test_invalid_depth_and_rank_name_value_and_range():
    for m in range(1, 11):
        for n in range(1, 11):
            deepest = _deepest_resolvable((m, n))
            bad_depth = deepest + 1
            with pytest.raises(
                ValueError, match=rf"depth={bad_depth}\b.*1\.\.{deepest}\b"
            ):
                resolve_architecture((m, n), bad_depth, 1)
            bad_rank = min(m, n) + 1
            for depth in (None, *range(1, deepest + 1)):
                with pytest.raises(
                    ValueError, match=rf"rank={bad_rank}\b.*1\.\.{min(m, n)}\b"
                ):
                    resolve_architecture((m, n), depth, bad_rank)


@pytest.mark.parametrize(
    ("depth", "rank", "match"),
    [
        (0, 1, "depth=0"),
        (-1, 1, "depth=-1"),
        (2.0, 1, r"depth=2\.0"),
        (None, 0, "rank=0"),
        (None, -3, "rank=-3"),
        (None, 1.0, r"rank=1\.0"),
        (2, None, "rank=None"),
    ],
)
def test_resolve_architecture_bad_scalars(depth, rank, match):
    with pytest.raises(ValueError, match=match):
        resolve_architecture((16, 16), depth, rank)


def test_resolve_architecture_explicit_architecture():
    chain = butterfly_chain(16, 32, 3, 2)
    assert resolve_architecture((16, 32), architecture=chain) == (chain, (16, 32))
    assert resolve_architecture((16, 32), 3, architecture=chain) == (chain, (16, 32))
    assert resolve_architecture((16, 32), 3, 2, architecture=chain) == (
        chain,
        (16, 32),
    )
    with pytest.raises(ValueError, match=r"\(16, 32\).*\(32, 16\)"):
        resolve_architecture((32, 16), architecture=chain)
    with pytest.raises(ValueError, match=r"depth=2"):
        resolve_architecture((16, 32), 2, architecture=chain)
    with pytest.raises(ValueError, match=r"architecture\[1\]"):
        resolve_architecture((8, 8), architecture=[(1, 2, 2, 4), (2, 2, 2, 1)])


def test_resolve_architecture_rank_must_agree_with_architecture():
    # "depth and rank must be left at their defaults or agree with it"
    chain = square_dyadic_chain(16)
    with pytest.raises(ValueError, match=r"rank=3"):
        resolve_architecture((16, 16), None, 3, architecture=chain)


# ------------------------------------------------------------------------ padding


@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize(
    "shape",
    [
        (11, 11),
        (13, 13),
        (17, 17),
        (31, 31),
        (97, 97),
        (13, 16),
        (16, 13),
        (11, 5),
        (1, 13),
        (13, 1),
        (23, 29),
        (22, 26),
        (127, 64),
    ],
)
def test_padding_for_primes(shape, rank):
    m, n = shape
    if rank > min(m, n):
        pytest.skip("rank above the matrix size")
    chain, padded = resolve_architecture(shape, None, rank)
    assert chain_shape(chain) == padded
    assert validate_chain(chain, shape=padded) == chain
    mm, nn = padded
    assert mm >= m and nn >= n
    # padded only as far as the next power of two, to a size with small factors
    assert mm <= 1 << max(m - 1, 0).bit_length() or mm == m
    assert nn <= 1 << max(n - 1, 0).bit_length() or nn == n
    assert _is_smooth(mm) or mm == m
    assert _is_smooth(nn) or nn == n
    if min(shape) > 1 and rank == 1:
        assert padded != shape  # a size with a prime factor > 7 is padded
        assert len(chain) >= 2
    assert chain_ranks(chain) == (rank,) * (len(chain) - 1)


@pytest.mark.parametrize("shape", [(12, 12), (12, 18), (36, 60), (49, 7), (5, 10)])
def test_smooth_sizes_are_not_padded(shape):
    chain, padded = resolve_architecture(shape)
    assert padded == shape
    assert chain_shape(chain) == shape


@pytest.mark.parametrize("shape", [(7, 7), (13, 13), (3, 5)])
def test_explicit_depth_pads_when_needed(shape):
    pairs = feasible_depth_rank(shape)
    deepest = max(d for d, _ in pairs)
    assert deepest >= 2
    chain, padded = resolve_architecture(shape, deepest, 1)
    assert len(chain) == deepest
    assert chain_shape(chain) == padded
    assert padded[0] >= shape[0] and padded[1] >= shape[1]


def test_finest_chain_is_deep():
    # depth=None gives the finest chain: the dyadic butterfly for powers of two
    for levels in range(1, 9):
        n = 2**levels
        assert resolve_architecture((n, n)) == (square_dyadic_chain(n), (n, n))
    chain, padded = resolve_architecture((1000, 1000))
    assert padded == (1000, 1000)
    assert len(chain) == 6  # 1000 = 2^3 5^3
