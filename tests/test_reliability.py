"""Reliability: bad and odd input, and numerical edge cases.

Every class of input is thrown at the three front doors: ``butterfly_factorize``,
``ButterflyApproximator`` and the command line (``skbutterfly._cli.main``, run in
process). Concurrency, persistence and fuzzing have their own
``test_reliability_*.py`` files. ``benchmarks/probe_peers_bad_input.py`` runs
the same classes of input through pyfaust and lazylinop.
"""

import contextlib
import io
import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

from skbutterfly import (
    ButterflyApproximator,
    ButterflyFitWarning,
    ButterflyOperator,
    butterfly_factorize,
)
from skbutterfly._cli import main
from skbutterfly._validation import check_finite, check_matrix, max_abs
from skbutterfly.datasets import dft_matrix, hadamard_matrix, make_butterfly

TREES = ["balanced", "left-to-right", "right-to-left"]

# --------------------------------------------------------------------------- helpers


def run_cli(*args):
    """``skbutterfly ARGS`` in process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def cli_fit(tmp_path, A, *options, allow_pickle=False):
    """Save ``A`` as .npy and run ``skbutterfly fit`` on it."""
    path = tmp_path / "A.npy"
    np.save(path, A, allow_pickle=allow_pickle)
    return run_cli("fit", path, "-q", "-o", tmp_path / "A.npz", *options)


def assert_one_line_error(code, err, match=None):
    assert code == 1, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skbutterfly: error: "), err
    if match is not None:
        assert match in lines[0], lines[0]


def rel_error(D, A):
    """``||D - A||_F / ||A||_F`` on exactly rescaled copies (no over/underflow)."""
    A = np.asarray(A).astype(np.complex128)
    D = np.asarray(D).astype(np.complex128)
    top = max(np.abs(A.real).max(), np.abs(A.imag).max())
    if top == 0:
        return float(np.linalg.norm(D))
    e = -int(np.frexp(top)[1])
    A = np.ldexp(A.real, e) + 1j * np.ldexp(A.imag, e)
    D = np.ldexp(D.real, e) + 1j * np.ldexp(D.imag, e)
    return float(np.linalg.norm(D - A) / np.linalg.norm(A))


@contextlib.contextmanager
def strict_numerics(under="ignore"):
    """Warnings are errors; floating point overflow/invalid/division raise."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # a fit that is poor or not smaller than dense says so: not a numerics error
        warnings.simplefilter("ignore", ButterflyFitWarning)
        with np.errstate(over="raise", invalid="raise", divide="raise", under=under):
            yield


def with_value(A, index, value):
    A = A.astype(np.result_type(A, np.asarray(value)))
    A[index] = value
    return A


# ----------------------------------------------------- validation helpers (owned)


def test_max_abs_propagates_nan_in_either_part():
    A = np.ones((3, 3), dtype=complex)
    assert max_abs(A) == 1.0
    for value in [complex(1, np.nan), complex(np.nan, 1), complex(np.nan, np.nan)]:
        B = with_value(A, (1, 2), value)
        assert np.isnan(max_abs(B)), value
    assert max_abs(with_value(A, (0, 0), complex(0, -np.inf))) == np.inf
    assert max_abs(np.array([[-3.0, 2.0]])) == 3.0


def test_check_matrix_keeps_supported_c_arrays_without_copy():
    for dtype in [np.float32, np.float64, np.complex64, np.complex128]:
        A = np.ones((4, 5), dtype=dtype)
        assert check_matrix(A) is A
    A = np.ones((4, 5))
    A.setflags(write=False)
    assert check_matrix(A) is A


@pytest.mark.parametrize(
    "fmt", ["csr", "csc", "coo", "bsr", "dia", "lil", "dok", "unsorted-coo"]
)
def test_sparse_nan_position_is_the_first_in_row_major_order(fmt):
    A = np.zeros((5, 6))
    A[1, 4], A[3, 0], A[4, 5] = np.inf, np.nan, 2.0
    if fmt == "unsorted-coo":
        S = sp.coo_array(([np.nan, 2.0, np.inf], ([3, 4, 1], [0, 5, 4])), shape=(5, 6))
    else:
        S = sp.csr_array(A).asformat(fmt)
    with pytest.raises(ValueError, match=r"index \(1, 4\).*: inf"):
        check_finite(S)
    with pytest.raises(ValueError, match=r"index \(1, 4\)"):
        butterfly_factorize(S)
    check_finite(sp.csr_array((5, 6)))  # no stored entries: fine


