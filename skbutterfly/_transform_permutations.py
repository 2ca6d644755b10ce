"""Permutations that make classical transforms exact butterflies; their screen."""

# SPDX-License-Identifier: BSD-3-Clause

from math import prod

import numpy as np

from skbutterfly._block_svd import blas_single_thread
from skbutterfly._chain import _gb_factors, resolve_architecture, unpadded_architecture
from skbutterfly._hierarchical import split_schedule
from skbutterfly._integers import factorize
from skbutterfly._permutation import (
    bit_reversal,
    candidate_permutations,
    digit_reversal,
)
from skbutterfly._validation import max_abs

__all__ = [
    "TRANSFORM_PERMUTATIONS",
    "Candidate",
    "ChainChoice",
    "chain_digit_reversal",
    "makhoul_order",
    "named_candidates",
    "screen_candidates",
    "shortlist",
]

# Named permutations built from the chain (see ``named_candidates``).
TRANSFORM_PERMUTATIONS = ("digit-reversal", "makhoul", "makhoul-rows")

# Blocks sampled per interface by the screening of ``permutation="auto"``
# (at most), and the number of entries they may hold together.
_SCREEN_BLOCKS = 16
_SCREEN_ENTRIES = 8192
# Oversampling of the sketch of a wide block's range.
_SKETCH_EXTRA = 4


def chain_digit_reversal(chain):
    """Mixed-radix digit reversal of the columns that matches ``chain``.

    The column size of the chain is split into the digits ``cp_1, ..., cp_L``
    that its factors contribute (leftmost factor most significant); each digit is
    refined into its prime factors (ascending) and the index array reverses the
    refined digits (:func:`digit_reversal`). The DFT of size ``n`` with its
    columns in this order is a rank-one butterfly on any square chain whose row
    and column digits agree: the refined chain is the radix-``p`` Cooley-Tukey
    (decimation in time) factorization and ``chain`` merges consecutive factors
    of it. Refining makes the result independent of how the levels are merged:
    for ``n = 2**L`` it is the bit reversal at every depth.

    Parameters
    ----------
    chain : tuple of (a, b, c, d)
        A valid chain.

    Returns
    -------
    perm : ndarray of shape (n,)
        Column index array: ``A[:, perm]`` is factorized.
    """
    radices = [
        p for f in _gb_factors(chain) for p, e in factorize(f.cp) for _ in range(e)
    ]
    return digit_reversal(radices)


def makhoul_order(n):
    """Makhoul's reorder ``v_j = x_{2j}``, ``v_{n-1-j} = x_{2j+1}`` as an index array.

    With ``m = makhoul_order(n)``, the DCT-II satisfies ``C[:, m] = Re(D F)``
    (``F`` the DFT of size ``n``, ``D`` diagonal), J. Makhoul, "A fast cosine
    transform in one and two dimensions", IEEE TASSP 28(1), 1980.

    Parameters
    ----------
    n : int
        Size.

    Returns
    -------
    perm : ndarray of shape (n,)
        The even indices ascending, then the odd ones descending.
    """
    return np.concatenate([np.arange(0, n, 2), np.arange(1, n, 2)[::-1]]).astype(
        np.intp
    )


class Candidate(tuple):
    """``(name, row_perm, col_perm, chain, padded_shape)`` of one permutation."""

    __slots__ = ()

    def __new__(cls, name, rows, cols, chain, padded):
        return super().__new__(cls, (name, rows, cols, chain, padded))


class ChainChoice:
    """The chains a fit may use, computed on demand.

    ``default`` is what :func:`resolve_architecture` gives (zero padding to a
    smooth size when a prime factor of the size exceeds 7); ``exact`` uses the
    exact radices of the shape, never padded (the transform permutations need
    it: a large prime ``p`` gives one dense ``p x p`` block per group). It is
    None when the size has no chain of two factors or more without padding.
    """

    def __init__(self, shape, depth, rank, architecture):
        self.shape, self.depth, self.rank = shape, depth, rank
        self.architecture = architecture
        self._default = self._exact = None
        self._exact_done = False

    @property
    def default(self):
        if self._default is None:
            self._default = resolve_architecture(
                self.shape, self.depth, self.rank, self.architecture
            )
        return self._default

    @property
    def exact(self):
        if not self._exact_done:
            chain, padded = self.default
            if padded != tuple(self.shape):
                chain = unpadded_architecture(self.shape, self.depth, self.rank)
            self._exact = chain if chain is not None and len(chain) > 1 else None
            self._exact_done = True
        return self._exact


