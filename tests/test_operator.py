"""ButterflyOperator: products, adjoint, conversions, persistence and dtypes."""

import io
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp
from _reference import place_like_operator
from numpy.testing import assert_allclose, assert_array_equal
from scipy.sparse.linalg import LinearOperator

from skbutterfly import ButterflyOperator, butterfly_chain, butterfly_factorize
from skbutterfly.datasets import make_butterfly

# --------------------------------------------------------------------------- helpers


def _dense_factor(T):
    """Dense factor of a twiddle ``T[i, l, j, k]`` by the documented index map.

    The value ``T[i, l, j, k]`` sits at row ``i*b*d + j*d + l`` and column
    ``i*c*d + k*d + l`` (ALGORITHM.md section 1.1); written with plain loops.
    """
    a, d, b, c = T.shape
    out = np.zeros((a * b * d, a * c * d), dtype=T.dtype)
    for i in range(a):
        for l in range(d):
            for j in range(b):
                for k in range(c):
                    out[i * b * d + j * d + l, i * c * d + k * d + l] = T[i, l, j, k]
    return out


def _dense_operator(twiddles, shape, row_perm=None, col_perm=None):
    """``P_r^T (F_1 ... F_L)[:m, :n] P_c``: ``A_hat @ x = P_r^T B @ x[col_perm]``."""
    B = _dense_factor(twiddles[0])
    for T in twiddles[1:]:
        B = B @ _dense_factor(T)
    m, n = shape
    B = B[:m, :n]
    out = np.empty_like(B)
    rows = np.arange(m) if row_perm is None else row_perm
    cols = np.arange(n) if col_perm is None else col_perm
    out[np.ix_(rows, cols)] = B
    return out


def _random_twiddles(chain, dtype, seed):
    rng = np.random.default_rng(seed)
    twiddles = []
    for a, b, c, d in chain:
        T = rng.standard_normal((a, d, b, c))
        if np.dtype(dtype).kind == "c":
            T = T + 1j * rng.standard_normal((a, d, b, c))
        twiddles.append(T.astype(dtype))
    return twiddles


def _tol(dtype):
    return 1e-5 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-12


# name -> (chain, shape, with permutations, dtype)
CASES = {
    "dyadic-16-f64": (
        ((1, 2, 2, 8), (2, 2, 2, 4), (4, 2, 2, 2), (8, 2, 2, 1)),
        None,
        False,
        np.float64,
    ),
    "rect-16x32-r2-c128-perm": (
        butterfly_chain(16, 32, 3, 2),
        None,
        True,
        np.complex128,
    ),
    "padded-13x20-c128-perm": (
        butterfly_chain(16, 20, 3, 1),
        (13, 20),
        True,
        np.complex128,
    ),
    "padded-11x7-f32": (butterfly_chain(16, 8, 3, 1), (11, 7), False, np.float32),
    "monarch-24x36-c64-perm": (butterfly_chain(24, 36, 2, 2), None, True, np.complex64),
    "single-5x3-f64": (((1, 5, 3, 1),), None, True, np.float64),
    "mixed-48x80-f64": (
        ((1, 4, 8, 12), (4, 6, 20, 4), (20, 16, 4, 1)),
        (45, 77),
        True,
        np.float64,
    ),
}


def _make(name, seed=0):
    chain, shape, perms, dtype = CASES[name]
    twiddles = _random_twiddles(chain, dtype, seed)
    full = (
        chain[0][0] * chain[0][1] * chain[0][3],
        chain[-1][0] * chain[-1][2] * chain[-1][3],
    )
    shape = full if shape is None else shape
    rng = np.random.default_rng(seed + 1)
    row_perm = rng.permutation(shape[0]) if perms else None
    col_perm = rng.permutation(shape[1]) if perms else None
    op = ButterflyOperator(twiddles, shape, row_perm=row_perm, col_perm=col_perm)
    dense = _dense_operator(twiddles, shape, row_perm, col_perm)
    return op, dense


@pytest.fixture(params=list(CASES))
def case(request):
    return _make(request.param)


# ---------------------------------------------------------------------- structure


def test_is_a_linear_operator(case):
    op, dense = case
    assert isinstance(op, LinearOperator)
    assert op.shape == dense.shape
    assert op.dtype == dense.dtype
    assert op.n_params == sum(a * b * c * d for a, b, c, d in op.chain)
    assert op.depth == len(op.chain) == len(op.twiddles)
    assert "ButterflyOperator" in repr(op)


