"""The fitted butterfly operator: compact factors behind a scipy LinearOperator."""

# SPDX-License-Identifier: BSD-3-Clause

import hashlib
import threading
import zipfile
import zlib

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from skbutterfly._chain import chain_n_params, chain_shape, validate_chain
from skbutterfly._fusion import (
    fuse_twiddles,
    fusion_plan,
    is_chainable,
    plan_bucket,
    product_plan,
)
from skbutterfly._products import (
    apply_fused,
    buffer,
    expand_rows_into,
    run_blocks,
    transpose_into,
)
from skbutterfly._twiddle import twiddle_to_dense, twiddle_to_sparse

__all__ = ["ButterflyOperator"]

FORMAT_NAME = "skbutterfly.ButterflyOperator"
# What a damaged .npz can raise while it is opened or read.
_READ_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
)
# Version 2 adds the number of factors and a SHA-256 checksum of every other
# entry; version 1 files (0.1) are still read, with the structural checks only.
FORMAT_VERSION = 2

# Columns per chunk when a dense form is built by applying the operator.
_DENSE_CHUNK = 512


def _check_permutation(perm, size, name):
    if perm is None:
        return None
    perm = np.asarray(perm)
    if perm.ndim != 1 or perm.shape[0] != size or perm.dtype.kind not in "iu":
        raise ValueError(
            f"{name} must be a 1-D integer array of length {size}, got shape "
            f"{perm.shape} and dtype {perm.dtype}."
        )
    if not np.array_equal(np.sort(perm), np.arange(size)):
        raise ValueError(f"{name} must be a permutation of range({size}).")
    if np.array_equal(perm, np.arange(size)):
        return None
    return perm.astype(np.intp, copy=False)


