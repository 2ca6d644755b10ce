"""Numerical edge cases of the core (``skbutterfly._factorize``) at every door.

The zero matrix, rank deficiency and zero blocks, extreme magnitudes,
ill-conditioning, repeated calls, purely imaginary input, the smallest shapes,
and inputs never modified.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import scipy.sparse as sp
from _doors import (
    cli_fit,
    rel_error,
    strict_numerics,
)
from numpy.testing import assert_allclose, assert_array_equal

from skbutterfly import (
    ButterflyApproximator,
    ButterflyFitWarning,
    ButterflyOperator,
    butterfly_factorize,
)
from skbutterfly.datasets import dft_matrix, hadamard_matrix, make_butterfly

# ---------------------------------------------------------- the zero matrix


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"rank": 2},
        {"depth": 2},
        {"tree": "left-to-right", "orthonormalize": False},
        {"tree": "right-to-left"},
        {"svd_solver": "full"},
        {"svd_solver": "subspace"},
        {"svd_solver": "gram"},
        {"permutation": "auto"},
        {"rank": 3, "depth": 3},
    ],
    ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default",
)
@pytest.mark.parametrize(
    "shape, dtype",
    [
        ((64, 64), np.float64),
        ((64, 64), np.complex64),
        ((32, 32), np.float32),
        ((13, 40), np.complex128),
    ],
)
def test_zero_matrix_strict(shape, dtype, kwargs):
    Z = np.zeros(shape, dtype=dtype)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        # a fit that is poor or not smaller than dense says so: not a numerics error
        warnings.simplefilter("ignore", ButterflyFitWarning)
        op = butterfly_factorize(Z, **kwargs)
        D = op.toarray()
        est = ButterflyApproximator(**kwargs).fit(Z)
        X = np.ones((3, shape[1]), dtype=dtype)
        Y = est.transform(X)
        score = est.score(Z)
    assert all(np.isfinite(T).all() for T in op.twiddles)
    # Without orthonormalization every factor is zero; with it, the factors
    # around the one carrying the (zero) singular values stay orthonormal.
    zero_factors = [not np.any(T) for T in op.twiddles]
    if kwargs.get("orthonormalize", True):
        assert any(zero_factors)
    else:
        assert all(zero_factors)
    assert_array_equal(D, 0)
    assert est.relative_error_ == 0.0 and est.reconstruction_err_ == 0.0
    assert score == 0.0
    assert_array_equal(Y, 0)
    product = est.factors_[0]
    for F in est.factors_[1:]:
        product = product @ F
    assert product.count_nonzero() == 0


def test_zero_matrix_command_line(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # a fit that is poor or not smaller than dense says so: not a numerics error
        warnings.simplefilter("ignore", ButterflyFitWarning)
        code, out, err = cli_fit(tmp_path, np.zeros((16, 16)))
    assert code == 0, err
    assert "relative error 0.000e+00" in out
    assert_array_equal(ButterflyOperator.load(tmp_path / "A.npz").toarray(), 0)


TREES = ["balanced", "left-to-right", "right-to-left"]


# ---------------------------------------------- rank deficiency, zero blocks


def _butterfly_with_zero_blocks(n, seed=0):
    """An exact product of butterfly factors, some of whose blocks are zero."""
    _, op = make_butterfly(n, random_state=seed, return_operator=True)
    twiddles = [t.copy() for t in op.twiddles]
    twiddles[0][0, 0] = 0  # a whole 2 x 2 block of the first factor
    twiddles[1][:, :, 1, :] = 0  # a row of every block of the second factor
    twiddles[-1][..., 0] = 0  # a column of every block of the last
    return ButterflyOperator(twiddles).toarray()


@pytest.mark.parametrize("tree", TREES)
@pytest.mark.parametrize("orthonormalize", [True, False])
@pytest.mark.parametrize("solver", ["auto", "full", "subspace"])
def test_exactly_zero_blocks_recovered(tree, orthonormalize, solver):
    A = _butterfly_with_zero_blocks(64)
    assert np.count_nonzero(A) < A.size  # really degenerate
    with strict_numerics():
        op = butterfly_factorize(
            A, tree=tree, orthonormalize=orthonormalize, svd_solver=solver
        )
    assert all(np.isfinite(t).all() for t in op.twiddles)
    assert rel_error(op.toarray(), A) < 1e-12


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: np.outer(rng.standard_normal(32), rng.standard_normal(32)),
        lambda rng: np.kron(np.eye(2), rng.standard_normal((16, 16))),
        lambda rng: np.block([[rng.standard_normal((16, 32))], [np.zeros((16, 32))]]),
        lambda rng: np.block([rng.standard_normal((32, 16)), np.zeros((32, 16))]),
        lambda rng: np.diag(rng.standard_normal(32)),
        lambda rng: np.eye(32)[rng.permutation(32)],
        lambda rng: np.ones((32, 32)),
    ],
    ids=[
        "rank-1",
        "block-diagonal",
        "zero-rows",
        "zero-cols",
        "diagonal",
        "permutation",
        "ones",
    ],
)
@pytest.mark.parametrize("rank", [1, 3])
def test_rank_deficient_matrices(make, rank):
    A = make(np.random.default_rng(0))
    with strict_numerics():
        op = butterfly_factorize(A, rank=rank)
        est = ButterflyApproximator(rank=rank).fit(A)
    D = op.toarray()
    assert np.isfinite(D).all()
    err = rel_error(D, A)
    assert err <= 1 + 1e-12  # never worse than the zero matrix
    assert_allclose(est.relative_error_, err, rtol=1e-6, atol=1e-14)


def test_rank_larger_than_blocks_is_exact():
    # rank 4 on a 2 x 2 block structure: the blocks have rank < the requested rank
    A = make_butterfly(16, random_state=0)
    with strict_numerics():
        op = butterfly_factorize(A, depth=2, rank=4)
    assert rel_error(op.toarray(), A) < 1e-12


# -------------------------------------------------------- extreme magnitudes


@pytest.mark.parametrize("scale", [1e-300, 1e-200, 1e200, 1e300])
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"rank": 2},
        {"tree": "left-to-right"},
        {"svd_solver": "full"},
        {"orthonormalize": False},
        {"permutation": "auto"},
    ],
    ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default",
)
def test_extreme_scales_function(scale, kwargs):
    A0 = make_butterfly(32, noise=0.05, random_state=0, complex=True)
    ref = butterfly_factorize(A0, **kwargs)
    err0 = rel_error(ref.toarray(), A0)
    with strict_numerics():
        op = butterfly_factorize(A0 * scale, **kwargs)
    D = op.toarray()
    assert np.isfinite(D).all()
    assert_allclose(rel_error(D, A0 * scale), err0, rtol=1e-6)


def test_mixed_extreme_magnitudes_in_one_matrix():
    rng = np.random.default_rng(0)
    A = make_butterfly(32, random_state=0)
    A[:16] *= 1e300
    A[16:] *= 1e-300  # still a butterfly (rows scaled)
    with strict_numerics():
        op = butterfly_factorize(A)
    assert np.isfinite(op.toarray()).all()
    assert rel_error(op.toarray(), A) < 1e-12
    with strict_numerics():
        est = ButterflyApproximator().fit(A)
    assert est.relative_error_ < 1e-12
    # ||A||_F overflows but the error does not (issue 16, item 5: it was inf).
    assert_allclose(
        est.reconstruction_err_ / 1e300,
        est.relative_error_ * np.linalg.norm(A[:16] / 1e300),
        rtol=1e-6,
    )
    x = rng.standard_normal((2, 32))
    assert np.isfinite(est.transform(x)).all()


@pytest.mark.parametrize("scale", [1e-300, 1e300])
def test_extreme_scales_estimator_error_and_transform(scale):
    A0 = make_butterfly(32, noise=0.05, random_state=0)
    est0 = ButterflyApproximator().fit(A0)
    with strict_numerics():
        est = ButterflyApproximator().fit(A0 * scale)
    assert_allclose(est.relative_error_, est0.relative_error_, rtol=1e-6)
    # Finite at both ends: scaled back after the product, not before.
    assert_allclose(
        est.reconstruction_err_ / scale, est0.reconstruction_err_, rtol=1e-6
    )
    X = np.random.default_rng(0).standard_normal((3, 32))
    assert_allclose(est.transform(X) / scale, est0.transform(X), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_extreme_scales_estimator_norms(scale):
    A0 = make_butterfly(32, noise=0.05, random_state=0)
    est0 = ButterflyApproximator().fit(A0)
    with strict_numerics():
        est = ButterflyApproximator().fit(A0 * scale)
        score = est.score(A0 * scale)
    assert_allclose(
        est.reconstruction_err_ / scale, est0.reconstruction_err_, rtol=1e-6
    )
    assert_allclose(score, est0.score(A0), rtol=1e-6)


def test_extreme_scales_command_line(tmp_path):
    A = hadamard_matrix(16) * 1e300
    code, _, err = cli_fit(tmp_path, A)
    assert code == 0, err
    D = ButterflyOperator.load(tmp_path / "A.npz").toarray()
    assert np.isfinite(D).all() and rel_error(D, A) < 1e-12


@pytest.mark.parametrize(
    "dtype, value",
    [
        (np.float64, np.finfo(np.float64).max / 4),
        (np.float32, np.finfo(np.float32).max / 4),
        (np.complex64, np.finfo(np.float32).max / 4),
        (np.float64, np.finfo(np.float64).smallest_normal),
        (np.float32, np.finfo(np.float32).smallest_normal),
    ],
)
def test_near_the_ends_of_the_range_constant_matrix(dtype, value):
    # a constant matrix is a rank-1 butterfly: recovered without overflow
    A = np.full((16, 16), value, dtype=dtype)
    with strict_numerics():
        op = butterfly_factorize(A)
    D = op.toarray()
    assert np.isfinite(D).all()
    assert rel_error(D, A) < (1e-5 if np.dtype(dtype).itemsize <= 8 else 1e-12)


# ------------------------------------------------------- ill-conditioning


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"tree": "left-to-right"}, {"orthonormalize": False}, {"svd_solver": "full"}],
    ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default",
)
def test_ill_conditioned_butterfly_recovered(side, kwargs):
    B = make_butterfly(64, random_state=0)
    D = np.diag(np.logspace(0, -15, 64))
    A = B @ D if side == "right" else D @ B
    assert np.linalg.cond(A) > 1e14
    with strict_numerics():
        op = butterfly_factorize(A, **kwargs)
    assert rel_error(op.toarray(), A) < 1e-12


@pytest.mark.parametrize("n", [16, 64])
def test_hilbert_matrix_never_worse_than_zero(n):
    H = scipy.linalg.hilbert(n)
    for rank in (1, 2):
        with strict_numerics():
            op = butterfly_factorize(H, rank=rank)
        assert np.isfinite(op.toarray()).all()
        assert rel_error(op.toarray(), H) < 1


# ---------------------------------------------------------- repeated calls


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"svd_solver": "subspace"},
        {"permutation": "auto"},
        {"rank": 2},
        {"tree": "right-to-left", "orthonormalize": False},
    ],
    ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default",
)
def test_repeated_calls_identical(kwargs):
    A = make_butterfly(128, noise=0.1, random_state=0, complex=True)
    first = butterfly_factorize(A, **kwargs)
    np.random.seed(123)  # noqa: NPY002 (the global RNG must not matter)
    np.random.standard_normal(10)  # noqa: NPY002
    for _ in range(2):
        again = butterfly_factorize(A, **kwargs)
        assert again.chain == first.chain
        for a, b in zip(again.twiddles, first.twiddles):
            assert_array_equal(a, b)
    est1 = ButterflyApproximator(**kwargs).fit(A)
    est2 = ButterflyApproximator(**kwargs).fit(A)
    for a, b in zip(est1.operator_.twiddles, est2.operator_.twiddles):
        assert_array_equal(a, b)
    assert est1.relative_error_ == est2.relative_error_


# --------------------------------------------------- purely real / imaginary


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_purely_imaginary_matrices(dtype):
    B = make_butterfly(32, random_state=0)
    tol = 1e-5 if dtype == np.complex64 else 1e-12
    for A, kwargs in [
        ((1j * B).astype(dtype), {}),
        ((1j * dft_matrix(32)).astype(dtype), {"permutation": "bit-reversal"}),
        ((1j * hadamard_matrix(32)).astype(dtype), {}),
    ]:
        with strict_numerics():
            op = butterfly_factorize(A, **kwargs)
            est = ButterflyApproximator(**kwargs).fit(A)
        assert op.dtype == dtype
        assert rel_error(op.toarray(), A) < tol
        assert est.relative_error_ < tol
        X = np.ones((2, 32), dtype=dtype)
        assert_allclose(est.transform(X), X @ A.T, rtol=tol, atol=tol * 32)


def test_complex_with_zero_imaginary_part_matches_real_fit():
    R = make_butterfly(64, noise=0.1, random_state=3)
    real = butterfly_factorize(R)
    cplx = butterfly_factorize(R.astype(np.complex128))
    imag = butterfly_factorize(1j * R)
    assert cplx.dtype == np.complex128
    D = cplx.toarray()
    assert_array_equal(D.imag, 0)
    assert_allclose(D.real, real.toarray(), atol=1e-13)
    assert_allclose(imag.toarray(), 1j * real.toarray(), atol=1e-13)
    assert_allclose(rel_error(D, R), rel_error(real.toarray(), R), rtol=1e-10)


# ------------------------------------------------------- 1 x 1 and 2 x 2


@pytest.mark.parametrize(
    "A",
    [
        np.array([[3.0]]),
        np.array([[0.0]]),
        np.array([[-2.5 + 1j]]),
        np.array([[1e-310]]),
        np.array([[1.0, 2.0], [3.0, 4.0]]),
        np.array([[1.0, 2.0]]),
        np.array([[1.0], [2.0]]),
    ],
    ids=["1x1", "1x1-zero", "1x1-complex", "1x1-subnormal", "2x2", "1x2", "2x1"],
)
def test_tiny_shapes_never_crash(tmp_path, A):
    # pyfaust aborts on 1 x 1 and segfaults on 2 x 2
    with strict_numerics():
        op = butterfly_factorize(A)
        est = ButterflyApproximator().fit(A)
    assert rel_error(op.toarray(), A) < 1e-12 or not np.any(A)
    assert_allclose(est.transform(A), A @ A.T, rtol=1e-12)
    code, _, err = cli_fit(tmp_path, A)
    assert code == 0, err


@pytest.mark.parametrize("shape", [(12, 12), (13, 13), (8, 32), (31, 5)])
def test_sizes_peers_refuse(tmp_path, shape):
    # pyfaust takes square powers of two only; lazylinop fails on prime sizes
    A = np.random.default_rng(0).standard_normal(shape)
    with strict_numerics():
        op = butterfly_factorize(A)
        est = ButterflyApproximator().fit(A)
    assert op.shape == shape
    err = rel_error(op.toarray(), A)
    assert err < 1
    assert_allclose(est.relative_error_, err, rtol=1e-10)
    code, _, err_text = cli_fit(tmp_path, A)
    assert code == 0, err_text
    assert ButterflyOperator.load(tmp_path / "A.npz").shape == shape


def test_subnormal_matrix_through_the_three_doors(tmp_path):
    A = hadamard_matrix(16) * 1e-310  # every entry subnormal
    assert np.all(np.abs(A) < np.finfo(np.float64).smallest_normal)
    with strict_numerics():
        op = butterfly_factorize(A)
    assert rel_error(op.toarray(), A) == 0
    est = ButterflyApproximator().fit(A)
    assert est.relative_error_ == 0
    code, _, err = cli_fit(tmp_path, A)
    assert code == 0, err
    assert rel_error(ButterflyOperator.load(tmp_path / "A.npz").toarray(), A) == 0


# ----------------------------------------------------- input never modified


def test_input_never_modified_on_odd_inputs():
    """Read-only odd inputs of every kind go through without writes."""
    rng = np.random.default_rng(0)
    inputs = [
        np.asfortranarray(rng.standard_normal((16, 16))),
        rng.standard_normal((32, 48))[::2, ::3],
        make_butterfly(16, random_state=0) * 1e300,
        make_butterfly(16, random_state=0) * 1e-300,
        (1j * make_butterfly(16, random_state=0)).astype(np.complex64),
        np.zeros((8, 8)),
        rng.integers(-5, 5, (12, 12)),
    ]
    for A in inputs:
        before = A.copy()
        A.setflags(write=False)
        for kwargs in [{}, {"permutation": "auto"}, {"tree": "left-to-right"}]:
            butterfly_factorize(A, **kwargs)
            with warnings.catch_warnings():
                # 1e300: see test_extreme_scales_estimator_norms
                warnings.simplefilter("ignore", RuntimeWarning)
                est = ButterflyApproximator(**kwargs).fit(A)
                if A.dtype.kind != "c":
                    est.score(A)
        assert_array_equal(A, before)
    S = sp.csr_array(hadamard_matrix(8))
    data = S.data.copy()
    butterfly_factorize(S)
    ButterflyApproximator().fit(S)
    assert_array_equal(S.data, data)
    frame = pd.DataFrame(hadamard_matrix(8))
    frame_before = frame.copy()
    butterfly_factorize(frame)
    ButterflyApproximator().fit(frame)
    pd.testing.assert_frame_equal(frame, frame_before)