def test_toarray_matches_the_index_map(case):
    op, dense = case
    D = op.toarray()
    assert D.dtype == dense.dtype
    assert_allclose(
        D, dense, rtol=_tol(D.dtype), atol=_tol(D.dtype) * np.abs(dense).max()
    )


def test_factors_are_csr_and_multiply_to_toarray(case):
    op, dense = case
    factors = op.factors
    assert len(factors) == op.depth
    prod = None
    for F, T, pattern in zip(factors, op.twiddles, op.chain):
        assert isinstance(F, sp.csr_array)
        a, b, c, d = pattern
        assert F.shape == (a * b * d, a * c * d)
        assert F.nnz == a * b * c * d
        assert F.dtype == op.dtype
        assert_array_equal(F.toarray(), _dense_factor(T))
        prod = F if prod is None else prod @ F
    assert prod.shape == op.padded_shape
    out = place_like_operator(op, prod.toarray())
    tol = _tol(op.dtype)
    assert_allclose(out, op.toarray(), rtol=tol, atol=tol * np.abs(dense).max())


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_tosparse(case, fmt):
    op, dense = case
    S = op.tosparse(fmt)
    assert sp.issparse(S)
    assert S.format == fmt
    assert S.shape == op.shape
    assert S.dtype == op.dtype
    tol = _tol(op.dtype)
    assert_allclose(S.toarray(), dense, rtol=tol, atol=tol * np.abs(dense).max())


# ----------------------------------------------------------------------- products


def test_matvec_matmat_and_matmul(case):
    op, dense = case
    m, n = op.shape
    rng = np.random.default_rng(2)
    x = rng.standard_normal(n).astype(op.dtype)
    X = rng.standard_normal((n, 4)).astype(op.dtype)
    tol = _tol(op.dtype)
    atol = tol * np.abs(dense).max() * n
    assert_allclose(op.matvec(x), dense @ x, rtol=tol, atol=atol)
    assert op.matvec(x).shape == (m,)
    assert op.matvec(x[:, None]).shape == (m, 1)
    assert_allclose(op @ x, dense @ x, rtol=tol, atol=atol)
    assert_allclose(op.dot(x), dense @ x, rtol=tol, atol=atol)
    assert_allclose(op.matmat(X), dense @ X, rtol=tol, atol=atol)
    assert_allclose(op @ X, dense @ X, rtol=tol, atol=atol)
    assert (op @ X).shape == (m, 4)
    # composition with scipy operators
    assert_allclose((2 * op) @ x, 2 * (dense @ x), rtol=tol, atol=2 * atol)


def test_adjoint_and_transpose(case):
    op, dense = case
    m, n = op.shape
    rng = np.random.default_rng(3)
    y = rng.standard_normal(m) + 1j * rng.standard_normal(m)
    Y = rng.standard_normal((m, 3))
    tol = _tol(op.dtype)
    atol = tol * np.abs(dense).max() * m
    H = op.H
    assert H.shape == (n, m)
    assert_allclose(H @ y, dense.conj().T @ y, rtol=tol, atol=atol)
    assert_allclose(op.adjoint() @ y, dense.conj().T @ y, rtol=tol, atol=atol)
    assert_allclose(op.rmatvec(y), dense.conj().T @ y, rtol=tol, atol=atol)
    assert_allclose(op.rmatmat(Y), dense.conj().T @ Y, rtol=tol, atol=atol)
    assert_allclose(op.T @ y, dense.T @ y, rtol=tol, atol=atol)
    assert_allclose(op.transpose() @ Y, dense.T @ Y, rtol=tol, atol=atol)
    atol_d = tol * np.abs(dense).max()
    assert_allclose(H.toarray(), dense.conj().T, rtol=tol, atol=atol_d)
    assert_allclose(op.T.toarray(), dense.T, rtol=tol, atol=atol_d)
    assert_allclose(op.H.H.toarray(), dense, rtol=tol, atol=atol_d)
    assert_allclose(op.T.H.toarray(), dense.conj(), rtol=tol, atol=atol_d)
    # the adjoint is again a compact butterfly operator
    assert isinstance(H, ButterflyOperator)
    assert H.n_params == op.n_params
    assert_allclose(H.tosparse().toarray(), dense.conj().T, rtol=tol, atol=atol_d)