def _transform_candidate(name, choice):
    """The candidate of one name of ``TRANSFORM_PERMUTATIONS``, or None."""
    chain = choice.exact
    if chain is None:
        return None
    m, n = choice.shape
    cols = chain_digit_reversal(chain)
    rows = None
    if name == "makhoul":
        cols = makhoul_order(n)[cols]
    elif name == "makhoul-rows":
        rows = makhoul_order(m)
    return Candidate(name, rows, cols, chain, (m, n))


def named_candidates(name, choice):
    """Candidates of a permutation given by name.

    Parameters
    ----------
    name : {"bit-reversal", "digit-reversal", "makhoul", "makhoul-rows", "auto"}
        The name.
    choice : ChainChoice
        Shape, depth, rank and architecture of the fit.

    Returns
    -------
    candidates : list of Candidate
        One candidate, or for ``"auto"`` all those that apply to the shape.
    """
    m, n = choice.shape
    if name == "bit-reversal":
        if n < 1 or n & (n - 1):
            raise ValueError(
                f"permutation='bit-reversal' needs a power-of-two size, got {n}; "
                "permutation='digit-reversal' is its mixed-radix generalization "
                "for any composite size."
            )
        return [Candidate("bit-reversal", None, bit_reversal(n), *choice.default)]
    if name in TRANSFORM_PERMUTATIONS:
        found = _transform_candidate(name, choice)
        if found is None:
            raise ValueError(
                f"permutation={name!r} needs a butterfly of two factors or more "
                f"without zero padding, and shape {(m, n)} with depth="
                f"{choice.depth} and rank={choice.rank} has none (a prime size has "
                "no fast transform)."
            )
        return [found]
    # "auto": the identity first (it wins ties), then the transform
    # permutations, then the Dao et al. permutations for powers of two.
    default = choice.default
    candidates = [Candidate("identity", None, None, *default)]
    for transform in TRANSFORM_PERMUTATIONS:
        found = _transform_candidate(transform, choice)
        if found is not None:
            candidates.append(found)
    for perm_name, perm in candidate_permutations(n)[1:]:
        candidates.append(Candidate(perm_name, None, perm, *default))
    unique, seen = [], set()
    for cand in candidates:
        key = _candidate_key(cand)
        if key not in seen:
            seen.add(key)
            unique.append(cand)
    return unique


def _candidate_key(cand):
    _, rows, cols, chain, padded = cand
    m, n = padded
    rows = np.arange(m) if rows is None else rows
    cols = np.arange(n) if cols is None else cols
    return (rows.tobytes(), cols.tobytes(), chain)


def _full_index(perm, size, padded_size):
    """Index array of length ``padded_size``; -1 marks the zero padding."""
    index = np.full(padded_size, -1, dtype=np.intp)
    index[:size] = np.arange(size) if perm is None else perm
    return index


