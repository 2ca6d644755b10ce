"""Block source of a chunked matrix: a dask array, a zarr array or an HDF5 dataset.

The root split's blocks ``W[i2::b2, j1*c2:(j1+1)*c2]`` have strided rows and
contiguous columns, so the usual row chunks hold no whole block. The source
cuts ``W`` into *column panels* ``W[:, p0*c2:p1*c2]`` (complete blocks of the
column classes ``p0 <= j1 < p1``), solves each panel with the in-memory block
solver (:func:`~skbutterfly._split.split_group`) and scatters the panels'
factors into the root split's twiddles. Column permutations become a gather of
storage columns per panel, row permutations and zero padding are applied to
the panel in memory, and nothing of the size of ``A`` is ever held.

- With a :mod:`dask.distributed` client, every panel is a Dask task on the
  workers: it reads its columns from the store (through the dask graph) and
  only its two small twiddles come back.
- Without one, panels are read straight from the array when its chunks allow
  it (each chunk read about once); row-chunked storage is first copied in one
  pass of row bands into panel files in a temporary folder, then the panels
  are read back one at a time. That pass is the only read of the store: it
  also computes ``max|A|`` and ``||A||_F`` (otherwise a pass of their own,
  :func:`chunk_statistics`), and the relative error of the fit is computed
  from the kept panel files. The next band or panel is read in a background
  thread while the current one is written, solved or compared.

Every panel draws its random stream from ``(seed, first column class)`` and the
panel width depends on the memory budget only, so the factors are the same
locally and on a cluster of any size.
"""

# SPDX-License-Identifier: BSD-3-Clause

import itertools
import sys
from contextlib import closing

import numpy as np

from skbutterfly._chunked_error import RowsOf, chunk_error, panel_files_error
from skbutterfly._chunked_panels import (
    PanelFiles,
    panel_matrix,
    read_ahead,
    solve_panel,
)
from skbutterfly._twiddle import dense_to_twiddle
from skbutterfly._validation import max_abs

__all__ = ["CHUNKED_MODULES", "ChunkedSource", "chunked_source", "is_chunked"]

# Top-level modules whose array types are read chunk by chunk.
CHUNKED_MODULES = ("dask", "zarr", "h5py")

# Memory the fitting process may use for panels and row bands: a 16th of
# the matrix, within these bounds.
_BUDGET_MIN = 4 << 20
_BUDGET_MAX = 512 << 20

# Direct panel reads are used when they read the stored chunks at most this
# many times in total; otherwise the matrix is copied once into panel files.
_MAX_READ_AMPLIFICATION = 1.5

_INSTALL_HINT = 'pip install "skbutterfly[dask]"'


def is_chunked(A):
    """Whether ``A`` is a dask, zarr or h5py array (known without importing them)."""
    if isinstance(A, np.ndarray) or not (hasattr(A, "shape") and hasattr(A, "dtype")):
        return False
    return any(
        (getattr(cls, "__module__", None) or "").split(".")[0] in CHUNKED_MODULES
        for cls in type(A).__mro__
    )


def _import_dask():
    try:
        import dask
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "Fitting a chunked matrix (dask, zarr or h5py array) needs dask: "
            f"{_INSTALL_HINT}."
        ) from exc
    return dask, da


def active_client():
    """The active ``dask.distributed`` client, or None (distributed not imported)."""
    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


def _as_dask_array(A, name):
    """``A`` as a 2-D dask array of a supported dtype, without reading it."""
    _, da = _import_dask()
    module = type(A).__module__.split(".")[0]
    if isinstance(A, da.Array):
        D = A
    else:
        if module == "zarr":
            _check_zarr_complete(A, name)
        chunks = getattr(A, "chunks", None)
        shape = tuple(getattr(A, "shape", ()))
        if not chunks or len(chunks) != len(shape):
            # Contiguous HDF5 datasets: bands of whole rows of about 32 MiB.
            itemsize = np.dtype(A.dtype).itemsize
            rows = max(1, (32 << 20) // max(1, itemsize * int(np.prod(shape[1:]))))
            chunks = (rows, *shape[1:]) if shape else "auto"
        D = da.from_array(A, chunks=chunks, asarray=True)
    if D.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array, got {D.ndim}-D with shape {D.shape}."
        )
    if 0 in D.shape or any(np.isnan(s) for s in D.shape):
        raise ValueError(f"{name} must be non-empty with known sizes, got {D.shape}.")
    kind = D.dtype.kind
    if kind not in "biufc":
        raise TypeError(
            f"{name} must have a numeric dtype (bool, integer, float or complex), "
            f"got dtype {D.dtype}."
        )
    if kind in "biu":
        D = D.astype(np.float64)
    elif D.dtype == np.float16:
        D = D.astype(np.float32)
    elif D.dtype.type not in (np.float32, np.float64, np.complex64, np.complex128):
        D = D.astype(np.complex128 if kind == "c" else np.float64)
    return D


