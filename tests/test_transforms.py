"""Classical transforms are exact butterflies under their named permutations."""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import pytest
import scipy.fft
from numpy.testing import assert_allclose, assert_array_equal

from skbutterfly import ButterflyApproximator, butterfly_factorize
from skbutterfly._chain import _gb_factors, resolve_architecture, square_dyadic_chain
from skbutterfly._factorize import dense_source, factorize_core
from skbutterfly._permutation import bit_reversal, digit_reversal
from skbutterfly._transform_permutations import (
    ChainChoice,
    chain_digit_reversal,
    makhoul_order,
    named_candidates,
    screen_candidates,
    shortlist,
)
from skbutterfly.datasets import (
    dct_matrix,
    dft_matrix,
    dst_matrix,
    hadamard_matrix,
    hartley_matrix,
    make_butterfly,
)


def _rel_error(op, A):
    return np.linalg.norm(op.toarray() - A) / np.linalg.norm(A)


REAL_TRANSFORMS = {
    # name: (matrix builder, permutation that makes it exact at rank 2)
    "dct-ii": (lambda n: dct_matrix(n, type=2), "makhoul"),
    "dct-iii": (lambda n: dct_matrix(n, type=3), "makhoul-rows"),
    "dct-iv": (lambda n: dct_matrix(n, type=4), "makhoul"),
    "dst-ii": (lambda n: dst_matrix(n, type=2), "makhoul"),
    "dst-iii": (lambda n: dst_matrix(n, type=3), "makhoul-rows"),
    "hartley": (lambda n: hartley_matrix(n, normalize=True), "digit-reversal"),
}


@pytest.mark.parametrize("n", [360, 768, 1000, 1536])
@pytest.mark.parametrize("permutation", ["digit-reversal", "auto"])
def test_dft_composite_sizes_exact(n, permutation):
    F = dft_matrix(n)
    op, info = factorize_core(
        dense_source(F), permutation=permutation, compute_error=True
    )
    assert info["relative_error"] < 1e-10
    assert _rel_error(op, F) < 1e-10
    assert info["permutation"] == "digit-reversal"
    assert info["padded_shape"] == (n, n)
    # one factor per prime factor: n * (sum of the primes) numbers
    assert op.n_params < n * n / 10


@pytest.mark.parametrize("n", [345, 422])  # 3*5*23 and 2*211: padded by default
def test_dft_large_prime_factor_not_padded(n):
    F = dft_matrix(n)
    _, default_padded = resolve_architecture((n, n))
    assert default_padded != (n, n)
    for permutation in ("digit-reversal", "auto"):
        op, info = factorize_core(
            dense_source(F), permutation=permutation, compute_error=True
        )
        assert info["relative_error"] < 1e-10
        assert info["padded_shape"] == (n, n)
        assert op.n_params < n * n
    # the padded identity fit, for comparison, is far from exact
    assert _rel_error(butterfly_factorize(F), F) > 0.5


@pytest.mark.slow
def test_dft_12345_exact_and_15x_smaller():
    n = 12345  # 3 * 5 * 823, a 2.4 GB dense complex matrix
    F = dft_matrix(n)
    op, info = factorize_core(dense_source(F), permutation="auto", compute_error=True)
    assert info["permutation"] == "digit-reversal"
    assert info["chain"] == ((1, 3, 3, 4115), (3, 5, 5, 823), (15, 823, 823, 1))
    assert info["relative_error"] < 1e-10
    assert n * n / op.n_params > 14


def test_dft_depth_and_rank_follow_the_chain():
    F = dft_matrix(1000)
    for depth, rank in [(3, 1), (2, 1), (None, 2), (4, 2)]:
        op = butterfly_factorize(F, depth, rank, permutation="digit-reversal")
        assert _rel_error(op, F) < 1e-10, (depth, rank)


