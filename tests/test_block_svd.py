"""The named block solvers ("full", "gram", "subspace", "auto") on stacks of blocks.

Every solver runs through :func:`~skbutterfly._split.split_group` on a twiddle
whose blocks are the stack, so each name is tested on the path a fit takes.
"""

from unittest import mock

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import skbutterfly._block_svd as svd_module
from skbutterfly._block_svd import batched_truncated_svd, choose_svd_solver
from skbutterfly._split import split_group

SOLVERS = ["full", "gram", "subspace", "auto"]
DTYPES = [np.float64, np.complex128, np.float32, np.complex64]


def _tol(dtype):
    return 1e-5 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-12


def _random(rng, shape, dtype):
    M = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        M = M + 1j * rng.standard_normal(shape)
    return M.astype(dtype)


def _low_rank(rng, k, p, q, true_rank, dtype):
    """``k`` blocks ``p x q`` of rank ``true_rank``, singular values 1, 1/2, 1/4..."""
    wide = np.complex128 if np.dtype(dtype).kind == "c" else np.float64
    X, _ = np.linalg.qr(_random(rng, (k, p, true_rank), wide))
    Y, _ = np.linalg.qr(_random(rng, (k, q, true_rank), wide))
    sigma = 2.0 ** -np.arange(true_rank)
    M = (X * sigma) @ np.swapaxes(Y, -1, -2).conj()
    return np.ascontiguousarray(M.astype(dtype))


def solve(M, rank, solver="auto", n_jobs=None, random_state=None):
    """``U, S, Vh`` of every block of the stack ``M`` by the named solver."""
    batch, (p, q) = M.shape[:-2], M.shape[-2:]
    T = M.reshape(-1, 1, p, q)
    ((left, right),) = split_group(
        [T],
        [1],
        [1],
        rank,
        orthonormalize=True,
        solver=solver,
        n_jobs=n_jobs,
        random_state=random_state,
    )
    U, R = left[:, 0], right[:, 0]
    S = np.linalg.norm(R, axis=-1)
    Vh = R / np.where(S > 0, S, 1)[..., None].astype(R.dtype)
    return U.reshape(*batch, p, -1), S.reshape(*batch, -1), Vh.reshape(*batch, -1, q)


def _reference_svd(M):
    wide = np.complex128 if np.iscomplexobj(M) else np.float64
    return np.linalg.svd(M.astype(wide), compute_uv=False)


def _reconstruct(U, S, Vh):
    return (U * S[..., None, :].astype(U.dtype)) @ Vh


def _error(M, U, S, Vh):
    wide = np.complex128 if np.iscomplexobj(M) else np.float64
    R = M.astype(wide) - _reconstruct(U.astype(wide), S.astype(np.float64), Vh)
    return np.linalg.norm(R, axis=(-2, -1))


# ----------------------------------------------------------- against LAPACK, per block


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver", ["full", "gram", "auto"])
@pytest.mark.parametrize(
    ("shape", "rank"),
    [
        ((37, 2, 9), 1),
        ((37, 9, 2), 1),
        ((20, 2, 2), 2),
        ((25, 6, 8), 3),
        ((9, 12, 5), 2),
    ],
)
def test_singular_values_and_optimal_truncation(solver, dtype, shape, rank):
    """General blocks: exact top singular values and the Eckart-Young error."""
    rng = np.random.default_rng(0)
    M = _random(rng, shape, dtype)
    U, S, Vh = solve(M, rank, solver=solver)
    k, p, q = shape
    assert U.shape == (k, p, rank)
    assert S.shape == (k, rank)
    assert Vh.shape == (k, rank, q)
    assert U.dtype == M.dtype and Vh.dtype == M.dtype
    assert S.dtype == np.empty(0, M.dtype).real.dtype
    s_ref = _reference_svd(M)
    scale = s_ref[:, :1]
    assert_allclose(S / scale, s_ref[:, :rank] / scale, rtol=0, atol=10 * _tol(dtype))
    assert (np.diff(S, axis=-1) <= 0).all() and (S >= 0).all()
    optimal = np.sqrt((s_ref[:, rank:] ** 2).sum(axis=-1))
    assert_allclose(
        _error(M, U, S, Vh) / scale[:, 0],
        optimal / scale[:, 0],
        rtol=0,
        atol=10 * _tol(dtype),
    )
    # orthonormal singular vectors
    eye = np.eye(rank)
    assert_allclose(
        np.swapaxes(U, -1, -2).conj() @ U,
        np.broadcast_to(eye, (k, rank, rank)),
        atol=10 * _tol(dtype),
    )
    assert_allclose(
        Vh @ np.swapaxes(Vh, -1, -2).conj(),
        np.broadcast_to(eye, (k, rank, rank)),
        atol=10 * _tol(dtype),
    )


