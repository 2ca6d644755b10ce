"""Choosing ``depth`` and ``rank``: a one-split CV, scorers, a refit rule, grids."""

# SPDX-License-Identifier: BSD-3-Clause

import warnings
from numbers import Real

import numpy as np
from sklearn.model_selection import BaseCrossValidator
from sklearn.utils.validation import _num_samples

from skbutterfly._cache import SplitCache, split_cache
from skbutterfly._chain import feasible_depth_rank

__all__ = [
    "FullMatrixSplit",
    "SplitCache",
    "feasible_grid",
    "neg_n_params",
    "neg_relative_error",
    "smallest_within_tolerance",
    "split_cache",
]


class FullMatrixSplit(BaseCrossValidator):
    """A single split whose train and test sets are both the whole matrix.

    Rows of one operator are not i.i.d. samples: to compare ``depth`` and
    ``rank`` on one matrix, fit and score each candidate on all of it.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly.model_selection import FullMatrixSplit
    >>> [(train.tolist(), test.tolist()) for train, test in
    ...  FullMatrixSplit().split(np.zeros((3, 2)))]
    [([0, 1, 2], [0, 1, 2])]
    """

    def split(self, X, y=None, groups=None):
        """Yield the one split ``(all rows, all rows)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The matrix.
        y : Ignored
            Not used, present for API consistency by convention.
        groups : Ignored
            Not used, present for API consistency by convention.

        Yields
        ------
        train : ndarray
            All row indices.
        test : ndarray
            All row indices.
        """
        indices = np.arange(_num_samples(X))
        yield indices, indices

    def _iter_test_indices(self, X=None, y=None, groups=None):
        yield np.arange(_num_samples(X))

    def get_n_splits(self, X=None, y=None, groups=None):
        """Return the number of splits, 1.

        Parameters
        ----------
        X : object
            Ignored.
        y : object
            Ignored.
        groups : object
            Ignored.

        Returns
        -------
        n_splits : int
            Always 1.
        """
        return 1


def neg_relative_error(estimator, X, y=None):
    """Scorer: the estimator's score, minus the relative Frobenius error.

    Parameters
    ----------
    estimator : ButterflyApproximator or Pipeline ending with one
        Fitted estimator.
    X : array-like of shape (n_samples, n_features)
        The matrix (or data, with ``operator`` set).
    y : Ignored
        Not used.

    Returns
    -------
    score : float
        ``-||A - A_hat||_F / ||A||_F`` (see :meth:`ButterflyApproximator.score`).

    Examples
    --------
    >>> from skbutterfly import ButterflyApproximator
    >>> from skbutterfly.datasets import hadamard_matrix
    >>> from skbutterfly.model_selection import neg_relative_error
    >>> H = hadamard_matrix(8)
    >>> bool(neg_relative_error(ButterflyApproximator().fit(H), H) > -1e-12)
    True
    """
    return estimator.score(X)


def neg_n_params(estimator, X=None, y=None):
    """Scorer: minus the number of parameters of the fitted factors.

    Parameters
    ----------
    estimator : ButterflyApproximator or Pipeline containing one
        Fitted estimator.
    X : Ignored
        Not used.
    y : Ignored
        Not used.

    Returns
    -------
    score : float
        ``-n_params_`` (greater is more compact).

    Examples
    --------
    >>> from skbutterfly import ButterflyApproximator
    >>> from skbutterfly.datasets import hadamard_matrix
    >>> from skbutterfly.model_selection import neg_n_params
    >>> neg_n_params(ButterflyApproximator().fit(hadamard_matrix(8)))
    -48.0
    """
    if hasattr(estimator, "steps"):
        found = [s for _, s in estimator.steps if hasattr(s, "n_params_")]
        if not found:
            raise ValueError("the pipeline has no fitted ButterflyApproximator step.")
        estimator = found[0]
    return -float(estimator.n_params_)


def smallest_within_tolerance(tol, *, error="error", n_params="n_params"):
    """Refit rule: the most compact candidate whose relative error is <= ``tol``.

    Use with ``GridSearchCV(scoring={"error": neg_relative_error, "n_params":
    neg_n_params}, refit=smallest_within_tolerance(tol))``. Ties in parameter
    count go to the smaller error. When no candidate meets the tolerance, the
    candidate with the smallest error is chosen and a warning is issued.

    Parameters
    ----------
    tol : float
        Largest acceptable relative error (>= 0).
    error : str, default="error"
        Name of the scorer giving minus the relative error.
    n_params : str, default="n_params"
        Name of the scorer giving minus the parameter count.

    Returns
    -------
    refit : callable
        ``refit(cv_results) -> int``, the index of the chosen candidate.

    Examples
    --------
    >>> from skbutterfly.model_selection import smallest_within_tolerance
    >>> rule = smallest_within_tolerance(1e-3)
    >>> rule({"mean_test_error": [-1e-2, -1e-4, -1e-9],
    ...       "mean_test_n_params": [-10, -20, -40]})
    1
    """
    if not isinstance(tol, Real) or not tol >= 0:
        raise ValueError(f"tol={tol!r} must be a real number >= 0.")

    def refit(cv_results):
        errors = -np.asarray(cv_results[f"mean_test_{error}"], dtype=float)
        params = -np.asarray(cv_results[f"mean_test_{n_params}"], dtype=float)
        errors = np.where(np.isnan(errors), np.inf, errors)
        ok = np.flatnonzero(errors <= tol)
        if ok.size == 0:
            warnings.warn(
                f"no candidate reaches a relative error <= {tol}; choosing the "
                f"smallest error ({errors.min():.3g}).",
                UserWarning,
                stacklevel=2,
            )
            return int(np.argmin(errors))
        order = np.lexsort((errors[ok], params[ok]))
        return int(ok[order[0]])

    refit.__name__ = f"smallest_within_tolerance({tol})"
    return refit


def feasible_grid(shape, depths=None, ranks=None):
    """A ``param_grid`` for ``GridSearchCV`` holding only feasible (depth, rank).

    Parameters
    ----------
    shape : tuple of int
        Shape ``(m, n)`` of the matrix to approximate.
    depths : iterable of int, default=None
        Depths to keep (None keeps all feasible ones).
    ranks : iterable of int, default=None
        Ranks to keep (None keeps rank 1 only).

    Returns
    -------
    grid : list of dict
        One ``{"depth": [d], "rank": [...]}`` entry per feasible depth.

    Examples
    --------
    >>> from skbutterfly.model_selection import feasible_grid
    >>> feasible_grid((16, 16), depths=[2, 4], ranks=[1, 2])
    [{'depth': [2], 'rank': [1, 2]}, {'depth': [4], 'rank': [1]}]
    """
    ranks = [1] if ranks is None else sorted(set(int(r) for r in ranks))
    wanted = None if depths is None else set(int(d) for d in depths)
    pairs = feasible_depth_rank(shape, max_rank_per_depth=max(ranks))
    grid = {}
    for depth, rank in pairs:
        if (wanted is None or depth in wanted) and rank in ranks:
            grid.setdefault(depth, []).append(rank)
    return [{"depth": [d], "rank": rs} for d, rs in sorted(grid.items())]
