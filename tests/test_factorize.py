"""Exactness, noise, permutations, padding and scaling of the factorization."""

from math import prod

import numpy as np
import pytest
import scipy.fft
import scipy.linalg
from numpy.testing import assert_allclose, assert_array_equal

from skbutterfly import (
    ButterflyOperator,
    butterfly_chain,
    butterfly_factorize,
    monarch_chain,
    square_dyadic_chain,
    validate_chain,
)
from skbutterfly._chain import resolve_architecture
from skbutterfly._factorize import relative_error
from skbutterfly._permutation import bit_reversal, candidate_permutations
from skbutterfly.datasets import (
    dct_matrix,
    dft_matrix,
    hadamard_matrix,
    make_butterfly,
)

TREES = ["balanced", "left-to-right", "right-to-left"]

# --------------------------------------------------------------------------- helpers


def _rel_error(op, A):
    """Relative Frobenius error computed here, in double precision and rescaled."""
    D = op.toarray()
    assert D.shape == A.shape
    wide = np.complex128 if np.iscomplexobj(A) or np.iscomplexobj(D) else np.float64
    scale = float(np.abs(A).max()) or 1.0
    A = A.astype(wide) / scale
    D = D.astype(wide) / scale
    norm = np.linalg.norm(A)
    return np.linalg.norm(A - D) / norm if norm else np.linalg.norm(D)


def _chain_from_digits(bps, cps, ranks):
    """Chain with row digits ``bps``, column digits ``cps`` and interface ranks."""
    m = prod(bps)
    weights = [1, *ranks, 1]
    chain, a, d = [], 1, m
    for i, (bp, cp) in enumerate(zip(bps, cps)):
        d //= bp
        chain.append((a, weights[i] * bp, cp * weights[i + 1], d))
        a *= cp
    return validate_chain(chain)


def _support(pattern):
    a, b, c, d = pattern
    return np.kron(np.kron(np.eye(a), np.ones((b, c))), np.eye(d)) > 0


def _factor_product(op):
    """Dense product of the stored sparse factors (padded size)."""
    out = op.factors[0].toarray()
    for F in op.factors[1:]:
        out = out @ F.toarray()
    return out


def _is_low_precision(dtype):
    return np.dtype(dtype) in (np.float32, np.complex64)


# ---------------------------------------------------------------- test matrices


@pytest.mark.parametrize("n", [1, 2, 3, 8, 12, 64])
def test_dft_matrix(n):
    assert_allclose(dft_matrix(n), scipy.fft.fft(np.eye(n), axis=0), atol=1e-12)
    assert dft_matrix(n, dtype=np.complex64).dtype == np.complex64
    F = dft_matrix(n, normalize=True)
    assert_allclose(F @ F.conj().T, np.eye(n), atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 8, 64])
def test_hadamard_matrix(n):
    assert_array_equal(hadamard_matrix(n), scipy.linalg.hadamard(n))
    assert hadamard_matrix(n, dtype=np.float32).dtype == np.float32
    H = hadamard_matrix(n, normalize=True)
    assert_allclose(H @ H.T, np.eye(n), atol=1e-12)
    with pytest.raises(ValueError, match="n=12"):
        hadamard_matrix(12)


@pytest.mark.parametrize("n", [1, 5, 8, 16])
def test_dct_matrix(n):
    assert_allclose(
        dct_matrix(n), scipy.fft.dct(np.eye(n), norm="ortho", axis=0), atol=1e-12
    )


@pytest.mark.parametrize("complex_", [False, True])
def test_make_butterfly(complex_):
    chain = butterfly_chain(16, 32, 3, 2)
    A, op = make_butterfly(
        architecture=chain, complex=complex_, random_state=0, return_operator=True
    )
    assert A.shape == (16, 32)
    assert np.iscomplexobj(A) == complex_
    assert op.chain == chain
    assert_allclose(A, _factor_product(op), rtol=1e-13, atol=1e-13 * np.abs(A).max())
    assert_array_equal(
        A, make_butterfly(architecture=chain, complex=complex_, random_state=0)
    )
    noisy, clean = make_butterfly(
        architecture=chain,
        complex=complex_,
        noise=0.1,
        random_state=1,
        return_operator=True,
    )
    clean = clean.toarray()
    assert_allclose(
        np.linalg.norm(noisy - clean) / np.linalg.norm(clean), 0.1, rtol=1e-10
    )
    assert make_butterfly(16, dtype=np.float32, random_state=0).dtype == np.float32


