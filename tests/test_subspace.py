"""Dominant singular triplets of stacks of blocks (power steps + Chebyshev filter)."""

from unittest import mock

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import skbutterfly._subspace as subspace
from skbutterfly._subspace import dominant_triplets, filter_dtype

DTYPES = [np.float64, np.complex128, np.float32, np.complex64]


def _random(rng, shape, dtype):
    M = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        M = M + 1j * rng.standard_normal(shape)
    return np.ascontiguousarray(M.astype(dtype))


def _exact_energies(M, k):
    """Squared singular values: the top ``k`` summed, and the total."""
    wide = np.complex128 if np.iscomplexobj(M) else np.float64
    s = np.linalg.svd(M.astype(wide), compute_uv=False)
    return (s[..., :k] ** 2).sum(axis=-1), (s**2).sum(axis=-1)


def _check_factors(M, k, U, R):
    """``U`` orthonormal with fixed phases, ``R = U^H M``, shapes and dtypes."""
    b1, c2 = M.shape[-2:]
    assert U.shape == (*M.shape[:-2], b1, k) and R.shape == (*M.shape[:-2], k, c2)
    assert U.dtype == M.dtype and R.dtype == M.dtype
    eps = np.finfo(M.dtype).eps
    wide = U.astype(np.complex128)
    gram = np.swapaxes(wide, -1, -2).conj() @ wide
    assert_allclose(gram, np.broadcast_to(np.eye(k), gram.shape), atol=100 * eps)
    expected = np.swapaxes(wide, -1, -2).conj() @ M.astype(np.complex128)
    scale = np.abs(M).max()
    assert_allclose(R, expected, rtol=0, atol=100 * eps * scale * np.sqrt(b1))
    # Phases: the largest entry of every column of U is real and positive.
    pivot = np.take_along_axis(U, np.argmax(np.abs(U), axis=-2)[..., None, :], -2)
    assert np.all(np.abs(pivot.imag) <= 10 * eps) and np.all(pivot.real > 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("shape", "k"),
    [((40, 64, 64), 1), ((30, 32, 64), 2), ((30, 48, 24), 3), ((3, 5, 16, 16), 1)],
)
def test_flat_spectra_reach_the_exact_svd_energy(dtype, shape, k):
    """Gaussian blocks (flat spectra) go through the filtered iteration; the
    captured energy misses the exact one by at most ``tol`` times the energy
    the rank-k blocks leave out (the stated accuracy), summed over the stack."""
    rng = np.random.default_rng(0)
    M = _random(rng, shape, dtype)
    U, R = dominant_triplets(M, k, np.random.default_rng(1))
    _check_factors(M, k, U, R)
    best, total = _exact_energies(M, k)
    captured = np.sum(np.abs(R.astype(np.complex128)) ** 2, axis=(-2, -1))
    tol, _ = subspace._accuracy(np.dtype(dtype))
    shortfall = np.sum(best - captured)
    rounding = 1e3 * np.finfo(dtype).eps * np.sum(best)
    assert shortfall <= tol * np.sum(total - best) + rounding
    assert np.all(captured <= best * (1 + 1e3 * np.finfo(dtype).eps))


@pytest.mark.parametrize("dtype", DTYPES)
def test_flat_spectra_converge_without_the_lapack_fallback(dtype):
    """Gaussian blocks, in every precision (float32 has the lowest
    amplification cap, hence the slowest first round), converge in the
    filtered iteration itself: LAPACK is a fallback, not the usual path."""
    rng = np.random.default_rng(9)
    M = _random(rng, (64, 64, 64), dtype)
    with mock.patch.object(subspace, "_lapack", side_effect=AssertionError):
        dominant_triplets(M, 1, np.random.default_rng(0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 2])
def test_exact_low_rank_blocks_settle_in_the_power_steps(dtype, k):
    """Blocks of rank <= k (those of exact butterflies) are reproduced to
    roundoff by the power steps alone: no filter round, no fallback."""
    rng = np.random.default_rng(2)
    left = _random(rng, (50, 16, k), dtype)
    right = _random(rng, (50, k, 24), dtype)
    M = np.ascontiguousarray(left @ right)
    with (
        mock.patch.object(subspace, "_rayleigh_ritz", side_effect=AssertionError),
        mock.patch.object(subspace, "_lapack", side_effect=AssertionError),
    ):
        U, R = dominant_triplets(M, k, np.random.default_rng(0))
    _check_factors(M, k, U, R)
    eps = np.finfo(dtype).eps
    assert_allclose(U @ R, M, rtol=0, atol=1e3 * eps * np.abs(M).max())


