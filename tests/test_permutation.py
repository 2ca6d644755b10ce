"""Tests of skbutterfly.permutation: the checker and the identification."""

import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import GridSearchCV

import skbutterfly._permutation
from skbutterfly import ButterflyApproximator, butterfly_factorize
from skbutterfly._hidden import make_hidden_butterfly
from skbutterfly.model_selection import FullMatrixSplit
from skbutterfly.permutation import (
    PermutationIdentification,
    butterfly_residual,
    identify_permutations,
)
from skbutterfly.permutation._nested import nested_error


def hadamard(n):
    H = np.ones((1, 1))
    while H.shape[0] < n:
        H = np.block([[H, H], [H, -H]])
    return H


def bit_reversal(n):
    bits = n.bit_length() - 1
    return np.array(
        [int(format(i, f"0{bits}b")[::-1], 2) if bits else 0 for i in range(n)]
    )


def svd_tail_ratio(B):
    """Reference checker: max over levels and blocks of the exact tail ratio."""
    n = B.shape[0]
    worst = 0.0
    for level in range(1, n.bit_length() - 1):
        h = n >> level
        for i in range(h):
            for j in range(n // h):
                s = np.linalg.svd(B[i::h, j * h : (j + 1) * h], compute_uv=False)
                if s[0] > 0:
                    worst = max(worst, np.sqrt((s[1:] ** 2).sum()) / s[0])
    return worst


def factorization_error(A, row_perm, col_perm):
    op = butterfly_factorize(A, permutation=(row_perm, col_perm))
    return np.linalg.norm(op.toarray() - A) / np.linalg.norm(A)


def shuffle(B, seed):
    rng = np.random.RandomState(seed)
    n = B.shape[0]
    rows, cols = rng.permutation(n), rng.permutation(n)
    A = np.empty_like(B)
    A[np.ix_(rows, cols)] = B
    return A


def assert_permutation(p, n):
    assert p.dtype == np.int64 and p.shape == (n,)
    np.testing.assert_array_equal(np.sort(p), np.arange(n))


# --------------------------------------------------------------------------
# The checker
# --------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["orthogonal", "dft"])
@pytest.mark.parametrize("n", [2, 4, 8, 64, 512])
def test_residual_is_zero_on_butterflies(family, n):
    _, _, _, B = make_hidden_butterfly(n, family=family, random_state=0)
    assert butterfly_residual(B) < 1e-12


def test_residual_of_known_matrices():
    assert butterfly_residual(hadamard(64)) < 1e-13
    F = scipy.linalg.dft(64)
    # The DFT needs the bit reversal of its columns.
    assert butterfly_residual(F[:, bit_reversal(64)]) < 1e-12
    assert butterfly_residual(F) > 0.5
    assert butterfly_residual(np.zeros((8, 8))) == 0.0


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("n", [4, 8, 16, 32])
def test_residual_matches_svd_reference(n, seed):
    rng = np.random.RandomState(seed)
    for X in (rng.standard_normal((n, n)), rng.standard_normal((n, n)) + 1j):
        ref = svd_tail_ratio(X)
        res = butterfly_residual(X)
        # Conservative (never below the exact value) and close: power iteration
        # converges slowly on blocks whose sigma_2 is close to sigma_1.
        assert ref * (1 - 1e-9) <= res <= ref * 1.05


@pytest.mark.parametrize("noise", [1e-6, 1e-2, 0.1])
def test_residual_of_noisy_butterflies_is_accurate(noise):
    A, rows, cols, _ = make_hidden_butterfly(32, noise=noise, random_state=0)
    B = A[np.ix_(rows, cols)]
    ref = svd_tail_ratio(B)
    assert ref * (1 - 1e-9) <= butterfly_residual(B) <= ref * (1 + 1e-3)


def test_residual_detects_one_perturbed_entry():
    _, _, _, B = make_hidden_butterfly(64, family="orthogonal", random_state=1)
    B = B.copy()
    B[5, 17] += 1e-6
    ref = svd_tail_ratio(B)
    assert ref > 1e-8
    assert butterfly_residual(B) >= ref * (1 - 1e-9)


def test_residual_is_fast():
    import time

    _, _, _, B = make_hidden_butterfly(1024, family="dft", random_state=0)
    start = time.perf_counter()
    assert butterfly_residual(B) < 1e-11
    assert time.perf_counter() - start < 5.0


# --------------------------------------------------------------------------
# Noiseless identification
# --------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["orthogonal", "dft"])
@pytest.mark.parametrize("n", [4, 8, 16, 32, 64, 128, 256, 512, 1024])
def test_noiseless_identification_and_factorization(family, n):
    A, _, _, _ = make_hidden_butterfly(n, family=family, random_state=n)
    found = identify_permutations(A, random_state=0)
    assert isinstance(found, PermutationIdentification)
    assert_permutation(found.row_perm, n)
    assert_permutation(found.col_perm, n)
    assert found.method == "exact"
    assert found.certain and found.glued and not found.degenerate
    assert found.residual < 1e-10
    assert found.residual == butterfly_residual(
        A[np.ix_(found.row_perm, found.col_perm)]
    )
    assert found.relative_error < 1e-10
    assert factorization_error(A, found.row_perm, found.col_perm) < 1e-10


@pytest.mark.parametrize("family", ["orthogonal", "dft"])
def test_identified_matrix_passes_reference_checker(family):
    A, _, _, _ = make_hidden_butterfly(32, family=family, random_state=5)
    found = identify_permutations(A, random_state=0)
    assert svd_tail_ratio(A[np.ix_(found.row_perm, found.col_perm)]) < 1e-12
    # The shuffled matrix itself is far from a butterfly.
    assert svd_tail_ratio(A) > 0.1


@pytest.mark.parametrize("family", ["orthogonal", "dft"])
def test_robust_method_on_noiseless_input(family):
    A, _, _, _ = make_hidden_butterfly(64, family=family, random_state=3)
    found = identify_permutations(A, method="robust", random_state=0)
    assert found.method == "robust" and found.certain
    assert factorization_error(A, found.row_perm, found.col_perm) < 1e-10


def test_factorize_with_identify():
    A, _, _, _ = make_hidden_butterfly(128, family="dft", random_state=2)
    op = butterfly_factorize(A, permutation="identify", random_state=0)
    assert np.linalg.norm(op.toarray() - A) < 1e-10 * np.linalg.norm(A)


def test_gaussian_butterfly_real_and_complex():
    from skbutterfly.datasets import make_butterfly

    for complex_ in (False, True):
        B = make_butterfly(64, complex=complex_, random_state=4)
        A = shuffle(B, 4)
        found = identify_permutations(A, random_state=0)
        assert found.certain and found.method == "exact"
        assert factorization_error(A, found.row_perm, found.col_perm) < 1e-10


@pytest.mark.parametrize("n", [4, 8, 32, 256])
def test_hadamard_succeeds_and_reports_degenerate(n):
    A = shuffle(hadamard(n), n)
    found = identify_permutations(A, random_state=0)
    assert found.degenerate
    assert "degenerate" in found.message
    if found.certain:
        assert found.residual < 1e-10
        assert factorization_error(A, found.row_perm, found.col_perm) < 1e-10
    assert found.certain  # it does succeed


def test_permutation_matrix_is_degenerate_but_identified():
    P = np.eye(16)[np.random.RandomState(0).permutation(16)]
    found = identify_permutations(P, random_state=0)
    assert found.certain and found.degenerate
    assert factorization_error(P, found.row_perm, found.col_perm) < 1e-10


def test_trivial_inputs():
    found = identify_permutations(np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert found.certain and found.residual == 0.0
    np.testing.assert_array_equal(found.row_perm, [0, 1])
    found = identify_permutations(np.zeros((8, 8)))
    assert found.certain and found.degenerate


def test_single_precision_input():
    A, _, _, _ = make_hidden_butterfly(64, family="orthogonal", random_state=0)
    found = identify_permutations(A.astype(np.float32), random_state=0)
    assert found.tol == 1e-4
    assert found.certain
    assert factorization_error(A, found.row_perm, found.col_perm) < 1e-10


def test_sparse_and_list_input():
    A, _, _, _ = make_hidden_butterfly(16, family="orthogonal", random_state=0)
    a = identify_permutations(sp.csr_array(A), random_state=0)
    b = identify_permutations(A.tolist(), random_state=0)
    assert a.certain and b.certain
    np.testing.assert_array_equal(a.row_perm, b.row_perm)


# --------------------------------------------------------------------------
# Never a wrong tree without saying so
# --------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    log_n=st.integers(1, 5),
    kind=st.sampled_from(["random", "perturbed", "butterfly", "low_rank"]),
    seed=st.integers(0, 2**31 - 1),
    method=st.sampled_from(["auto", "exact", "robust"]),
)
def test_certain_implies_butterfly(log_n, kind, seed, method):
    n = 2**log_n
    rng = np.random.RandomState(seed)
    if kind == "random":
        A = rng.standard_normal((n, n))
    elif kind == "low_rank":
        A = np.outer(rng.standard_normal(n), rng.standard_normal(n))
    else:
        A, _, _, _ = make_hidden_butterfly(n, random_state=seed)
        if kind == "perturbed":
            A = A.copy()
            A[rng.randint(n), rng.randint(n)] += 1e-5
    found = identify_permutations(A, method=method, random_state=seed)
    assert_permutation(found.row_perm, n)
    assert_permutation(found.col_perm, n)
    reference = svd_tail_ratio(A[np.ix_(found.row_perm, found.col_perm)])
    # Never below the exact tail ratio, up to roundoff (both are ~eps on
    # exactly low-rank blocks).
    assert found.residual >= reference * (1 - 1e-9) - 16 * np.finfo(float).eps
    if found.certain:
        assert reference <= found.tol
        assert "not certain" not in found.message
    else:
        assert found.message.startswith(("not certain", "failed"))
    if kind == "butterfly":
        assert found.certain


@pytest.mark.parametrize("family", ["orthogonal", "dft"])
def test_perturbed_butterfly_is_not_certain(family):
    A, _, _, _ = make_hidden_butterfly(64, family=family, random_state=7)
    A = A.copy()
    A[3, 9] += 1e-6 * np.abs(A).max()
    found = identify_permutations(A, random_state=0)
    assert not found.certain
    assert found.residual > found.tol
    assert "not certain" in found.message


def test_exact_method_fails_cleanly_on_noise():
    A, _, _, _ = make_hidden_butterfly(32, noise=0.01, random_state=0)
    found = identify_permutations(A, method="exact", random_state=0)
    assert not found.certain and not found.glued
    assert found.message.startswith("failed")
    np.testing.assert_array_equal(found.row_perm, np.arange(32))


# --------------------------------------------------------------------------
# Noisy identification
# --------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["orthogonal", "dft"])
@pytest.mark.parametrize(("n", "noise"), [(4, 0.1), (16, 0.1), (64, 0.03), (128, 0.1)])
def test_noisy_identification_matches_planted_error(family, n, noise):
    for seed in range(2):
        A, rows, cols, _B = make_hidden_butterfly(
            n, family=family, noise=noise, random_state=seed
        )
        found = identify_permutations(A, random_state=seed)
        assert found.method == "robust" and found.glued
        assert not found.certain and "not certain" in found.message
        planted = factorization_error(A, rows, cols)
        assert factorization_error(A, found.row_perm, found.col_perm) <= planted * (
            1 + 1e-6
        )
        # The nested fit built while identifying is within the noise.
        assert found.relative_error <= nested_error(A[np.ix_(rows, cols)]) * (1 + 1e-6)


def test_noisy_hadamard_is_identified():
    rng = np.random.RandomState(0)
    H = hadamard(32)
    E = rng.standard_normal(H.shape)
    A = shuffle(H + 0.01 * np.linalg.norm(H) / np.linalg.norm(E) * E, 1)
    found = identify_permutations(A, random_state=0)
    assert not found.certain and found.degenerate
    assert found.relative_error < 0.01


# --------------------------------------------------------------------------
# Determinism, parameters, verbose
# --------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "n"), [("auto", 64), ("robust", 32)])
def test_deterministic_for_fixed_random_state(method, n):
    A, _, _, _ = make_hidden_butterfly(n, noise=0.05, random_state=3)
    a = identify_permutations(A, method=method, random_state=11)
    b = identify_permutations(A, method=method, random_state=11)
    np.testing.assert_array_equal(a.row_perm, b.row_perm)
    np.testing.assert_array_equal(a.col_perm, b.col_perm)
    assert a.residual == b.residual and a.message == b.message


def _seed_global(seed):
    np.random.seed(seed)  # noqa: NPY002 (the global generator must not matter)


def _global_state():
    return np.random.get_state()  # noqa: NPY002


def _gaussian(n, seed=0, complex_=False):
    rng = np.random.RandomState(seed)
    A = rng.standard_normal((n, n))
    return A + 1j * rng.standard_normal((n, n)) if complex_ else A


def test_default_random_state_ignores_the_global_generator():
    # Issue 16, item 2: with random_state=None the search used numpy's global
    # generator (on this matrix, global seed 4 changed the result).
    A = _gaussian(64)
    found = []
    for global_seed in (0, 4, 5):
        _seed_global(global_seed)
        found.append(identify_permutations(A))
    assert found[0].relative_error == found[1].relative_error == found[2].relative_error
    for other in found[1:]:
        np.testing.assert_array_equal(other.row_perm, found[0].row_perm)
        np.testing.assert_array_equal(other.col_perm, found[0].col_perm)


def test_default_random_state_leaves_the_global_state_alone():
    A = _gaussian(32)
    _seed_global(12345)
    before = _global_state()
    identify_permutations(A)
    after = _global_state()
    np.testing.assert_array_equal(before[1], after[1])
    assert before[0] == after[0] and before[2:] == after[2:]


@pytest.mark.parametrize("case", ["gaussian", "hidden-dft"])
def test_memory_layouts_give_the_same_result(case):
    # The Gaussian (default random_state) takes the robust search, the hidden
    # DFT (fixed seed) the exact one, whose fit error depended on the layout.
    if case == "gaussian":
        A, random_state = _gaussian(16, seed=1), None
    else:
        A = make_hidden_butterfly(64, family="dft", random_state=0)[0]
        A, random_state = np.ascontiguousarray(A), 0
    big = np.zeros((2 * A.shape[0], 3 * A.shape[1]), dtype=A.dtype)
    big[::2, ::3] = A
    fortran = np.asfortranarray(A)
    layouts = [A, fortran, big[::2, ::3]]
    copies = [X.copy() for X in layouts]
    found = [identify_permutations(X, random_state=random_state) for X in layouts]
    for other in found[1:]:
        np.testing.assert_array_equal(other.row_perm, found[0].row_perm)
        np.testing.assert_array_equal(other.col_perm, found[0].col_perm)
        assert other.residual == found[0].residual
        assert other.relative_error == found[0].relative_error
    for X, copy in zip(layouts, copies):
        np.testing.assert_array_equal(X, copy)  # inputs are not modified
    assert fortran.flags.f_contiguous


def test_factorize_identify_is_reproducible():
    A = _gaussian(32)
    ops = []
    for global_seed in (0, 1, 2):
        _seed_global(global_seed)
        state = _global_state()
        with pytest.warns(UserWarning, match="not certain"):
            ops.append(butterfly_factorize(A, permutation="identify"))
        np.testing.assert_array_equal(state[1], _global_state()[1])
    for op in ops[1:]:
        np.testing.assert_array_equal(op.row_perm, ops[0].row_perm)
        np.testing.assert_array_equal(op.col_perm, ops[0].col_perm)
        np.testing.assert_array_equal(op.toarray(), ops[0].toarray())


def test_grid_search_with_identify_is_reproducible():
    A = _gaussian(32, seed=2)
    scores = []
    for global_seed in (0, 1):
        _seed_global(global_seed)
        search = GridSearchCV(
            ButterflyApproximator(permutation="identify"),
            {"rank": [1, 2]},
            cv=FullMatrixSplit(),
            refit=False,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "not certain"
            search.fit(A)
        scores.append(search.cv_results_["mean_test_score"])
    np.testing.assert_array_equal(scores[0], scores[1])


def test_result_is_frozen():
    found = identify_permutations(np.eye(4))
    with pytest.raises(AttributeError):
        found.certain = False


def test_verbose_prints(capsys):
    A, _, _, _ = make_hidden_butterfly(16, noise=0.01, random_state=0)
    identify_permutations(A, random_state=0, verbose=2)
    assert "[identify]" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("A", "error", "match"),
    [
        (np.ones((4, 8)), ValueError, "square"),
        (np.ones((6, 6)), ValueError, "2\\*\\*L"),
        (np.ones((1, 1)), ValueError, "2\\*\\*L"),
        (np.ones(4), ValueError, "2-D"),
        (np.ones((2, 2, 2)), ValueError, "2-D"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), ValueError, "NaN"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), ValueError, "NaN or infinity"),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, "numeric dtype"),
        (np.zeros((0, 0)), ValueError, "non-empty"),
        ("abcd", TypeError, "array-like"),
    ],
)
def test_bad_matrix(A, error, match):
    with pytest.raises(error, match=match) as err:
        identify_permutations(A)
    assert str(err.value).startswith("A ")
    with pytest.raises(error, match=match) as err:
        butterfly_residual(A)
    assert str(err.value).startswith("B ")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "fast"}, "method="),
        ({"method": "paper"}, "benchmarks/paper_identify.py"),
        ({"method": None}, "method="),
        ({"tol": 0.0}, "tol="),
        ({"tol": 2.0}, "tol="),
        ({"tol": float("nan")}, "tol="),
        ({"tol": "1e-8"}, "tol="),
        ({"verbose": -1}, "verbose="),
        ({"verbose": 1.5}, "verbose="),
        ({"random_state": "seed"}, "random_state|seed"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        identify_permutations(np.eye(4), **kwargs)


# --------------------------------------------------------------------------
# The public module
# --------------------------------------------------------------------------


def test_public_names():
    import skbutterfly.permutation as module

    assert sorted(module.__all__) == [
        "PermutationIdentification",
        "bit_reversal",
        "butterfly_residual",
        "candidate_permutations",
        "digit_reversal",
        "identify_permutations",
    ]
    # The fixed permutations are those of the core (one implementation).
    for name in ("bit_reversal", "digit_reversal", "candidate_permutations"):
        assert getattr(module, name) is getattr(skbutterfly._permutation, name)
    for name in module.__all__:
        assert "Parameters" in getattr(module, name).__doc__, name
    for name in ("PermutationIdentification", "butterfly_residual"):
        assert "Examples" in getattr(module, name).__doc__, name
    assert "Examples" in identify_permutations.__doc__


# --------------------------------------------------------------------------
# The instance generator
# --------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["orthogonal", "dft"])
@pytest.mark.parametrize("noise", [0.0, 0.1])
def test_make_hidden_butterfly(family, noise):
    n = 32
    A, rows, cols, B = make_hidden_butterfly(
        n, family=family, noise=noise, random_state=0
    )
    assert A.shape == B.shape == (n, n)
    assert A.dtype == (np.complex128 if family == "dft" else np.float64)
    assert_permutation(rows, n)
    assert_permutation(cols, n)
    E = A[np.ix_(rows, cols)] - B
    np.testing.assert_allclose(np.linalg.norm(E), noise * np.linalg.norm(B), atol=1e-12)
    assert butterfly_residual(B) < 1e-12
    if family == "dft":
        np.testing.assert_allclose(B, scipy.linalg.dft(n)[:, bit_reversal(n)])
    else:
        np.testing.assert_allclose(B @ B.T, np.eye(n), atol=1e-12)
    again = make_hidden_butterfly(n, family=family, noise=noise, random_state=0)
    np.testing.assert_array_equal(A, again[0])
    other = make_hidden_butterfly(n, family=family, noise=noise, random_state=1)
    assert not np.array_equal(A, other[0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 6}, "n="),
        ({"n": 1}, "n="),
        ({"n": 4.0}, "n="),
        ({"n": 4, "family": "hadamard"}, "family="),
        ({"n": 4, "noise": -0.1}, "noise="),
        ({"n": 4, "noise": float("inf")}, "noise="),
    ],
)
def test_make_hidden_butterfly_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_hidden_butterfly(**kwargs)