# ------------------------------------------------- Hadamard and bit-reversed DFT


def _check_transform(A, op, tol):
    assert op.dtype == A.dtype
    assert op.shape == A.shape
    D = op.toarray()
    assert D.dtype == A.dtype
    x = np.ones(A.shape[1], dtype=A.dtype)
    assert (op @ x).dtype == A.dtype
    err = _rel_error(op, A)
    assert err < tol, err


@pytest.mark.parametrize("orthonormalize", [True, False])
@pytest.mark.parametrize("tree", TREES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [2**k for k in range(1, 11)])
def test_hadamard_exact(n, dtype, tree, orthonormalize):
    H = hadamard_matrix(n, dtype=dtype)
    op = butterfly_factorize(H, tree=tree, orthonormalize=orthonormalize)
    assert op.chain == square_dyadic_chain(n)
    _check_transform(H, op, 1e-5 if _is_low_precision(dtype) else 1e-12)


@pytest.mark.parametrize("orthonormalize", [True, False])
@pytest.mark.parametrize("tree", TREES)
@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
@pytest.mark.parametrize("n", [2**k for k in range(1, 11)])
def test_dft_bit_reversal_exact(n, dtype, tree, orthonormalize):
    F = dft_matrix(n, dtype=dtype)
    op = butterfly_factorize(
        F, tree=tree, orthonormalize=orthonormalize, permutation="bit-reversal"
    )
    assert_array_equal(op.col_perm if n > 2 else bit_reversal(n), bit_reversal(n))
    _check_transform(F, op, 1e-5 if _is_low_precision(dtype) else 1e-12)


@pytest.mark.parametrize(
    ("kind", "dtype", "tree"),
    [
        ("hadamard", np.float64, "balanced"),
        ("hadamard", np.float32, "balanced"),
        ("dft", np.complex128, "balanced"),
        ("dft", np.complex64, "balanced"),
        pytest.param("hadamard", np.float64, "left-to-right", marks=pytest.mark.slow),
        pytest.param("hadamard", np.float64, "right-to-left", marks=pytest.mark.slow),
        pytest.param("dft", np.complex128, "left-to-right", marks=pytest.mark.slow),
        pytest.param("dft", np.complex128, "right-to-left", marks=pytest.mark.slow),
        pytest.param("dft", np.complex64, "left-to-right", marks=pytest.mark.slow),
        pytest.param("dft", np.complex64, "right-to-left", marks=pytest.mark.slow),
    ],
)
def test_transforms_exact_2048(kind, dtype, tree):
    n = 2048
    if kind == "hadamard":
        A = hadamard_matrix(n, dtype=dtype)
        op = butterfly_factorize(A, tree=tree)
    else:
        A = dft_matrix(n, dtype=dtype)
        op = butterfly_factorize(A, tree=tree, permutation="bit-reversal")
    _check_transform(A, op, 1e-5 if _is_low_precision(dtype) else 1e-12)


def test_dft_without_permutation_is_not_a_butterfly():
    # the permutation matters: sanity check that the error measure is not vacuous
    F = dft_matrix(64)
    assert _rel_error(butterfly_factorize(F), F) > 0.5


# --------------------------------------------------------- random exact products

