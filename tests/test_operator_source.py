"""Fitting a LinearOperator from its products: recovery, cost, doors, bad operators."""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import pytest
from scipy.fft import fft, ifft
from scipy.sparse.linalg import LinearOperator, aslinearoperator

from skbutterfly import (
    ButterflyApproximator,
    ButterflyOperator,
    ProbedOperator,
    butterfly_factorize,
    monarch_chain,
    square_dyadic_chain,
)
from skbutterfly._chain import resolve_architecture
from skbutterfly._permutation import bit_reversal
from skbutterfly._sketch import operator_source
from skbutterfly._sources import DenseSource
from skbutterfly._twiddle import merge_twiddles
from skbutterfly.datasets import dft_matrix, hadamard_matrix, make_butterfly


class Counting(LinearOperator):
    """Wraps an operator and counts the columns of its forward/adjoint products."""

    def __init__(self, op):
        self.op = aslinearoperator(op)
        self.forward = self.adjoint = 0
        super().__init__(self.op.dtype, self.op.shape)

    def _matmat(self, X):
        self.forward += X.shape[1]
        return self.op.matmat(X)

    def _rmatmat(self, X):
        self.adjoint += X.shape[1]
        return self.op.rmatmat(X)

    def _matvec(self, x):
        return self._matmat(x.reshape(-1, 1)).ravel()

    def _rmatvec(self, x):
        return self._rmatmat(x.reshape(-1, 1)).ravel()

    @property
    def total(self):
        return self.forward + self.adjoint


def dft_operator(n):
    return LinearOperator(
        (n, n),
        dtype=np.complex128,
        matvec=fft,
        rmatvec=lambda y: n * ifft(y),
        matmat=lambda X: fft(X, axis=0),
        rmatmat=lambda Y: n * ifft(Y, axis=0),
    )


