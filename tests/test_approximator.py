import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline

from skbutterfly import ButterflyApproximator, butterfly_factorize
from skbutterfly.datasets import dft_matrix, hadamard_matrix, make_butterfly


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("n", [4, 64, 512])
def test_fit_dft_and_hadamard_exact(n):
    rng = np.random.default_rng(0)
    for A, perm in [(dft_matrix(n), "bit-reversal"), (hadamard_matrix(n), None)]:
        est = ButterflyApproximator(permutation=perm).fit(A)
        assert est.relative_error_ < 1e-12
        assert est.depth_ == int(np.log2(n))
        assert est.n_params_ == 2 * n * int(np.log2(n))
        assert_allclose(est.compression_ratio_, n * n / est.n_params_)
        X = rng.standard_normal((5, n))
        assert_allclose(est.transform(X), X @ A.T, atol=1e-10 * np.sqrt(n))
        assert est.transform(X).dtype == A.dtype


def test_fitted_attributes():
    A = hadamard_matrix(16)
    est = ButterflyApproximator(depth=2).fit(A)
    assert est.chain_ == est.operator_.chain and len(est.chain_) == 2
    assert len(est.factors_) == 2
    dense = est.factors_[0].toarray() @ est.factors_[1].toarray()
    assert_allclose(dense, est.operator_.toarray(), atol=1e-12)
    assert est.permutation_ == (None, None)
    assert_allclose(est.reconstruction_err_, est.relative_error_ * np.linalg.norm(A))
    assert est.n_features_in_ == 16
    names = est.get_feature_names_out()
    assert list(names[:2]) == ["butterflyapproximator0", "butterflyapproximator1"]


@pytest.mark.parametrize(
    "shape", [(1, 9), (9, 1), (1, 1), (13, 13), (17, 31), (12, 20), (2, 2)]
)
def test_any_shape(shape):
    rng = np.random.default_rng(0)
    A = rng.standard_normal(shape)
    est = ButterflyApproximator().fit(A)
    assert est.operator_.shape == shape
    X = rng.standard_normal((3, shape[1]))
    Y = est.transform(X)
    assert Y.shape == (3, shape[0])
    assert_allclose(Y, X @ est.operator_.toarray().T, atol=1e-12)
    err = np.linalg.norm(A - est.operator_.toarray()) / np.linalg.norm(A)
    assert_allclose(est.relative_error_, err, rtol=1e-8, atol=1e-14)


def test_score_is_negative_relative_error():
    A = make_butterfly(32, random_state=0, noise=0.05)
    est = ButterflyApproximator().fit(A)
    assert_allclose(est.score(A), -est.relative_error_)
    assert est.score(A) <= -0.03
    with pytest.raises(ValueError, match="FullMatrixSplit"):
        est.score(A[:5])


def test_score_with_operator():
    rng = np.random.default_rng(0)
    W = make_butterfly(32, random_state=1)
    X = rng.standard_normal((40, 32))
    est = ButterflyApproximator(operator=W).fit(X)
    assert est.score(X) > -1e-12
    assert est.n_features_in_ == 32
    with pytest.raises(ValueError, match="operator"):
        ButterflyApproximator(operator=W).fit(rng.standard_normal((5, 8)))


def test_pipeline_gridsearch_with_operator():
    rng = np.random.default_rng(0)
    W = make_butterfly(32, depth=2, rank=2, random_state=0)
    X = rng.standard_normal((60, 32))
    y = X @ W.T @ rng.standard_normal(32)
    pipe = Pipeline([("bf", ButterflyApproximator(operator=W)), ("ridge", Ridge(1e-6))])
    search = GridSearchCV(
        pipe,
        {"bf__depth": [2, 3], "bf__rank": [1, 2]},
        cv=KFold(3),
        error_score="raise",
    ).fit(X, y)
    assert search.best_params_ == {"bf__depth": 2, "bf__rank": 2}
    assert search.best_score_ > 0.999
    assert len(search.cv_results_["params"]) == 4


def test_clone_and_pickle_roundtrip():
    A = dft_matrix(16)
    est = ButterflyApproximator(permutation="bit-reversal", random_state=0).fit(A)
    est2 = pickle.loads(pickle.dumps(est))
    X = np.random.default_rng(0).standard_normal((4, 16))
    assert_allclose(est2.transform(X), est.transform(X))
    cloned = clone(est)
    assert not hasattr(cloned, "operator_")
    assert cloned.get_params() == est.get_params()


