"""
==================================================
Choosing depth and rank with GridSearchCV
==================================================

``depth`` (how many sparse factors) and ``rank`` (the rank of the blocks) set the
trade-off between size, speed and accuracy of a butterfly. Both are ordinary
hyper-parameters of :class:`~skbutterfly.ButterflyApproximator`, so scikit-learn's
:class:`~sklearn.model_selection.GridSearchCV` can choose them, in two settings:

1. **On one operator**: find the most compact butterfly whose error is below a
   tolerance. Rows of a matrix are not i.i.d. samples, so every candidate is
   fitted and scored on the whole matrix
   (:class:`~skbutterfly.model_selection.FullMatrixSplit`), and
   :func:`~skbutterfly.model_selection.smallest_within_tolerance` picks the
   winner.
2. **Inside a Pipeline**: the butterfly approximates a fixed operator
   (``operator=W``) and the candidates are scored by the downstream model with
   ordinary cross-validation over data samples.
"""

# %%
# 1. One operator, a tolerance on the error
# -----------------------------------------
# The matrix is a hidden butterfly of depth 4 and rank 2 plus 0.1 % noise: the
# search should find a rank-2 butterfly whose error is the noise level.
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV

from skbutterfly import ButterflyApproximator, ButterflyFitWarning
from skbutterfly.datasets import make_butterfly
from skbutterfly.model_selection import (
    FullMatrixSplit,
    feasible_grid,
    neg_n_params,
    neg_relative_error,
    smallest_within_tolerance,
)

# The search below fits candidates that approximate poorly on purpose (to
# compare them); each would raise a ButterflyFitWarning with a hint.
warnings.simplefilter("ignore", ButterflyFitWarning)

A = make_butterfly(256, depth=4, rank=2, noise=1e-3, random_state=0)

# Only the feasible (depth, rank) pairs for a 256 x 256 matrix; depth 1 is the
# dense matrix itself.
grid = feasible_grid(A.shape, depths=range(2, 9), ranks=[1, 2, 3, 4])
print(grid)

search = GridSearchCV(
    ButterflyApproximator(),
    grid,
    scoring={"error": neg_relative_error, "n_params": neg_n_params},
    cv=FullMatrixSplit(),
    refit=smallest_within_tolerance(2e-3),
).fit(A)
best = search.best_estimator_
print("chosen:", search.best_params_)
print(
    f"relative error {best.relative_error_:.1e} with {best.n_params_} parameters "
    f"({best.compression_ratio_:.1f}x compression)"
)

# %%
# Every candidate, and the choice. Candidates with the same parameter count but
# a larger error are the ones whose rank does not match the hidden structure.
results = search.cv_results_
errors = -results["mean_test_error"]
params = -results["mean_test_n_params"]
depths = np.array([p["depth"] for p in results["params"]])
ranks = np.array([p["rank"] for p in results["params"]])

fig, ax = plt.subplots(figsize=(6.5, 4.2), layout="constrained")
scatter = ax.scatter(params, errors, c=depths, cmap="viridis", s=18 + 14 * ranks)
ax.scatter(
    params[search.best_index_],
    errors[search.best_index_],
    s=300,
    facecolors="none",
    edgecolors="red",
    label="chosen",
)
ax.axhline(2e-3, color="red", ls=":", label="tolerance")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("parameters")
ax.set_ylabel("relative error")
ax.set_title("GridSearchCV on one matrix (marker size = rank)")
fig.colorbar(scatter, label="depth")
ax.legend()
plt.show()

# %%
# 2. Inside a Pipeline, scored by the downstream model
# ----------------------------------------------------
# Here the butterfly stands for the 64 x 64 PCA projection of the digits
# (see :ref:`sphx_glr_auto_examples_plot_compress_linear_model.py`) and a
# linear classifier (:class:`~sklearn.linear_model.RidgeClassifier`, fast to
# refit) is trained on its output. The search runs ordinary
# stratified 3-fold cross-validation over images and records both the accuracy
# and the parameter count.
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

X, y = load_digits(return_X_y=True)
X = X / 16.0
W = PCA().fit(X).components_

pipe = Pipeline(
    [
        ("butterfly", ButterflyApproximator(operator=W)),
        ("clf", RidgeClassifier()),
    ]
)
param_grid = [
    {"butterfly__depth": [d["depth"][0]], "butterfly__rank": d["rank"]}
    for d in feasible_grid(W.shape, depths=[2, 3, 6], ranks=[1, 2, 3])
]
print(param_grid)


# %%
# The refit rule is a plain callable on ``cv_results_``: the fewest parameters
# whose accuracy is within one point of the best one. It plays the role that
# :func:`~skbutterfly.model_selection.smallest_within_tolerance` plays for the
# error in part 1.
def fewest_params_within(slack):
    def refit(cv_results):
        accuracy = np.asarray(cv_results["mean_test_accuracy"])
        n_params = -np.asarray(cv_results["mean_test_n_params"])
        ok = np.flatnonzero(accuracy >= accuracy.max() - slack)
        return int(ok[np.argmin(n_params[ok])])

    return refit


search = GridSearchCV(
    pipe,
    param_grid,
    scoring={"accuracy": "accuracy", "n_params": neg_n_params},
    cv=StratifiedKFold(3, shuffle=True, random_state=0),
    refit=fewest_params_within(0.01),
).fit(X, y)
print("chosen:", search.best_params_)
chosen = search.best_estimator_.named_steps["butterfly"]
print(f"{chosen.n_params_} parameters instead of {W.size}")

results = search.cv_results_
fig, ax = plt.subplots(figsize=(6.5, 4.2), layout="constrained")
acc = results["mean_test_accuracy"]
n_params = -results["mean_test_n_params"]
labels = [
    f"d={p['butterfly__depth']}, r={p['butterfly__rank']}" for p in results["params"]
]
ax.errorbar(n_params, acc, yerr=results["std_test_accuracy"], fmt="o", capsize=3)
for x_, y_, label in zip(n_params, acc, labels):
    ax.annotate(
        label, (x_, y_), textcoords="offset points", xytext=(5, -10), fontsize=8
    )
ax.plot(
    n_params[search.best_index_],
    acc[search.best_index_],
    "o",
    ms=16,
    mfc="none",
    mec="red",
    label="chosen",
)
ax.set_xscale("log")
ax.set_xlabel("parameters of the butterfly")
ax.set_ylabel("cross-validated accuracy")
ax.set_title("Pipeline(ButterflyApproximator(operator=W), RidgeClassifier)")
ax.legend(loc="lower right")
plt.show()

# %%
# Notes
# -----
# * Every candidate refits from scratch; keep grids small on large matrices and
#   use :func:`~skbutterfly.model_selection.feasible_grid` (or
#   :func:`~skbutterfly.feasible_depth_rank`) so that no candidate fails.
# * ``n_jobs`` of ``GridSearchCV`` parallelizes over candidates; ``n_jobs`` of
#   the estimator over the block SVDs of one fit. Use one or the other.
