"""Reuse of the root split's block factors across fits of the same matrix.

A cache is an explicit object given to a fit (``memory=``), as scikit-learn's
``Pipeline(memory=...)``: a :class:`SplitCache` in memory, shared by every fit
(and every clone of an estimator) that holds it, or a :class:`joblib.Memory`
on disk, shared across processes too. Nothing is global: a cache lives as long
as its owner keeps it.
"""

# SPDX-License-Identifier: BSD-3-Clause

import threading
import warnings
from collections import OrderedDict
from contextlib import contextmanager

import numpy as np
from joblib import Memory

__all__ = ["SplitCache", "active_cache", "resolve_memory", "split_cache"]


def _cached_width(rank, block_shape):
    """Rank at which a cache solves the root split for a request at ``rank``.

    It depends on ``rank`` and the block shape only (never on which request
    came first), so that every fit sharing a cache gets the same factors in
    any order: the smallest power of two >= ``max(2 rank, 8)``, capped by the
    block, and never below ``rank``.
    """
    width = 8
    while width < 2 * rank:
        width *= 2
    return max(rank, min(width, *block_shape))


def _truncate(left, right, rank, orthonormalize):
    """The rank-``rank`` split from a wider orthonormalized root split.

    ``left`` (``(1, b2, b1, c1*w)``) holds ``U`` and ``right``
    (``(c1, 1, w*b2, c2)``) holds ``S Vh`` of every block, ``w >= rank``.
    """
    _, b2, b1, cw = left.shape
    c1, c2 = right.shape[0], right.shape[-1]
    w = cw // c1
    left = left.reshape(1, b2, b1, c1, w)[..., :rank]
    right = right.reshape(c1, 1, w, b2, c2)[:, :, :rank]
    if not orthonormalize:
        # Rows of S Vh have norm S: give each side sqrt(S).
        S = np.linalg.norm(right, axis=-1)  # (c1, 1, rank, b2)
        root = np.sqrt(S)
        right = right / np.where(root > 0, root, 1)[..., None]
        left = left * root.transpose(1, 3, 0, 2)[:, :, None]
    return (
        np.ascontiguousarray(left.reshape(1, b2, b1, c1 * rank)),
        np.ascontiguousarray(right.reshape(c1, 1, rank * b2, c2)),
    )


def _solve_root_split(key, width, solver, source, n_jobs, random_state):
    """The orthonormalized root split at ``width`` (``key`` names the matrix)."""
    b2, c1 = key[1], key[2]
    return source.root_split(
        b2,
        c1,
        width,
        orthonormalize=True,
        solver=solver,
        n_jobs=n_jobs,
        random_state=random_state,
    )


class SplitCache:
    """Root-split block factors shared by the fits that hold this object.

    The root split of a chain only depends on the matrix and on where its
    blocks are cut: candidates of a grid that differ by rank (and often by
    depth) share it. A request at rank ``r`` is solved once at a width that
    depends on ``r`` and the block shape only (the power of two ``>= max(2r,
    8)``) and truncated, so every fit that shares the cache gets the same
    factors whatever the order of the requests. Clones and copies of an
    estimator holding a cache share it; a pickled cache arrives empty in the
    other process (use a :class:`joblib.Memory` to share across processes).

    Parameters
    ----------
    max_entries : int, default=8
        Root splits kept (least recently used first out).

    Attributes
    ----------
    hits : int
        Requests answered from the cache.
    misses : int
        Requests that solved a root split.

    Examples
    --------
    >>> from skbutterfly import butterfly_factorize
    >>> from skbutterfly.datasets import make_butterfly
    >>> from skbutterfly.model_selection import SplitCache
    >>> A = make_butterfly(64, depth=2, rank=4, random_state=0)
    >>> cache = SplitCache()
    >>> ops = [butterfly_factorize(A, depth=2, rank=r, memory=cache) for r in (1, 2, 4)]
    >>> [op.n_params for op in ops], (cache.hits, cache.misses)
    ([1024, 2048, 4096], (2, 1))
    """

    def __init__(self, max_entries=8):
        self.max_entries = max_entries
        self._entries = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __deepcopy__(self, memo):
        # A cache is a handle: sklearn's clone deep-copies parameters, and the
        # clones of a grid search must share one store.
        return self

    def __reduce__(self):
        return (type(self), (self.max_entries,))

    def __repr__(self):
        return (
            f"SplitCache(max_entries={self.max_entries}) with {len(self._entries)} "
            f"entries, {self.hits} hits, {self.misses} misses"
        )

    def clear(self):
        """Drop every entry."""
        with self._lock:
            self._entries.clear()

    def _bind(self, source):
        """``root_split(b2, c1, rank, ...)`` of ``source`` through this cache."""
        return _Bound(self, source)

    def _lookup(self, key, compute):
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry
        entry = compute()
        with self._lock:
            self.misses += 1
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return entry