class _Screen:
    """Sampled blocks of the two-factor splits of one candidate."""

    def __init__(self, A, candidate, seed):
        _, rows, cols, chain, padded = candidate
        self.A, self.padded = A, padded
        self.rows = _full_index(rows, A.shape[0], padded[0])
        self.cols = _full_index(cols, A.shape[1], padded[1])
        self.gb = _gb_factors(chain)
        self.seed = seed
        self.interfaces = len(self.gb) - 1

    def lost(self, i):
        """Fraction of the sampled energy outside the rank at interface ``i``."""
        gb, (M, N) = self.gb, self.padded
        b2 = prod(f.bp for f in gb[i + 1 :])
        c1 = prod(f.cp for f in gb[: i + 1])
        b1, c2, rank = M // b2, N // c1, gb[i].q
        if rank >= min(b1, c2):
            return 0.0
        count = int(np.clip(_SCREEN_ENTRIES // (b1 * c2), 2, _SCREEN_BLOCKS))
        rng = np.random.default_rng([self.seed, i])
        picks = rng.choice(c1 * b2, size=min(count, c1 * b2), replace=False)
        k1, j2 = np.divmod(picks, b2)
        # Block (k1, j2) holds rows j1*b2 + j2 and columns k1*c2 + k2.
        r = self.rows[np.arange(b1)[None, :] * b2 + j2[:, None]][:, :, None]
        c = self.cols[k1[:, None] * c2 + np.arange(c2)[None, :]][:, None, :]
        B = _gather(self.A, np.maximum(r, 0), np.maximum(c, 0))
        if (M, N) != self.A.shape:
            B[~((r >= 0) & (c >= 0))] = 0
        # Unit scale: squares and Gram products neither overflow nor underflow.
        top = max_abs(B)
        if top == 0:
            return 0.0
        B = B / top
        total = float(np.linalg.norm(B)) ** 2
        # A basis of the dominant column space: eigenvectors of the Gram matrix
        # of a thin block, else a sketch with one power step; the residual is
        # then formed directly (accurate to rounding for an exact block).
        H = np.conj(np.swapaxes(B, 1, 2))
        if b1 <= 2 * (rank + _SKETCH_EXTRA):
            Q = np.linalg.eigh(B @ H)[1][:, :, -rank:]
        else:
            Q = _dominant_basis(B, H, rank, rng)
        R = B - Q @ (np.conj(np.swapaxes(Q, 1, 2)) @ B)
        return float(np.linalg.norm(R)) ** 2 / total


def _gather(A, r, c):
    """``A[r, c]`` (broadcast index arrays), never copying ``A`` whole."""
    m, n = A.shape
    if A.flags.c_contiguous:  # one flat gather is several times faster
        return np.take(A.reshape(-1), r * n + c)
    if A.flags.f_contiguous:
        return np.take(A.T.reshape(-1), c * m + r)
    return A[r, c]


def _dominant_basis(B, H, rank, rng):
    """Orthonormal basis of the top ``rank`` left singular vectors of each block.

    A sketch of ``rank + _SKETCH_EXTRA`` columns and one power step give the
    range exactly for blocks of rank <= ``rank`` and a good one otherwise.
    """
    width = min(rank + _SKETCH_EXTRA, B.shape[2])
    omega = rng.standard_normal((B.shape[2], width)).astype(B.dtype)
    Y = B @ (H @ (B @ omega))
    Q = np.linalg.qr(Y)[0]
    # Keep the ``rank`` directions of largest energy within the sketch.
    C = np.conj(np.swapaxes(Q, 1, 2)) @ B
    U = np.linalg.svd(C, full_matrices=False)[0][:, :, :rank]
    return Q @ U


def screen_candidates(A, candidates, seed=0):
    """Cheap score of every candidate: the energy lost at each interface's rank.

    For every interior interface of a candidate's chain, the two-factor split
    of the whole (permuted, padded) matrix at that interface cuts it into
    blocks that must have rank at most the interface rank for an exact
    butterfly. A fixed random sample of a few of those blocks is gathered
    straight from ``A`` (no permuted copy) and the fraction of their energy
    outside the top singular subspace is summed over the interfaces. The score
    (square root of that sum) is 0 for an exact butterfly and grows with the
    error of a fit otherwise.

    The middle interface (the root of the balanced tree) of every candidate is
    scored first; candidates are then scored in full from the most promising
    one, and the screen stops at the first that scores as exact (no later
    candidate can beat it). Candidates not scored in full get ``inf``.

    Parameters
    ----------
    A : ndarray of shape (m, n)
        The matrix.
    candidates : list of Candidate
        The candidates.
    seed : int, default=0
        Seed of the sample (the score is deterministic).

    Returns
    -------
    scores : ndarray of shape (len(candidates),)
    """
    with blas_single_thread():  # many tiny products: threads only cost
        return _screen(A, candidates, seed)


def _screen(A, candidates, seed):
    tol = _exact_tol(A.dtype)
    screens = [_Screen(A, cand, seed) for cand in candidates]
    roots = [split_schedule(s.interfaces + 1, "balanced") for s in screens]
    roots = [r[0][0] if r else None for r in roots]
    first = np.array([0.0 if i is None else s.lost(i) for s, i in zip(screens, roots)])
    order = sorted(range(len(screens)), key=lambda k: (max(first[k], tol**2), k))
    scores = np.full(len(screens), np.inf)
    for k in order:
        lost = first[k] + sum(
            screens[k].lost(i) for i in range(screens[k].interfaces) if i != roots[k]
        )
        scores[k] = np.sqrt(lost)
        if scores[k] <= tol:
            break
    return scores


def _exact_tol(dtype):
    """Scores at most this count as exact (and as ties)."""
    return 10 * np.sqrt(np.finfo(dtype).eps)


def shortlist(A, candidates):
    """The one or two candidates of ``permutation="auto"`` worth a full fit.

    Candidates are ranked by :func:`screen_candidates` (earlier ones win ties,
    scores below the dtype's noise level counting as ties). When the best
    scores as exact, only it is fitted; otherwise the best two are.

    Returns
    -------
    chosen : list of Candidate
    """
    if len(candidates) == 1:
        return list(candidates)
    scores = screen_candidates(A, candidates)
    tol = _exact_tol(A.dtype)
    order = sorted(range(len(candidates)), key=lambda k: (max(scores[k], tol), k))
    keep = 1 if scores[order[0]] <= tol else 2
    return [candidates[k] for k in order[:keep]]