def fwht(X):
    """Unnormalized fast Walsh-Hadamard transform along axis 0 (Sylvester order)."""
    X = np.array(X, dtype=np.float64)
    n, k = X.shape
    h = 1
    while h < n:
        Y = X.reshape(n // (2 * h), 2, h, k)
        X = np.concatenate([Y[:, 0] + Y[:, 1], Y[:, 0] - Y[:, 1]], axis=1)
        X = X.reshape(n, k)
        h *= 2
    return X


def hadamard_operator(n):
    # The Sylvester Hadamard matrix is symmetric: its adjoint is itself.
    return LinearOperator(
        (n, n),
        dtype=np.float64,
        matvec=lambda x: fwht(x[:, None])[:, 0],
        rmatvec=lambda x: fwht(x[:, None])[:, 0],
        matmat=fwht,
        rmatmat=fwht,
    )


def random_butterfly_operator(n, rank, chain=None, seed=0, complex=False):
    """An exact butterfly as a fast operator (never formed)."""
    rng = np.random.default_rng(seed)
    if chain is None:
        chain, _ = resolve_architecture((n, n), None, rank)
    twiddles = []
    for a, b, c, d in chain:
        T = rng.standard_normal((a, d, b, c))
        if complex:
            T = T + 1j * rng.standard_normal((a, d, b, c))
        twiddles.append(T)
    return ButterflyOperator(twiddles)


def probe_error(A, B, n_probes=20, seed=1):
    """``||(A - B) G|| / ||A G||`` on Gaussian probes (an unbiased error check)."""
    G = np.random.default_rng(seed).standard_normal((A.shape[1], n_probes))
    AG = A.matmat(G)
    return np.linalg.norm(AG - B.matmat(G)) / np.linalg.norm(AG)


def true_error(op, A):
    return np.linalg.norm(op.toarray() - A) / np.linalg.norm(A)


# Recovery of exact butterflies, with the product budget 8 (r + 4) sqrt(n).


def test_dft_from_fft_bit_reversal():
    n = 1024
    counted = Counting(dft_operator(n))
    op = butterfly_factorize(counted, permutation="bit-reversal")
    assert true_error(op, dft_matrix(n)) < 1e-10
    assert counted.total <= 8 * (1 + 4) * np.sqrt(n)
    assert counted.total < n  # fewer products than forming the matrix
    assert counted.adjoint > 0  # sketched, not formed


def test_hadamard_from_fast_walsh_hadamard():
    n = 4096
    counted = Counting(hadamard_operator(n))
    est = ButterflyApproximator().fit(counted)
    assert probe_error(aslinearoperator(hadamard_operator(n)), est.operator_) < 1e-10
    assert counted.total <= 8 * 5 * np.sqrt(n)
    assert est.n_products_ == {"forward": counted.forward, "adjoint": counted.adjoint}
    assert est.relative_error_ < 1e-10
    assert est.depth_ == 12


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_random_butterflies_recovered(rank):
    n = 1024
    exact = random_butterfly_operator(n, rank, seed=rank, complex=rank == 2)
    counted = Counting(exact)
    # Oversampling 2 keeps the sketch (3 (r + 2) sqrt(n) products) below n / 2.
    op = butterfly_factorize(ProbedOperator(counted, oversampling=2), rank=rank)
    assert probe_error(exact, op) < 1e-10
    assert counted.adjoint > 0  # sketched, not formed
    assert counted.total <= 8 * (rank + 4) * np.sqrt(n)


def test_make_butterfly_as_operator_small():
    A = make_butterfly(1024, random_state=0)
    counted = Counting(A)
    est = ButterflyApproximator().fit(counted)
    assert true_error(est.operator_, A) < 1e-10
    assert counted.total <= 8 * 5 * 32
    assert est.n_features_in_ == 1024


def test_monarch_recovered():
    n = 1024
    chain = monarch_chain(n, n)
    exact = random_butterfly_operator(n, 1, chain=chain, seed=3)
    counted = Counting(exact)
    op = butterfly_factorize(counted, architecture=chain)
    assert probe_error(exact, op) < 1e-10
    assert counted.total <= 8 * 5 * np.sqrt(n)


def test_small_operator_is_formed_exactly():
    # At n = 64 sketching costs more products than forming: W is formed.
    A = make_butterfly(64, rank=2, random_state=0)
    counted = Counting(A)
    op = butterfly_factorize(counted, rank=2)
    assert true_error(op, A) < 1e-12
    assert counted.forward == 64 and counted.adjoint == 0
    # Permutation candidates share the formed matrix.
    counted = Counting(dft_matrix(64))
    op = butterfly_factorize(counted, permutation="auto")
    assert true_error(op, dft_matrix(64)) < 1e-12
    assert counted.forward == 64 + 10 and counted.adjoint == 0


# The root split against the dense path on the same matrix.


@pytest.mark.parametrize("orthonormalize", [True, False])
@pytest.mark.parametrize("complex", [False, True])
def test_root_split_matches_dense_source(orthonormalize, complex):
    n = 1024
    B = make_butterfly(n, rank=1, complex=complex, random_state=4)
    # A is B with its rows shuffled: the row permutation gives B back.
    perm = np.random.default_rng(0).permutation(n)
    A = np.empty_like(B)
    A[perm] = B
    args = dict(orthonormalize=orthonormalize, solver="auto", n_jobs=None)
    src = operator_source(aslinearoperator(A)).permuted(perm, None, (n, n))
    dense = DenseSource(A).permuted(perm, None, (n, n))
    left, right = src.root_split(
        32, 32, 1, random_state=np.random.RandomState(0), **args
    )
    dleft, dright = dense.root_split(
        32, 32, 1, random_state=np.random.RandomState(0), **args
    )
    assert left.shape == dleft.shape == (1, 32, 32, 32)
    assert right.shape == dright.shape == (32, 1, 32, 32)
    assert left.dtype == A.dtype
    product = merge_twiddles(left, right, 32, 32)
    dproduct = merge_twiddles(dleft, dright, 32, 32)
    scale = np.abs(dproduct).max()
    assert np.abs(product - dproduct).max() < 1e-8 * scale
    # Same phase convention (pivot phases) as the dense path: same factors.
    np.testing.assert_allclose(left, dleft, atol=1e-7 * np.abs(dleft).max())
    np.testing.assert_allclose(right, dright, atol=1e-7 * np.abs(dright).max())


def test_working_matrix_products_apply_permutations_and_padding():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((30, 20)) + 1j * rng.standard_normal((30, 20))
    rows, cols = rng.permutation(30), rng.permutation(20)
    src = operator_source(aslinearoperator(A)).permuted(rows, cols, (32, 24))
    W = DenseSource(A).permuted(rows, cols, (32, 24))._working_matrix()
    np.testing.assert_allclose(src._forward(np.eye(24, dtype=complex), 0).T, W)
    # Probe batches are transposed: (W^H I)^T = conj(W).
    np.testing.assert_allclose(src._adjoint(np.eye(32, dtype=complex), 0), W.conj())


# Noisy input and the error estimate.


def test_noisy_input_close_to_dense_fit_and_estimated_error():
    n = 1024
    A = make_butterfly(n, rank=1, noise=0.05, random_state=1)
    dense_error = true_error(butterfly_factorize(A), A)
    est = ButterflyApproximator().fit(aslinearoperator(A))
    error = true_error(est.operator_, A)
    assert error <= 1.25 * dense_error
    assert 0.5 * error < est.relative_error_ < 2 * error
    assert 0.7 < est.reconstruction_err_ / (error * np.linalg.norm(A)) < 1.4


# Determinism.


def test_same_random_state_same_factors_and_n_jobs_invariance():
    n = 1024
    A = make_butterfly(n, rank=1, noise=0.02, random_state=2)
    fits = [
        butterfly_factorize(aslinearoperator(A), random_state=5, n_jobs=j)
        for j in (None, None, 2)
    ]
    for op in fits[1:]:
        for t0, t in zip(fits[0].twiddles, op.twiddles):
            np.testing.assert_array_equal(t0, t)
    other = butterfly_factorize(aslinearoperator(A), random_state=6)
    assert not np.array_equal(other.twiddles[0], fits[0].twiddles[0])


def test_batches_under_a_small_budget_give_the_same_factors():
    n = 1024
    dft = dft_operator(n)
    big = butterfly_factorize(dft, permutation="bit-reversal")
    small = butterfly_factorize(
        ProbedOperator(dft, max_probe_bytes=1 << 18), permutation="bit-reversal"
    )
    for a, b in zip(big.twiddles, small.twiddles):
        np.testing.assert_allclose(a, b, atol=1e-12)


# The doors and the permutation parameter.


def test_estimator_operator_parameter_with_data():
    n = 1024
    dft = dft_operator(n)
    X = np.random.default_rng(0).standard_normal((5, n))
    est = ButterflyApproximator(operator=dft, permutation="bit-reversal").fit(X)
    assert est.n_features_in_ == n
    assert set(est.n_products_) == {"forward", "adjoint"}
    out = est.transform(X)
    np.testing.assert_allclose(out, fft(X, axis=1), atol=1e-9 * np.abs(out).max())
    assert est.score(X) > -1e-10
    with pytest.raises(ValueError, match=r"operator\.shape"):
        ButterflyApproximator(operator=dft).fit(np.ones((2, n - 1)))


def test_fit_operator_score_and_fit_transform():
    n = 1024
    dft = dft_operator(n)
    est = ButterflyApproximator(permutation="bit-reversal").fit(dft)
    assert est.score(dft) > -1e-10
    assert not hasattr(est, "feature_names_in_")
    with pytest.raises(TypeError, match="fit_transform needs data"):
        ButterflyApproximator().fit_transform(dft)
    # A dense refit drops the operator-only attribute.
    est.fit(dft_matrix(64))
    assert not hasattr(est, "n_products_")


def test_explicit_permutations_and_auto():
    n = 1024
    dft = dft_operator(n)
    perm = bit_reversal(n)
    for permutation in (perm, (None, perm), "auto"):
        est = ButterflyApproximator(permutation=permutation).fit(dft)
        assert true_error(est.operator_, dft_matrix(n)) < 1e-10
    # "auto" sketched each candidate once and kept an exact one.
    assert est.n_products_["adjoint"] >= 2 * 320


def test_identify_needs_an_array():
    with pytest.raises(ValueError, match=r"in-memory matrix"):
        butterfly_factorize(dft_operator(256), permutation="identify")


def test_real_operator_gets_real_probes():
    seen = []

    def matmat(X):
        seen.append(X.dtype)
        return H @ X

    H = hadamard_matrix(1024)
    op = LinearOperator(
        H.shape,
        dtype=np.float64,
        matvec=lambda x: H @ x,
        rmatvec=lambda x: H.T @ x,
        matmat=matmat,
        rmatmat=lambda X: H.T @ X,
    )
    fitted = butterfly_factorize(op)
    assert set(seen) == {np.dtype(np.float64)}
    assert fitted.dtype == np.float64
    assert true_error(fitted, H) < 1e-10


def test_float32_operator():
    A = make_butterfly(1024, random_state=0).astype(np.float32)
    op = butterfly_factorize(aslinearoperator(A))
    assert op.dtype == np.float32
    assert true_error(op, A) < 1e-4


# Trees and chains that would need about n probes.


def test_left_to_right_tree_needs_n_probes():
    dft = ProbedOperator(dft_operator(4096), max_probe_bytes=1 << 20)
    with pytest.raises(ValueError, match=r"tree='balanced'.*np\.eye"):
        butterfly_factorize(dft, tree="left-to-right", permutation="bit-reversal")
    with pytest.raises(ValueError, match="depth=1"):
        butterfly_factorize(dft, depth=1)


def test_left_to_right_small_operator_is_formed():
    n = 256
    exact = random_butterfly_operator(n, 1, chain=square_dyadic_chain(n), seed=0)
    op = butterfly_factorize(exact, tree="left-to-right")
    assert probe_error(exact, op) < 1e-10


# Bad operators.


def _op(n=1024, **kwargs):
    H = hadamard_matrix(n)
    funcs = dict(
        matvec=lambda x: H @ x,
        rmatvec=lambda x: H.T @ x,
        matmat=lambda X: H @ X,
        rmatmat=lambda X: H.T @ X,
    )
    funcs.update(kwargs)
    return LinearOperator(H.shape, dtype=np.float64, **funcs)


def test_operator_without_adjoint():
    H = hadamard_matrix(1024)
    op = LinearOperator(H.shape, dtype=np.float64, matvec=lambda x: H @ x)
    with pytest.raises(TypeError, match="A has no adjoint"):
        butterfly_factorize(op)
    with pytest.raises(TypeError, match="X has no adjoint"):
        ButterflyApproximator().fit(op)


def test_operator_wrong_shape():
    op = _op(rmatmat=lambda X: np.ones((3, X.shape[1])))
    with pytest.raises(ValueError, match=r"A.rmatmat .*returned shape \(3,"):
        butterfly_factorize(op)


def test_operator_wrong_dtype():
    op = _op(rmatmat=lambda X: (1 + 1j) * X)
    with pytest.raises(TypeError, match=r"complex values.*real dtype"):
        butterfly_factorize(op)
    obj = _op(matmat=lambda X: np.full(X.shape, "a"), rmatmat=lambda X: X)
    with pytest.raises(TypeError, match="not a numeric one"):
        butterfly_factorize(obj)


def test_operator_nan():
    op = _op(matmat=lambda X: np.full(X.shape, np.nan))
    with pytest.raises(ValueError, match="NaN or infinity"):
        butterfly_factorize(op)


def test_operator_that_raises():
    def broken(X):
        raise RuntimeError("solver diverged")

    with pytest.raises(ValueError, match=r"operator\.rmatmat on adjoint probe batch 0"):
        ButterflyApproximator(operator=_op(rmatmat=broken)).fit(np.ones((2, 1024)))


def test_not_an_operator_and_bad_settings():
    with pytest.raises(ValueError, match="oversampling"):
        ProbedOperator(_op(), oversampling=-1)
    with pytest.raises(ValueError, match="adjoint_ratio"):
        ProbedOperator(_op(), adjoint_ratio=0.5)
    with pytest.raises(TypeError, match="operator must be"):
        ProbedOperator(object())