class ButterflyOperator(LinearOperator):
    """A product of sparse butterfly factors, as a scipy ``LinearOperator``.

    The operator is ``A_hat = P_r^T F_1 F_2 ... F_L P_c`` cropped to ``shape``: the
    factors ``F_l`` are Kronecker-sparse (pattern ``(a, b, c, d)``, support
    ``I_a (x) 1_{b x c} (x) I_d``) and stored compactly as twiddles of shape
    ``(a, d, b, c)``; ``P_c`` and ``P_r`` are optional column and row permutations.
    When the chain is larger than ``shape`` (zero padding), inputs are padded with
    zeros and outputs cropped. Products run as batched small matrix products on
    the compact layout and never form a dense matrix.

    Parameters
    ----------
    twiddles : sequence of ndarray
        One array of shape ``(a, d, b, c)`` per factor, leftmost factor first.
    shape : tuple of int, default=None
        ``(m, n)`` of the operator; None means the shape of the chain.
    col_perm : array-like of int, default=None
        Column permutation: ``A_hat @ x = P_r^T B @ x[col_perm]``. None is the
        identity.
    row_perm : array-like of int, default=None
        Row permutation: the output ``y`` of the butterfly ``B`` is placed as
        ``out[row_perm] = y``. None is the identity.

    Attributes
    ----------
    twiddles : list of ndarray
        The compact factors.
    chain : tuple of tuple of int
        The patterns ``(a, b, c, d)`` of the factors.
    factors : list of scipy.sparse.csr_array
        The factors as sparse arrays (of the padded size).
    n_params : int
        Number of stored nonzeros.
    col_perm, row_perm : ndarray or None
        The permutations.
    padded_shape : tuple of int
        Shape of the product of the factors.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import butterfly_factorize
    >>> from skbutterfly.datasets import hadamard_matrix
    >>> H = hadamard_matrix(8)
    >>> op = butterfly_factorize(H)
    >>> op.chain
    ((1, 2, 2, 4), (2, 2, 2, 2), (4, 2, 2, 1))
    >>> bool(np.allclose(op @ np.ones(8), H @ np.ones(8)))
    True
    """

    def __init__(self, twiddles, shape=None, *, col_perm=None, row_perm=None):
        twiddles = [np.asarray(t) for t in twiddles]
        if not twiddles or any(t.ndim != 4 for t in twiddles):
            raise ValueError("twiddles must be a non-empty list of 4-D arrays.")
        chain = validate_chain(
            [(t.shape[0], t.shape[2], t.shape[3], t.shape[1]) for t in twiddles]
        )
        dtype = np.result_type(*twiddles)
        padded = chain_shape(chain)
        if shape is None:
            shape = padded
        shape = tuple(int(s) for s in shape)
        if len(shape) != 2 or not (
            1 <= shape[0] <= padded[0] and 1 <= shape[1] <= padded[1]
        ):
            raise ValueError(
                f"shape={shape} must be 2 positive sizes no larger than the chain's "
                f"shape {padded}."
            )
        self.twiddles = [np.ascontiguousarray(t, dtype=dtype) for t in twiddles]
        self.chain = chain
        self.padded_shape = padded
        self.col_perm = _check_permutation(col_perm, shape[1], "col_perm")
        self.row_perm = _check_permutation(row_perm, shape[0], "row_perm")
        self._init_plans()
        super().__init__(dtype, shape)

    def _init_plans(self, source=None):
        self._plans = {}
        self._plans_lock = threading.Lock()
        # (operator, conjugate) whose fused factors this one transposes.
        self._source = source
        # The adjoint and the transpose, built once (scipy rebuilds them per
        # call; iterative solvers call rmatvec on every iteration).
        self._transposes = {}

    def __getstate__(self):
        state = self.__dict__.copy()
        for key in ("_plans", "_plans_lock", "_source", "_transposes"):
            del state[key]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init_plans()

    def _fused(self, k):
        """Fused twiddles for products on ``k`` vectors (cached per bucket)."""
        bucket = plan_bucket(k)
        fused = self._plans.get(bucket)
        if fused is None:
            if self._source is not None:
                # A transpose's chain is not chainable left to right: transpose
                # the fused factors of the operator it comes from instead.
                source, conjugate = self._source
                fused = [
                    np.ascontiguousarray(
                        np.swapaxes(T.conj() if conjugate else T, -1, -2)
                    )
                    for T in reversed(source._fused(k))
                ]
            else:
                plan = fusion_plan(self.chain, bucket, np.dtype(self.dtype).itemsize)
                fused = [
                    fuse_twiddles(self.twiddles, self.chain, s, e) for s, e in plan
                ]
            with self._plans_lock:
                fused = self._plans.setdefault(bucket, fused)
        return fused

    # -- structure -------------------------------------------------------------
    @property
    def n_params(self):
        """Number of stored nonzeros of the factors."""
        return chain_n_params(self.chain)

    @property
    def depth(self):
        """Number of factors."""
        return len(self.chain)

    @property
    def factors(self):
        """The factors as ``scipy.sparse.csr_array`` (padded size)."""
        return [twiddle_to_sparse(t) for t in self.twiddles]

    def __repr__(self):
        m, n = self.shape
        return (
            f"<{m}x{n} ButterflyOperator with dtype={self.dtype}, depth={self.depth}, "
            f"n_params={self.n_params}>"
        )

    # -- products ----------------------------------------------------------------
    def _product_plan(self, k):
        """``(dense, width)`` for products on ``k`` vectors (see :mod:`._fusion`)."""
        if self._source is not None:
            # A transpose runs the transposed plan of its source.
            return self._source[0]._product_plan(k)
        return product_plan(self.chain, k, np.dtype(self.dtype).itemsize)

    def _dense_form(self):
        """The dense ``(m, n)`` matrix, permutations applied (cached)."""
        dense = self._plans.get("dense")
        if dense is None:
            dense = self.toarray()
            with self._plans_lock:
                dense = self._plans.setdefault("dense", dense)
        return dense

    def _apply(self, X):
        """``A_hat @ X`` for ``X`` of shape ``(n, k)``."""
        k = X.shape[1]
        dtype = np.result_type(self.dtype, X.dtype)
        dense, width = self._product_plan(k)
        if dense:
            D = self._dense_form()
            # Exactly the dense product a user would run (same BLAS threads).
            return np.asarray(D @ X, dtype=dtype)
        out = np.empty((self.shape[0], k), dtype=dtype)
        self._run(X, out, width, rows=False)
        return out

    def _apply_rows(self, X):
        """``X @ A_hat.T`` for ``X`` of shape ``(s, n)``, with a C-contiguous result.

        The transform of row-major data: blocks of rows are transposed in
        cache, never the whole of ``X`` or of the result.
        """
        k = X.shape[0]
        dtype = np.result_type(self.dtype, X.dtype)
        dense, width = self._product_plan(k)
        if dense:
            D = self._dense_form()
            return np.ascontiguousarray(X @ D.T, dtype=dtype)
        out = np.empty((k, self.shape[0]), dtype=dtype)
        self._run(X, out, width, rows=True)
        return out

    def _run(self, X, out, width, rows):
        """Products of the blocks of ``width`` vectors of ``X`` into ``out``."""
        m, n = self.shape
        pn = self.padded_shape[1]
        dtype = out.dtype
        k = out.shape[0] if rows else out.shape[1]
        fused = self._fused(width)
        cols, inv_rows = self.col_perm, self._inverse_row_perm()

        def block(start, stop, buffers):
            w = stop - start
            Xb = buffer(buffers, "in", (pn, w), dtype)
            src = X[:, start:stop]
            if cols is None:
                Xb[:n] = src
            elif src.dtype == dtype:
                np.take(src, cols, axis=0, out=Xb[:n], mode="clip")
            else:
                Xb[:n] = np.take(src, cols, axis=0)
            if pn != n:
                Xb[n:] = 0
            Y = apply_fused(fused, Xb, buffers, dtype)[:m]
            if inv_rows is not None:
                # Scatter into the result (out[row_perm] = Y): no gathered copy.
                out[self.row_perm, start:stop] = Y
            else:
                out[:, start:stop] = Y

        # A leftmost factor of one column per block (the expansion of a tall
        # matrix) is applied while the result is transposed: one pass over it.
        expands = (
            len(fused) > 1
            and fused[0].shape[3] == 1
            and inv_rows is None
            and m == self.padded_shape[0]
        )

        def rows_block(start, stop, buffers):
            # Blocks of row-major data are transposed in cache (transpose_into
            # reads whole rows), after the column permutation is gathered
            # along the rows.
            w = stop - start
            src = X[start:stop]
            if cols is not None:
                R = buffer(buffers, "rows", (w, n), dtype)
                if src.dtype == dtype:
                    np.take(src, cols, axis=1, out=R, mode="clip")
                else:
                    R[:] = np.take(src, cols, axis=1)
                src = R
            Xb = buffer(buffers, "in", (pn, w), dtype)
            transpose_into(Xb[:n], src)
            if pn != n:
                Xb[n:] = 0
            if expands:
                Z = apply_fused(fused[1:], Xb, buffers, dtype)
                expand_rows_into(out[start:stop], fused[0], Z)
                return
            Y = apply_fused(fused, Xb, buffers, dtype)[:m]
            if inv_rows is not None:
                P = buffer(buffers, "out", (m, w), dtype)
                np.take(Y, inv_rows, axis=0, out=P, mode="clip")
                Y = P
            out[start:stop] = Y.T

        macs = chain_n_params(self.chain) * k
        run_blocks(k, width, macs, rows_block if rows else block)

    def _inverse_row_perm(self):
        """``argsort(row_perm)``: ``out = B[inverse]`` places ``out[row_perm] = B``."""
        if self.row_perm is None:
            return None
        inverse = self._plans.get("inverse_rows")
        if inverse is None:
            inverse = np.argsort(self.row_perm)
            with self._plans_lock:
                inverse = self._plans.setdefault("inverse_rows", inverse)
        return inverse

    def _matmat(self, X):
        return self._apply(np.asarray(X))

    def _matvec(self, x):
        x = np.asarray(x)
        return self._apply(x.reshape(-1, 1)).reshape(-1)

    def _adjoint(self):
        return self._transposed(conjugate=True)

    def _transpose(self):
        return self._transposed(conjugate=False)

    def _rmatvec(self, x):
        return self._adjoint().matvec(x)

    def _rmatmat(self, X):
        return self._adjoint().matmat(X)

    def _transposed(self, conjugate):
        """The (conjugate) transpose, built on first use and kept."""
        op = self._transposes.get(conjugate)
        if op is None:
            if self._source is not None and self._source[1] == conjugate:
                op = self._source[0]  # (A^H)^H is A itself
            else:
                op = self._build_transposed(conjugate)
            with self._plans_lock:
                op = self._transposes.setdefault(conjugate, op)
        return op

    def _build_transposed(self, conjugate):
        twiddles = [np.swapaxes(t, -1, -2) for t in reversed(self.twiddles)]
        if conjugate:
            twiddles = [t.conj() for t in twiddles]
        op = ButterflyOperator.__new__(ButterflyOperator)
        op.twiddles = [np.ascontiguousarray(t) for t in twiddles]
        op.chain = tuple((a, c, b, d) for a, b, c, d in reversed(self.chain))
        op.padded_shape = self.padded_shape[::-1]
        op.col_perm, op.row_perm = self.row_perm, self.col_perm
        op._init_plans(source=(self, conjugate))
        LinearOperator.__init__(op, self.dtype, self.shape[::-1])
        return op

    # -- conversions -------------------------------------------------------------
    def toarray(self):
        """Dense ``ndarray`` of the operator (built by applying it to the identity).

        Returns
        -------
        A_hat : ndarray of shape (m, n)
            The approximation, permutations applied and padding cropped.
        """
        m, n = self.shape
        if self._source is not None:
            source, conjugate = self._source
            dense = source.toarray().T
            return np.ascontiguousarray(dense.conj() if conjugate else dense)
        if not is_chainable(self.chain):
            # Not mergeable left to right (e.g. an unpickled transpose).
            out = np.empty((m, n), dtype=self.dtype)
            for start in range(0, n, _DENSE_CHUNK):
                stop = min(start + _DENSE_CHUNK, n)
                eye = np.zeros((n, stop - start), dtype=self.dtype)
                eye[np.arange(start, stop), np.arange(stop - start)] = 1
                out[:, start:stop] = self._apply(eye)
            return out
        # Merge all factors into one twiddle, then crop and permute.
        full = twiddle_to_dense(
            fuse_twiddles(self.twiddles, self.chain, 0, self.depth - 1)
        )
        dense = full[:m, :n]
        # A_hat[rows[i], cols[j]] = B[i, j]: gather with the inverse permutations
        # (np.take is much faster than a fancy-indexed scatter).
        if self.row_perm is not None:
            dense = np.take(dense, np.argsort(self.row_perm), axis=0)
        if self.col_perm is not None:
            dense = np.take(dense, np.argsort(self.col_perm), axis=1)
        return np.ascontiguousarray(dense)

    def tosparse(self, format="csr"):
        """The operator as one ``scipy.sparse`` array (product of the factors).

        Parameters
        ----------
        format : str, default="csr"
            Any scipy sparse format name.

        Returns
        -------
        A_hat : scipy.sparse array of shape (m, n)
            The approximation, permutations applied and padding cropped.
        """
        prod = self.factors[0]
        for f in self.factors[1:]:
            prod = prod @ f
        m, n = self.shape
        prod = sp.csr_array(prod)[:m][:, :n]
        if self.col_perm is not None:
            inverse = np.empty_like(self.col_perm)
            inverse[self.col_perm] = np.arange(n)
            prod = prod[:, inverse]
        if self.row_perm is not None:
            inverse = np.empty_like(self.row_perm)
            inverse[self.row_perm] = np.arange(m)
            prod = prod[inverse]
        return prod.asformat(format)

    # -- persistence -------------------------------------------------------------
    def save(self, file):
        """Save to an ``.npz`` file (plain arrays, no pickle).

        The file (format version 2) holds the shape, the chain, its number of
        factors, one twiddle per factor, the permutations, and a SHA-256
        checksum of all of them, which :meth:`load` verifies.

        Parameters
        ----------
        file : str, path-like or file-like
            Destination.
        """
        arrays = {
            "format": np.array(FORMAT_NAME),
            "format_version": np.array(FORMAT_VERSION),
            "shape": np.array(self.shape, dtype=np.int64),
            "chain": np.array(self.chain, dtype=np.int64),
            "n_factors": np.array(len(self.twiddles), dtype=np.int64),
            "dtype": np.array(np.dtype(self.dtype).str),
        }
        for i, t in enumerate(self.twiddles):
            arrays[f"twiddle_{i}"] = t
        if self.col_perm is not None:
            arrays["col_perm"] = self.col_perm.astype(np.int64)
        if self.row_perm is not None:
            arrays["row_perm"] = self.row_perm.astype(np.int64)
        arrays["checksum"] = np.array(_payload_digest(arrays))
        np.savez_compressed(file, **arrays)

    @classmethod
    def load(cls, file):
        """Load an operator saved by :meth:`save`: the whole file or an error.

        A file of format version 2 is verified against its SHA-256 checksum
        and its stored number of factors; a version 1 file (skbutterfly 0.1,
        no checksum) is accepted when its entries are consistent: exactly one
        twiddle per pattern of its chain, of the chain's shapes, and no other
        entry. Save it again to upgrade it.

        Parameters
        ----------
        file : str, path-like or file-like
            Source ``.npz`` file.

        Returns
        -------
        op : ButterflyOperator

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        ValueError
            If the file is not a whole, readable skbutterfly operator file; the
            message names the file and the reason.
        """
        try:
            data = np.load(file, allow_pickle=False)
        except FileNotFoundError:
            raise
        except _READ_ERRORS as exc:
            raise ValueError(
                f"cannot read {file!s} as an .npz file: {_why(exc)}"
            ) from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{file!s} is a single array, not an operator .npz file.")
        try:
            with data:
                contents = {key: data[key] for key in data.files}
        except _READ_ERRORS as exc:
            raise ValueError(
                f"cannot read {file!s} as an .npz file: {_why(exc)}"
            ) from None
        fmt = contents.get("format")
        if fmt is None or fmt.shape != () or str(fmt) != FORMAT_NAME:
            raise ValueError(f"{file!s} is not a skbutterfly operator file.")
        version = _format_version(contents, file)
        try:
            chain = _verified_chain(contents, version)
            twiddles = [contents[f"twiddle_{i}"] for i in range(len(chain))]
            op = cls(
                twiddles,
                tuple(int(s) for s in contents["shape"]),
                col_perm=contents.get("col_perm"),
                row_perm=contents.get("row_perm"),
            )
            if op.chain != tuple(chain):
                raise ValueError("the twiddles do not have the shapes of the chain")
            stored = contents.get("dtype")
            if stored is not None and str(stored) != np.dtype(op.dtype).str:
                raise ValueError(
                    f"the stored dtype {str(stored)!r} is not the twiddles' "
                    f"{np.dtype(op.dtype).str!r}"
                )
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise ValueError(
                f"{file!s} is a corrupted operator file: {_why(exc)}"
            ) from None
        return op