# ------------------------------------------------------- accepted odd inputs
# (bad input through every door: tests/test_bad_input.py)


def test_unmasked_masked_array_accepted():
    A = np.ma.masked_array(hadamard_matrix(4), mask=False)
    assert rel_error(butterfly_factorize(A).toarray(), hadamard_matrix(4)) < 1e-12


# ------------------------------------------------- dtypes converted to float64


@pytest.mark.parametrize(
    "dtype", [np.int8, np.int64, np.uint8, np.uint64, np.bool_, np.float16]
)
def test_integer_boolean_and_half_inputs_converted(tmp_path, dtype):
    # a Kronecker product of 2 x 2 blocks is an exact butterfly, in any dtype
    K = np.array([[1, 1], [0, 1]], dtype=dtype)
    A = K
    for _ in range(3):
        A = np.kron(A, K).astype(dtype)
    ref = A.astype(np.float64)
    expected = np.float32 if dtype is np.float16 else np.float64

    op = butterfly_factorize(A)
    assert op.dtype == expected
    assert rel_error(op.toarray(), ref) < 1e-6

    est = ButterflyApproximator().fit(A)
    assert est.operator_.dtype in (np.float32, np.float64)
    assert rel_error(est.operator_.toarray(), ref) < 1e-6
    Y = est.transform(A)
    assert Y.dtype.kind == "f"
    assert_allclose(Y, ref @ ref.T, rtol=1e-5, atol=1e-5)

    code, _, err = cli_fit(tmp_path, A)
    assert code == 0, err
    saved = ButterflyOperator.load(tmp_path / "A.npz")
    assert saved.dtype == expected
    assert rel_error(saved.toarray(), ref) < 1e-6


@pytest.mark.parametrize("dtype", [">f8", ">f4", ">c16", np.longdouble, np.clongdouble])
def test_non_native_and_extended_dtypes(tmp_path, dtype):
    B = make_butterfly(16, random_state=0)
    A = B.astype(dtype)
    op = butterfly_factorize(A)
    assert op.dtype.isnative
    assert rel_error(op.toarray(), B) < (1e-6 if "4" in str(dtype) else 1e-12)
    est = ButterflyApproximator().fit(A)
    assert rel_error(est.operator_.toarray(), B) < 1e-6
    code, _, err = cli_fit(tmp_path, A)
    assert code == 0, err


# --------------------------------------------------------------------- sparse


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "bsr", "dia", "lil", "dok"])
@pytest.mark.parametrize("matrix_class", [False, True], ids=["array", "matrix"])
def test_sparse_input_accepted_and_equal_to_dense(fmt, matrix_class):
    A = hadamard_matrix(16)
    S = sp.csr_matrix(A) if matrix_class else sp.csr_array(A)
    S = S.asformat(fmt)
    dense = butterfly_factorize(A)
    op = butterfly_factorize(S)
    for a, b in zip(op.twiddles, dense.twiddles):
        assert_array_equal(a, b)
    if fmt in ("csr", "csc", "coo"):
        est = ButterflyApproximator().fit(S)
        assert est.relative_error_ < 1e-12
        assert_allclose(est.transform(S), A @ A.T, atol=1e-10)


def test_sparse_int_and_complex_inputs():
    H = hadamard_matrix(8)
    assert butterfly_factorize(sp.csr_array(H.astype(int))).dtype == np.float64
    op = butterfly_factorize(sp.csr_array(1j * H))
    assert op.dtype == np.complex128
    assert rel_error(op.toarray(), 1j * H) < 1e-12


