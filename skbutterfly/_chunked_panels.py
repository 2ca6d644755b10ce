"""Column panels of the root split: the panel solver and the panel files."""

# SPDX-License-Identifier: BSD-3-Clause

import os
import shutil
import tempfile
import weakref

import numpy as np

from skbutterfly._sources import ldexp
from skbutterfly._split import split_group

__all__ = ["PanelFiles", "panel_matrix", "solve_panel"]


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
    one sequential read. The folder is deleted by :meth:`cleanup` or when the
    object is collected.
    """

    def __init__(self, source, panels, c2):
        m, n = source.shape
        self.folder = tempfile.mkdtemp(prefix="skbutterfly-", dir=source.temp_folder)
        self._finalizer = weakref.finalize(
            self, shutil.rmtree, self.folder, ignore_errors=True
        )
        self.key = (panels, c2)
        self.dtype = source.dtype
        self.m = m
        self.widths = {}
        columns = {}
        for p0, p1 in panels:
            cols = source.storage_columns(p0 * c2, p1 * c2)
            if cols is not None:
                columns[p0] = np.arange(n)[cols]
                self.widths[p0] = len(columns[p0])
        files = {p0: open(self._path(p0), "wb") for p0 in columns}
        try:
            for r0, r1 in source.row_bands(1 / 4):
                values = source.read_rows(r0, r1)
                for p0, cols in columns.items():
                    np.ascontiguousarray(values[:, cols]).tofile(files[p0])
                del values
        except BaseException:
            self.cleanup()
            raise
        finally:
            for f in files.values():
                f.close()

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