RANDOM_CHAINS = {
    "dyadic-64": square_dyadic_chain(64),
    "dyadic-256": square_dyadic_chain(256),
    "dyadic-64-depth3": square_dyadic_chain(64, 3),
    "dyadic-16x64": butterfly_chain(16, 64, 3, 1),
    "monarch-64-r2": monarch_chain(64, 64, 2),
    "monarch-64-r3": monarch_chain(64, 64, 3),
    "monarch-64-r4": monarch_chain(64, 64, 4),
    "monarch-36x48-r2": monarch_chain(36, 48, 2),
    "monarch-48x32-r4": monarch_chain(48, 32, 4),
    "debut-256x512-r2": butterfly_chain(256, 512, 4, 2),
    "debut-128-r2": butterfly_chain(128, 128, 4, 2),
    # DeBut-like rectangular chains with mixed ranks
    "mixed-32x64-r2r3": _chain_from_digits((4, 2, 4), (4, 4, 4), (2, 3)),
    "mixed-64x24-r3r2": _chain_from_digits((4, 4, 4), (2, 3, 4), (3, 2)),
    "mixed-64x64-r1r3r2": _chain_from_digits((2, 4, 2, 4), (4, 2, 4, 2), (1, 3, 2)),
    "mixed-48x80-r2r4": _chain_from_digits((4, 3, 4), (4, 5, 4), (2, 4)),
}


@pytest.mark.parametrize("orthonormalize", [True, False])
@pytest.mark.parametrize("tree", TREES)
@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize("name", list(RANDOM_CHAINS))
def test_random_products_recovered(name, complex_, tree, orthonormalize):
    chain = RANDOM_CHAINS[name]
    A = make_butterfly(architecture=chain, complex=complex_, random_state=7)
    op = butterfly_factorize(
        A, architecture=chain, tree=tree, orthonormalize=orthonormalize
    )
    assert op.chain == chain
    assert op.dtype == A.dtype
    assert _rel_error(op, A) < 1e-10


@pytest.mark.parametrize("orthonormalize", [True, False])
@pytest.mark.parametrize("tree", TREES)
def test_random_dyadic_1024_recovered(tree, orthonormalize):
    A = make_butterfly(1024, random_state=3)
    op = butterfly_factorize(A, tree=tree, orthonormalize=orthonormalize)
    assert op.chain == square_dyadic_chain(1024)
    assert _rel_error(op, A) < 1e-10


@pytest.mark.parametrize("tree", TREES)
@pytest.mark.parametrize(("depth", "rank"), [(2, 2), (2, 3), (2, 4), (3, 2), (4, 2)])
def test_random_products_by_depth_and_rank(depth, rank, tree):
    n = 256
    A = make_butterfly(
        n, depth=depth, rank=rank, complex=True, random_state=depth + rank
    )
    op = butterfly_factorize(A, depth=depth, rank=rank, tree=tree)
    assert op.depth == depth
    assert _rel_error(op, A) < 1e-10


@pytest.mark.parametrize("solver", ["auto", "full", "gram", "subspace"])
def test_every_solver_recovers_products(solver):
    for chain in (
        square_dyadic_chain(256),
        monarch_chain(64, 64, 3),
        butterfly_chain(256, 512, 4, 2),
    ):
        A = make_butterfly(architecture=chain, complex=True, random_state=5)
        op = butterfly_factorize(
            A, architecture=chain, svd_solver=solver, random_state=0
        )
        assert _rel_error(op, A) < 1e-10, (solver, chain)


# ------------------------------------------------------------------ noisy products

NOISY_CHAINS = {
    k: RANDOM_CHAINS[k]
    for k in (
        "dyadic-256",
        "dyadic-64-depth3",
        "monarch-64-r2",
        "monarch-64-r4",
        "debut-256x512-r2",
        "debut-128-r2",
        "mixed-32x64-r2r3",
        "mixed-64x24-r3r2",
        "mixed-64x64-r1r3r2",
    )
}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize("noise", [1e-3, 1e-1])
@pytest.mark.parametrize("name", list(NOISY_CHAINS))
def test_noisy_products_error_within_noise(name, noise, complex_, seed):
    chain = NOISY_CHAINS[name]
    A, clean = make_butterfly(
        architecture=chain,
        complex=complex_,
        noise=noise,
        random_state=seed,
        return_operator=True,
    )
    op = butterfly_factorize(A, architecture=chain)  # balanced, orthonormalized
    err = _rel_error(op, A)
    assert err <= 1.1 * noise, err / noise
    # the approximation is closer to the clean product than the noisy target is
    clean = clean.toarray()
    assert np.linalg.norm(op.toarray() - clean) <= 1.1 * np.linalg.norm(A - clean)