def test_dot_test(case):
    """<A x, y> == <x, A^H y> for random complex x, y."""
    op, _ = case
    m, n = op.shape
    rng = np.random.default_rng(4)
    for _ in range(3):
        x = rng.standard_normal(n) + 1j * rng.standard_normal(n)
        y = rng.standard_normal(m) + 1j * rng.standard_normal(m)
        lhs = np.vdot(y, op @ x)
        rhs = np.vdot(op.H @ y, x)
        scale = np.linalg.norm(op @ x) * np.linalg.norm(y)
        assert abs(lhs - rhs) <= 10 * _tol(op.dtype) * scale


@pytest.mark.parametrize(
    "op_dtype", [np.float32, np.float64, np.complex64, np.complex128]
)
@pytest.mark.parametrize(
    "x_dtype", [np.float32, np.float64, np.complex64, np.complex128]
)
def test_result_dtypes(op_dtype, x_dtype):
    chain = butterfly_chain(16, 8, 3, 1)
    op = ButterflyOperator(_random_twiddles(chain, op_dtype, 0), (13, 7))
    expected = np.result_type(op_dtype, x_dtype)
    x = np.ones(7, dtype=x_dtype)
    X = np.ones((7, 2), dtype=x_dtype)
    y = np.ones(13, dtype=x_dtype)
    assert (op @ x).dtype == expected
    assert op.matvec(x).dtype == expected
    assert op.matmat(X).dtype == expected
    assert (op.H @ y).dtype == expected
    assert (op.T @ y).dtype == expected
    assert op.toarray().dtype == op_dtype
    assert op.tosparse().dtype == op_dtype
    assert all(F.dtype == op_dtype for F in op.factors)


def test_factorized_operator_dtypes():
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64, np.complex64, np.complex128):
        A = rng.standard_normal((16, 16)).astype(dtype)
        op = butterfly_factorize(A)
        assert op.dtype == dtype
        assert all(T.dtype == dtype for T in op.twiddles)
        assert (op @ np.ones(16, dtype=dtype)).dtype == dtype
        assert (op.H @ np.ones(16, dtype=dtype)).dtype == dtype


# --------------------------------------------------------------- construction


def test_construction_errors():
    chain = butterfly_chain(16, 16, 2, 1)
    twiddles = _random_twiddles(chain, np.float64, 0)
    with pytest.raises(ValueError, match="4-D"):
        ButterflyOperator([np.ones((2, 2))])
    with pytest.raises(ValueError):
        ButterflyOperator([])
    # non-chainable twiddles: the bad factor is named
    with pytest.raises(ValueError, match=r"architecture\[0\]"):
        # patterns (1, 2, 2, 8) then (2, 2, 2, 1): 16 columns but 4 rows
        ButterflyOperator([np.ones((1, 8, 2, 2)), np.ones((2, 1, 2, 2))])
    with pytest.raises(ValueError, match="shape"):
        ButterflyOperator(twiddles, (17, 16))
    with pytest.raises(ValueError, match="shape"):
        ButterflyOperator(twiddles, (0, 16))
    with pytest.raises(ValueError, match="col_perm"):
        ButterflyOperator(twiddles, col_perm=np.arange(15))
    with pytest.raises(ValueError, match="col_perm"):
        ButterflyOperator(twiddles, col_perm=np.zeros(16, dtype=int))
    with pytest.raises(ValueError, match="row_perm"):
        ButterflyOperator(twiddles, row_perm=np.arange(16.0))


def test_identity_permutations_are_dropped():
    chain = butterfly_chain(8, 8, 3, 1)
    op = ButterflyOperator(
        _random_twiddles(chain, np.float64, 0),
        row_perm=np.arange(8),
        col_perm=np.arange(8),
    )
    assert op.row_perm is None and op.col_perm is None


def test_operator_does_not_alias_caller_arrays():
    chain = butterfly_chain(8, 8, 3, 1)
    twiddles = _random_twiddles(chain, np.float64, 0)
    op = ButterflyOperator(twiddles)
    before = op.toarray()
    x = np.arange(8.0)
    x_copy = x.copy()
    op @ x
    op.H @ x
    assert_array_equal(x, x_copy)
    assert_array_equal(op.toarray(), before)


# ------------------------------------------------------------------ persistence


