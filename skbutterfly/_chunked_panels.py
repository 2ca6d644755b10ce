"""Column panels of the root split: the panel solver, the panel files, read-ahead."""

# SPDX-License-Identifier: BSD-3-Clause

import os
import shutil
import tempfile
import weakref
from collections import deque
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import closing

import numpy as np

from skbutterfly._sources import ldexp
from skbutterfly._split import split_group
from skbutterfly._validation import max_abs

__all__ = ["PanelFiles", "band_stats", "panel_matrix", "read_ahead", "solve_panel"]

# Sums of squares of values below this magnitude (times the number of entries
# of a band) neither overflow nor lose their smallest terms to underflow.
_SAFE_EXPONENT = 400


def read_ahead(read, keys, depth=1):
    """``read(key)`` for each key, the next ``depth`` read in background threads.

    The consumer's work on one item overlaps the reads of the next ones
    (reads release the GIL: file and store I/O, decompression, numpy
    copies), so at most ``depth + 1`` items are alive at a time. Items come
    in the order of ``keys``; an exception of a read is raised where its item
    is consumed, and a consumer that stops early waits for the pending reads.
    """
    keys = list(keys)
    with ThreadPoolExecutor(max_workers=depth, thread_name_prefix="skb-read") as pool:
        pending = deque(pool.submit(read, key) for key in keys[:depth])
        try:
            for key in keys[depth:]:
                item = pending[0].result()
                pending.popleft()
                pending.append(pool.submit(read, key))
                yield item
                del item
            while pending:
                item = pending[0].result()
                pending.popleft()
                yield item
                del item
        finally:
            # Reads already running finish; their results are dropped.
            for future in pending:
                future.cancel()
            wait(pending)


def band_stats(values):
    """``(max|values|, ||values||_F)`` of one row band, read once more in memory.

    The norm is a plain sum of squares (no scaled copy) unless the magnitudes
    are extreme; NaN and infinity propagate into ``max|values|``.
    """
    top = max_abs(values)
    if not np.isfinite(top):
        return top, np.nan
    if top == 0:
        return 0.0, 0.0
    exponent = int(np.frexp(top)[1])
    if abs(exponent) > _SAFE_EXPONENT:
        values = ldexp(values, -exponent)
    else:
        exponent = 0
    flat = np.ascontiguousarray(values).reshape(-1)
    if flat.dtype.kind == "c":
        flat = flat.view(flat.real.dtype)
    # einsum's own loop: one pass, no temporary, no BLAS threads.
    ssq = float(np.einsum("i,i->", flat, flat, dtype=np.float64))
    return top, float(np.ldexp(np.sqrt(ssq), exponent))


def panel_matrix(block, row_perm, shape, exponent, dtype=None):
    """The working panel: rows permuted, zero-padded to ``shape``, scaled."""
    M, C = shape
    if block is None:
        return np.zeros(shape, dtype=dtype)
    m, c = block.shape
    if row_perm is not None:
        block = np.take(block, row_perm, axis=0)
    if (m, c) != (M, C):
        padded = np.zeros(shape, dtype=block.dtype)
        padded[:m, :c] = block
        block = padded
    if exponent:
        block = ldexp(block, -exponent, out=block if block.flags.writeable else None)
    return np.ascontiguousarray(block)


def solve_panel(
    block,
    *,
    row_perm,
    shape,
    exponent,
    p0,
    width,
    dtype,
    b2,
    rank,
    orthonormalize,
    solver,
    n_jobs,
    seed,
):
    """The root split's factors of one panel (runs locally or as a Dask task).

    ``block`` holds the panel's stored columns in storage row order (None when
    the panel is all padding). Returns the panel's left twiddle
    ``(1, b2, b1, w*rank)`` and right twiddle ``(w, 1, rank*b2, c2)``.
    """
    W = panel_matrix(
        None if block is None else np.asarray(block, dtype=dtype),
        row_perm,
        shape,
        exponent,
        dtype=dtype,
    )
    M, C = shape
    ((left, right),) = split_group(
        [W.reshape(1, 1, M, C)],
        [b2],
        [width],
        rank,
        orthonormalize=orthonormalize,
        solver=solver,
        n_jobs=n_jobs,
        random_state=np.random.default_rng([seed, p0]),
    )
    return left, right