def _check_zarr_complete(Z, name):
    """Refuse zarr arrays with chunks missing from the store (read as fill values)."""
    total = getattr(Z, "nchunks", None)
    stored = getattr(Z, "nchunks_initialized", None)
    if total is None or stored is None or stored >= total:
        return
    raise ValueError(
        f"{name} is a zarr array with {total} chunks of which only {stored} are "
        "stored; zarr reads the missing ones as the fill value, so a truncated "
        "store would be factorized silently. Write every chunk, or wrap the "
        "array with dask.array.from_zarr if the fill value is meant."
    )


def _chunk_stats(block):
    """``[[max_abs, ||block||_F]]`` of one chunk (scaled, no overflow)."""
    from skbutterfly._sources import frobenius_norm

    top = max_abs(block)
    return np.array([[top, frobenius_norm(block) if np.isfinite(top) else np.nan]])


def _same_perm(p, q):
    if p is None or q is None:
        return p is None and q is None
    return p is q or np.array_equal(p, q)


def _chunk_offsets(chunks):
    return [np.concatenate([[0], np.cumsum(c)]).astype(int) for c in chunks]


def _read_error(name, exc):
    return ValueError(
        f"{name}: reading the chunked matrix failed ({type(exc).__name__}: {exc})."
    )


def chunked_source(A, name="A", memory_budget=None):
    """The block source of a chunked matrix (nothing is read yet).

    The matrix's statistics (``max|A|``, for the finiteness check and the
    exact power-of-two scale, and ``||A||_F``) are computed by the first pass
    over the data that needs them: the copy of row chunks into panel files,
    or a pass of their own (:func:`chunk_statistics`).
    """
    return ChunkedSource(
        _as_dask_array(A, name), name=name, memory_budget=memory_budget
    )


def chunk_statistics(D, name):
    """``(max|A|, ||A||_F)`` of a dask array, chunk by chunk (on the cluster if any).

    A NaN or an infinity raises a ``ValueError`` naming the chunk and the
    first bad entry.
    """
    rows, cols = _chunk_offsets(D.chunks)
    # One task per chunk that reads and reduces it (map_blocks fuses the two):
    # never more chunks in memory than dask has threads.
    shape = D.numblocks
    stats = D.map_blocks(
        _chunk_stats,
        chunks=((1,) * shape[0], (2,) * shape[1]),
        dtype=float,
        meta=np.empty((0, 0)),
    )
    try:
        stats = np.asarray(stats.compute()).reshape(*shape, 2)
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise _read_error(name, exc) from exc
    tops, norms = stats[..., 0], stats[..., 1]
    if not np.all(np.isfinite(tops)):
        i, j = np.argwhere(~np.isfinite(tops))[0]
        r0, r1, c0, c1 = rows[i], rows[i + 1], cols[j], cols[j + 1]
        chunk = np.asarray(D[r0:r1, c0:c1].compute())
        _raise_not_finite(name, chunk, (i, j), (r0, r1, c0, c1))
    top = float(tops.max())
    scale = float(norms.max())
    norm = scale * float(np.sqrt(np.sum((norms / scale) ** 2))) if scale > 0 else 0.0
    return top, norm


def _raise_not_finite(name, chunk, index, bounds):
    r0, r1, c0, c1 = bounds
    bad = np.argwhere(~np.isfinite(chunk))[0]
    where = (int(r0 + bad[0]), int(c0 + bad[1]))
    raise ValueError(
        f"{name} contains NaN or infinity in chunk ({index[0]}, {index[1]}) (rows "
        f"{r0}:{r1}, columns {c0}:{c1}); the first is at index {where}: "
        f"{chunk[tuple(bad)].item()!r}."
    )