@pytest.mark.parametrize("name", list(CASES))
def test_save_load_round_trip(tmp_path, name):
    op, _ = _make(name)
    path = tmp_path / "op.npz"
    op.save(path)
    loaded = ButterflyOperator.load(path)
    assert loaded.shape == op.shape
    assert loaded.dtype == op.dtype
    assert loaded.chain == op.chain
    assert loaded.padded_shape == op.padded_shape
    for a, b in ((loaded.row_perm, op.row_perm), (loaded.col_perm, op.col_perm)):
        assert (a is None) == (b is None)
        if a is not None:
            assert_array_equal(a, b)
    for a, b in zip(loaded.twiddles, op.twiddles):
        assert a.dtype == b.dtype
        assert_array_equal(a, b)
    assert_array_equal(loaded.toarray(), op.toarray())
    # plain arrays only: numpy can read the file without pickle
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            assert data[key].dtype != object
    # file-like objects too
    buffer = io.BytesIO()
    op.save(buffer)
    buffer.seek(0)
    assert_array_equal(ButterflyOperator.load(buffer).toarray(), op.toarray())


def test_save_load_factorized(tmp_path):
    A = make_butterfly(32, complex=True, random_state=0)
    op = butterfly_factorize(A, permutation=np.random.default_rng(0).permutation(32))
    op.save(tmp_path / "f.npz")
    loaded = ButterflyOperator.load(tmp_path / "f.npz")
    assert_array_equal(loaded.toarray(), op.toarray())
    assert_array_equal(loaded.col_perm, op.col_perm)


def _saved_contents(tmp_path):
    op, _ = _make("padded-13x20-c128-perm")
    path = tmp_path / "good.npz"
    op.save(path)
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _without(contents, key):
    return {k: v for k, v in contents.items() if k != key}


CORRUPTIONS = {
    "foreign-npz": lambda c: {"x": np.arange(3), "y": np.ones(2)},
    "no-format": lambda c: _without(c, "format"),
    "wrong-format": lambda c: {**c, "format": np.array("something.else")},
    "no-format-version": lambda c: _without(c, "format_version"),
    "future-version": lambda c: {**c, "format_version": np.array(99)},
    "no-shape": lambda c: _without(c, "shape"),
    "no-chain": lambda c: _without(c, "chain"),
    "missing-twiddle": lambda c: _without(c, "twiddle_1"),
    "twiddle-wrong-shape": lambda c: {**c, "twiddle_1": c["twiddle_1"][:, :, :1]},
    "chain-mismatch": lambda c: {**c, "chain": c["chain"][::-1]},
    "shape-too-large": lambda c: {**c, "shape": np.array([17, 20])},
    "bad-col-perm": lambda c: {**c, "col_perm": np.zeros(20, dtype=np.int64)},
    "float-row-perm": lambda c: {**c, "row_perm": c["row_perm"].astype(float)},
    "string-twiddle": lambda c: {**c, "twiddle_0": c["twiddle_0"].astype(str)},
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_load_corrupted_npz_raises_value_error(tmp_path, corruption):
    contents = CORRUPTIONS[corruption](_saved_contents(tmp_path))
    path = tmp_path / "bad.npz"
    np.savez(path, **contents)
    with pytest.raises(ValueError):
        ButterflyOperator.load(path)


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty", "npy", "pickle"])
def test_load_unreadable_file_raises_value_error(tmp_path, kind):
    good = tmp_path / "good.npz"
    _make("dyadic-16-f64")[0].save(good)
    path = tmp_path / "bad.npz"
    if kind == "truncated":
        raw = good.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
    elif kind == "garbage":
        path.write_bytes(b"this is not an npz file at all")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "npy":
        path = tmp_path / "array.npy"
        np.save(path, np.arange(4))
    else:
        with zipfile.ZipFile(path, "w") as zf:
            buffer = io.BytesIO()
            np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
            zf.writestr("format.npy", buffer.getvalue())
    with pytest.raises(ValueError):
        ButterflyOperator.load(path)


def test_adjoint_and_transpose_are_built_once_and_exact():
    import pickle

    A = make_butterfly(64, depth=3, rank=2, random_state=0) * (1 + 0.5j)
    op = butterfly_factorize(A, depth=3, rank=2)
    assert op.H is op.H and op.T is op.T
    assert op.H.H is op and op.T.T is op
    dense = op.toarray()
    x = np.random.default_rng(0).standard_normal((64, 3))
    np.testing.assert_allclose(op.rmatmat(x), dense.conj().T @ x, atol=1e-10)
    np.testing.assert_allclose(
        op.rmatvec(x[:, 0]), dense.conj().T @ x[:, 0], atol=1e-10
    )
    np.testing.assert_allclose(op.T @ x, dense.T @ x, atol=1e-10)
    np.testing.assert_allclose(op.H.T @ x, dense.conj() @ x, atol=1e-10)
    clone = pickle.loads(pickle.dumps(op))
    np.testing.assert_allclose(clone.rmatmat(x), dense.conj().T @ x, atol=1e-10)
