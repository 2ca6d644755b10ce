"""Test matrices: classical fast transforms and random butterfly products."""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import scipy.fft
from sklearn.utils import check_random_state

from skbutterfly._chain import butterfly_chain, resolve_architecture, validate_chain
from skbutterfly._hidden import make_hidden_butterfly
from skbutterfly._operator import ButterflyOperator
from skbutterfly._validation import check_int

__all__ = [
    "dct_matrix",
    "dft_matrix",
    "dst_matrix",
    "hadamard_matrix",
    "hartley_matrix",
    "make_butterfly",
    "make_hidden_butterfly",
]


def _check_size(n, name="n", power_of_two=False):
    n = check_int(n, name)
    if power_of_two and n & (n - 1):
        raise ValueError(f"{name}={n!r} must be a power of two.")
    return int(n)


def dft_matrix(n, *, normalize=False, dtype=np.complex128):
    """Discrete Fourier transform matrix ``F[j, k] = exp(-2i pi j k / n)``.

    Parameters
    ----------
    n : int
        Size.
    normalize : bool, default=False
        Divide by ``sqrt(n)`` (unitary DFT).
    dtype : {numpy.complex128, numpy.complex64}, default=numpy.complex128
        Output dtype.

    Returns
    -------
    F : ndarray of shape (n, n)
        The DFT matrix; with ``normalize=False``, ``F @ x`` equals
        ``numpy.fft.fft(x)``.

    Examples
    --------
    >>> from skbutterfly.datasets import dft_matrix
    >>> dft_matrix(4).real.round().astype(int)
    array([[ 1,  1,  1,  1],
           [ 1,  0, -1,  0],
           [ 1, -1,  1, -1],
           [ 1,  0, -1,  0]])
    """
    n = _check_size(n)
    F = _roots_of_unity(n)[_exponents(n)]
    if normalize:
        F /= np.sqrt(n)
    return F.astype(dtype, copy=False)


def _roots_of_unity(n):
    """``exp(-2i pi r / n)`` for ``r < n``."""
    return np.exp(-2j * np.pi * np.arange(n) / n)


def _exponents(n, chunk=256):
    """``(j * k) % n`` for ``j, k < n``, the exponents of the DFT matrix."""
    dtype = np.int32 if n < 2**31 else np.int64
    E = np.empty((n, n), dtype=dtype)
    k = np.arange(n, dtype=np.int64)
    for start in range(0, n, chunk):
        rows = k[start : start + chunk, None]
        np.remainder(rows * k, n, out=E[start : start + chunk], casting="unsafe")
    return E


def hartley_matrix(n, *, normalize=False, dtype=np.float64):
    """Discrete Hartley transform matrix ``H[j, k] = cas(2 pi j k / n)``.

    ``cas(t) = cos(t) + sin(t)``, so that ``H = Re(F) - Im(F)`` for the DFT
    matrix ``F`` of :func:`dft_matrix`. The Hartley transform is real,
    symmetric and its own inverse up to the factor ``n``.

    Parameters
    ----------
    n : int
        Size.
    normalize : bool, default=False
        Divide by ``sqrt(n)`` (orthogonal and involutory matrix).
    dtype : dtype, default=numpy.float64
        Output dtype.

    Returns
    -------
    H : ndarray of shape (n, n)
        The Hartley matrix.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly.datasets import hartley_matrix
    >>> hartley_matrix(4).round().astype(int)
    array([[ 1,  1,  1,  1],
           [ 1,  1, -1, -1],
           [ 1, -1,  1, -1],
           [ 1, -1, -1,  1]])
    >>> H = hartley_matrix(6, normalize=True)
    >>> bool(np.allclose(H @ H, np.eye(6)))
    True
    """
    n = _check_size(n)
    roots = _roots_of_unity(n)
    H = (roots.real - roots.imag)[_exponents(n)]
    if normalize:
        H /= np.sqrt(n)
    return H.astype(dtype, copy=False)


