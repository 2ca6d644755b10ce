"""Property-based tests (hypothesis) of the factorization and its operator."""

import warnings
from unittest import mock

import numpy as np
import pytest
from _reference import place_like_operator, scaled_butterfly
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal

import skbutterfly._block_svd as svd_module
import skbutterfly._split as split_module
from skbutterfly import ButterflyFitWarning, butterfly_factorize, feasible_depth_rank

DTYPES = [np.float64, np.float32, np.complex128, np.complex64]
TREES = ["balanced", "left-to-right", "right-to-left"]

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _tol(dtype):
    return 1e-4 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-10


@st.composite
def problems(draw, max_size=20):
    """A random matrix with a feasible (depth, rank) drawn from feasible_depth_rank.

    Mostly small shapes, sometimes larger ones whose blocks take the large-block
    (stacked, subspace iteration) paths.
    """
    sizes = st.one_of(st.integers(1, max_size), st.sampled_from([24, 32, 48, 64]))
    m = draw(sizes)
    n = draw(sizes)
    depth, rank = draw(st.sampled_from(feasible_depth_rank((m, n))))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n))
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal((m, n))
    A = A.astype(dtype)
    kwargs = {
        "depth": depth,
        "rank": rank,
        "tree": draw(st.sampled_from(TREES)),
        "orthonormalize": draw(st.booleans()),
        "random_state": 0,
    }
    return A, kwargs


# Finite entries away from the subnormal range (exact power-of-two scaling);
# extreme and subnormal scales are tested in test_factorize.py.
finite = st.one_of(
    st.just(0.0),
    st.floats(1e-6, 1e3, allow_subnormal=False),
    st.floats(-1e3, -1e-6, allow_subnormal=False),
)
any_matrices = st.tuples(st.integers(1, 16), st.integers(1, 16)).flatmap(
    lambda s: arrays(np.float64, s, elements=finite)
)


def _dense_from_factors(op):
    """Product of the stored sparse factors, cropped and permuted like the operator."""
    prod = op.factors[0]
    for F in op.factors[1:]:
        prod = prod @ F
    return place_like_operator(op, prod.toarray())


@SETTINGS
@given(problem=problems())
def test_product_of_stored_factors_equals_toarray(problem):
    A, kwargs = problem
    op = butterfly_factorize(A, **kwargs)
    assert op.depth == kwargs["depth"]
    assert op.shape == A.shape
    D = op.toarray()
    scale = max(float(np.abs(D).max()), 1e-300)
    assert_allclose(_dense_from_factors(op), D, rtol=0, atol=_tol(A.dtype) * scale)
    assert sum(F.nnz for F in op.factors) == op.n_params


@SETTINGS
@given(problem=problems(), data=st.data())
def test_operator_products_agree_with_dense(problem, data):
    A, kwargs = problem
    op = butterfly_factorize(A, **kwargs)
    D = op.toarray().astype(np.complex128)
    m, n = op.shape
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    X = rng.standard_normal((n, 3))
    y = rng.standard_normal(m) + 1j * rng.standard_normal(m)
    Y = rng.standard_normal((m, 2))
    tol = _tol(A.dtype)
    scale = max(float(np.abs(D).max()), 1e-300) * max(m, n)
    assert_allclose(op @ x, D @ x, rtol=0, atol=tol * scale * np.abs(x).max())
    assert_allclose(op.matvec(x), D @ x, rtol=0, atol=tol * scale * np.abs(x).max())
    assert_allclose(op.matmat(X), D @ X, rtol=0, atol=tol * scale * np.abs(X).max())
    assert_allclose(op @ X, D @ X, rtol=0, atol=tol * scale * np.abs(X).max())
    assert_allclose(
        op.H @ y, D.conj().T @ y, rtol=0, atol=tol * scale * np.abs(y).max()
    )
    assert_allclose(op.H.matmat(Y), D.conj().T @ Y, rtol=0, atol=tol * scale)
    assert_allclose(op.T @ y, D.T @ y, rtol=0, atol=tol * scale * np.abs(y).max())
    # dot test: <A x, y> = <x, A^H y>
    lhs = np.vdot(y, op @ x)
    rhs = np.vdot(op.H @ y, x)
    bound = tol * (np.linalg.norm(op @ x) * np.linalg.norm(y) + 1e-300) * 10
    assert abs(lhs - rhs) <= bound