@pytest.mark.parametrize("rank", [1, 2, 3, 5])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize(
    ("k", "p", "q", "true_rank"),
    [(30, 2, 16, 2), (30, 16, 2, 1), (20, 8, 8, 3), (12, 64, 56, 3), (6, 80, 96, 4)],
)
def test_low_rank_blocks_truncation_is_optimal(solver, dtype, k, p, q, true_rank, rank):
    """Blocks of rank ``true_rank``: every solver finds the optimal rank-r error."""
    rng = np.random.default_rng(1)
    M = _low_rank(rng, k, p, q, true_rank, dtype)
    s_ref = _reference_svd(M)
    scale = s_ref[:, :1]
    U, S, Vh = solve(M, rank, solver=solver)
    r = min(rank, p, q)
    assert_allclose(S[:, :r] / scale, s_ref[:, :r] / scale, atol=10 * _tol(dtype))
    optimal = np.sqrt((s_ref[:, rank:] ** 2).sum(axis=-1))
    assert_allclose(
        _error(M, U, S, Vh) / scale[:, 0], optimal / scale[:, 0], atol=10 * _tol(dtype)
    )
    if rank >= true_rank:  # the blocks are reproduced
        assert_allclose(
            _reconstruct(U, S, Vh), M, atol=10 * _tol(dtype) * float(scale.max())
        )


def test_subspace_on_large_blocks_with_decaying_spectrum():
    rng = np.random.default_rng(2)
    k, p, q = 8, 96, 80
    U0, _ = np.linalg.qr(rng.standard_normal((k, p, q)))
    V0, _ = np.linalg.qr(rng.standard_normal((k, q, q)))
    sigma = 10.0 ** -np.arange(q)
    M = (U0 * sigma) @ np.swapaxes(V0, -1, -2)
    for solver in ("subspace", "auto"):
        U, S, Vh = solve(M, 3, solver=solver, random_state=np.random.default_rng(0))
        assert_allclose(S, np.broadcast_to(sigma[:3], (k, 3)), rtol=1e-12)
        optimal = np.sqrt((sigma[3:] ** 2).sum())
        assert_allclose(_error(M, U, S, Vh), optimal, rtol=1e-6)


def test_auto_matches_the_solver_it_chooses():
    rng = np.random.default_rng(3)
    for shape, rank in [
        ((10, 2, 8), 1),
        ((10, 8, 8), 2),
        ((4, 64, 64), 2),
        ((4, 64, 64), 20),
    ]:
        M = _random(rng, shape, np.float64)
        chosen = choose_svd_solver("auto", shape[1:], rank)
        assert chosen in ("full", "gram", "subspace")
        for a, b in zip(
            solve(M, rank, solver="auto"),
            solve(M, rank, solver=chosen),
        ):
            assert_array_equal(a, b)
    assert choose_svd_solver("full", (64, 64), 1) == "full"


# --------------------------------------------------------------------- phases


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver", SOLVERS)
def test_deterministic_phases(solver, dtype):
    """The largest-magnitude entry of every left singular vector is real > 0."""
    rng = np.random.default_rng(4)
    for shape, rank in [
        ((40, 2, 7), 2),
        ((40, 7, 2), 1),
        ((30, 6, 9), 3),
        ((5, 64, 60), 2),
    ]:
        M = _random(rng, shape, dtype)
        U = solve(M, rank, solver=solver)[0]
        idx = np.argmax(np.abs(U), axis=-2)[:, None, :]
        pivot = np.take_along_axis(U, idx, axis=-2)[:, 0, :]
        assert (pivot.real > 0).all()
        assert_allclose(pivot.imag, 0, atol=10 * np.finfo(pivot.real.dtype).eps)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_phases_make_solvers_agree(dtype):
    """With fixed phases the singular vectors themselves do not depend on the solver."""
    rng = np.random.default_rng(5)
    for shape, rank, solvers in [
        ((50, 2, 9), 2, ("full", "gram", "subspace")),
        ((50, 9, 2), 2, ("full", "gram", "subspace")),
        ((20, 6, 7), 3, ("full", "gram", "subspace")),
    ]:
        M = _random(rng, shape, dtype)
        ref = solve(M, rank, solver="full")
        for solver in solvers[1:]:
            out = solve(M, rank, solver=solver)
            for a, b in zip(out, ref):
                assert_allclose(a, b, atol=1e-9)


# ------------------------------------------------------------------- chunking