@pytest.mark.parametrize("noise", [1e-3, 1e-1])
def test_noisy_dft(noise):
    rng = np.random.default_rng(0)
    F = dft_matrix(256)
    E = rng.standard_normal(F.shape) + 1j * rng.standard_normal(F.shape)
    A = F + noise * np.linalg.norm(F) / np.linalg.norm(E) * E
    op = butterfly_factorize(A, permutation="bit-reversal")
    assert _rel_error(op, A) <= 1.1 * noise


# ----------------------------------------------------------------------- sparsity


@pytest.mark.parametrize(
    "make",
    [
        lambda: (hadamard_matrix(64), {}),
        lambda: (dft_matrix(32), {"permutation": "bit-reversal"}),
        lambda: (
            make_butterfly(
                architecture=RANDOM_CHAINS["mixed-48x80-r2r4"], random_state=0
            ),
            {"architecture": RANDOM_CHAINS["mixed-48x80-r2r4"]},
        ),
        lambda: (
            make_butterfly(
                architecture=RANDOM_CHAINS["monarch-64-r3"],
                complex=True,
                random_state=0,
            ),
            {"architecture": RANDOM_CHAINS["monarch-64-r3"]},
        ),
        lambda: (np.random.default_rng(0).standard_normal((13, 20)), {"rank": 2}),
    ],
    ids=["hadamard", "dft", "mixed", "monarch", "padded"],
)
def test_factor_sparsity_equals_pattern_support(make):
    A, kwargs = make()
    op = butterfly_factorize(A, **kwargs)
    assert len(op.factors) == len(op.chain)
    total = 0
    for F, pattern in zip(op.factors, op.chain):
        support = _support(pattern)
        assert F.shape == support.shape
        a, b, c, d = pattern
        assert F.nnz == a * b * c * d
        dense = F.toarray()
        assert not dense[~support].any()
        # stored entries sit exactly on the support
        stored = np.zeros(F.shape, dtype=bool)
        coo = F.tocoo()
        stored[coo.row, coo.col] = True
        assert_array_equal(stored, support)
        total += F.nnz
    assert total == op.n_params


def test_random_product_factors_are_dense_on_their_support():
    chain = RANDOM_CHAINS["mixed-64x64-r1r3r2"]
    A = make_butterfly(architecture=chain, random_state=2)
    op = butterfly_factorize(A, architecture=chain)
    for F, pattern in zip(op.factors, op.chain):
        assert_array_equal(F.toarray() != 0, _support(pattern))


# ---------------------------------------------------------------- permutations


def _permuted_product(chain, rows=None, cols=None, complex_=False, seed=0):
    """``A`` with ``A[rows][:, cols] = B`` for a random product ``B`` of ``chain``."""
    B = make_butterfly(architecture=chain, complex=complex_, random_state=seed)
    m, n = B.shape
    rows = np.arange(m) if rows is None else rows
    cols = np.arange(n) if cols is None else cols
    A = np.empty_like(B)
    A[np.ix_(rows, cols)] = B
    return A


def test_bit_reversal_permutation():
    for n in (2, 4, 8, 16, 1024):
        p = bit_reversal(n)
        assert_array_equal(np.sort(p), np.arange(n))
        assert_array_equal(p[p], np.arange(n))  # an involution
        bits = n.bit_length() - 1
        expected = [int(format(i, f"0{bits}b")[::-1] or "0", 2) for i in range(n)]
        assert_array_equal(p, expected)
    with pytest.raises(ValueError, match="12"):
        butterfly_factorize(dft_matrix(12), permutation="bit-reversal")


@pytest.mark.parametrize("tree", TREES)
def test_explicit_column_permutation(tree):
    chain = square_dyadic_chain(64)
    cols = np.random.default_rng(1).permutation(64)
    A = _permuted_product(chain, cols=cols)
    assert _rel_error(butterfly_factorize(A), A) > 0.1
    op = butterfly_factorize(A, permutation=cols, tree=tree)
    assert_array_equal(op.col_perm, cols)
    assert op.row_perm is None
    assert _rel_error(op, A) < 1e-10
    # list of ints is an index array too
    op = butterfly_factorize(A, permutation=cols.tolist(), tree=tree)
    assert _rel_error(op, A) < 1e-10


