"""Fusion plans, blocked products, blocked errors and the gathered root split."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import skbutterfly._products as products
from skbutterfly import ButterflyApproximator, butterfly_factorize
from skbutterfly._diagnostics import probe_vectors
from skbutterfly._fusion import dense_row_blocks, is_dense_plan, product_plan
from skbutterfly._operator import ButterflyOperator
from skbutterfly._sources import DenseSource, relative_error
from skbutterfly._split import gathered_root_split, split_group
from skbutterfly._twiddle import dense_to_twiddle
from skbutterfly.datasets import dft_matrix, hadamard_matrix, make_butterfly

CHAINS = [
    ((2, 4, 4, 1),),  # block diagonal, depth 1
    ((2, 2, 2, 2), (4, 2, 2, 1)),  # block diagonal
    ((1, 2, 2, 4), (2, 2, 2, 2)),  # last factor with d > 1
    ((1, 3, 3, 2), (3, 2, 2, 1)),
    ((2, 2, 3, 4), (6, 2, 2, 2)),
    ((1, 2, 2, 8), (2, 2, 2, 4), (4, 2, 2, 2), (8, 2, 2, 1)),
]


def _operator(chain, seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    twiddles = [rng.standard_normal((a, d, b, c)) for a, b, c, d in chain]
    return ButterflyOperator(twiddles, **kwargs)


@pytest.mark.parametrize("chain", CHAINS)
@pytest.mark.parametrize("max_entries", [1, 7, 10**6])
def test_dense_row_blocks_tile_the_product(chain, max_entries):
    op = _operator(chain)
    full = op.toarray()
    seen = np.zeros(full.shape, dtype=bool)
    for rows, cols, block in dense_row_blocks(op.twiddles, op.chain, max_entries):
        assert_allclose(block, full[rows, cols], atol=1e-12)
        seen[rows, cols] = True
    # Outside the blocks' columns the product is zero (block diagonal).
    assert_array_equal(full[~seen], 0)


@pytest.mark.parametrize("chain", CHAINS)
def test_relative_error_by_blocks_matches_the_dense_difference(chain):
    rng = np.random.default_rng(1)
    m, n = _operator(chain).shape
    op = _operator(
        chain,
        shape=(m - 1, n - 1),
        row_perm=rng.permutation(m - 1),
        col_perm=rng.permutation(n - 1),
    )
    dense = op.toarray()
    A = dense + 0.1 * rng.standard_normal(dense.shape)
    expected = np.linalg.norm(A - dense) / np.linalg.norm(A)
    assert_allclose(relative_error(op, A), expected, rtol=1e-12)
    assert relative_error(op, dense) < 1e-14


def test_relative_error_of_extreme_values_neither_overflows_nor_underflows():
    op = _operator(CHAINS[-1])
    for scale in (1e300, 1e-300):
        big = ButterflyOperator([t * scale ** (1 / 4) for t in op.twiddles])
        A = big.toarray() * (1 + 1e-3)
        assert_allclose(relative_error(big, A), 1e-3 / (1 + 1e-3), rtol=1e-6)


def test_the_dense_form_is_a_plan_candidate():
    small = butterfly_factorize(hadamard_matrix(16)).chain
    large = butterfly_factorize(dft_matrix(1024), permutation="bit-reversal").chain
    assert is_dense_plan(small, 1000, 8)
    assert not is_dense_plan(large, 64, 16)
    # An unchainable chain (a transpose's) builds no dense form by merging.
    transposed = tuple((a, c, b, d) for a, b, c, d in reversed(small))
    assert not product_plan(transposed, 1000, 8)[0]


@pytest.mark.parametrize("k", [1, 5, 16, 300])
def test_blocked_products_match_the_dense_matrix(k, monkeypatch):
    monkeypatch.setattr(products, "_BLOCK_BYTES", 1 << 12)  # many blocks
    rng = np.random.default_rng(2)
    A = make_butterfly(128, random_state=0, complex=True)
    op = butterfly_factorize(
        A, permutation=(rng.permutation(128), rng.permutation(128))
    )
    dense = op.toarray()
    X = rng.standard_normal((128, k))
    assert_allclose(op @ X, dense @ X, atol=1e-10)
    assert_allclose(op.H @ X, dense.conj().T @ X, atol=1e-10)
    assert_allclose(op._apply_rows(X.T), X.T @ dense.T, atol=1e-10)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 16 vectors (plans are cached: cleared before and after)."""
    monkeypatch.setattr(products, "_BLOCK_BYTES", 1 << 12)
    product_plan.cache_clear()
    yield
    product_plan.cache_clear()


def _random_operator(rng, chain, shape, complex_op, row_perm, col_perm):
    """A ButterflyOperator of random twiddles on ``chain``."""
    twiddles = [rng.standard_normal((a, d, b, c)) for a, b, c, d in chain]
    if complex_op:
        twiddles = [t + 1j * rng.standard_normal(t.shape) for t in twiddles]
    return ButterflyOperator(twiddles, shape, row_perm=row_perm, col_perm=col_perm)