def test_digit_reversal_is_bit_reversal_at_powers_of_two():
    for n in (2, 8, 64, 1024):
        levels = n.bit_length() - 1
        for depth in range(1, levels + 1):
            chain = square_dyadic_chain(n, depth)
            assert_array_equal(chain_digit_reversal(chain), bit_reversal(n))
    F = dft_matrix(256)
    for depth in (None, 3):
        a = butterfly_factorize(F, depth, permutation="bit-reversal")
        b = butterfly_factorize(F, depth, permutation="digit-reversal")
        assert_array_equal(a.col_perm, b.col_perm)
        for Ta, Tb in zip(a.twiddles, b.twiddles):
            assert_array_equal(Ta, Tb)


def test_chain_digit_reversal_matches_the_chain_radices():
    chain, _ = resolve_architecture((1000, 1000), None, 2)
    digits = [f.cp for f in _gb_factors(chain)]
    assert digits == [5, 2, 2, 2, 5, 5]  # the rank-2 chain's own order
    assert_array_equal(chain_digit_reversal(chain), digit_reversal(digits))
    # a merged digit is refined into its primes (ascending)
    merged = ((1, 10, 10, 10), (10, 10, 10, 1))
    assert_array_equal(chain_digit_reversal(merged), digit_reversal([2, 5, 2, 5]))


def test_bit_reversal_refused_off_powers_of_two_with_a_hint():
    with pytest.raises(ValueError, match="digit-reversal"):
        butterfly_factorize(dft_matrix(12), permutation="bit-reversal")


def test_transform_permutation_refused_for_a_prime_size():
    with pytest.raises(ValueError, match="prime size"):
        butterfly_factorize(dft_matrix(13), permutation="digit-reversal")
    # "auto" simply leaves the transform candidates out
    op = butterfly_factorize(np.eye(13), permutation="auto")
    assert _rel_error(op, np.eye(13)) < 1e-12


@pytest.mark.parametrize("name", sorted(REAL_TRANSFORMS))
@pytest.mark.parametrize("n", [64, 60, 45])
def test_real_transforms_exact_at_rank_two(name, n):
    build, permutation = REAL_TRANSFORMS[name]
    A = build(n)
    for perm in (permutation, "auto"):
        op, info = factorize_core(
            dense_source(A), rank=2, permutation=perm, compute_error=True
        )
        assert info["relative_error"] < 1e-12, (perm, info["permutation"])
        assert op.dtype == np.float64
    # rank 1 is not enough: the blocks are real parts of rank-one blocks
    op = butterfly_factorize(A, rank=1, permutation=permutation)
    assert _rel_error(op, A) > 0.1


def test_dct_ii_exact_at_1024():
    C = dct_matrix(1024)
    est = ButterflyApproximator(rank=2, permutation="auto").fit(C)
    assert est.permutation_name_ == "makhoul"
    assert est.relative_error_ < 1e-12
    assert est.n_params_ < 1024 * 1024 / 5


def test_makhoul_order_is_the_dct_reorder():
    n = 9
    x = np.random.default_rng(0).standard_normal(n)
    v = x[makhoul_order(n)]
    # DCT-II from the DFT of the reordered vector (Makhoul 1980)
    k = np.arange(n)
    y = 2 * np.real(np.exp(-1j * np.pi * k / (2 * n)) * np.fft.fft(v))
    assert_allclose(y, scipy.fft.dct(x, type=2), atol=1e-12)


def test_hadamard_still_exact():
    H = hadamard_matrix(256)
    for permutation in (None, "auto"):
        est = ButterflyApproximator(permutation=permutation).fit(H)
        assert est.relative_error_ < 1e-12
        assert est.permutation_name_ == "identity"


def test_auto_reports_the_winner_on_the_estimator():
    est = ButterflyApproximator(permutation="auto").fit(dft_matrix(360))
    assert est.permutation_name_ == "digit-reversal"
    assert est.relative_error_ < 1e-10
    est = ButterflyApproximator(permutation=None).fit(dft_matrix(16))
    assert est.permutation_name_ == "identity"