def hadamard_matrix(n, *, normalize=False, dtype=np.float64):
    """Walsh-Hadamard matrix (Sylvester order) of size ``n = 2**L``.

    Parameters
    ----------
    n : int
        Size, a power of two.
    normalize : bool, default=False
        Divide by ``sqrt(n)`` (orthogonal matrix).
    dtype : dtype, default=numpy.float64
        Output dtype.

    Returns
    -------
    H : ndarray of shape (n, n)
        The symmetric matrix of ``+1`` and ``-1`` (divided by ``sqrt(n)`` when
        ``normalize=True``), ``H_2n = [[H_n, H_n], [H_n, -H_n]]``.

    Examples
    --------
    >>> from skbutterfly.datasets import hadamard_matrix
    >>> hadamard_matrix(2)
    array([[ 1.,  1.],
           [ 1., -1.]])
    """
    n = _check_size(n, power_of_two=True)
    H = np.ones((1, 1))
    while H.shape[0] < n:
        H = np.block([[H, H], [H, -H]])
    if normalize:
        H /= np.sqrt(n)
    return H.astype(dtype, copy=False)


def dct_matrix(n, *, type=2, dtype=np.float64):
    """Orthonormal discrete cosine transform matrix (DCT-I to DCT-IV).

    The matrix of ``scipy.fft.dct(x, type=type, norm="ortho")``: ``C @ x``
    equals that transform of ``x``.

    Parameters
    ----------
    n : int
        Size (at least 2 for ``type=1``).
    type : {1, 2, 3, 4}, default=2
        DCT type. Type 3 is the transpose (and inverse) of type 2; type 4 is
        symmetric and its own inverse.
    dtype : dtype, default=numpy.float64
        Output dtype.

    Returns
    -------
    C : ndarray of shape (n, n)
        For ``type=2``, ``C[j, k] = s_j cos(pi j (2k + 1) / (2n))`` with
        ``s_0 = sqrt(1/n)`` and ``s_j = sqrt(2/n)`` otherwise; for ``type=4``,
        ``C[j, k] = sqrt(2/n) cos(pi (2j + 1) (2k + 1) / (4n))``.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.fft
    >>> from skbutterfly.datasets import dct_matrix
    >>> C = dct_matrix(8)
    >>> bool(np.allclose(C @ C.T, np.eye(8)))
    True
    >>> x = np.arange(6.0)
    >>> bool(np.allclose(dct_matrix(6, type=4) @ x,
    ...                  scipy.fft.dct(x, type=4, norm="ortho")))
    True
    """
    n = _check_size(n)
    _check_type(type, n)
    if type == 1:
        C = scipy.fft.dct(np.eye(n), type=1, norm="ortho", axis=0)
    elif type == 4:
        odd = 2 * np.arange(n, dtype=np.int64) + 1
        C = _cos_table(8 * n)[np.outer(odd, odd) % (8 * n)] * np.sqrt(2.0 / n)
    else:
        j = np.arange(n, dtype=np.int64)
        C = _cos_table(4 * n)[np.outer(j, 2 * j + 1) % (4 * n)] * np.sqrt(2.0 / n)
        C[0] /= np.sqrt(2.0)
        if type == 3:
            C = np.ascontiguousarray(C.T)
    return C.astype(dtype, copy=False)


def dst_matrix(n, *, type=2, dtype=np.float64):
    """Orthonormal discrete sine transform matrix (DST-I to DST-IV).

    The matrix of ``scipy.fft.dst(x, type=type, norm="ortho")``: ``S @ x``
    equals that transform of ``x``.

    Parameters
    ----------
    n : int
        Size.
    type : {1, 2, 3, 4}, default=2
        DST type. Type 3 is the transpose (and inverse) of type 2.
    dtype : dtype, default=numpy.float64
        Output dtype.

    Returns
    -------
    S : ndarray of shape (n, n)
        For ``type=2``, ``S[j, k] = s_j sin(pi (j + 1) (2k + 1) / (2n))`` with
        ``s_{n-1} = sqrt(1/n)`` and ``s_j = sqrt(2/n)`` otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.fft
    >>> from skbutterfly.datasets import dst_matrix
    >>> S = dst_matrix(8)
    >>> bool(np.allclose(S @ S.T, np.eye(8)))
    True
    >>> x = np.arange(5.0)
    >>> bool(np.allclose(dst_matrix(5) @ x, scipy.fft.dst(x, norm="ortho")))
    True
    """
    n = _check_size(n)
    _check_type(type, n)
    if type == 2:
        j = np.arange(n, dtype=np.int64)
        S = _sin_table(4 * n)[np.outer(j + 1, 2 * j + 1) % (4 * n)]
        S *= np.sqrt(2.0 / n)
        S[n - 1] /= np.sqrt(2.0)
    else:
        S = scipy.fft.dst(np.eye(n), type=type, norm="ortho", axis=0)
    return S.astype(dtype, copy=False)