@pytest.mark.parametrize("complex_", [False, True])
def test_row_and_column_permutations_tuple(complex_):
    chain = butterfly_chain(32, 64, 3, 2)
    rng = np.random.default_rng(2)
    rows, cols = rng.permutation(32), rng.permutation(64)
    A = _permuted_product(chain, rows, cols, complex_=complex_)
    op = butterfly_factorize(A, architecture=chain, permutation=(rows, cols))
    assert_array_equal(op.row_perm, rows)
    assert_array_equal(op.col_perm, cols)
    assert _rel_error(op, A) < 1e-10
    # rows only
    A = _permuted_product(chain, rows, None, complex_=complex_)
    op = butterfly_factorize(A, architecture=chain, permutation=(rows, None))
    assert op.col_perm is None
    assert _rel_error(op, A) < 1e-10


def test_list_of_candidates_keeps_the_best():
    chain = square_dyadic_chain(32)
    rng = np.random.default_rng(3)
    right = rng.permutation(32)
    A = _permuted_product(chain, cols=right)
    candidates = [rng.permutation(32), right, None, "bit-reversal"]
    op = butterfly_factorize(A, permutation=candidates)
    assert_array_equal(op.col_perm, right)
    assert _rel_error(op, A) < 1e-10
    # candidates given as (rows, cols) tuples
    rows = rng.permutation(32)
    A = _permuted_product(chain, rows, right)
    op = butterfly_factorize(
        A, permutation=[(None, right), (rows, right), (rows, None)]
    )
    assert_array_equal(op.row_perm, rows)
    assert_array_equal(op.col_perm, right)
    assert _rel_error(op, A) < 1e-10


@pytest.mark.parametrize("n", [8, 64, 256])
def test_auto_permutation_finds_dft_bit_reversal(n):
    names = [name for name, _ in candidate_permutations(n)]
    perms = [p for _, p in candidate_permutations(n)]
    assert "identity" in names
    assert any(np.array_equal(p, bit_reversal(n)) for p in perms)
    assert len({p.tobytes() for p in perms}) == len(perms)
    F = dft_matrix(n)
    op = butterfly_factorize(F, permutation="auto")
    assert _rel_error(op, F) < 1e-12
    assert any(np.array_equal(op.col_perm, p) for p in perms)
    # the identity (first candidate) is no good: "auto" did choose
    assert _rel_error(butterfly_factorize(F), F) > 0.5


def test_auto_permutation_on_a_permuted_butterfly():
    chain = square_dyadic_chain(64)
    perms = [p for _, p in candidate_permutations(64)]
    for p in perms[1:]:
        A = _permuted_product(chain, cols=p, seed=4)
        op = butterfly_factorize(A, permutation="auto")
        assert _rel_error(op, A) < 1e-10


# Invalid permutations through every door: tests/test_bad_input.py.


# ----------------------------------------------------------- padding (any size)


def _zero_padded_butterfly(shape, rank=1, seed=0, complex_=False):
    """A matrix whose zero-padding to the engine's padded shape is a butterfly."""
    m, n = shape
    chain, padded = resolve_architecture(shape, None, rank)
    rng = np.random.default_rng(seed)
    twiddles = []
    for a, b, c, d in chain:
        T = rng.standard_normal((a, d, b, c))
        if complex_:
            T = T + 1j * rng.standard_normal((a, d, b, c))
        twiddles.append(T)
    # zero the rows >= m of the first factor and the columns >= n of the last
    a, b, _, d = chain[0]
    i, l, j = np.indices((a, d, b))
    twiddles[0][(i * b * d + j * d + l) >= m] = 0
    a, _, c, d = chain[-1]
    i, l, k = np.indices((a, d, c))
    last = np.swapaxes(twiddles[-1], -1, -2)  # view (a, d, c, b)
    last[(i * c * d + k * d + l) >= n] = 0
    B = ButterflyOperator(twiddles).toarray()
    assert not B[m:].any() and not B[:, n:].any()
    return B[:m, :n], chain, padded