def test_sparse_too_large_to_densify_raises_clear_error():
    n = 10**6  # 7.3 TiB as a dense float64 array
    S = sp.csr_array((np.ones(2), ([0, 5], [1, 2])), shape=(n, n))
    with pytest.raises(ValueError, match=r"sparse.*\(1000000, 1000000\).*TiB"):
        butterfly_factorize(S)


def test_estimator_sparse_too_large_to_densify_raises_clear_error():
    n = 10**6
    S = sp.csr_array((np.ones(2), ([0, 5], [1, 2])), shape=(n, n))
    with pytest.raises(ValueError, match="sparse"):
        ButterflyApproximator().fit(S)


# --------------------------------------------------------------------- pandas


def test_dataframe_accepted_with_feature_names():
    A = make_butterfly(16, random_state=0)
    columns = [f"x{i}" for i in range(16)]
    frame = pd.DataFrame(A, columns=columns)
    ref = butterfly_factorize(A)
    for a, b in zip(butterfly_factorize(frame).twiddles, ref.twiddles):
        assert_array_equal(a, b)

    est = ButterflyApproximator().fit(frame)
    assert list(est.feature_names_in_) == columns
    assert est.relative_error_ < 1e-12
    Y = est.set_output(transform="pandas").transform(frame)
    assert isinstance(Y, pd.DataFrame)
    assert list(Y.columns) == list(est.get_feature_names_out())
    assert_allclose(Y.to_numpy(), A @ A.T, rtol=1e-10, atol=1e-10)
    # wrong column names are reported (scikit-learn's check)
    with pytest.raises(ValueError, match="feature names"):
        est.transform(frame.rename(columns={"x0": "other"}))


def test_dataframe_complex_keeps_feature_names():
    F = dft_matrix(8)
    frame = pd.DataFrame(F, columns=[f"f{i}" for i in range(8)])
    est = ButterflyApproximator(permutation="bit-reversal").fit(frame)
    assert list(est.feature_names_in_) == list(frame.columns)
    assert est.relative_error_ < 1e-12
    assert est.transform(frame).dtype == np.complex128


def test_dataframe_nullable_dtypes_function():
    H = hadamard_matrix(4)
    frame = pd.DataFrame(H, columns=list("abcd")).astype("Int64")
    op = butterfly_factorize(frame)
    assert op.dtype == np.float64
    assert rel_error(op.toarray(), H) < 1e-12
    floats = pd.DataFrame(H, columns=list("abcd")).astype("Float64")
    assert rel_error(butterfly_factorize(floats).toarray(), H) < 1e-12
    missing = frame.copy()
    missing.iloc[2, 1] = pd.NA
    with pytest.raises(ValueError, match=r"index \(2, 1\)"):
        butterfly_factorize(missing)
    with pytest.raises(TypeError, match="numeric dtype"):
        butterfly_factorize(pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}))


@pytest.mark.parametrize("dtype", ["Int64", "Float64"])
def test_dataframe_nullable_dtypes_estimator(dtype):
    H = hadamard_matrix(4)
    frame = pd.DataFrame(H, columns=list("abcd")).astype(dtype)
    est = ButterflyApproximator().fit(frame)
    assert est.relative_error_ < 1e-12


# ------------------------------------------------------------ memory maps


def _memmap(tmp_path, A):
    np.save(tmp_path / "A.npy", A)
    return np.load(tmp_path / "A.npy", mmap_mode="r")


def test_memmap_validated_without_copy(tmp_path):
    M = _memmap(tmp_path, make_butterfly(256, random_state=0))
    tracemalloc.start()
    try:
        A = check_matrix(M)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.shares_memory(A, M)
    assert peak < 64 * 1024


def test_memmap_same_result_and_read_only_respected(tmp_path):
    A = make_butterfly(64, noise=0.05, random_state=0)
    M = _memmap(tmp_path, A)
    ref = butterfly_factorize(A)
    for a, b in zip(butterfly_factorize(M).twiddles, ref.twiddles):
        assert_array_equal(a, b)
    est = ButterflyApproximator().fit(M)
    assert_allclose(est.relative_error_, ButterflyApproximator().fit(A).relative_error_)
    code, _, err = run_cli("fit", tmp_path / "A.npy", "-q", "-o", tmp_path / "B.npz")
    assert code == 0, err
    assert_array_equal(np.load(tmp_path / "A.npy"), A)


