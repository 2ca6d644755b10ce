import warnings

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from skbutterfly import ButterflyApproximator, feasible_depth_rank
from skbutterfly.datasets import make_butterfly
from skbutterfly.model_selection import (
    FullMatrixSplit,
    feasible_grid,
    neg_n_params,
    neg_relative_error,
    smallest_within_tolerance,
)

SCORING = {"error": neg_relative_error, "n_params": neg_n_params}


def test_full_matrix_split():
    X = np.zeros((5, 3))
    splits = list(FullMatrixSplit().split(X))
    assert len(splits) == 1 and FullMatrixSplit().get_n_splits(X) == 1
    np.testing.assert_array_equal(splits[0][0], np.arange(5))
    np.testing.assert_array_equal(splits[0][1], np.arange(5))


def test_gridsearch_picks_most_compact_exact_candidate():
    B = make_butterfly(64, depth=3, rank=2, random_state=0)
    search = GridSearchCV(
        ButterflyApproximator(),
        {"depth": [2, 3, 4, 6], "rank": [1, 2, 4]},
        scoring=SCORING,
        cv=FullMatrixSplit(),
        refit=smallest_within_tolerance(1e-8),
        error_score="raise",
    ).fit(B)
    res = search.cv_results_
    errors = -np.asarray(res["mean_test_error"])
    params = -np.asarray(res["mean_test_n_params"])
    exact = errors <= 1e-8
    assert exact.any() and not exact.all()
    assert search.best_estimator_.n_params_ == params[exact].min()
    assert search.best_estimator_.relative_error_ <= 1e-8


def test_refit_falls_back_with_warning():
    rule = smallest_within_tolerance(1e-6)
    results = {
        "mean_test_error": [-0.5, -0.1, -0.3],
        "mean_test_n_params": [-1, -9, -3],
    }
    with pytest.warns(UserWarning, match="no candidate"):
        assert rule(results) == 1


def test_refit_ties_go_to_smaller_error():
    rule = smallest_within_tolerance(1e-2)
    results = {
        "mean_test_error": [-1e-3, -1e-4, -1e-1],
        "mean_test_n_params": [-10, -10, -1],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rule(results) == 1


def test_smallest_within_tolerance_validates_tol():
    with pytest.raises(ValueError, match="tol"):
        smallest_within_tolerance(-1)


def test_feasible_grid_matches_feasible_pairs():
    grid = feasible_grid((64, 64), ranks=[1, 2, 4])
    pairs = set(feasible_depth_rank((64, 64)))
    listed = {(g["depth"][0], r) for g in grid for r in g["rank"]}
    assert listed == {(d, r) for d, r in pairs if r in (1, 2, 4)}
    search = GridSearchCV(
        ButterflyApproximator(),
        grid,
        scoring=SCORING,
        refit="error",
        cv=FullMatrixSplit(),
        error_score="raise",
    ).fit(make_butterfly(64, random_state=0))
    assert np.isfinite(search.cv_results_["mean_test_error"]).all()


def test_neg_n_params_on_pipeline():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    pipe = make_pipeline(FunctionTransformer(), ButterflyApproximator())
    pipe.fit(np.eye(8))
    assert neg_n_params(pipe) == -pipe[-1].n_params_