def test_set_output_pandas_and_feature_names():
    pd = pytest.importorskip("pandas")
    A = hadamard_matrix(8)
    cols = [f"x{i}" for i in range(8)]
    df = pd.DataFrame(A, columns=cols)
    est = ButterflyApproximator().set_output(transform="pandas").fit(df)
    assert list(est.feature_names_in_) == cols
    out = est.transform(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == [f"butterflyapproximator{i}" for i in range(8)]
    assert_allclose(out.to_numpy(), A @ A.T, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_dtype_preserved(dtype):
    A = hadamard_matrix(16).astype(dtype)
    est = ButterflyApproximator().fit(A)
    assert est.operator_.dtype == dtype
    X = np.ones((2, 16), dtype=dtype)
    assert est.transform(X).dtype == dtype


def test_n_jobs_invariance():
    A = make_butterfly(256, random_state=0, noise=0.1)
    ref = ButterflyApproximator(n_jobs=1).fit(A).operator_
    par = ButterflyApproximator(n_jobs=2).fit(A).operator_
    for t1, t2 in zip(ref.twiddles, par.twiddles):
        assert_array_equal(t1, t2)


def test_random_state_reproducible():
    A = make_butterfly(256, depth=2, random_state=0, noise=0.3)
    a = ButterflyApproximator(depth=2, svd_solver="subspace", random_state=3).fit(A)
    b = ButterflyApproximator(depth=2, svd_solver="subspace", random_state=3).fit(A)
    for t1, t2 in zip(a.operator_.twiddles, b.operator_.twiddles):
        assert_array_equal(t1, t2)


def test_randomized_is_the_deprecated_name_of_subspace():
    A = make_butterfly(256, depth=2, random_state=0, noise=0.3)
    new = ButterflyApproximator(depth=2, svd_solver="subspace", random_state=3).fit(A)
    old = ButterflyApproximator(depth=2, svd_solver="randomized", random_state=3)
    with pytest.warns(FutureWarning, match="renamed 'subspace'"):
        old.fit(A)
    for t1, t2 in zip(new.operator_.twiddles, old.operator_.twiddles):
        assert_array_equal(t1, t2)
    with pytest.warns(FutureWarning, match="renamed 'subspace'"):
        butterfly_factorize(A, depth=2, svd_solver="randomized")


@pytest.mark.parametrize(
    "params, match",
    [
        ({"depth": 9}, "valid depths are 1..4"),
        ({"rank": 17}, "valid ranks are 1..16"),
        ({"architecture": [(1, 2, 2, 4), (2, 2, 2, 4)]}, "architecture"),
    ],
)
def test_infeasible_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        ButterflyApproximator(**params).fit(np.eye(16))


# Bad matrices through every door (the estimator's included):
# tests/test_bad_input.py.


def test_input_never_modified():
    A = make_butterfly(64, random_state=0, complex=True)
    A.setflags(write=False)
    copy = A.copy()
    est = ButterflyApproximator().fit(A)
    X = np.random.default_rng(0).standard_normal((3, 64))
    Xc = X.copy()
    est.transform(X)
    assert_array_equal(A, copy)
    assert_array_equal(X, Xc)


def test_verbose_reports_levels(capsys):
    ButterflyApproximator(verbose=1).fit(hadamard_matrix(16))
    out = capsys.readouterr().out
    assert "split 1 of 3" in out and "split 3 of 3" in out
    assert out.strip().splitlines()[-1].startswith("[skbutterfly] done:")


def test_transform_of_a_large_operator_never_forms_the_dense_matrix(monkeypatch):
    H = hadamard_matrix(1024)
    est = ButterflyApproximator().fit(H)

    def forbidden(*args, **kwargs):
        raise AssertionError("transform must not build a dense matrix")

    monkeypatch.setattr(type(est.operator_), "toarray", forbidden)
    X = np.random.default_rng(0).standard_normal((3, 1024))
    assert_allclose(est.transform(X), X @ H.T, atol=1e-10)


@pytest.mark.parametrize("rows", [1, 7, 300])
def test_transform_of_a_small_operator_uses_its_dense_form(rows):
    """A 16 x 16 product is cheaper as one dense GEMM: the plan picks it."""
    H = hadamard_matrix(16)
    est = ButterflyApproximator().fit(H)
    assert est.operator_._product_plan(rows)[0]
    X = np.random.default_rng(0).standard_normal((rows, 16))
    Y = est.transform(X)
    assert Y.flags.c_contiguous
    assert_allclose(Y, X @ H.T, atol=1e-12)