def test_auto_complex64():
    F = dft_matrix(1000, dtype=np.complex64)
    _, info = factorize_core(dense_source(F), permutation="auto", compute_error=True)
    assert info["permutation"] == "digit-reversal"
    assert info["relative_error"] < 1e-5


def test_screen_scores_exact_candidate_zero_and_fits_it_alone():
    F = dft_matrix(512)
    candidates = named_candidates("auto", ChainChoice((512, 512), None, 1, None))
    scores = screen_candidates(F, candidates)
    names = [c[0] for c in candidates]
    assert names[0] == "identity"
    assert scores[names.index("digit-reversal")] < 1e-12
    assert scores[0] > 0.5 or np.isinf(scores[0])
    chosen = shortlist(F, candidates)
    assert [c[0] for c in chosen] == ["digit-reversal"]


def test_screen_keeps_two_when_nothing_is_exact():
    A = np.random.default_rng(0).standard_normal((64, 64))
    candidates = named_candidates("auto", ChainChoice((64, 64), None, 1, None))
    scores = screen_candidates(A, candidates)
    assert np.all(np.isfinite(scores)) and np.all(scores > 0.1)
    assert len(shortlist(A, candidates)) == 2
    # "auto" is at least as good as the identity here (it is one candidate)
    auto = butterfly_factorize(A, permutation="auto")
    assert _rel_error(auto, A) <= _rel_error(butterfly_factorize(A), A) + 1e-12


def test_screen_is_deterministic_and_sees_padding():
    A = make_butterfly(64, random_state=0)[:50, :50]  # padded to 64 by default
    candidates = named_candidates("auto", ChainChoice((50, 50), None, 1, None))
    s1 = screen_candidates(A, candidates)
    for layout in (A.copy(order="F"), np.repeat(A, 2, axis=1)[:, ::2]):
        assert_array_equal(screen_candidates(layout, candidates), s1)


def test_tuple_of_two_integers_is_a_column_index_array():
    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    op = butterfly_factorize(A, permutation=(1, 0))
    assert_array_equal(op.col_perm, [1, 0])
    assert op.row_perm is None
    assert_allclose(op.toarray(), A, atol=1e-12)
    # a (rows, cols) pair of arrays is still a pair
    op = butterfly_factorize(A, permutation=([1, 0], None))
    assert_array_equal(op.row_perm, [1, 0])
    assert op.col_perm is None


@pytest.mark.parametrize("perm", [[0.0, 1.0, 2.0, 3.0], (1.0, 0.0, 2.0, 3.0)])
def test_float_index_array_names_its_dtype(perm):
    with pytest.raises(ValueError, match="integer index array, got dtype float64") as e:
        butterfly_factorize(np.eye(4), permutation=perm)
    assert "shape ()" not in str(e.value)


@pytest.mark.parametrize("n", [1, 2, 5, 8, 9])
def test_transform_matrices_match_scipy(n):
    eye = np.eye(n)
    for kind in (1, 2, 3, 4):
        if kind == 1 and n < 2:
            continue
        assert_allclose(
            dct_matrix(n, type=kind),
            scipy.fft.dct(eye, type=kind, norm="ortho", axis=0),
            atol=1e-13,
        )
        assert_allclose(
            dst_matrix(n, type=kind),
            scipy.fft.dst(eye, type=kind, norm="ortho", axis=0),
            atol=1e-13,
        )
    F = np.fft.fft(eye, axis=0)
    assert_allclose(dft_matrix(n), F, atol=1e-12)
    assert_allclose(hartley_matrix(n), F.real - F.imag, atol=1e-12)
    H = hartley_matrix(n, normalize=True, dtype=np.float32)
    assert H.dtype == np.float32
    assert_allclose(H @ H, eye, atol=1e-5)


def test_transform_matrix_bad_type():
    with pytest.raises(ValueError, match="type=5"):
        dct_matrix(4, type=5)
    with pytest.raises(ValueError, match="type=1 needs n >= 2"):
        dst_matrix(1, type=1)