class _Shared:
    """What a source and its permuted copies share: statistics and panel files.

    The panel files cut for a root split are kept after the fit (``release``)
    so that the relative error is computed from them instead of reading the
    store again; :meth:`ChunkedSource.relative_error` deletes them, and so
    does the collection of the sources (the end of a fit without an error).
    """

    def __init__(self, top=None, norm=None):
        self.stats = None if top is None else (float(top), float(norm))
        self.spill = None

    def drop_spill(self):
        if self.spill is not None:
            self.spill.cleanup()
            self.spill = None


class ChunkedSource:
    """The working matrix of a fit, read from a chunked (dask) array.

    Parameters
    ----------
    data : dask.array.Array of shape (m, n)
        The user's matrix (lazy; read panel by panel).
    name : str
        Name of the matrix in error messages.
    norm, top : float, default=None
        ``||A||_F`` and ``max|A|``; None means computed by the first pass
        over the data that needs them.
    row_perm, col_perm : ndarray of int or None
        Permutations of the model ``A ~= P_r^T B P_c``.
    padded_shape : tuple of int, default=None
        Shape of the chain; None means ``A.shape``.
    memory_budget : int, default=None
        Bytes of panels and row bands the fitting process may hold; None means
        a 16th of the matrix, between 4 MiB and 512 MiB.
    temp_folder : str, default=None
        Where row-chunked matrices are copied into panel files; None means
        the system's temporary folder.
    """

    error_is_estimate = False

    def __init__(
        self,
        data,
        *,
        name="A",
        norm=None,
        top=None,
        row_perm=None,
        col_perm=None,
        padded_shape=None,
        memory_budget=None,
        temp_folder=None,
        _shared=None,
    ):
        self.data = data
        self.name = name
        self._shared = _Shared(top, norm) if _shared is None else _shared
        self.shape = tuple(int(s) for s in data.shape)
        self.dtype = np.dtype(data.dtype)
        self.row_perm = row_perm
        self.col_perm = col_perm
        self.padded_shape = tuple(padded_shape or self.shape)
        if memory_budget is None:
            matrix_bytes = self.shape[0] * self.shape[1] * self.dtype.itemsize
            memory_budget = min(max(matrix_bytes // 16, _BUDGET_MIN), _BUDGET_MAX)
        self.memory_budget = int(memory_budget)
        self.temp_folder = temp_folder
        self.last_plan = None
        self.last_error_plan = None

    def _stats(self):
        if self._shared.stats is None:
            self._shared.stats = chunk_statistics(self.data, self.name)
        return self._shared.stats

    @property
    def top(self):
        """``max|A|`` (a pass over the data if no pass has computed it yet)."""
        return self._stats()[0]

    @property
    def norm(self):
        """``||A||_F`` (a pass over the data if no pass has computed it yet)."""
        return self._stats()[1]

    @property
    def exponent(self):
        """``W`` is ``A / 2**exponent`` (0 unless the magnitudes are extreme)."""
        from skbutterfly._factorize import _power_of_two_scale

        return _power_of_two_scale(self.data, self.top)

    def permuted(self, row_perm, col_perm, padded_shape):
        """The source of ``A[row_perm][:, col_perm]``, padded to ``padded_shape``."""
        return ChunkedSource(
            self.data,
            name=self.name,
            row_perm=row_perm,
            col_perm=col_perm,
            padded_shape=padded_shape,
            memory_budget=self.memory_budget,
            temp_folder=self.temp_folder,
            _shared=self._shared,
        )

    def fingerprint(self):
        """None: hashing the matrix would cost a pass; chunked fits are not cached."""
        return None

    def frobenius_norm(self):
        """``||A||_F`` (from the pass that built the source)."""
        return self.norm

    def release(self):
        """The fit's reads are done.

        Panel files are kept for :meth:`relative_error`, which deletes them;
        without it they go with the sources (the end of the fit).
        """

    def raise_not_finite(self, band, r0):
        """Raise the NaN-or-infinity error for a row band starting at row ``r0``."""
        rows, cols = _chunk_offsets(self.data.chunks)
        bad = np.argwhere(~np.isfinite(band))[0]
        r, c = int(r0 + bad[0]), int(bad[1])
        i = int(np.searchsorted(rows, r, side="right") - 1)
        j = int(np.searchsorted(cols, c, side="right") - 1)
        bounds = (rows[i], rows[i + 1], cols[j], cols[j + 1])
        chunk = band[rows[i] - r0 : rows[i + 1] - r0, cols[j] : cols[j + 1]]
        _raise_not_finite(self.name, chunk, (i, j), bounds)

    def storage_columns(self, start, stop):
        """Storage columns of the working columns ``[start, stop)`` (< n only)."""
        stop = min(stop, self.shape[1])
        if start >= stop:
            return None
        if self.col_perm is None:
            return slice(start, stop)
        return self.col_perm[start:stop]

    def root_twiddle(self):
        """``W`` as one ``(1, 1, M, N)`` twiddle: the whole matrix, read once."""
        M, N = self.padded_shape
        block = self._read_direct(self.storage_columns(0, N))
        W = panel_matrix(block, self.row_perm, (M, N), self.exponent)
        return dense_to_twiddle(W, (1, M, N, 1))

    def row_bands(self, share):
        """``(r0, r1)`` bands of whole storage row chunks, about ``share`` budget."""
        m, n = self.shape
        rows = _chunk_offsets(self.data.chunks)[0]
        band = max(1, int(self.memory_budget * share) // (n * self.dtype.itemsize))
        starts = [0]
        for r in rows[1:-1]:
            if r - starts[-1] >= band:
                starts.append(int(r))
        return list(itertools.pairwise([*starts, m]))

    def read_rows(self, r0, r1):
        """Rows ``r0:r1`` of ``A`` (all columns, storage order) as an ndarray."""
        try:
            return np.asarray(self.data[r0:r1].compute(scheduler="threads"))
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise _read_error(self.name, exc) from exc

    def _read_direct(self, cols):
        try:
            return np.asarray(self.data[:, cols].compute(scheduler="threads"))
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise _read_error(self.name, exc) from exc

    def panels(self, c1, c2):
        """Column-class ranges ``(p0, p1)`` of the panels of a root split."""
        M = self.padded_shape[0]
        per_class = M * c2 * self.dtype.itemsize
        # A panel lives about four times during its solve (read, working copy,
        # the solver's block stack, its factors).
        width = int(max(1, min(c1, self.memory_budget // (4 * per_class))))
        return [(p0, min(p0 + width, c1)) for p0 in range(0, c1, width)]

    def read_amplification(self, panels, c2):
        """Bytes of stored chunks read by direct panel reads over the matrix's."""
        n = self.shape[1]
        bounds = _chunk_offsets(self.data.chunks)[1]
        total = 0
        for p0, p1 in panels:
            cols = self.storage_columns(p0 * c2, p1 * c2)
            if cols is None:
                continue
            idx = np.arange(n)[cols]
            touched = np.unique(np.searchsorted(bounds, idx, side="right") - 1)
            total += int(np.sum(bounds[touched + 1] - bounds[touched]))
        return total / n

    def root_split(self, b2, c1, rank, *, orthonormalize, solver, n_jobs, random_state):
        """Rank-``rank`` split of ``W``, panel by panel (see the module docstring)."""
        M, N = self.padded_shape
        b1, c2 = M // b2, N // c1
        panels = self.panels(c1, c2)
        rng = random_state if random_state is not None else np.random.RandomState(0)
        draw = getattr(rng, "integers", None) or rng.randint
        seed = int(draw(0, 2**31 - 1))
        solve = {
            "b2": b2,
            "rank": rank,
            "orthonormalize": orthonormalize,
            "solver": solver,
            "n_jobs": n_jobs,
            "seed": seed,
        }
        client = active_client()
        direct = self.read_amplification(panels, c2) <= _MAX_READ_AMPLIFICATION
        if client is not None:
            self.last_plan = "distributed " + ("direct" if direct else "rechunk")
            results = self._split_distributed(client, panels, c2, solve, direct)
        else:
            self.last_plan = "direct" if direct else "panel files"
            results = self._split_local(panels, c2, solve, direct)
        dtype = results[0][0].dtype
        left = np.empty((1, b2, b1, c1 * rank), dtype=dtype)
        right = np.empty((c1, 1, rank * b2, c2), dtype=dtype)
        for (p0, p1), (lp, rp) in zip(panels, results):
            left[..., p0 * rank : p1 * rank] = lp
            right[p0:p1] = rp
        return left, right

    def _panel_args(self, p0, p1, c2):
        return {
            "row_perm": self.row_perm,
            "shape": (self.padded_shape[0], (p1 - p0) * c2),
            "exponent": self.exponent,
            "p0": p0,
            "width": p1 - p0,
            "dtype": self.dtype,
        }

    def _split_local(self, panels, c2, solve, direct):
        if direct:
            read = self._read_direct
            keys = [self.storage_columns(p0 * c2, p1 * c2) for p0, p1 in panels]
        else:
            split = (solve["b2"], self.padded_shape[1] // c2, self.padded_shape)
            spill = self._shared.spill
            if (
                spill is None
                or (spill.key, spill.split) != ((panels, c2), split)
                or not _same_perm(spill.col_perm, self.col_perm)
            ):
                self._shared.drop_spill()
                spill = PanelFiles(self, panels, c2, split)
                self._shared.spill = spill
                if self._shared.stats is None:
                    self._shared.stats = (spill.top, spill.norm)
            read = spill.read
            keys = [p0 for p0, _ in panels if p0 in spill.widths]
        # The next panel is read while this one is solved.
        results = []
        with closing(read_ahead(read, [k for k in keys if k is not None])) as reads:
            for p0, p1 in panels:
                if p0 * c2 >= self.shape[1]:
                    block = None  # all padding
                else:
                    block = next(reads)
                args = self._panel_args(p0, p1, c2)
                results.append(solve_panel(block, **args, **solve))
                del block
        return results

    def _split_distributed(self, client, panels, c2, solve, direct):
        import dask

        blocks = {}
        if not direct:
            # Row chunks hold no whole panel: dask's peer-to-peer rechunk moves
            # every chunk once, worker to worker, into one chunk per panel.
            n = self.shape[1]
            cols = slice(None) if self.col_perm is None else self.col_perm
            starts = [p0 for p0, _ in panels if p0 * c2 < n]
            widths = [min(p1 * c2, n) - p0 * c2 for p0, p1 in panels if p0 * c2 < n]
            W = self.data[:, cols].rechunk(
                {0: self.shape[0], 1: tuple(widths)}, method="p2p"
            )
            blocks = dict(zip(starts, W.to_delayed()[0]))
        tasks = []
        for p0, p1 in panels:
            cols = self.storage_columns(p0 * c2, p1 * c2)
            # The panel's columns stay in the dask graph: the worker running
            # the task gets its chunks from the store or other workers, never
            # from the client.
            if cols is None:
                block = None
            else:
                block = self.data[:, cols] if direct else blocks[p0]
            tasks.append(
                dask.delayed(solve_panel, pure=False)(
                    block, **self._panel_args(p0, p1, c2), **solve
                )
            )
        try:
            return list(client.gather(client.compute(tasks)))
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise _read_error(self.name, exc) from exc

    def relative_error(self, op):
        """``||A - op||_F / ||A||_F``.

        From the panel files of the fit when they were cut for ``op``'s
        column permutation and root split (they are deleted afterwards),
        otherwise by one pass over the chunks of ``A``.
        """
        # Sums of squares of A / 2**e, e the exponent of max|A|: no overflow.
        exponent = int(np.frexp(self.top)[1]) if self.top > 0 else 0
        spill, self._shared.spill = self._shared.spill, None
        parts = None
        if spill is not None:
            try:
                if _same_perm(spill.col_perm, op.col_perm):
                    parts = panel_files_error(spill, op, self.shape[0], exponent)
            finally:
                spill.cleanup()
        if parts is None:
            self.last_error_plan = "store"
            err2, norm2 = self._store_error(op, exponent)
        else:
            self.last_error_plan = "panel files"
            err2, norm2 = parts
        if norm2 == 0:
            return 0.0 if err2 == 0 else float("inf")
        return float(np.sqrt(err2 / norm2))

    def _store_error(self, op, exponent):
        """``(||A - op||^2, ||A||^2)`` on ``A / 2**exponent``, chunk by chunk."""
        dask, _ = _import_dask()
        # Built once (on a worker when a client is active), shared by the chunks.
        rows_of = dask.delayed(RowsOf)(op)
        itemsize = max(self.dtype.itemsize, np.dtype(op.dtype).itemsize)
        width = max(self.data.chunks[1])
        # Rows of a chunk compared at once: their A_hat and difference take
        # about a 32nd of the budget.
        sub = max(16, self.memory_budget // (32 * 3 * width * itemsize))
        shape = self.data.numblocks
        parts = self.data.map_blocks(
            chunk_error,
            rows_of,
            sub=sub,
            exponent=exponent,
            chunks=((1,) * shape[0], (2,) * shape[1]),
            dtype=float,
            meta=np.empty((0, 0)),
        )
        try:
            return np.asarray(parts.compute()).reshape(-1, 2).sum(axis=0)
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise _read_error(self.name, exc) from exc