@pytest.mark.parametrize("tree", TREES)
@pytest.mark.parametrize(
    ("shape", "rank"),
    [
        ((13, 13), 1),
        ((11, 7), 1),
        ((17, 5), 1),
        ((31, 31), 2),
        ((13, 20), 1),
        ((23, 23), 2),
        ((97, 64), 1),
        ((13, 1), 1),
        ((1, 13), 1),
    ],
)
def test_padding_invisible_and_exact(shape, rank, tree):
    A, chain, padded = _zero_padded_butterfly(shape, rank, seed=sum(shape))
    op = butterfly_factorize(A, rank=rank, tree=tree)
    assert op.chain == chain
    assert op.padded_shape == padded
    assert op.shape == shape
    assert op.toarray().shape == shape
    m, n = shape
    x = np.arange(n, dtype=float)
    y = np.arange(m, dtype=float)
    assert (op @ x).shape == (m,)
    assert op.matmat(np.ones((n, 3))).shape == (m, 3)
    assert (op.H @ y).shape == (n,)
    assert op.tosparse().shape == shape
    assert _rel_error(op, A) < 1e-10


@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("shape", [(13, 13), (11, 19), (29, 8), (5, 97)])
def test_padding_error_measured_on_the_original(shape, complex_):
    rng = np.random.default_rng(0)
    A = rng.standard_normal(shape)
    if complex_:
        A = A + 1j * rng.standard_normal(shape)
    op = butterfly_factorize(A)
    m, n = shape
    assert op.shape == shape
    D = op.toarray()
    err = np.linalg.norm(A - D) / np.linalg.norm(A)
    assert_allclose(relative_error(op, A), err, rtol=1e-10)
    # the padded product, cropped, is the operator; its padding is not counted
    P = _factor_product(op)
    assert P.shape == op.padded_shape
    assert_allclose(P[:m, :n], D, atol=1e-12 * np.abs(D).max())
    padded_target = np.zeros(op.padded_shape, dtype=A.dtype)
    padded_target[:m, :n] = A
    assert err <= np.linalg.norm(padded_target - P) / np.linalg.norm(A) + 1e-12


def test_padding_with_column_permutation():
    A, _, _ = _zero_padded_butterfly((13, 13), seed=3)
    cols = np.random.default_rng(1).permutation(13)
    Ap = np.empty_like(A)
    Ap[:, cols] = A
    op = butterfly_factorize(Ap, permutation=cols)
    assert op.shape == (13, 13)
    assert _rel_error(op, Ap) < 1e-10


@pytest.mark.parametrize("n", [6, 12, 18, 30, 36, 60])
def test_composite_sizes_without_padding(n):
    A = make_butterfly(n, random_state=n, complex=True)
    op = butterfly_factorize(A)
    assert op.padded_shape == (n, n)
    assert op.depth >= 2
    assert _rel_error(op, A) < 1e-10


# ------------------------------------------------------------- degenerate inputs


@pytest.mark.parametrize("tree", TREES)
@pytest.mark.parametrize("orthonormalize", [True, False])
@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        ((16, 16), np.float64),
        ((13, 7), np.float64),
        ((64, 64), np.complex128),
        ((32, 32), np.float32),
        ((1, 1), np.float64),
    ],
)
def test_zero_matrix(shape, dtype, tree, orthonormalize):
    Z = np.zeros(shape, dtype=dtype)
    op = butterfly_factorize(Z, tree=tree, orthonormalize=orthonormalize)
    for T in op.twiddles:
        assert np.isfinite(T).all()
    D = op.toarray()
    assert D.dtype == np.dtype(dtype)
    assert_array_equal(D, 0)
    assert relative_error(op, Z) == 0.0


def test_rank_deficient_butterfly():
    # a product with zeroed factor columns (degenerate) is still recovered
    chain = square_dyadic_chain(64)
    rng = np.random.default_rng(0)
    twiddles = [rng.standard_normal((a, d, b, c)) for a, b, c, d in chain]
    twiddles[2][:, :, :, 0] = 0
    twiddles[4][:3] = 0
    A = ButterflyOperator(twiddles).toarray()
    for tree in TREES:
        assert _rel_error(butterfly_factorize(A, tree=tree), A) < 1e-10