@SETTINGS
@given(X=any_matrices, k=st.integers(-60, 60), tree=st.sampled_from(TREES))
def test_power_of_two_scaling_is_exact(X, k, tree):
    """Scaling A by 2**k scales the approximation by exactly 2**k (any matrix)."""
    c = 2.0**k
    op = butterfly_factorize(X, tree=tree, random_state=0)
    op_c = butterfly_factorize(X * c, tree=tree, random_state=0)
    assert_array_equal(op_c.toarray(), op.toarray() * c)


@SETTINGS
@given(problem=problems(), c=st.floats(1e-3, 1e3) | st.floats(-1e3, -1e-3))
def test_scaling_scales_the_approximation(problem, c):
    A, kwargs = problem
    if A.dtype.kind == "c":
        c = complex(c, c / 3)  # a complex scale: phases are fixed after scaling too
    op = butterfly_factorize(A, **kwargs)
    op_c = butterfly_factorize(A * A.dtype.type(c), **kwargs)
    D = op.toarray()
    scale = max(float(np.abs(D).max()), 1e-300) * abs(c)
    tol = 1e-3 if A.dtype in (np.float32, np.complex64) else 1e-8
    assert_allclose(op_c.toarray(), D * c, rtol=0, atol=tol * scale)


@SETTINGS
@given(problem=problems(max_size=24))
def test_n_jobs_gives_identical_results(problem):
    A, kwargs = problem
    # Small pieces, so that these small problems have several; the pieces (and
    # their random streams) are the same for any n_jobs.
    with mock.patch.object(split_module, "_PIECE_BYTES", 1 << 10):
        serial = butterfly_factorize(A, n_jobs=1, **kwargs)
        # force the chunked (parallel) paths even for these small problems
        with mock.patch.object(svd_module, "PARALLEL_MIN_WORK", 0):
            parallel = butterfly_factorize(A, n_jobs=2, **kwargs)
    assert parallel.chain == serial.chain
    for a, b in zip(parallel.twiddles, serial.twiddles):
        assert_array_equal(a, b)


@SETTINGS
@given(
    X=any_matrices,
    data=st.data(),
    permute=st.booleans(),
    dtype=st.sampled_from(DTYPES),
)
def test_input_never_modified(X, data, permute, dtype):
    X = X.astype(dtype)
    m, n = X.shape
    depth, rank = data.draw(st.sampled_from(feasible_depth_rank((m, n))))
    kwargs = {"depth": depth, "rank": rank, "tree": data.draw(st.sampled_from(TREES))}
    if permute:
        kwargs["permutation"] = np.random.default_rng(0).permutation(n)
    before = X.copy()
    X.setflags(write=False)
    butterfly_factorize(X, **kwargs)
    assert_array_equal(X, before)
    writable = before.copy()
    butterfly_factorize(writable, **kwargs)
    assert_array_equal(writable, before)


@SETTINGS
@given(problem=problems())
def test_dtype_kept(problem):
    A, kwargs = problem
    op = butterfly_factorize(A, **kwargs)
    assert op.dtype == A.dtype
    assert all(T.dtype == A.dtype for T in op.twiddles)
    assert op.toarray().dtype == A.dtype
    assert all(F.dtype == A.dtype for F in op.factors)
    x = np.ones(A.shape[1], dtype=A.dtype)
    y = np.ones(A.shape[0], dtype=A.dtype)
    assert (op @ x).dtype == A.dtype
    assert (op.H @ y).dtype == A.dtype
    assert op.matmat(np.ones((A.shape[1], 2), dtype=A.dtype)).dtype == A.dtype