def test_large_gaps_converge_without_the_lapack_fallback():
    """Rank-one blocks plus small noise (a noisy butterfly's blocks): the
    spread theta_1 / theta_w is huge; those blocks must not stall the piece."""
    rng = np.random.default_rng(3)
    M = np.einsum(
        "bi,bj->bij", rng.standard_normal((64, 32)), rng.standard_normal((64, 32))
    )
    M += 1e-4 * rng.standard_normal(M.shape)
    M[::2] = rng.standard_normal((32, 32, 32))  # and flat blocks in the same piece
    with mock.patch.object(subspace, "_lapack", side_effect=AssertionError):
        _, R = dominant_triplets(np.ascontiguousarray(M), 1, np.random.default_rng(0))
    best, total = _exact_energies(M, 1)
    captured = np.sum(R**2, axis=(-2, -1))
    assert np.sum(best - captured) <= 1e-8 * np.sum(total - best) + 1e-12 * best.sum()


def test_degenerate_and_zero_blocks():
    """Equal singular values (orthogonal blocks), zero blocks and a zero stack."""
    rng = np.random.default_rng(4)
    Q = np.linalg.qr(rng.standard_normal((20, 32, 32)))[0]
    M = np.concatenate([Q, np.zeros((4, 32, 32)), 3 * Q[:4]])
    U, R = dominant_triplets(np.ascontiguousarray(M), 2, np.random.default_rng(0))
    _check_factors(M[:20], 2, U[:20], R[:20])
    energy = np.sum(R**2, axis=(-2, -1))
    assert_allclose(energy[:20], 2.0, rtol=1e-12)
    assert_array_equal(R[20:24], 0)
    assert_allclose(energy[24:], 18.0, rtol=1e-12)
    U, R = dominant_triplets(np.zeros((5, 16, 16)), 1, np.random.default_rng(0))
    assert np.all(np.isfinite(U)) and np.all(R == 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_blocks_among_flat_ones_do_not_need_lapack(dtype):
    """Zero blocks (zero padding, pruned weights) in a piece that goes through
    the filter: their zero vectors must not break the Rayleigh-Ritz step."""
    rng = np.random.default_rng(8)
    M = _random(rng, (24, 32, 32), dtype)
    M[::3] = 0
    with mock.patch.object(subspace, "_lapack", side_effect=AssertionError):
        U, R = dominant_triplets(M, 1, np.random.default_rng(0))
    assert np.all(np.isfinite(U)) and np.all(R[::3] == 0)
    best, total = _exact_energies(M, 1)
    captured = np.sum(np.abs(R.astype(np.complex128)) ** 2, axis=(-2, -1))
    tol, _ = subspace._accuracy(np.dtype(dtype))
    rounding = 1e3 * np.finfo(dtype).eps * np.sum(best)
    assert np.sum(best - captured) <= tol * np.sum(total - best) + rounding


def test_lapack_fallback_after_too_many_rounds():
    """A piece that has not converged after _MAX_ROUNDS goes to LAPACK: exact."""
    rng = np.random.default_rng(5)
    M = rng.standard_normal((10, 40, 40))
    with mock.patch.object(subspace, "_MAX_ROUNDS", 1):
        _, R = dominant_triplets(M, 1, np.random.default_rng(0))
    best, _ = _exact_energies(M, 1)
    assert_allclose(np.sum(R**2, axis=(-2, -1)), best, rtol=1e-12)


def test_small_blocks_take_the_exact_gram_path():
    rng = np.random.default_rng(6)
    M = rng.standard_normal((30, 8, 6))
    with mock.patch.object(subspace, "_rayleigh_ritz", side_effect=AssertionError):
        U, R = dominant_triplets(M, 1, np.random.default_rng(0), small=True)
    best, _ = _exact_energies(M, 1)
    assert_allclose(np.sum(R**2, axis=(-2, -1)), best, rtol=1e-12)
    _check_factors(M, 1, U, R)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_filter_buffer_and_seed_determinism(dtype):
    """Same generator seed, same factors; a reused buffer for the
    single-precision filter copy changes nothing."""
    rng = np.random.default_rng(7)
    M = _random(rng, (16, 32, 32), dtype)
    a = dominant_triplets(M, 1, np.random.default_rng(11))
    buffer = np.full(M.shape, np.nan, dtype=filter_dtype(dtype))
    b = dominant_triplets(M, 1, np.random.default_rng(11), filter_buffer=buffer)
    for x, y in zip(a, b):
        assert_array_equal(x, y)
    assert filter_dtype(dtype) == {np.float64: np.float32}.get(dtype, np.complex64)
    assert filter_dtype(np.float32) == np.float32
