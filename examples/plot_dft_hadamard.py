"""
================================================
Recovering the DFT and the Hadamard transform
================================================

The fast Fourier transform and the fast Walsh-Hadamard transform *are* butterfly
factorizations: their matrices are products of ``log2(n)`` sparse factors with two
nonzeros per row and column. Given only the dense matrix, skbutterfly finds those
factors again, to machine precision.

This example recovers both, shows the supports of the recovered factors as images,
and shows why the DFT needs the *bit-reversal* permutation.
"""

# %%
# The Hadamard transform
# ----------------------
# :func:`~skbutterfly.butterfly_factorize` returns a
# :class:`~skbutterfly.ButterflyOperator`, a :class:`scipy.sparse.linalg.LinearOperator`
# holding the factors. With the default ``depth=None`` it uses the finest
# butterfly: ``log2(n)`` factors.
import warnings

import matplotlib.pyplot as plt
import numpy as np

from skbutterfly import ButterflyFitWarning, butterfly_factorize
from skbutterfly.datasets import dft_matrix, hadamard_matrix

H = hadamard_matrix(1024)
op = butterfly_factorize(H)
rel_err = np.linalg.norm(op.toarray() - H) / np.linalg.norm(H)
print(op)
print(f"relative error {rel_err:.1e}, {H.size / op.n_params:.0f}x fewer parameters")

# %%
# The factors are available as scipy sparse arrays (``op.factors``), leftmost
# first. For ``n = 16`` there are four of them; each has two nonzeros per row,
# at distance 8, 4, 2 and 1 from the diagonal block: the "butterfly" wiring of
# the fast transform. Their product is the Hadamard matrix.
op16 = butterfly_factorize(hadamard_matrix(16))
print("patterns (a, b, c, d):", op16.chain)

fig, axes = plt.subplots(1, 5, figsize=(11, 2.6), layout="constrained")
for ax, (k, factor) in zip(axes, enumerate(op16.factors, start=1)):
    ax.imshow(factor.toarray(), cmap="RdBu", vmin=-1.5, vmax=1.5)
    ax.set_title(f"$F_{k}$ ({factor.nnz} nonzeros)", fontsize=9)
axes[-1].imshow(op16.toarray(), cmap="RdBu", vmin=-1.5, vmax=1.5)
axes[-1].set_title("$F_1 F_2 F_3 F_4 = H_{16}$", fontsize=9)
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("Recovered Hadamard factors (values; white = zero)")

# %%
# .. note::
#    A factorization is unique only up to scaling: ``F_1 D`` and ``D^{-1} F_2``
#    give the same product for any invertible diagonal ``D``. The recovered
#    values need not be ``+-1``, but the supports and the product are exact.
#
# The DFT needs a permutation
# ---------------------------
# The radix-2 FFT computes ``F x`` as a butterfly applied to ``x`` with its
# entries in *bit-reversed* order: ``F = B P`` with ``P`` the bit-reversal
# permutation. Without ``P`` the DFT is far from every butterfly;
# ``permutation="bit-reversal"`` factorizes ``F P^T`` and keeps ``P`` inside the
# operator.
sizes = [8, 16, 32, 64, 128, 256, 512, 1024]
errors = {"none": [], "bit-reversal": []}
hints = []
for n in sizes:
    F = dft_matrix(n)
    for permutation in errors:
        # Without the permutation the fit is poor and says so with a
        # ButterflyFitWarning; its hint is printed once below.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ButterflyFitWarning)
            fitted = butterfly_factorize(
                F, permutation=None if permutation == "none" else permutation
            )
        hints += [str(w.message) for w in caught]
        errors[permutation].append(
            np.linalg.norm(fitted.toarray() - F) / np.linalg.norm(F)
        )
for permutation, errs in errors.items():
    print(f"permutation={permutation!r:15}", " ".join(f"{e:.0e}" for e in errs))
print(f"{len(hints)} warnings; the last one:\n{hints[-1]}")

fig, ax = plt.subplots(figsize=(5.5, 3.5), layout="constrained")
for (permutation, errs), marker in zip(errors.items(), "os"):
    ax.loglog(sizes, errs, marker=marker, label=f"permutation={permutation!r}")
ax.set_xscale("log", base=2)
ax.set_xlabel("n")
ax.set_ylabel("relative Frobenius error")
ax.set_title("Butterfly approximation of the n x n DFT")
ax.legend()
plt.show()

# %%
# ``permutation="auto"`` tries the eight permutations of Dao et al. (2019),
# which include the identity and the bit reversal, and keeps the best, so the
# DFT is found without being told. It costs one factorization per candidate.
F = dft_matrix(256)
auto = butterfly_factorize(F, permutation="auto")
auto_error = np.linalg.norm(auto.toarray() - F) / np.linalg.norm(F)
print(f"auto: relative error {auto_error:.1e}")

# %%
# The recovered DFT factors
# -------------------------
# Same picture for ``n = 16`` (moduli of the complex values), with the
# permutation as the last factor.
F16 = dft_matrix(16)
opF = butterfly_factorize(F16, permutation="bit-reversal")
P = np.zeros((16, 16))
P[np.arange(16), opF.col_perm] = 1  # x[col_perm] = P @ x

fig, axes = plt.subplots(1, 5, figsize=(11, 2.6), layout="constrained")
for ax, (k, factor) in zip(axes, enumerate(opF.factors, start=1)):
    ax.imshow(np.abs(factor.toarray()), cmap="Greys")
    ax.set_title(f"$|F_{k}|$", fontsize=9)
axes[-1].imshow(P, cmap="Greys")
axes[-1].set_title("$P$ (bit reversal)", fontsize=9)
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("DFT of size 16 = F1 F2 F3 F4 P")
product = opF.toarray()
print(f"max |F - F1 F2 F3 F4 P| = {np.abs(product - F16).max():.1e}")

# %%
# Applying the operator is the FFT: ``op @ x`` costs ``2 n log2(n)``
# multiply-adds instead of ``n**2``. See
# :ref:`sphx_glr_auto_examples_plot_transform_speed.py` for timings.
x = np.random.default_rng(0).standard_normal(16)
print(np.allclose(opF @ x, np.fft.fft(x)))