@SETTINGS
@given(problem=problems())
def test_error_not_worse_than_zero(problem):
    """The approximation never does worse than the zero matrix (orthonormalized)."""
    A, kwargs = problem
    kwargs = {**kwargs, "orthonormalize": True}
    op = butterfly_factorize(A, **kwargs)
    wide = A.astype(np.complex128)
    err = np.linalg.norm(wide - op.toarray())
    assert err <= np.linalg.norm(wide) * (1 + _tol(A.dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_feasible_pairs_all_factorize(dtype):
    """Every (depth, rank) listed for a shape is accepted by butterfly_factorize."""
    rng = np.random.default_rng(0)
    for shape in [(8, 8), (12, 18), (13, 7), (1, 9), (16, 32)]:
        A = rng.standard_normal(shape).astype(dtype)
        for depth, rank in feasible_depth_rank(shape):
            op = butterfly_factorize(A, depth, rank)
            assert op.depth == depth
            assert op.shape == shape


# ------------------------------------------ ill-conditioned exact butterflies

SOLVERS = ["auto", "full", "gram", "subspace"]
EPS = {np.dtype(d): np.finfo(d).eps for d in DTYPES}


@st.composite
def ill_conditioned_butterflies(draw):
    """Exact butterflies whose interfaces spread block singular values over 1e-8."""
    n = draw(st.sampled_from([8, 16, 32, 64]))
    pairs = [(d, r) for d, r in feasible_depth_rank((n, n)) if d >= 2 and r <= 3]
    depth, rank = draw(st.sampled_from(pairs))
    spread = 10.0 ** -draw(st.floats(0, 8))
    order = draw(st.permutations(range(rank)))
    scaling = np.geomspace(1.0, spread, rank)[list(order)]
    dtype = draw(st.sampled_from(DTYPES))
    A = scaled_butterfly(n, depth, rank, scaling, dtype, seed=draw(st.integers(0, 99)))
    kwargs = {
        "depth": depth,
        "rank": rank,
        "tree": draw(st.sampled_from(TREES)),
        "svd_solver": draw(st.sampled_from(SOLVERS)),
        "random_state": 0,
    }
    return A, kwargs


def _relative_error(op, A):
    wide = A.astype(np.complex128)
    return float(np.linalg.norm(op.toarray() - wide) / np.linalg.norm(wide))


@settings(SETTINGS, max_examples=60)
@given(problem=ill_conditioned_butterflies())
def test_ill_conditioned_exact_butterflies_at_machine_precision(problem):
    """Every solver, orthonormalized: recovered to machine precision (issue 16)."""
    A, kwargs = problem
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ButterflyFitWarning)
        op = butterfly_factorize(A, **kwargs)
    assert _relative_error(op, A) < 100 * EPS[A.dtype]


@settings(SETTINGS, max_examples=25)
@given(problem=ill_conditioned_butterflies())
def test_ill_conditioned_solvers_match_lapack_without_orthonormalization(problem):
    """Without orthonormalization no solver loses more than LAPACK's does."""
    A, kwargs = problem
    kwargs = {**kwargs, "orthonormalize": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ButterflyFitWarning)
        err = _relative_error(butterfly_factorize(A, **kwargs), A)
        kwargs["svd_solver"] = "full"
        full = _relative_error(butterfly_factorize(A, **kwargs), A)
    assert err <= 2 * full + 100 * EPS[A.dtype]


# ---------------------------------------------------------------- determinism


def _layouts(A):
    """The same matrix as C, Fortran and strided (non-contiguous) arrays."""
    big = np.zeros((2 * A.shape[0], 3 * A.shape[1]), dtype=A.dtype)
    big[::2, ::3] = A
    return [A, np.asfortranarray(A), big[::2, ::3]]


@st.composite
def permutation_modes(draw, shape):
    m, n = shape
    modes = [None, "auto", "explicit", "pair"]
    if n >= 2 and not n & (n - 1):
        modes.append("bit-reversal")
    if m == n and n >= 4 and not n & (n - 1):
        modes.append("identify")
    mode = draw(st.sampled_from(modes))
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    if mode == "explicit":
        return rng.permutation(n)
    if mode == "pair":
        return (rng.permutation(m), rng.permutation(n))
    return mode


@settings(SETTINGS, max_examples=25)
@given(problem=problems(max_size=16), data=st.data())
def test_deterministic_across_calls_layouts_and_permutation_modes(problem, data):
    """Same factors for repeated calls, any memory layout, any global random
    state, for every permutation mode, with random_state None or fixed."""
    A, kwargs = problem
    permutation = data.draw(permutation_modes(A.shape))
    kwargs = {
        **kwargs,
        "permutation": permutation,
        "random_state": data.draw(st.sampled_from([None, 0, 7])),
    }
    reference = None
    np.random.seed(data.draw(st.integers(0, 99)))  # noqa: NPY002
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # poor fits and uncertain identification
        for X in [*_layouts(A), A]:
            op = butterfly_factorize(X, **kwargs)
            if reference is None:
                reference = op
                continue
            assert op.chain == reference.chain
            for a, b in zip(op.twiddles, reference.twiddles):
                assert_array_equal(a, b)
            for a, b in [(op.col_perm, reference.col_perm)]:
                assert (a is None and b is None) or np.array_equal(a, b)
            for a, b in [(op.row_perm, reference.row_perm)]:
                assert (a is None and b is None) or np.array_equal(a, b)
    assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002
