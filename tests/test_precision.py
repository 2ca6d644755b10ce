"""Machine precision on exact butterflies, however ill-conditioned (issue 16, 1).

The Gram paths (``svd_solver="gram"``, the small blocks of ``"auto"`` and the
small-block fallback of ``"subspace"``) square the condition number of a block;
blocks whose leading eigenvectors would lose precision are detected from the
eigenvalues and solved again by LAPACK, so every solver keeps the precision of
``"full"``.
"""

import itertools
import warnings

import numpy as np
import pytest
from _reference import scaled_butterfly

from skbutterfly import ButterflyFitWarning, butterfly_factorize
from skbutterfly._block_svd import gram_unreliable
from skbutterfly._subspace import _gram_triplets

SOLVERS = ["auto", "full", "gram", "subspace"]
DTYPES = [np.float32, np.float64, np.complex64, np.complex128]
SCALINGS = [(1, 1, 1), (1, 1e-4, 1e-7), (1e-7, 1, 1e-4), (1, 1e-8, 1e-8)]
TREES = ["balanced", "left-to-right", "right-to-left"]


def rel_error(D, A):
    A = A.astype(np.complex128)
    return float(np.linalg.norm(D.astype(np.complex128) - A) / np.linalg.norm(A))


def fit_error(A, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ButterflyFitWarning)  # 16x16 at rank 3
        return rel_error(butterfly_factorize(A, **kwargs).toarray(), A)


@pytest.mark.parametrize("tree", TREES)
@pytest.mark.parametrize("solver", SOLVERS)
def test_issue_reproducer_every_solver_at_machine_precision(solver, tree):
    """Size 16, depth 2, rank 3, interface (1, 1e-4, 1e-7): was 9.7e-10 with "auto"."""
    A = scaled_butterfly(16, 2, 3, (1, 1e-4, 1e-7), np.float64)
    assert fit_error(A, depth=2, rank=3, svd_solver=solver, tree=tree) < 5e-15


CASES = list(itertools.product(SOLVERS, DTYPES, SCALINGS, TREES, [(16, 2), (64, 3)]))


@pytest.mark.parametrize(
    "solver, dtype, scaling, tree, size",
    CASES,
    ids=[
        f"{s}-{np.dtype(d).name}-{'x'.join(map(str, c))}-{t}-{n}"
        for s, d, c, t, n in CASES
    ],
)
def test_ill_conditioned_exact_butterflies_every_solver(
    solver, dtype, scaling, tree, size
):
    """Orthonormalized splits keep machine precision with every solver."""
    n, depth = size
    A = scaled_butterfly(n, depth, 3, scaling, dtype)
    err = fit_error(A, depth=depth, rank=3, svd_solver=solver, tree=tree)
    assert err < 100 * np.finfo(dtype).eps, err


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver", ["auto", "gram", "subspace"])
def test_without_orthonormalization_every_solver_matches_lapack(solver, dtype):
    """Without orthonormalization the variant itself loses precision when
    interfaces are badly scaled (the LAPACK solver too); the other solvers
    must not add to it."""
    for scaling in SCALINGS:
        A = scaled_butterfly(64, 3, 3, scaling, dtype)
        kwargs = {"depth": 3, "rank": 3, "orthonormalize": False}
        full = fit_error(A, svd_solver="full", **kwargs)
        err = fit_error(A, svd_solver=solver, **kwargs)
        assert err <= 2 * full + 100 * np.finfo(dtype).eps, (scaling, err, full)


def test_gram_unreliable_flags_only_ill_conditioned_exact_blocks():
    # eigenvalues ascending: [null, lambda_k, ..., lambda_1]
    well = np.array([0.0, 0.5, 0.8, 1.0])
    ill = np.array([0.0, 1e-14, 1e-8, 1.0])
    noisy = np.array([0.3, 0.31, 0.9, 1.0])  # truncation hides the error
    full_rank = np.array([1e-14, 1e-8, 1.0])
    values = np.stack([well, ill, noisy])
    assert gram_unreliable(values, 3, np.float64).tolist() == [False, True, False]
    assert not gram_unreliable(full_rank, 3, np.float64)  # keeps every vector
    assert not gram_unreliable(np.zeros(4), 2, np.float64)  # zero block
    # The test is scale-free: no overflow at the ends of the range.
    with np.errstate(all="raise"):
        flags = gram_unreliable(values * 1e300, 3, np.float64)
    assert flags.tolist() == [False, True, False]


@pytest.mark.parametrize("wide", [True, False])
def test_small_block_gram_triplets_keep_precision(wide):
    """The subspace solver's small-block Gram path falls back per block."""
    rng = np.random.default_rng(0)
    k, p, q = 6, 4, 8
    X, _ = np.linalg.qr(rng.standard_normal((k, p, 3)))
    Y, _ = np.linalg.qr(rng.standard_normal((k, q, 3)))
    sigma = np.array([1, 1e-4, 1e-7])
    sigma = np.where(np.arange(k)[:, None] % 2 == 0, sigma, [1.0, 0.7, 0.5])
    M = (X * sigma[:, None, :]) @ np.swapaxes(Y, -1, -2)
    M = np.ascontiguousarray(M if wide else np.swapaxes(M, -1, -2))
    U, R = _gram_triplets(M, np.swapaxes(M, -1, -2), 3)
    err = np.linalg.norm(U @ R - M, axis=(-2, -1)) / np.linalg.norm(M, axis=(-2, -1))
    assert err.max() < 1e-14, err
    assert np.allclose(np.swapaxes(U, -1, -2) @ U, np.eye(3), atol=1e-12)