@pytest.mark.parametrize("scale", [1e-300, 1e300, 2.0**-1000, 2.0**1000])
@pytest.mark.parametrize("kind", ["hadamard", "dft"])
def test_extreme_scales_exact(kind, scale):
    if kind == "hadamard":
        A0, kwargs = hadamard_matrix(64), {}
    else:
        A0, kwargs = dft_matrix(64), {"permutation": "bit-reversal"}
    A = A0 * scale
    with np.errstate(over="raise", invalid="raise"):
        op = butterfly_factorize(A, **kwargs)
    D = op.toarray()
    assert np.isfinite(D).all()
    assert np.linalg.norm(D / scale - A0) / np.linalg.norm(A0) < 1e-12


@pytest.mark.parametrize("scale", [1e-300, 1e300])
def test_extreme_scales_noisy(scale):
    A0 = make_butterfly(64, complex=True, noise=0.1, random_state=0)
    err0 = _rel_error(butterfly_factorize(A0), A0)
    A = A0 * scale
    op = butterfly_factorize(A)
    D = op.toarray()
    assert np.isfinite(D).all()
    assert_allclose(
        np.linalg.norm(D / scale - A0) / np.linalg.norm(A0), err0, rtol=1e-6
    )
    # the reported error is the same as at scale 1 (no overflow / underflow)
    assert_allclose(relative_error(op, A), err0, rtol=1e-6)


@pytest.mark.parametrize(
    ("dtype", "scale", "tol"),
    [
        (np.float64, 1e-310, 1e-10),  # subnormal entries
        (np.float64, 1e306, 1e-12),
        (np.float32, 1e-30, 1e-5),
        (np.float32, 1e30, 1e-5),
        (np.float32, 1e-42, 1e-2),  # subnormal: about 3 significant digits
        (np.float32, 1e36, 1e-5),
    ],
)
def test_extreme_scales_subnormal_and_near_overflow(dtype, scale, tol):
    B = make_butterfly(16, random_state=0)
    A = (B * scale).astype(dtype)
    assert np.isfinite(A).all() and np.abs(A).max() > 0
    op = butterfly_factorize(A)
    D = op.toarray()
    assert D.dtype == np.dtype(dtype)
    assert np.isfinite(D).all()
    assert _rel_error(op, A) < tol


# ------------------------------------------------------------------- misc inputs


def test_input_dtypes_converted():
    H = hadamard_matrix(16)
    assert butterfly_factorize(H.astype(int)).dtype == np.float64
    assert butterfly_factorize(H.astype(np.float16)).dtype == np.float32
    assert butterfly_factorize(H > 0).dtype == np.float64
    assert butterfly_factorize(H.astype(np.complex64)).dtype == np.complex64
    assert butterfly_factorize(H.tolist()).dtype == np.float64


def test_input_not_modified():
    rng = np.random.default_rng(0)
    for A, kwargs in [
        (rng.standard_normal((64, 64)), {}),
        (rng.standard_normal((64, 64)) * 1e300, {}),
        (rng.standard_normal((13, 20)), {"rank": 2}),
        (dft_matrix(64), {"permutation": "auto"}),
        (rng.standard_normal((32, 32)).astype(np.float32), {"tree": "left-to-right"}),
    ]:
        before = A.copy()
        A.setflags(write=False)  # writing would raise
        butterfly_factorize(A, **kwargs)
        assert_array_equal(A, before)


# Invalid arguments through every door: tests/test_bad_input.py.


def test_n_jobs_identical_on_a_large_problem():
    """The root split of a 1024 x 1024 matrix is large enough to run in parallel."""
    A = make_butterfly(1024, noise=0.05, random_state=0)
    for tree in ("balanced", "left-to-right"):
        serial = butterfly_factorize(A, tree=tree, n_jobs=1, random_state=0)
        parallel = butterfly_factorize(A, tree=tree, n_jobs=2, random_state=0)
        for a, b in zip(serial.twiddles, parallel.twiddles):
            assert_array_equal(a, b)