def _check_row_product(op, X, expected):
    Y = op._apply_rows(X)
    assert Y.shape == expected.shape and Y.flags.c_contiguous
    assert Y.dtype == np.result_type(op.dtype, X.dtype)
    tol = 1e-4 if Y.dtype in (np.float32, np.complex64) else 1e-10
    assert_allclose(Y, expected, rtol=tol, atol=tol * np.abs(expected).max())


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("x_dtype", [np.float32, np.float64, np.complex128])
@pytest.mark.parametrize("complex_op", [False, True])
@pytest.mark.parametrize("k", [1, 37, 300])
def test_row_products_match_the_dense_matrix(
    small_blocks, layout, x_dtype, complex_op, k
):
    # A padded chain (shape 100 x 300 of 512 x 512), both permutations, and the
    # row-major path (transform's) against the dense product.
    rng = np.random.default_rng(5)
    chain = (
        (1, 2, 2, 256),
        (2, 4, 4, 64),
        (8, 4, 4, 16),
        (32, 4, 4, 4),
        (128, 4, 4, 1),
    )
    op = _random_operator(
        rng, chain, (100, 300), complex_op, rng.permutation(100), rng.permutation(300)
    )
    dense = op.toarray()
    X = rng.standard_normal((2 * k, 600)).astype(x_dtype)
    X = {"C": X[:k, :300], "F": np.asfortranarray(X[:k, :300]), "strided": X[::2, ::2]}[
        layout
    ]
    expected = X.astype(np.complex128) @ dense.T
    for dense_plan in (False, True):
        op._product_plan = lambda kk, dense_plan=dense_plan: (dense_plan, 16)
        _check_row_product(op, X, expected)


@pytest.mark.parametrize("row_perm", [False, True])
@pytest.mark.parametrize("x_dtype", [np.float32, np.float64, np.complex128])
@pytest.mark.parametrize("complex_op", [False, True])
@pytest.mark.parametrize("k", [1, 37, 300])
def test_expanding_row_products_match_the_dense_matrix(
    small_blocks, row_perm, x_dtype, complex_op, k
):
    # A tall chain (512 x 64) whose leftmost factor has one column per block:
    # without a row permutation the row path writes that factor's broadcast
    # product straight into the result's rows.
    rng = np.random.default_rng(6)
    chain = ((1, 8, 1, 64), (1, 2, 2, 32), (2, 4, 4, 8), (8, 8, 8, 1))
    rows = rng.permutation(512) if row_perm else None
    op = _random_operator(rng, chain, (512, 64), complex_op, rows, rng.permutation(64))
    dense = op.toarray()
    X = rng.standard_normal((k, 64)).astype(x_dtype)
    expected = X.astype(np.complex128) @ dense.T
    for plan in ((False, 16), (False, 512)):
        op._product_plan = lambda kk, plan=plan: plan
        op._plans.clear()
        _check_row_product(op, X, expected)


def test_products_do_not_depend_on_the_threads(monkeypatch):
    op = butterfly_factorize(make_butterfly(256, random_state=0))
    X = np.random.default_rng(3).standard_normal((256, 700))
    monkeypatch.setattr(products, "_BLOCK_BYTES", 1 << 14)
    monkeypatch.setattr(products, "PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(products, "_n_workers", lambda: 1)
    serial = op @ X
    monkeypatch.setattr(products, "_n_workers", lambda: 3)
    assert_array_equal(op @ X, serial)
    est = ButterflyApproximator().fit(make_butterfly(256, random_state=0))
    assert_array_equal(est.transform(X.T), (op @ X).T)


def _root_split_pair(W, b2, c1, **kwargs):
    ((left, right),) = split_group(
        [dense_to_twiddle(W, (1, *W.shape, 1))], [b2], [c1], 1, **kwargs
    )
    return left, right


@pytest.mark.parametrize("case", ["dft", "noisy", "row-perm"])
def test_gathered_root_split_reads_the_permuted_blocks(case):
    n, b2, c1 = 256, 16, 16
    rng = np.random.default_rng(4)
    row_perm = None
    if case == "dft":
        A = dft_matrix(n)
        col_perm = butterfly_factorize(A, permutation="bit-reversal").col_perm
    else:
        A = make_butterfly(n, random_state=0, noise=0.1)
        col_perm = rng.permutation(n)
        if case == "row-perm":
            row_perm = rng.permutation(n)
    W = A if row_perm is None else A[row_perm]
    W = W[:, col_perm]
    kwargs = dict(orthonormalize=True, solver="auto", n_jobs=None)
    (left, right), probes = gathered_root_split(
        A,
        row_perm,
        col_perm,
        b2,
        c1,
        1,
        random_state=np.random.RandomState(0),
        probes=probe_vectors(A),
        **kwargs,
    )
    ref_left, ref_right = _root_split_pair(
        W, b2, c1, random_state=np.random.RandomState(0), **kwargs
    )
    # Same split (up to the phases of the rank-1 factors): same product.
    op = ButterflyOperator([left, right])
    ref = ButterflyOperator([ref_left, ref_right])
    assert_allclose(op.toarray(), ref.toarray(), atol=1e-6 * np.abs(A).max())
    assert_allclose(probes, A @ probe_vectors(A), rtol=1e-12, atol=1e-10)
    (again, _), _ = gathered_root_split(
        A, row_perm, col_perm, b2, c1, 1, random_state=np.random.RandomState(0),
        **{**kwargs, "n_jobs": 2},
    )  # fmt: skip
    assert_array_equal(again, left)


def test_fit_of_a_permuted_dft_never_forms_the_permuted_matrix(monkeypatch):
    def forbidden(self):
        raise AssertionError("the permuted working matrix was formed")

    monkeypatch.setattr(DenseSource, "_working_matrix", forbidden)
    F = dft_matrix(1024)
    op = butterfly_factorize(F, permutation="bit-reversal")
    assert relative_error(op, F) < 1e-13
