"""Products of a butterfly operator with many vectors, by cache-sized blocks.

A product ``A_hat @ X`` (or ``X @ A_hat.T`` for row-major data) runs through
the fused factors on blocks of a fixed number of vectors: every block is
gathered (column permutation, zero padding, and the transpose of row-major
data) into a reused buffer, goes through all factors while it stays in cache,
and is scattered (row permutation, cropping) into the result. Reused buffers
spare the page faults of fresh intermediates, which cost more than the
arithmetic on large batches. Tall batches run their blocks on a small thread
pool with BLAS held to one thread (threads times BLAS threads never exceed the
cores). The blocks are the same whatever the number of threads, and every
vector's result only depends on the plan of its block width, so products are
deterministic.
"""

# SPDX-License-Identifier: BSD-3-Clause

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np
from joblib import cpu_count

from skbutterfly._block_svd import blas_single_thread
from skbutterfly._twiddle import apply_twiddle

__all__ = [
    "apply_fused",
    "block_width",
    "buffer",
    "expand_rows_into",
    "run_blocks",
    "transpose_into",
]

# Bytes of one block of vectors at the widest point of the chain: the block
# and its two intermediates stay in cache (2 MiB measured fastest on a 2-core
# machine with 1 MiB of L2 per core and 32 MiB of L3; 4 MiB was 1.3x slower).
_BLOCK_BYTES = 2 << 20
# Fewest vectors per block (narrower matmuls cost more per multiply-add).
_MIN_WIDTH = 16
# Multiply-adds below which a product runs on the calling thread alone.
PARALLEL_MIN_MACS = 2**22
_pool = None
_pool_lock = threading.Lock()
# Each thread's block buffers, kept across products: fresh buffers cost a page
# fault per 4 KiB on every product, more than the arithmetic of a mid-sized
# one. A thread holds at most five blocks (the input, two intermediates and
# the row-major gather and scatter: about 5 * _BLOCK_BYTES).
_local = threading.local()


def _executor():
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=_n_workers(), thread_name_prefix="skbutterfly"
            )
    return _pool


@cache
def _n_workers():
    # joblib's count honours CPU affinity and cgroup quotas; os.cpu_count does not.
    return max(1, min(cpu_count(), 8))


def block_width(height, itemsize, k, macs=0):
    """Vectors per block: a power of two whose block fits the cache, at most ``k``.

    ``height`` is the largest number of rows a block has between two factors.
    A product of at least :data:`PARALLEL_MIN_MACS` multiply-adds (``macs``)
    that would be one block is cut in two, so that two threads share it: the
    width depends on the product alone, never on the number of threads.
    """
    width = _BLOCK_BYTES // max(1, height * itemsize)
    width = max(_MIN_WIDTH, 1 << (max(1, width).bit_length() - 1))
    if macs >= PARALLEL_MIN_MACS and k <= width and k >= 2 * _MIN_WIDTH:
        width = -(-k // 16) * 8  # half of k, rounded up to 8 vectors
    return min(k, width)


def run_blocks(k, width, macs, func):
    """Call ``func(start, stop, buffers)`` on the blocks ``[start, stop)`` of ``k``.

    ``buffers`` is a dict private to the calling thread, reused across its
    blocks and its later products. Blocks run on the thread pool when there
    are several and the product has at least :data:`PARALLEL_MIN_MACS` multiply-adds.
    """
    starts = list(range(0, k, width))
    n_workers = min(_n_workers(), len(starts))
    if n_workers < 2 or macs < PARALLEL_MIN_MACS:
        buffers = _thread_buffers()
        for start in starts:
            func(start, min(start + width, k), buffers)
        return
    groups = [starts[i::n_workers] for i in range(n_workers)]

    def run_group(group):
        buffers = _thread_buffers()
        for start in group:
            func(start, min(start + width, k), buffers)

    with blas_single_thread():
        futures = [_executor().submit(run_group, group) for group in groups]
        for future in futures:
            future.result()


def _thread_buffers():
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    return buffers


def buffer(buffers, name, shape, dtype):
    """A reused ``(rows, width)`` buffer, a view whose rows are padded by 64 bytes.

    Rows a power of two of bytes apart alias in the cache when a block is
    read by columns (the transposes of row-major data): the padding keeps
    them apart. BLAS takes the padded rows as its leading dimension.
    """
    rows, width = shape
    dtype = np.dtype(dtype)
    pad = max(1, 64 // dtype.itemsize)
    held = buffers.get(name)
    if (
        held is None
        or held.dtype != dtype
        or held.shape[1] < width + pad
        or held.shape[0] < rows
    ):
        held = np.empty((rows, width + pad), dtype=dtype)
        buffers[name] = held
    return held[:rows, :width]


def transpose_into(out, X):
    """``out[:] = X.T`` for a row-major ``X`` of shape ``(w, N)``.

    One numpy copy of a wide ``X`` runs its inner loop down the columns, a
    row apart each (4x slower than eight rows at a time at N = 1024).
    """
    w, N = X.shape
    if N < 256:
        out[:] = X.T
        return
    for i in range(0, w, 8):
        out[:, i : i + 8] = X[i : i + 8].T


def expand_rows_into(out, T, Z):
    """``out[:] = (F @ Z).T`` for the factor ``F`` of twiddle ``T`` with ``c = 1``.

    ``T`` has shape ``(a, d, b, 1)``, ``Z`` (column layout) ``(a*d, w)`` and
    ``out`` (row-major) ``(w, a*b*d)``: the factor's broadcast product is
    written straight into the rows of the result, reading ``Z`` (``b`` times
    smaller) transposed. (``apply_twiddle(T, Z, out=out.T)`` computes the same
    but 10x slower: its broadcast runs in the column layout's axis order,
    across the rows of ``out``.)
    """
    a, d, b, _ = T.shape
    w = Z.shape[1]
    np.multiply(
        T[..., 0].transpose(0, 2, 1)[None],
        Z.reshape(a, d, w).transpose(2, 0, 1)[:, :, None, :],
        out=out.reshape(w, a, b, d),
    )


def apply_fused(fused, X, buffers, dtype):
    """``F_1 ... F_L @ X`` through the fused twiddles (leftmost first).

    ``X`` is an ``(N, width)`` block with unit stride along its rows;
    intermediates alternate between two reused buffers. Returns a view of
    one of them.
    """
    width = X.shape[1]
    names = ("ping", "pong")
    for i, T in enumerate(reversed(fused)):
        a, d, b, _ = T.shape
        out = buffer(buffers, names[i % 2], (a * b * d, width), dtype)
        X = apply_twiddle(T, X, out=out)
    return X