class _DiskCache:
    """A :class:`joblib.Memory` seen as a split cache."""

    def __init__(self, memory):
        self._solve = memory.cache(_solve_root_split, ignore=["source", "n_jobs"])

    def _bind(self, source):
        return _Bound(self, source)

    def _lookup(self, key, compute):
        return compute()


class _Bound:
    """The root split of one source, looked up in one cache."""

    def __init__(self, cache, source):
        self.cache, self.source = cache, source

    def __call__(self, b2, c1, rank, *, orthonormalize, solver, n_jobs, random_state):
        fingerprint = self.source.fingerprint()
        if fingerprint is None:
            return self.source.root_split(
                b2,
                c1,
                rank,
                orthonormalize=orthonormalize,
                solver=solver,
                n_jobs=n_jobs,
                random_state=random_state,
            )
        M, N = self.source.padded_shape
        width = _cached_width(rank, (M // b2, N // c1))
        key = (fingerprint, b2, c1, solver, width)
        solve = getattr(self.cache, "_solve", _solve_root_split)
        left, right = self.cache._lookup(
            key, lambda: solve(key, width, solver, self.source, n_jobs, random_state)
        )
        return _truncate(left, right, rank, orthonormalize)


def resolve_memory(memory):
    """The cache object of a ``memory`` parameter, or None.

    Parameters
    ----------
    memory : None, str, path-like, joblib.Memory or SplitCache
        A string or path is a :class:`joblib.Memory` location.
    """
    if memory is None:
        return active_cache()
    if isinstance(memory, SplitCache):
        return memory
    if isinstance(memory, str) or hasattr(memory, "__fspath__"):
        memory = Memory(location=memory, verbose=0)
    if isinstance(memory, Memory):
        return _DiskCache(memory) if memory.location is not None else None
    raise TypeError(
        "memory must be None, a SplitCache, a joblib.Memory or a directory path, "
        f"got {type(memory).__name__}."
    )


# Caches of the deprecated ``split_cache()`` blocks that are open: each thread's
# own, innermost last, and every open one for the worker threads of a search.
_local = threading.local()
_open = []
_open_lock = threading.Lock()


def active_cache():
    """The cache of the innermost open :func:`split_cache` block, or None.

    The calling thread's own block wins; a thread with none (a joblib worker
    thread of a grid search) uses the most recently opened block of any
    thread. Caches give identical results whoever computed an entry, so a
    worker using another search's cache gets the same factors.
    """
    stack = getattr(_local, "stack", None)
    if stack:
        return stack[-1]
    with _open_lock:
        return _open[-1] if _open else None


@contextmanager
def split_cache(max_entries=8):
    """Reuse root-split block factors between fits inside this block (deprecated).

    .. deprecated:: 0.2
        Give the fits an explicit cache instead, ``memory=SplitCache()`` (or a
        :class:`joblib.Memory` to share across processes); ``split_cache`` is
        removed in 0.4.

    Parameters
    ----------
    max_entries : int, default=8
        Number of root splits kept.

    Yields
    ------
    cache : SplitCache
        The cache used by fits without ``memory`` while the block is open.

    Examples
    --------
    >>> import warnings
    >>> from skbutterfly import butterfly_factorize
    >>> from skbutterfly.datasets import make_butterfly
    >>> from skbutterfly.model_selection import split_cache
    >>> A = make_butterfly(16, depth=2, rank=2, random_state=0)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", FutureWarning)
    ...     with split_cache() as cache:
    ...         ops = [butterfly_factorize(A, depth=2, rank=r) for r in (1, 2)]
    >>> cache.hits, cache.misses
    (1, 1)
    """
    warnings.warn(
        "split_cache() is deprecated since 0.2 and will be removed in 0.4; pass "
        "memory=SplitCache() to ButterflyApproximator or butterfly_factorize.",
        FutureWarning,
        stacklevel=3,
    )
    cache = SplitCache(max_entries=max_entries)
    stack = _local.__dict__.setdefault("stack", [])
    stack.append(cache)
    with _open_lock:
        _open.append(cache)
    try:
        yield cache
    finally:
        stack.remove(cache)
        with _open_lock:
            _open.remove(cache)