class PanelFiles:
    """The matrix copied once, by row bands, into one raw file per panel.

    File ``p0`` holds the panel's stored columns (column permutation applied)
    for all rows in storage order, C-ordered, so that reading a panel back is
    one sequential read. The copy reads each band once, in a background thread
    while the previous band is written, and computes the matrix's statistics
    on the way: :attr:`top` (``max|A|``) and :attr:`norm` (``||A||_F``). A NaN
    or an infinity stops the copy with a ``ValueError`` naming the chunk and
    the entry. The folder is deleted by :meth:`cleanup` or when the object is
    collected.

    Parameters
    ----------
    source : ChunkedSource
        The (permuted) source whose panels are copied.
    panels : list of (int, int)
        Column-class ranges of the panels.
    c2 : int
        Columns per column class.
    split : tuple
        What the panels were cut for (``(b2, c1)`` of the root split); kept
        for the relative error computed from the files.
    """

    def __init__(self, source, panels, c2, split=None):
        m, n = source.shape
        self.folder = tempfile.mkdtemp(prefix="skbutterfly-", dir=source.temp_folder)
        self._finalizer = weakref.finalize(
            self, shutil.rmtree, self.folder, ignore_errors=True
        )
        self.key = (panels, c2)
        self.panels = panels
        self.c2 = c2
        self.split = split
        self.col_perm = source.col_perm
        self.dtype = source.dtype
        self.m = m
        self.widths = {}
        columns = {}
        for p0, p1 in panels:
            cols = source.storage_columns(p0 * c2, p1 * c2)
            if cols is not None:
                # Contiguous storage columns stay a slice (a view, no gather).
                columns[p0] = cols
                self.widths[p0] = (
                    len(range(n)[cols]) if isinstance(cols, slice) else len(cols)
                )
        files = {p0: open(self._path(p0), "wb") for p0 in columns}

        def read(band):
            values = source.read_rows(*band)
            return band, values, band_stats(values)

        tops, norms = [], []
        try:
            # Two bands of the budget's eighth each: one written, one read. (Two
            # bands read at a time cost more CPU than they save when the reads
            # are decoding, not waiting: benchmarks/results/chunked.md.)
            bands = closing(read_ahead(read, source.row_bands(1 / 8)))
            with bands as reads:
                for (r0, _), values, (top, norm) in reads:
                    if not np.isfinite(top):
                        source.raise_not_finite(values, r0)
                    tops.append(top)
                    norms.append(norm)
                    for p0, cols in columns.items():
                        np.ascontiguousarray(values[:, cols]).tofile(files[p0])
                    del values
        except BaseException:
            self.cleanup()
            raise
        finally:
            for f in files.values():
                f.close()
        self.top = float(max(tops))
        scale = float(max(norms))
        norms = np.asarray(norms)
        self.norm = (
            scale * float(np.sqrt(np.sum((norms / scale) ** 2))) if scale > 0 else 0.0
        )

    def _path(self, p0):
        return os.path.join(self.folder, f"panel-{p0}.bin")

    def read(self, p0):
        """The stored columns of the panel starting at column class ``p0``."""
        width = self.widths[p0]
        values = np.fromfile(self._path(p0), dtype=self.dtype)
        if values.size != self.m * width:
            raise ValueError(
                f"panel file {self._path(p0)} holds {values.size} values, expected "
                f"{self.m * width}: the temporary folder was modified during the fit."
            )
        return values.reshape(self.m, width)

    def cleanup(self):
        """Delete the folder."""
        self._finalizer()