def _cos_table(period):
    """``cos(2 pi r / period)`` for ``r < period``.

    Entries are looked up by the exact integer ``r`` (reduced modulo the
    period), not computed from a large rounded angle: the matrices are then
    accurate to rounding at every size.
    """
    return np.cos(2 * np.pi * np.arange(period) / period)


def _sin_table(period):
    """``sin(2 pi r / period)`` for ``r < period`` (see :func:`_cos_table`)."""
    return np.sin(2 * np.pi * np.arange(period) / period)


def _check_type(type, n):
    if type not in (1, 2, 3, 4) or isinstance(type, bool):
        raise ValueError(f"type={type!r} must be 1, 2, 3 or 4.")
    if type == 1 and n < 2:
        raise ValueError(f"type=1 needs n >= 2, got n={n}.")


def make_butterfly(
    n=None,
    depth=None,
    rank=1,
    *,
    architecture=None,
    shape=None,
    noise=0.0,
    complex=False,
    dtype=None,
    random_state=None,
    return_operator=False,
):
    """Random product of butterfly factors, with optional relative noise.

    The nonzeros of every factor are i.i.d. standard normal (complex normal when
    ``complex=True``) on the support of the chain.

    Parameters
    ----------
    n : int, default=None
        Size of a square matrix (ignored when ``shape`` or ``architecture`` is
        given).
    depth : int, default=None
        Number of factors; None means the finest chain for the shape and rank.
    rank : int, default=1
        Rank at the interior interfaces.
    architecture : sequence of (a, b, c, d), default=None
        Explicit chain; overrides ``n``, ``shape``, ``depth`` and ``rank``.
    shape : tuple of int, default=None
        ``(m, n)`` for a rectangular matrix.
    noise : float, default=0.0
        Relative Frobenius norm of added Gaussian noise:
        ``||E||_F = noise * ||B||_F``.
    complex : bool, default=False
        Complex factors and noise.
    dtype : dtype, default=None
        Output dtype; None means float64 or complex128.
    random_state : int, RandomState instance or None, default=None
        Seed of the draw.
    return_operator : bool, default=False
        Also return the exact (noise-free) product as a :class:`ButterflyOperator`.

    Returns
    -------
    A : ndarray of shape (m, n)
        The (noisy) product.
    op : ButterflyOperator
        The noise-free product; only when ``return_operator=True``.

    Examples
    --------
    >>> from skbutterfly.datasets import make_butterfly
    >>> A = make_butterfly(16, random_state=0)
    >>> A.shape
    (16, 16)
    """
    rng = check_random_state(random_state)
    if architecture is not None:
        chain = validate_chain(architecture)
    else:
        if shape is None:
            if n is None:
                raise ValueError("give n, shape or architecture.")
            shape = (n, n)
        m_, n_ = (_check_size(s, "shape") for s in shape)
        if depth is None:
            chain, padded = resolve_architecture((m_, n_), None, rank)
            if padded != (m_, n_):
                raise ValueError(
                    f"shape {(m_, n_)} has no butterfly chain without padding; "
                    "give depth or architecture."
                )
        else:
            chain = butterfly_chain(m_, n_, depth, rank)
    if not isinstance(noise, (int, float)) or not noise >= 0:
        raise ValueError(f"noise={noise!r} must be a float >= 0.")
    twiddles = []
    for a, b, c, d in chain:
        T = rng.standard_normal((a, d, b, c))
        if complex:
            T = T + 1j * rng.standard_normal((a, d, b, c))
        twiddles.append(T)
    op = ButterflyOperator(twiddles)
    A = op.toarray()
    if noise > 0:
        E = rng.standard_normal(A.shape)
        if complex:
            E = E + 1j * rng.standard_normal(A.shape)
        A = A + noise * np.linalg.norm(A) / np.linalg.norm(E) * E
    if dtype is not None:
        A = A.astype(dtype)
    return (A, op) if return_operator else A
