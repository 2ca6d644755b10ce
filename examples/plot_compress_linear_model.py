"""
==========================================
Compressing a trained linear model
==========================================

A trained model often ends in dense matrix products: PCA components, a Ridge or
logistic regression ``coef_``, a linear layer.
:class:`~skbutterfly.ButterflyApproximator` with ``operator=W`` replaces
``x @ W.T`` by a product of sparse factors, fitted once from ``W``; inside a
:class:`~sklearn.pipeline.Pipeline` it is a drop-in transformer.

This example compresses the 64 x 64 PCA projection of a digit classifier and
plots test accuracy against compression. It is also an honest example: the
best compression depends on the structure of the matrix, and here the
classical alternative, keeping fewer principal components, is hard to beat
without retraining.
"""

# %%
# A trained model: PCA followed by logistic regression
# ----------------------------------------------------
# The digits data set (8 x 8 images, 64 features) ships with scikit-learn.
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from skbutterfly import ButterflyApproximator, ButterflyFitWarning, feasible_depth_rank

# The search below fits candidates that approximate poorly on purpose (to
# compare them); each would raise a ButterflyFitWarning with a hint.
warnings.simplefilter("ignore", ButterflyFitWarning)

X, y = load_digits(return_X_y=True)
X = X / 16.0
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0
)
pca = PCA().fit(X_train)
clf = LogisticRegression(max_iter=1000).fit(pca.transform(X_train), y_train)
W = pca.components_  # features = (x - mean) @ W.T
reference = clf.score(pca.transform(X_test), y_test)
print(f"test accuracy of the full model: {reference:.3f} ({W.size} weights in W)")

# %%
# Two ways to compress ``W``, the classifier kept as trained
# ----------------------------------------------------------
# * **Truncation**: keep the first ``k`` principal components (``64 k``
#   weights) and feed zeros for the others.
# * **Butterfly**: approximate ``W`` by a butterfly of a given ``depth`` and
#   ``rank`` (``est.n_params_`` weights) and feed the approximate features.
X_test_centered = X_test - pca.mean_

truncation = []
for k in (2, 4, 6, 8, 12, 16, 24, 32, 48):
    Z = X_test_centered @ W[:k].T
    Z = np.hstack([Z, np.zeros((len(Z), W.shape[0] - k))])
    truncation.append((W.size / (k * W.shape[1]), clf.score(Z, y_test)))

grid = feasible_depth_rank(W.shape, max_rank_per_depth=3)
butterflies = []
for depth, rank in grid:
    if depth == 1:
        continue  # the dense matrix itself, no compression
    est = ButterflyApproximator(depth=depth, rank=rank, operator=W).fit(X_train)
    acc = clf.score(est.transform(X_test_centered), y_test)
    butterflies.append((depth, rank, est.compression_ratio_, acc, est.relative_error_))
    print(
        f"depth={depth} rank={rank}: {est.compression_ratio_:4.1f}x smaller, "
        f"relative error {est.relative_error_:.2f}, accuracy {acc:.3f}"
    )

# %%
# Retraining the classifier on the compressed features
# ----------------------------------------------------
# When the downstream model may be refitted, put the butterfly in a
# :class:`~sklearn.pipeline.Pipeline`: the estimator factorizes ``W`` during
# ``fit`` and the classifier learns from the features that the compressed
# operator actually produces. (For the truncation the same retraining gives
# PCA with ``k`` components.)
retrained = []
for depth, rank, ratio, _, _ in butterflies:
    pipe = make_pipeline(
        ButterflyApproximator(depth=depth, rank=rank, operator=W),
        clone(clf),
    )
    pipe.fit(X_train - pca.mean_, y_train)
    retrained.append((ratio, pipe.score(X_test_centered, y_test)))
    print(f"depth={depth} rank={rank}, retrained: accuracy {retrained[-1][1]:.3f}")

pca_retrained = []
for k in (2, 4, 6, 8, 12, 16, 24, 32, 48):
    pipe = make_pipeline(PCA(n_components=k), clone(clf)).fit(X_train, y_train)
    pca_retrained.append((W.size / (k * W.shape[1]), pipe.score(X_test, y_test)))
    print(f"PCA({k}) retrained: accuracy {pca_retrained[-1][1]:.3f}")

# %%
# Accuracy against compression
# ----------------------------
fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained", sharey=True)
ax = axes[0]
ax.plot(*zip(*truncation), "k-o", label="keep k components")
for depth in sorted({b[0] for b in butterflies}):
    pts = sorted((b[2], b[3]) for b in butterflies if b[0] == depth)
    ax.plot(*zip(*pts), "o--", label=f"butterfly, depth {depth}")
ax.set_title("classifier kept as trained")
ax.set_ylabel("test accuracy")
ax = axes[1]
ax.plot(*zip(*pca_retrained), "k-o", label="PCA(k) + retrained classifier")
ax.plot(*zip(*sorted(retrained)), "s", color="C3", label="butterfly + retrained")
ax.set_title("classifier retrained (Pipeline)")
for ax in axes:
    ax.axhline(reference, color="grey", ls=":", label="uncompressed")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("compression ratio of W (dense weights / stored weights)")
    ax.legend(fontsize=8)

# %%
# What the plots say
# ------------------
# * With the classifier **kept as trained**, truncation wins: PCA components are
#   sorted by explained variance, so dropping the last ones loses little, while
#   a butterfly spreads its error over every output feature. A generic trained
#   matrix has no butterfly structure; rank buys accuracy back gradually.
# * With the classifier **retrained**, butterflies recover most of the accuracy
#   (about 0.93 at 4-5x compression, within a point of the full model at 2x),
#   close to (slightly below) PCA with as many weights. A butterfly is a cheap
#   *full-rank* mixing of all 64 features, whereas ``k`` components discard
#   ``64 - k`` directions; on such an unstructured matrix neither is free.
# * Butterflies pay off most on operators with multiscale structure (Fourier-like
#   transforms, integral operators, kernels): see
#   :ref:`sphx_glr_auto_examples_plot_kernel_approximation.py`. To choose
#   ``depth`` and ``rank`` by cross-validation, see
#   :ref:`sphx_glr_auto_examples_plot_grid_search.py`.
