"""Column permutations of the butterfly-times-permutation model ``A ~= B P``."""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np

__all__ = ["bit_reversal", "candidate_permutations", "digit_reversal"]


def bit_reversal(n):
    """Bit-reversal permutation of ``range(n)`` for ``n`` a power of two.

    ``F[:, bit_reversal(n)]`` is a butterfly when ``F`` is the DFT matrix.

    Parameters
    ----------
    n : int
        Size, a power of two.

    Returns
    -------
    perm : ndarray of shape (n,)
    """
    if n < 1 or n & (n - 1):
        raise ValueError(
            f"permutation='bit-reversal' needs a power-of-two size, got {n}."
        )
    return digit_reversal([2] * (int(n).bit_length() - 1))


def digit_reversal(radices):
    """Mixed-radix digit reversal for the radices ``(r_1, ..., r_L)``.

    Index ``k`` with digits ``(k_1, ..., k_L)`` in the radices ``(r_1, ..., r_L)``
    (``k_1`` most significant) is mapped to the index with digits
    ``(k_L, ..., k_1)`` in the radices ``(r_L, ..., r_1)``. With all radices 2 this
    is the bit reversal.

    Parameters
    ----------
    radices : sequence of int
        The digit sizes; their product is the size.

    Returns
    -------
    perm : ndarray of shape (prod(radices),)
    """
    radices = [int(r) for r in radices]
    n = int(np.prod(radices)) if radices else 1
    if not radices:
        return np.zeros(1, dtype=np.intp)
    return np.arange(n).reshape(radices[::-1]).T.ravel().astype(np.intp)


def _dao_permutation(n, even_odd, reverse_first, reverse_second):
    """One of the eight permutations of Dao et al. (2019) for ``n = 2**L``.

    At every block size ``2**i`` (from ``n`` down to 2), the indices of each block
    are optionally separated into even then odd positions, then the first and/or
    the second half is reversed. Even/odd separation alone is the bit reversal.
    """
    idx = np.arange(n)
    size = n
    while size >= 2:
        blocks = idx.reshape(-1, size)
        if even_odd:
            blocks = np.concatenate([blocks[:, 0::2], blocks[:, 1::2]], axis=1)
        half = size // 2
        if reverse_first:
            blocks = np.concatenate([blocks[:, :half][:, ::-1], blocks[:, half:]], 1)
        if reverse_second:
            blocks = np.concatenate([blocks[:, :half], blocks[:, half:][:, ::-1]], 1)
        idx = blocks.ravel()
        size //= 2
    return idx.astype(np.intp)


def candidate_permutations(n):
    """The candidates of ``permutation="auto"`` for ``n`` columns.

    The identity, then for ``n`` a power of two the bit reversal and the eight
    permutations of Dao et al. (2019) (duplicates removed).

    Parameters
    ----------
    n : int
        Number of columns.

    Returns
    -------
    candidates : list of (str, ndarray)
        Name and column index array.
    """
    candidates = [("identity", np.arange(n, dtype=np.intp))]
    if n >= 2 and not n & (n - 1):
        candidates.append(("bit-reversal", bit_reversal(n)))
        for code in range(8):
            bits = ((code >> 2) & 1, (code >> 1) & 1, code & 1)
            perm = _dao_permutation(n, bits[2], bits[1], bits[0])
            candidates.append((f"dao-{bits[0]}{bits[1]}{bits[2]}", perm))
    unique, seen = [], set()
    for name, perm in candidates:
        key = perm.tobytes()
        if key not in seen:
            seen.add(key)
            unique.append((name, perm))
    return unique
