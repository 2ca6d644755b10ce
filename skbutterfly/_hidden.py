"""Butterflies hidden behind random row and column permutations (GRETSI'23 protocol)."""

# SPDX-License-Identifier: BSD-3-Clause

from numbers import Integral, Real

import numpy as np
import scipy.linalg
from sklearn.utils import check_random_state

from skbutterfly._permutation import bit_reversal

__all__ = ["make_hidden_butterfly"]

FAMILIES = ("orthogonal", "dft")


def _random_orthogonal_butterfly(n, rng):
    """Product ``X_1 ... X_L`` whose 2 x 2 blocks are Haar-random orthogonal.

    Factor ``X_l`` has the support ``I_{2^(l-1)} (x) 1_{2x2} (x) I_{n/2^l}``; each of
    its ``n/2`` disjoint 2 x 2 blocks is a rotation or (with probability 1/2) a
    reflection by a uniform angle, which is the Haar measure on O(2).
    """
    n_levels = int(n).bit_length() - 1
    B = np.eye(n)
    # Apply X_L first, then X_{L-1}, ..., X_1 on the left.
    for level in range(n_levels, 0, -1):
        a, d = 2 ** (level - 1), n >> level
        theta = rng.uniform(0.0, 2.0 * np.pi, size=(a, d))
        flip = np.where(rng.uniform(size=(a, d)) < 0.5, -1.0, 1.0)
        c, s = np.cos(theta), np.sin(theta)
        # T[i, l] is the 2 x 2 block acting on rows/cols i*2*d + {0, d} + l.
        T = np.empty((a, d, 2, 2))
        T[..., 0, 0] = c
        T[..., 0, 1] = -s * flip
        T[..., 1, 0] = s
        T[..., 1, 1] = c * flip
        Y = B.reshape(a, 2, d, n)
        B = np.einsum("iljk,ikln->ijln", T, Y).reshape(n, n)
    return B


def make_hidden_butterfly(n, *, family="orthogonal", noise=0.0, random_state=None):
    """Random butterfly hidden by random row and column permutations.

    The instance generator of the GRETSI'23 protocol (Zheng et al., 2023): a
    square-dyadic butterfly ``B`` of size ``n`` plus Gaussian noise ``E`` of
    relative Frobenius norm ``noise``, with its rows and columns shuffled by
    uniformly random permutations, so that
    ``A[np.ix_(row_perm, col_perm)] == B + E``.

    Parameters
    ----------
    n : int
        Size, a power of two >= 2.
    family : {"orthogonal", "dft"}, default="orthogonal"
        ``"orthogonal"``: the product of the ``log2(n)`` butterfly factors whose
        2 x 2 blocks are independent Haar-random orthogonal matrices (real,
        orthogonal). ``"dft"``: the unnormalized DFT with bit-reversed columns,
        ``scipy.linalg.dft(n)[:, bitrev]`` (complex128).
    noise : float, default=0.0
        Relative noise level ``eps >= 0``: ``E`` is i.i.d. standard Gaussian
        (complex Gaussian with independent real and imaginary parts of variance
        1/2 for the DFT) rescaled so that ``||E||_F = eps * ||B||_F``.
    random_state : int, RandomState instance or None, default=None
        Seed of the butterfly, the noise and the permutations.

    Returns
    -------
    A : ndarray of shape (n, n)
        The shuffled noisy butterfly.
    row_perm : ndarray of shape (n,), dtype int64
        Row permutation: ``A[row_perm]`` has the rows of ``B + E`` in order.
    col_perm : ndarray of shape (n,), dtype int64
        Column permutation.
    B : ndarray of shape (n, n)
        The noise-free butterfly (``butterfly_residual(B)`` is ~0).

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly._hidden import make_hidden_butterfly
    >>> A, rows, cols, B = make_hidden_butterfly(8, family="dft", random_state=0)
    >>> bool(np.allclose(A[np.ix_(rows, cols)], B))
    True
    """
    if (
        not isinstance(n, Integral)
        or isinstance(n, bool)
        or n < 2
        or int(n) & (int(n) - 1)
    ):
        raise ValueError(f"n={n!r} must be a power of two >= 2 (2, 4, 8, ...).")
    n = int(n)
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} must be one of {list(FAMILIES)}.")
    if (
        not isinstance(noise, Real)
        or isinstance(noise, bool)
        or not np.isfinite(noise)
        or noise < 0
    ):
        raise ValueError(f"noise={noise!r} must be a finite float >= 0.")
    rng = check_random_state(random_state)
    if family == "orthogonal":
        B = _random_orthogonal_butterfly(n, rng)
    else:
        B = scipy.linalg.dft(n)[:, bit_reversal(n)]
    noisy = B
    if noise > 0:
        E = rng.standard_normal((n, n))
        if np.iscomplexobj(B):
            E = (E + 1j * rng.standard_normal((n, n))) / np.sqrt(2.0)
        noisy = B + (noise * np.linalg.norm(B) / np.linalg.norm(E)) * E
    row_perm = rng.permutation(n).astype(np.int64)
    col_perm = rng.permutation(n).astype(np.int64)
    A = np.empty_like(noisy)
    A[np.ix_(row_perm, col_perm)] = noisy
    return A, row_perm, col_perm, B