def test_memmap_factorized_without_a_full_copy(tmp_path):
    """The balanced tree reads a C-ordered memmap through views.

    Measured here: about 0.18x the matrix size for a 2048 x 2048 butterfly
    (the factors and the block solver's workspace). Paths that copy the whole
    matrix by design: padding, permutations, extreme-value scaling, the stacked
    LAPACK path (``svd_solver="full"``); see the reliability report.
    """
    n = 2048
    M = _memmap(tmp_path, make_butterfly(n, random_state=0))
    tracemalloc.start()
    try:
        op = butterfly_factorize(M)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.35 * M.nbytes, f"peak {peak / 2**20:.1f} MiB"
    x = np.random.default_rng(0).standard_normal(n)
    assert_allclose(op @ x, M @ x, rtol=1e-8, atol=1e-8 * np.abs(M @ x).max())


def test_memmap_estimator_without_a_full_size_allocation(tmp_path):
    """The estimator's fit, relative_error_ included, stays under 1.3x the input.

    The error is measured by blocks of rows of the dense product (a few MiB
    each), never a dense copy; measured here: about 0.26x on top of the input.
    """
    M = _memmap(tmp_path, make_butterfly(2048, random_state=0))
    tracemalloc.start()
    try:
        est = ButterflyApproximator().fit(M)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.3 * M.nbytes, f"peak {peak / 2**20:.1f} MiB"
    assert est.relative_error_ < 1e-12


# ---------------------------------------------------- layouts: F order, views


def _layouts(A):
    """Views of A's values in other memory layouts."""
    m, n = A.shape
    big = np.zeros((2 * m, 3 * n), dtype=A.dtype)
    big[::2, ::3] = A
    flipped = np.ascontiguousarray(A[::-1, ::-1])[::-1, ::-1]
    return {
        "fortran": np.asfortranarray(A),
        "strided": big[::2, ::3],
        "negative-strides": flipped,
        "transposed-copy": np.ascontiguousarray(A.T).T,
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"rank": 2},
        {"tree": "left-to-right"},
        {"svd_solver": "subspace", "orthonormalize": False},
        {"permutation": "bit-reversal"},
    ],
    ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default",
)
def test_layouts_give_the_result_of_a_c_copy(kwargs):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((64, 64)) + 1j * rng.standard_normal((64, 64))
    ref = butterfly_factorize(A, **kwargs)
    ref_est = ButterflyApproximator(**kwargs).fit(A)
    for name, B in _layouts(A).items():
        op = butterfly_factorize(B, **kwargs)
        for a, b in zip(op.twiddles, ref.twiddles):
            assert_array_equal(a, b, err_msg=name)
        est = ButterflyApproximator(**kwargs).fit(B)
        for a, b in zip(est.operator_.twiddles, ref_est.operator_.twiddles):
            assert_array_equal(a, b, err_msg=name)


def test_layouts_of_real_input_through_the_estimator():
    # real input goes through scikit-learn's validation, then the same core
    A = make_butterfly(32, noise=0.1, random_state=0)
    ref = ButterflyApproximator().fit(A)
    X = np.random.default_rng(1).standard_normal((5, 32))
    for name, B in _layouts(A).items():
        est = ButterflyApproximator().fit(B)
        assert_allclose(
            est.operator_.toarray(), ref.operator_.toarray(), atol=1e-12, err_msg=name
        )
        for XB in _layouts(X).values():
            assert_allclose(est.transform(XB), ref.transform(X), atol=1e-12)


def test_fortran_npy_through_the_command_line(tmp_path):
    A = make_butterfly(32, random_state=0)
    code, _, err = cli_fit(tmp_path, np.asfortranarray(A))
    assert code == 0, err
    op = ButterflyOperator.load(tmp_path / "A.npz")
    ref = butterfly_factorize(A)
    for a, b in zip(op.twiddles, ref.twiddles):
        assert_array_equal(a, b)


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
