"""Validation of the matrices given to the factorization."""

# SPDX-License-Identifier: BSD-3-Clause

import math
import os
from numbers import Integral

import numpy as np
import scipy.sparse as sp

__all__ = ["available_memory", "check_finite", "check_int", "check_matrix", "max_abs"]

_SUPPORTED_DTYPES = (np.float32, np.float64, np.complex64, np.complex128)


def available_memory():
    """Bytes of memory available to a new allocation, or None when unknown.

    Linux's ``MemAvailable`` (memory that can be had without swapping), else
    the free physical pages reported by ``sysconf``.
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _format_bytes(n):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return None  # pragma: no cover


def _densify(A, name):
    """Dense ndarray of a scipy sparse matrix, or a clear error if it cannot fit."""
    m, n = A.shape
    itemsize = np.dtype(A.dtype).itemsize
    needed = m * n * itemsize
    available = available_memory()
    if available is not None and needed > available:
        raise ValueError(
            f"{name} is a scipy sparse matrix of shape {A.shape} whose dense form "
            f"needs {_format_bytes(needed)}, more than the {_format_bytes(available)} "
            "of memory available. The butterfly factorization reads every entry "
            "of the matrix: give a dense array (np.memmap works) or a smaller "
            "matrix."
        )
    return A.toarray()


def _from_frame(A):
    """``A.to_numpy()`` for pandas-like frames whose columns are all numeric.

    Frames holding pandas nullable dtypes (``Int64``, ``Float64``, ``boolean``)
    convert to an object array with ``np.asarray``; they become float64 (or
    complex128) here, missing values becoming NaN (reported by the finiteness
    check). Returns None when the frame is not all-numeric.
    """
    dtypes = A.dtypes
    if not hasattr(dtypes, "__iter__"):  # a Series: one dtype
        dtypes = [dtypes]
    kinds = [getattr(dtype, "kind", "O") for dtype in dtypes]
    if not kinds or any(k not in "biufc" for k in kinds):
        return None
    dtype = np.complex128 if "c" in kinds else np.float64
    try:
        return A.to_numpy(dtype=dtype, na_value=np.nan)
    except (TypeError, ValueError):
        return None


def check_int(value, name, low=1):
    """``value`` as an ``int``: an integer ``>= low`` (not a bool), else an error."""
    if not isinstance(value, Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name}={value!r} must be an integer >= {low}.")
    return int(value)


def check_matrix(A, name="A", *, finite=True):
    """Validate a matrix to factorize and return it as a supported ndarray.

    This is the one validator of every front door (the function, the estimator and
    the command line). Integers and booleans become float64, float16 becomes
    float32, other float and complex types become float64 or complex128, object
    arrays holding only numbers become float64 (complex128 if one is complex); NaN,
    inf, empty arrays, arrays that are not 2-D, masked arrays with masked entries,
    strings (numeric or not, in string or object arrays), datetimes, timedeltas and
    structured dtypes raise. Sparse input is densified (a ``ValueError`` is raised
    when its dense form would not fit in the available memory); pandas frames with
    nullable numeric columns become float64 or complex128. The result is
    C-contiguous and in the machine's byte order: C-ordered arrays of a supported
    dtype, memory maps included, are returned as views without a copy;
    Fortran-ordered, strided and byte-swapped arrays are copied once.
    ``finite=False`` leaves the NaN/inf check (one pass over the matrix) to the
    caller.
    """
    if (
        type(A) is np.ndarray
        and A.ndim == 2
        and A.dtype.type in _SUPPORTED_DTYPES
        and A.flags.c_contiguous
        and A.dtype.isnative
        and A.size
    ):
        # The common case (a transform's batch): nothing to convert.
        if finite:
            check_finite(A, name=name)
        return A
    if sp.issparse(A):
        A = _densify(A, name)
    elif np.ma.isMaskedArray(A):
        if np.ma.is_masked(A):
            raise ValueError(
                f"{name} is a masked array with masked entries; fill them first "
                f"(e.g. {name}.filled(0))."
            )
        A = np.asarray(A.data)
    elif hasattr(A, "__array__") or isinstance(A, (list, tuple)):
        try:
            converted = np.asarray(A)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name} cannot be converted to an array: {exc}") from None
        if converted.dtype.kind == "O" and hasattr(A, "dtypes"):
            frame = _from_frame(A)
            if frame is not None:
                converted = frame
        A = converted
        if A.dtype.kind == "O":
            A = _from_objects(A, name)
    else:
        raise TypeError(
            f"{name} must be an array-like or a scipy sparse matrix, got "
            f"{type(A).__name__}."
        )
    if A.dtype.kind not in "biufc":
        raise TypeError(
            f"{name} must have a numeric dtype (bool, integer, float or complex), "
            f"got dtype {A.dtype}."
        )
    if A.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array, got {A.ndim}-D with shape {A.shape}."
            + (
                f" Reshape your data: {name}.reshape(-1, 1) for one column, "
                f"{name}.reshape(1, -1) for one row."
                if A.ndim == 1
                else ""
            )
        )
    if 0 in A.shape:
        what = "sample(s)" if A.shape[0] == 0 else "feature(s)"
        raise ValueError(
            f"{name} must be non-empty, got 0 {what} (shape={A.shape}) while a "
            "minimum of 1 is required."
        )
    if A.dtype.kind in "biu":
        A = A.astype(np.float64, order="C")
    elif A.dtype == np.float16:
        A = A.astype(np.float32, order="C")
    elif A.dtype.type not in _SUPPORTED_DTYPES:
        A = A.astype(np.complex128 if A.dtype.kind == "c" else np.float64, order="C")
    elif not A.dtype.isnative:
        # The solvers view complex data as pairs of native reals: swap once.
        A = A.astype(A.dtype.newbyteorder("="), order="C")
    elif not A.flags.c_contiguous:
        # Fortran-ordered and strided views: the factorization reads blocks as
        # strided views of A, whose rounding depends on the memory layout; one
        # C copy makes the result identical to that of a C array (and is
        # faster than reading a Fortran array through those views).
        A = np.ascontiguousarray(A)
    if finite:
        check_finite(A, name=name)
    return A


def _from_objects(A, name):
    """An object array of numbers as float64 or complex128; other objects raise.

    Numbers (Python or numpy scalars, bools) are converted, None becomes NaN
    (which the finiteness check then names); strings are refused as in string
    arrays, although ``float("1")`` would accept them.
    """
    is_text = np.frompyfunc(lambda v: isinstance(v, (str, bytes)), 1, 1)
    if A.size and np.any(np.asarray(is_text(A), dtype=bool)):
        raise TypeError(
            f"{name} must have a numeric dtype (bool, integer, float or complex), "
            "got an object array holding strings; convert them to numbers first."
        )
    try:
        return A.astype(np.float64)
    except (TypeError, ValueError) as exc:
        first = exc
    try:
        return A.astype(np.complex128)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} is an object array whose entries are not all numbers: {first}"
        ) from None


# Entries up to which BLAS runs a dot product on the calling thread (OpenBLAS
# threads dots above 10000): a threaded dot leaves BLAS threads spinning,
# which slowed the product threads of the transform that follows by up to 2x.
_BLAS_DOT_SERIAL = 8192


def check_finite(A, name="A"):
    """Raise a ``ValueError`` naming the first NaN or infinite entry of ``A``.

    ``A`` is a numeric ndarray or a scipy sparse matrix (only its stored
    entries are checked). Finite input costs reductions on views, no copy.
    """
    if sp.issparse(A):
        if A.format in ("csr", "csc", "coo", "bsr"):
            # Their ``data`` holds exactly the stored entries.
            values = A.data
            if values.size == 0 or np.isfinite(max_abs(values)):
                return
        coo = sp.coo_array(A)
        values = coo.data
        if values.size == 0 or np.isfinite(max_abs(values)):
            return
        # First bad entry in row-major order, whatever the storage order.
        bad_entries = np.flatnonzero(~np.isfinite(values))
        rows, cols = coo.coords[0][bad_entries], coo.coords[1][bad_entries]
        first = np.lexsort((cols, rows))[0]
        bad = (int(rows[first]), int(cols[first]))
        value = values[bad_entries[first]]
    else:
        if A.size <= _BLAS_DOT_SERIAL and (
            A.flags.c_contiguous or A.flags.f_contiguous
        ):
            # sum |a|^2 (one BLAS dot, no temporary, 2x faster than max_abs
            # on a transform's batch) is finite only if every entry is: an
            # infinite sum means a bad entry or squares beyond the range,
            # told apart below.
            v = A.ravel(order="K")
            if math.isfinite(np.vdot(v, v).real):
                return
        if np.isfinite(max_abs(A)):
            return
        # Only reached for bad input: the boolean mask costs one pass.
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(A))[0])
        value = A[bad]
    where = f" (row {bad[0]}, column {bad[1]})" if len(bad) == 2 else ""
    raise ValueError(
        f"{name} contains NaN or infinity; the first is at index {bad}{where}: "
        f"{value.item()!r}."
    )


def max_abs(A):
    """``max(|Re A|, |Im A|)`` by reductions on views (no temporary array).

    NaN and infinity propagate (NaN wins, in the real or the imaginary part),
    so this is also a finiteness check.
    """
    if A.dtype.kind == "c" and A.flags.c_contiguous:
        A = A.view(A.real.dtype)  # real and imaginary parts side by side
    parts = (A.real, A.imag) if A.dtype.kind == "c" else (A,)
    extremes = []
    for p in parts:
        extremes.extend((float(p.max()), -float(p.min())))
    # np.max propagates NaN; Python's max would depend on the order.
    return float(np.max(extremes))