@pytest.mark.parametrize("dtype", [np.float64, np.complex64])
@pytest.mark.parametrize("solver", SOLVERS)
def test_chunking_gives_identical_results(solver, dtype):
    """n_jobs=1 and n_jobs=2 (chunked batch axis) give bit-identical factors."""
    rng = np.random.default_rng(6)
    shape = {"gram": (101, 2, 16), "subspace": (21, 64, 60)}.get(solver, (101, 8, 6))
    M = _random(rng, shape, dtype)
    # force the parallel path even for this small batch
    with mock.patch.object(svd_module, "PARALLEL_MIN_WORK", 0):
        serial = solve(M, 2, solver=solver, n_jobs=1)
        chunked = solve(M, 2, solver=solver, n_jobs=2)
        chunked3 = solve(M, 2, solver=solver, n_jobs=3)
    for a, b, c in zip(serial, chunked, chunked3):
        assert_array_equal(a, b)
        assert_array_equal(a, c)


def test_chunking_large_batch_default_threshold():
    rng = np.random.default_rng(7)
    M = rng.standard_normal((3001, 16, 16))  # ~5e7 flops: above the serial threshold
    serial = solve(M, 3, solver="full", n_jobs=1)
    chunked = solve(M, 3, solver="full", n_jobs=2)
    for a, b in zip(serial, chunked):
        assert_array_equal(a, b)


def test_subspace_seeded():
    rng = np.random.default_rng(8)
    M = rng.standard_normal((10, 64, 64))
    a = solve(M, 2, solver="subspace", random_state=np.random.default_rng(3))
    b = solve(M, 2, solver="subspace", random_state=np.random.default_rng(3))
    for x, y in zip(a, b):
        assert_array_equal(x, y)


# --------------------------------------------------------- rank beyond the block


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize(
    ("shape", "rank"), [((7, 3, 5), 4), ((7, 5, 3), 6), ((7, 2, 2), 3), ((7, 1, 4), 2)]
)
def test_rank_larger_than_block_is_zero_padded(solver, dtype, shape, rank):
    rng = np.random.default_rng(9)
    M = _random(rng, shape, dtype)
    U, S, Vh = solve(M, rank, solver=solver)
    k, p, q = shape
    small = min(p, q)
    assert U.shape == (k, p, rank) and S.shape == (k, rank) and Vh.shape == (k, rank, q)
    assert_array_equal(U[..., small:], 0)
    assert_array_equal(S[..., small:], 0)
    assert_array_equal(Vh[..., small:, :], 0)
    s_ref = _reference_svd(M)
    scale = s_ref[:, :1]
    assert_allclose(S[:, :small] / scale, s_ref / scale, atol=10 * _tol(dtype))
    assert_allclose(_reconstruct(U, S, Vh), M, atol=10 * _tol(dtype) * np.abs(M).max())


# ------------------------------------------------------------------ edge cases


@pytest.mark.parametrize("solver", SOLVERS)
def test_zero_blocks(solver):
    M = np.zeros((6, 4, 5))
    M[3] = np.outer(np.arange(4.0), np.ones(5))
    U, S, Vh = solve(M, 2, solver=solver)
    for X in (U, S, Vh):
        assert np.isfinite(X).all()
    assert_array_equal(S[[0, 1, 2, 4, 5]], 0)
    assert_allclose(_reconstruct(U, S, Vh), M, atol=1e-12)


@pytest.mark.parametrize("solver", SOLVERS)
def test_leading_batch_shape_kept(solver):
    rng = np.random.default_rng(10)
    M = rng.standard_normal((3, 4, 5, 6))
    U, S, Vh = solve(M, 2, solver=solver)
    assert U.shape == (3, 4, 5, 2) and S.shape == (3, 4, 2) and Vh.shape == (3, 4, 2, 6)
    flat = solve(M.reshape(12, 5, 6), 2, solver=solver)
    for a, b in zip((U, S, Vh), flat):
        assert_array_equal(a.reshape(b.shape), b)


@pytest.mark.parametrize("solver", SOLVERS)
def test_input_not_modified(solver):
    rng = np.random.default_rng(11)
    M = rng.standard_normal((9, 6, 70))
    before = M.copy()
    solve(M, 2, solver=solver, n_jobs=2)
    assert_array_equal(M, before)


def test_stacked_lapack_solver_is_chunked_without_changing_results():
    rng = np.random.default_rng(12)
    M = rng.standard_normal((41, 7, 9))
    with mock.patch.object(svd_module, "PARALLEL_MIN_WORK", 0):
        serial = batched_truncated_svd(M, 3, n_jobs=1)
        chunked = batched_truncated_svd(M, 3, n_jobs=2)
    for a, b in zip(serial, chunked):
        assert_array_equal(a, b)
    _, S, _ = serial
    assert_allclose(S, np.linalg.svd(M, compute_uv=False)[:, :3], rtol=1e-12)
