"""Tests of the GRETSI'23 baseline kept in benchmarks/paper_identify.py."""

import numpy as np
import pytest

from benchmarks.paper_identify import _balanced_kmeans, glue, paper_identify
from skbutterfly import butterfly_factorize
from skbutterfly._hidden import make_hidden_butterfly
from skbutterfly.permutation import PermutationIdentification

# A reduced search (the paper's grid is 5 alphas x 5 restarts x 50 alternations):
# enough for small orthogonal butterflies, fast enough for the default run.
QUICK = {"alphas": (1.0, 10.0), "n_restarts": 2, "n_iter": 10}


def factorization_error(A, row_perm, col_perm):
    op = butterfly_factorize(A, permutation=(row_perm, col_perm))
    return np.linalg.norm(op.toarray() - A) / np.linalg.norm(A)


@pytest.mark.parametrize(
    "family", ["orthogonal", pytest.param("dft", marks=pytest.mark.slow)]
)
def test_paper_method_noiseless(family):
    A, _, _, _ = make_hidden_butterfly(8, family=family, random_state=1)
    found = paper_identify(A, random_state=0)
    assert isinstance(found, PermutationIdentification)
    assert found.method == "paper" and found.glued
    assert found.certain
    assert factorization_error(A, found.row_perm, found.col_perm) < 1e-10


def test_paper_method_noisy_quick():
    A, rows, cols, _ = make_hidden_butterfly(8, noise=0.01, random_state=0)
    found = paper_identify(A, random_state=0, **QUICK)
    assert found.glued and not found.certain
    planted = factorization_error(A, rows, cols)
    assert factorization_error(A, found.row_perm, found.col_perm) <= planted * (
        1 + 1e-6
    )


@pytest.mark.slow
def test_paper_method_noisy_small():
    A, rows, cols, _ = make_hidden_butterfly(
        4, family="dft", noise=0.03, random_state=0
    )
    found = paper_identify(A, random_state=0)
    assert found.glued and not found.certain
    planted = factorization_error(A, rows, cols)
    assert factorization_error(A, found.row_perm, found.col_perm) <= planted * (
        1 + 1e-6
    )


@pytest.mark.slow
@pytest.mark.parametrize("family", ["orthogonal", "dft"])
def test_paper_method_noisy_16(family):
    A, _rows, _cols, _ = make_hidden_butterfly(
        16, family=family, noise=0.01, random_state=0
    )
    found = paper_identify(A, random_state=0)
    assert found.glued


def test_glue():
    n = 8
    # Planted trees of a butterfly: rows r::h, contiguous columns.
    rows = {1: np.arange(n) % 4, 2: np.arange(n) % 2}
    cols = {1: np.arange(n) // 4, 2: np.arange(n) // 2}
    row_dfs, col_dfs = glue(rows, cols, n)
    np.testing.assert_array_equal(col_dfs, np.arange(n))
    assert sorted(row_dfs) == list(range(n))
    # Row groups of level 2 that do not contain whole level-1 groups.
    bad_rows = {1: rows[1], 2: np.array([0, 0, 0, 1, 0, 1, 1, 1])}
    assert glue(bad_rows, cols, n) is None
    bad_cols = {1: cols[1], 2: np.array([0, 1, 2, 3, 0, 1, 2, 3])}
    assert glue(rows, bad_cols, n) is None


def test_balanced_kmeans_finds_equal_clusters():
    rng = np.random.RandomState(0)
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    truth = np.repeat(np.arange(4), 5)
    F = centers[truth] + 0.1 * rng.standard_normal((20, 2))
    labels = _balanced_kmeans(F, 4, rng, n_init=3, max_iter=50)
    np.testing.assert_array_equal(np.bincount(labels), [5, 5, 5, 5])
    # The same partition as the truth, up to the names of the clusters.
    assert len({(a, b) for a, b in zip(truth, labels)}) == 4


def test_deterministic_and_global_state_untouched():
    A, _, _, _ = make_hidden_butterfly(4, noise=0.05, random_state=3)
    np.random.seed(0)  # noqa: NPY002 (the global generator must not matter)
    state = np.random.get_state()  # noqa: NPY002
    a = paper_identify(A, random_state=None, **QUICK)
    np.testing.assert_array_equal(state[1], np.random.get_state()[1])  # noqa: NPY002
    b = paper_identify(A, random_state=None, **QUICK)
    np.testing.assert_array_equal(a.row_perm, b.row_perm)
    np.testing.assert_array_equal(a.col_perm, b.col_perm)
    assert a.residual == b.residual and a.message == b.message
    c = paper_identify(A, random_state=0, **QUICK)
    np.testing.assert_array_equal(a.row_perm, c.row_perm)
