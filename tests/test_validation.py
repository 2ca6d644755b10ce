"""Validation (``skbutterfly._validation``): odd inputs that every door accepts.

Dtypes converted to float64, sparse matrices, pandas frames, memory maps and
memory layouts, through ``butterfly_factorize``, ``ButterflyApproximator`` and
the command line; the inputs they refuse are in ``test_bad_input.py``.
``benchmarks/probe_peers_bad_input.py`` runs the same classes of input through
pyfaust and lazylinop.
"""

import tracemalloc

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from _doors import (
    cli_fit,
    rel_error,
    run_cli,
    with_value,
)
from numpy.testing import assert_allclose, assert_array_equal

from skbutterfly import (
    ButterflyApproximator,
    ButterflyOperator,
    butterfly_factorize,
)
from skbutterfly._validation import check_finite, check_matrix, max_abs
from skbutterfly.datasets import dft_matrix, hadamard_matrix, make_butterfly

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


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("shape", [(3, 5), (200, 300)])  # one BLAS dot / reductions
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_dense_finiteness_check(dtype, shape, layout):
    rng = np.random.default_rng(0)
    A = rng.uniform(-1, 1, (2 * shape[0], 2 * shape[1])).astype(dtype)
    corner = A[: shape[0], : shape[1]]
    A = {
        "C": corner.copy(),
        "F": np.asfortranarray(corner),
        "strided": A[::2, ::2],
    }[layout]
    # Entries whose squares overflow (their sum of squares is infinite) are finite.
    huge = A * np.asarray(np.finfo(dtype).max / 2, dtype=dtype)
    check_finite(A)
    check_finite(huge)
    bad_values = [np.nan, np.inf, -np.inf]
    if np.dtype(dtype).kind == "c":
        bad_values += [complex(1, np.nan), complex(0, -np.inf)]
    for value in bad_values:
        for B in (A, huge):
            B = B.copy(order="K")
            B[shape[0] - 1, 2] = value
            with pytest.raises(ValueError, match=rf"index \({shape[0] - 1}, 2\)"):
                check_finite(B)


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


@pytest.mark.parametrize("dtype", [">f8", ">c16", ">f4", ">c8"])
@pytest.mark.parametrize("scale", [1.0, 2.0**600, 2.0**-600])
def test_byte_swapped_input_fits_like_native(dtype, scale):
    """Byte-swapped arrays (any scale: the exact rescaling path) give the native fit."""
    single = dtype in (">f4", ">c8")
    if single:  # the same exact-rescaling path, within float32's range
        scale = {1.0: 1.0, 2.0**600: 2.0**100, 2.0**-600: 2.0**-100}[scale]
    B = make_butterfly(64, random_state=0) * scale
    native = B.astype(np.dtype(dtype).newbyteorder("="))
    swapped = B.astype(dtype)
    assert not swapped.dtype.isnative
    ref = butterfly_factorize(native)
    op = butterfly_factorize(swapped)
    for a, b in zip(op.twiddles, ref.twiddles):
        assert_array_equal(a, b)
    est = ButterflyApproximator().fit(swapped)
    ref_est = ButterflyApproximator().fit(native)
    assert est.relative_error_ == ref_est.relative_error_
    assert est.relative_error_ < (1e-5 if single else 1e-13)


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
