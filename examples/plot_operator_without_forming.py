"""
===========================================================
Compressing an operator known only by its products
===========================================================

Many operators worth compressing are never stored as a matrix: a transform
computed by FFTs, a kernel summation, a PDE solve. skbutterfly fits such an
operator from *products only*: give :func:`~skbutterfly.butterfly_factorize` or
:class:`~skbutterfly.ButterflyApproximator` a
:class:`scipy.sparse.linalg.LinearOperator` with forward and adjoint products
and it sketches the blocks of the root split with random probes shared across
blocks (about ``3 (rank + 4) sqrt(n)`` products instead of the ``n`` needed to
form the matrix), then recovers every block by a batched generalized Nystrom
step.

Here the operator is a *non-uniform* discrete Fourier transform, evaluated at
jittered points ``x_j = j + delta_j``: ``A[j, k] = exp(-2 i pi x_j k / n)``.
Its product costs a handful of FFTs (a low-rank NUFFT), and it is a butterfly
of small rank once its columns are bit-reversed.
"""

# %%
# A non-uniform DFT as a LinearOperator
# -------------------------------------
# ``exp(-2 i pi (j + d) k / n) = F[j, k] exp(-i pi d) exp(-2 i pi d t_k)`` with
# ``F`` the DFT and ``t_k = k / n - 1/2``; the last factor is a short Taylor
# series in ``d t_k`` (``|d t_k| <= 1/4``), so ``A x`` is a sum of ``L`` FFTs of
# scaled copies of ``x``. ``A`` is never formed.
import time
import tracemalloc
from math import factorial

import matplotlib.pyplot as plt
import numpy as np
from scipy.fft import fft, ifft
from scipy.sparse.linalg import LinearOperator

from skbutterfly import ButterflyApproximator, ProbedOperator

n, terms = 4096, 10
rng = np.random.default_rng(0)
delta = rng.uniform(-0.5, 0.5, n)
t = np.arange(n) / n - 0.5
row_scale = np.array(
    [
        np.exp(-1j * np.pi * delta) * (-2j * np.pi * delta) ** p / factorial(p)
        for p in range(terms)
    ]
)
col_scale = np.array([t**p for p in range(terms)])


def nudft(X):
    X = X.reshape(n, -1)
    out = np.zeros((n, X.shape[1]), complex)
    for u, v in zip(row_scale, col_scale):
        out += u[:, None] * fft(v[:, None] * X, axis=0)
    return out


def nudft_adjoint(Y):
    Y = Y.reshape(n, -1)
    out = np.zeros((n, Y.shape[1]), complex)
    for u, v in zip(row_scale, col_scale):
        out += v[:, None] * (n * ifft(u.conj()[:, None] * Y, axis=0))
    return out


A = LinearOperator(
    (n, n),
    dtype=complex,
    matvec=nudft,
    rmatvec=nudft_adjoint,
    matmat=nudft,
    rmatmat=nudft_adjoint,
)

# %%
# Fit it from probes
# ------------------
# :class:`~skbutterfly.ProbedOperator` holds the probe settings (defaults shown);
# a plain ``LinearOperator`` works the same way with these defaults. The
# estimator records the products it used and an *estimate* of its relative
# error, from held-back Gaussian probes.
probed = ProbedOperator(A, oversampling=4, adjoint_ratio=2.0, n_error_probes=10)
tracemalloc.start()
start = time.perf_counter()
est = ButterflyApproximator(rank=4, permutation="bit-reversal").fit(probed)
elapsed = time.perf_counter() - start
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()

products = est.n_products_
print(
    f"products: {products['forward']} forward + {products['adjoint']} adjoint "
    f"(forming the matrix takes {n})"
)
print(
    f"time {elapsed:.1f} s, peak memory of the fit {peak / 2**20:.0f} MiB "
    f"(the dense matrix alone: {n * n * 16 / 2**20:.0f} MiB)"
)
print(
    f"estimated relative error {est.relative_error_:.1e}; "
    f"{est.depth_} factors, {n * n / est.n_params_:.0f}x fewer parameters"
)

# %%
# Check on a signal
# -----------------
# The fitted :class:`~skbutterfly.ButterflyOperator` applies in
# ``O(rank n log n)``. On a random signal its output agrees with the NUFFT to
# the estimated error.
x = rng.standard_normal(n)
exact, approx = A @ x, est.operator_ @ x
signal_error = np.linalg.norm(exact - approx) / np.linalg.norm(exact)
print(f"error on a fresh signal {signal_error:.1e}")

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.8))
ax0.semilogy(np.abs(exact), lw=0.6, label="|A x| (NUFFT)")
ax0.semilogy(np.abs(exact - approx), lw=0.6, label="|A x - butterfly x|")
ax0.set_xlabel("output index")
ax0.legend(loc="lower right")
ax0.set_title("Non-uniform DFT, n = 4096, rank 4")
ax1.bar(
    ["forward", "adjoint", "forming A"],
    [products["forward"], products["adjoint"], n],
    color=["C0", "C1", "0.6"],
)
ax1.set_ylabel("operator products")
ax1.set_title("Products used by the fit")
fig.tight_layout()
plt.show()
