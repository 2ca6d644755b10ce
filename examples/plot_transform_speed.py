"""
==========================================
Speed of the fast operator
==========================================

A butterfly with ``L`` factors of ``r n`` nonzeros each applies to a vector in
``O(r n log n)`` operations instead of the ``n**2`` of a dense product. This
example times three ways to compute the DFT of 64 vectors as ``n`` grows:

* the dense product ``F @ X``,
* the fitted butterfly (``op @ X``, which is what
  :meth:`ButterflyApproximator.transform <skbutterfly.ButterflyApproximator.transform>`
  runs),
* :func:`scipy.fft.fft`, a hand-written FFT in C: the speed a learned butterfly
  can hope to approach, not beat.

It does the same for the Hadamard transform, which has no scipy routine.
Sizes stay small (up to 1024) so the example runs in seconds; the benchmark
suite (``python -m benchmarks.run``) goes further and compares with pyfaust
and lazylinop.
"""

# %%
# Timing helper
# -------------
# All timings run with BLAS limited to one thread (threadpoolctl), so the
# comparison is per core and stable on a busy machine; the best of several
# repeats is kept.
import timeit
from operator import matmul

import matplotlib.pyplot as plt
import numpy as np
import scipy.fft
from threadpoolctl import threadpool_limits

from skbutterfly import butterfly_factorize
from skbutterfly.datasets import dft_matrix, hadamard_matrix


def best_time(func, *args, number=5, repeat=5):
    """Best time of ``func(*args)`` over ``repeat`` runs of ``number`` calls."""
    runs = timeit.repeat(lambda: func(*args), number=number, repeat=repeat)
    return min(runs) / number


rng = np.random.default_rng(0)
sizes = [32, 64, 128, 256, 512, 1024]
n_vectors = 64
times = {"dense DFT": [], "butterfly DFT": [], "scipy.fft.fft": []}
times.update({"dense Hadamard": [], "butterfly Hadamard": []})

with threadpool_limits(limits=1):
    for n in sizes:
        F = dft_matrix(n)
        op = butterfly_factorize(F, permutation="bit-reversal")
        X = rng.standard_normal((n, n_vectors)) + 0j
        times["dense DFT"].append(best_time(matmul, F, X))
        times["butterfly DFT"].append(best_time(matmul, op, X))
        times["scipy.fft.fft"].append(best_time(scipy.fft.fft, X, None, 0))
        assert np.allclose(op @ X, scipy.fft.fft(X, axis=0))

        H = hadamard_matrix(n)
        op_h = butterfly_factorize(H)
        Xr = X.real.copy()
        times["dense Hadamard"].append(best_time(matmul, H, Xr))
        times["butterfly Hadamard"].append(best_time(matmul, op_h, Xr))

print("n     " + "  ".join(f"{name:>18}" for name in times))
for i, n in enumerate(sizes):
    row = "  ".join(f"{times[name][i] * 1e3:15.3f} ms" for name in times)
    print(f"{n:<5} {row}")

# %%
# Time against size
# -----------------
styles = {
    "dense DFT": ("C0", "--", "o"),
    "butterfly DFT": ("C0", "-", "o"),
    "scipy.fft.fft": ("k", ":", "^"),
    "dense Hadamard": ("C1", "--", "s"),
    "butterfly Hadamard": ("C1", "-", "s"),
}
fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
ax = axes[0]
for name, values in times.items():
    color, ls, marker = styles[name]
    ax.loglog(
        sizes, np.array(values) * 1e3, ls=ls, marker=marker, color=color, label=name
    )
ax.set_xscale("log", base=2)
ax.set_xlabel("n")
ax.set_ylabel(f"time for {n_vectors} vectors (ms)")
ax.set_title("Applying an n x n transform")
ax.legend(fontsize=8)

ax = axes[1]
for kind, color in (("DFT", "C0"), ("Hadamard", "C1")):
    speedup = np.array(times[f"dense {kind}"]) / np.array(times[f"butterfly {kind}"])
    ax.loglog(sizes, speedup, "-o", color=color, label=kind)
ax.axhline(1, color="grey", ls=":")
ax.set_xscale("log", base=2)
ax.set_xlabel("n")
ax.set_ylabel("dense time / butterfly time")
ax.set_title("Speed-up of the butterfly over the dense product")
ax.legend()
plt.show()

# %%
# Reading the plot
# ----------------
# * Dense products grow like ``n**2``, butterflies like ``n log n``: the gap
#   widens with ``n`` (with one thread; a multi-threaded BLAS narrows it for
#   the dense product on small matrices).
# * At very small sizes the per-call overhead of the factors dominates and a
#   dense product is as fast or faster.
# * scipy's FFT stays ahead of the learned DFT by a constant factor: it uses
#   specialised radix kernels and no stored twiddle matrices. The point of a
#   learned butterfly is to get an FFT-like speed for operators that have *no*
#   hand-written fast algorithm (kernels, learned weights, unknown transforms).
#
# The fitted operator applies its factors as batched small matrix products on a
# compact layout (no scipy sparse product); adjacent factors may be fused when
# that is cheaper for the number of vectors given. See the
# :doc:`performance notes </user_guide/performance>` for details and for the
# full benchmark.
