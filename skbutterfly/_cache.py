"""Reuse of the root split's block SVDs across fits of the same matrix."""

# SPDX-License-Identifier: BSD-3-Clause

import hashlib
import threading
from collections import OrderedDict
from contextlib import contextmanager

import numpy as np

from skbutterfly._split import assemble_split
from skbutterfly._svd import batched_truncated_svd
from skbutterfly._twiddle import split_blocks

__all__ = ["SplitCache", "active_cache", "split_cache"]

_active = None
_active_lock = threading.Lock()


def active_cache():
    """The :class:`SplitCache` of the innermost :func:`split_cache`, or None."""
    return _active


class SplitCache:
    """Truncated SVDs of root-split blocks, keyed by matrix content and split.

    The root split of a chain only depends on the matrix and on where its
    blocks are cut (``b2``, ``c1``): candidates of a grid that differ by rank
    (and often by depth) share it. A miss at rank ``r`` computes the SVDs at
    rank ``max(2 r, 8)`` (capped by the block size), so that a grid of
    increasing ranks also hits; an entry at rank ``k`` serves any ``r <= k``
    by truncation, and a larger rank recomputes and replaces it.

    Parameters
    ----------
    max_entries : int, default=8
        Entries kept (least recently used first out).
    """

    def __init__(self, max_entries=8):
        self.max_entries = max_entries
        self._entries = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _key(T, b2, c1, solver):
        digest = hashlib.blake2b(digest_size=16)
        digest.update(np.ascontiguousarray(T).view(np.uint8).reshape(-1))
        return (digest.hexdigest(), T.shape, T.dtype.str, b2, c1, solver)

    def split(self, T, b2, c1, rank, *, orthonormalize, solver, n_jobs, random_state):
        """The split of twiddle ``T`` at ``rank``, reusing a cached SVD if any."""
        key = self._key(T, b2, c1, solver)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[1].shape[-1] >= rank:
                self._entries.move_to_end(key)
                self.hits += 1
            else:
                entry = None
        if entry is None:
            M = split_blocks(T, b2, c1)
            M = M.reshape(-1, *M.shape[2:])
            width = max(rank, min(max(2 * rank, 8), *M.shape[1:]))
            entry = batched_truncated_svd(
                M, width, solver=solver, n_jobs=n_jobs, random_state=random_state
            )
            with self._lock:
                self.misses += 1
                self._entries[key] = entry
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        U, S, Vh = entry
        return assemble_split(
            T, b2, c1, U[..., :rank], S[..., :rank], Vh[..., :rank, :], orthonormalize
        )


@contextmanager
def split_cache(max_entries=8):
    """Reuse root-split SVDs between fits of the same matrix inside this block.

    Within ``with split_cache():``, every fit (``butterfly_factorize`` or
    ``ButterflyApproximator.fit``, also from joblib threads such as
    ``GridSearchCV(n_jobs=k)`` with the threading backend) looks up the block
    SVDs of its root split in a cache keyed by the matrix content and the
    split geometry. A grid over ranks then computes them once, at the largest
    rank seen so far, and truncates. Candidates that hit the cache can differ
    in the last digits from a fit outside it for blocks that are not exactly
    low rank (their SVD was computed at a larger rank). Process-based workers
    (joblib's default loky backend) do not share the cache.

    Parameters
    ----------
    max_entries : int, default=8
        Number of root splits kept.

    Yields
    ------
    cache : SplitCache
        The active cache (``hits`` and ``misses`` count its use).

    Examples
    --------
    >>> from skbutterfly import butterfly_factorize
    >>> from skbutterfly.datasets import make_butterfly
    >>> from skbutterfly.model_selection import split_cache
    >>> A = make_butterfly(64, depth=2, rank=4, random_state=0)
    >>> with split_cache() as cache:
    ...     ops = [butterfly_factorize(A, depth=2, rank=r) for r in (1, 2, 4)]
    >>> [op.n_params for op in ops]
    [1024, 2048, 4096]
    """
    global _active
    cache = SplitCache(max_entries=max_entries)
    with _active_lock:
        previous, _active = _active, cache
    try:
        yield cache
    finally:
        with _active_lock:
            _active = previous