# Entries of an operator file other than the twiddles.
_FILE_ENTRIES = {
    "format",
    "format_version",
    "shape",
    "chain",
    "n_factors",
    "dtype",
    "col_perm",
    "row_perm",
    "checksum",
}


def _payload_digest(arrays):
    """SHA-256 (hex) of every entry but the checksum: names, dtypes, shapes, bytes."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        if key == "checksum":
            continue
        value = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}\0{value.dtype.str}\0{value.shape}\0".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _format_version(contents, file):
    version = contents.get("format_version")
    if (
        version is None
        or version.shape != ()
        or version.dtype.kind not in "iu"
        or int(version) < 1
    ):
        raise ValueError(f"{file!s} has no valid format version (an integer >= 1).")
    version = int(version)
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{file!s} has format version {version}; this skbutterfly reads "
            f"versions up to {FORMAT_VERSION}."
        )
    return version


def _verified_chain(contents, version):
    """The chain of a file whose entries are whole and consistent, else an error."""
    if version >= 2:
        checksum = contents.get("checksum")
        if checksum is None or checksum.shape != () or checksum.dtype.kind != "U":
            raise ValueError("its checksum is missing")
        if str(checksum) != _payload_digest(contents):
            raise ValueError(
                "its SHA-256 checksum does not match its contents (the file was "
                "damaged or changed after it was saved)"
            )
    chain = contents["chain"]
    if chain.ndim != 2 or chain.shape[1] != 4 or chain.dtype.kind not in "iu":
        raise ValueError(f"the chain must be an (L, 4) integer array, got {chain!r}")
    chain = [tuple(int(v) for v in p) for p in chain]
    if version >= 2:
        n_factors = contents.get("n_factors")
        if n_factors is None or n_factors.shape != () or n_factors.dtype.kind != "i":
            raise ValueError("its number of factors is missing")
        if int(n_factors) != len(chain):
            raise ValueError(
                f"it stores {int(n_factors)} factors but its chain lists {len(chain)}"
            )
    twiddles = {key for key in contents if key.startswith("twiddle_")}
    expected = {f"twiddle_{i}" for i in range(len(chain))}
    if len(twiddles) != len(chain):
        raise ValueError(
            f"it holds {len(twiddles)} twiddles but its chain lists "
            f"{len(chain)} factors"
        )
    if twiddles != expected:
        raise ValueError(f"its twiddles {sorted(twiddles)} are not numbered 0..L-1")
    unknown = set(contents) - _FILE_ENTRIES - twiddles
    if unknown:
        raise ValueError(f"it has unexpected entries {sorted(unknown)}")
    for key in sorted(twiddles):
        twiddle = contents[key]
        if twiddle.dtype.kind not in "fc":
            raise ValueError(f"{key} is not a float or complex array")
        if not np.isfinite(twiddle).all():
            raise ValueError(f"{key} contains NaN or infinity")
    return chain


def _why(exc):
    """The message of ``exc``, never empty (some read errors carry none)."""
    text = str(exc).strip().rstrip(":").strip()
    if isinstance(exc, KeyError) and exc.args:
        return f"the entry {exc.args[0]!r} is missing"
    if text:
        return text
    if isinstance(exc, EOFError):
        return "the data ends early (the file is truncated)"
    return f"{type(exc).__name__} without a message (the file is damaged)"
