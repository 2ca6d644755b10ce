"""ButterflyApproximator and butterfly_factorize: one rule table, one core.

The estimator's ``_parameter_constraints`` is the only statement of the
parameter rules; :func:`butterfly_factorize` builds the estimator and calls the
same private ``_factorize`` (scikit-learn's ``non_negative_factorization`` and
``NMF`` are the model), and so does the command line.
"""

# SPDX-License-Identifier: BSD-3-Clause

import os
from numbers import Integral

import numpy as np
from joblib import Memory
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    StrOptions,
    validate_params,
)
from sklearn.utils.validation import check_is_fitted, validate_data

from skbutterfly._cache import SplitCache, resolve_memory
from skbutterfly._chunked import is_chunked
from skbutterfly._factorize import (
    SVD_SOLVERS,
    factorize_core,
    frobenius_norm,
    relative_error,
    scaled,
)
from skbutterfly._hierarchical import TREES
from skbutterfly._probes import as_linear_operator, is_operator_input
from skbutterfly._sources import as_source
from skbutterfly._validation import check_matrix

__all__ = ["ButterflyApproximator", "butterfly_factorize"]


def _absolute_error(relative, matrix):
    """``relative * ||A||_F``, finite whenever the product is.

    When ``||A||_F`` itself overflows, the norm of ``A / 2**e`` is multiplied
    by ``relative`` first and scaled back after.
    """
    with np.errstate(over="ignore"):
        norm = matrix.frobenius_norm()
    A = getattr(matrix, "matrix", None)
    if np.isfinite(norm) or A is None or not np.isfinite(relative):
        return relative * norm
    As, exponent = scaled(A)
    with np.errstate(over="ignore"):
        return float(np.ldexp(relative * np.linalg.norm(As), exponent))


class _Int(Interval):
    """An integer interval that refuses bools (``n_jobs=True`` is a mistake, not 1)."""

    def __init__(self, left, right, closed):
        super().__init__(Integral, left, right, closed=closed)

    def is_satisfied_by(self, val):
        return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)

    def __str__(self):
        return super().__str__().replace("an int", "an int (not a bool)", 1)


class ButterflyApproximator(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Approximate a matrix by a product of sparse butterfly factors.

    The matrix ``A`` (``operator`` if given, else the ``X`` passed to ``fit``) is
    factorized as ``A ~= P_r^T F_1 F_2 ... F_L P_c`` by the hierarchical
    algorithm: the chain of factors is split in two along a tree, and every
    split is solved exactly by one batch of small truncated SVDs. ``transform``
    then applies the fast operator: ``X @ A_hat.T`` in ``O(rank n log n)`` per
    sample instead of ``O(m n)``.

    Parameters
    ----------
    depth : int, default=None
        Number of sparse factors. None means the finest butterfly for the shape
        and ``rank``.
    rank : int, default=1
        Rank of the blocks at every interior interface (1 is the classical
        butterfly; larger ranks give low-rank butterflies).
    operator : {array-like, sparse matrix, LinearOperator} of shape \
            (m, n_features), default=None
        Matrix to approximate. None means approximating the ``X`` given to
        ``fit``; otherwise ``X`` is data only (it fixes ``n_features_in_``), as
        for :class:`~sklearn.decomposition.SparseCoder`. A
        :class:`~scipy.sparse.linalg.LinearOperator` (forward and adjoint
        products) is fitted from random probes without being formed; wrap it
        in :class:`~skbutterfly.ProbedOperator` to set the probes.
    architecture : sequence of (a, b, c, d), default=None
        Expert override: an explicit chain of Kronecker-sparse patterns, leftmost
        factor first (support ``I_a (x) 1_{b x c} (x) I_d``).
    tree : {"balanced", "left-to-right", "right-to-left"}, default="balanced"
        Order of the two-factor splits.
    orthonormalize : bool, default=True
        Use the orthonormalized variant, whose error is within a constant of
        the best butterfly approximation.
    permutation : None, str, array-like or tuple, default=None
        Permutation model ``A ~= P_r^T B P_c``: None (identity);
        ``"digit-reversal"`` (columns in mixed-radix digit-reversed order,
        matching the radices of the chain: the DFT, the Hartley transform);
        ``"bit-reversal"`` (the same for power-of-two sizes); ``"makhoul"``
        (Makhoul's even/odd reorder, then digit reversal, of the columns: the
        DCT-II, DST-II and DCT-IV at ``rank=2``); ``"makhoul-rows"`` (Makhoul's
        reorder of the rows, digit reversal of the columns: the DCT-III and
        DST-III at ``rank=2``); ``"auto"`` (screens the identity, these
        transform permutations and, for powers of two, the eight permutations
        of Dao et al. with a cheap sampled test, then fits the best one or
        two); ``"identify"`` (find unknown row and column permutations); a
        column index array; a ``(row_perm, col_perm)`` tuple; a list of
        candidates (best kept). The transform permutations use the exact
        radices of the size, never zero padding. See the user guide page on
        transforms.
    svd_solver : {"auto", "full", "gram", "subspace"}, default="auto"
        Solver of the block SVDs: ``"full"`` (LAPACK's SVD of every block),
        ``"gram"`` (eigendecomposition of each block's small Gram matrix),
        ``"subspace"`` (power steps, then a Chebyshev-filtered subspace
        iteration, for large blocks at a small rank), or ``"auto"`` (chosen by
        block shape and rank).

        .. deprecated:: 0.2
           ``"randomized"`` was renamed ``"subspace"``; it will be removed in
           0.4.
    n_jobs : int, default=None
        Number of threads over chunks of each batch of block SVDs. ``None``
        means 1 unless in a :obj:`joblib.parallel_config` context. ``-1`` means
        using all processors.
    random_state : int, RandomState instance or None, default=None
        Seed of the starting vectors of the iterative block solver. None means
        a fixed seed (0): the same input always gives the same factors.
    memory : None, str, path-like, joblib.Memory or SplitCache, default=None
        Where the root split's block factors are cached for other fits of the
        same matrix (the candidates of a grid search over ``rank`` and
        ``depth``): a :class:`~skbutterfly.model_selection.SplitCache` in
        memory, shared by all clones of this estimator, or a
        :class:`joblib.Memory` (or its directory), shared across processes.
        None caches nothing.
    verbose : int, default=0
        Print progress per tree level (with elapsed time) when > 0.

    Attributes
    ----------
    operator_ : ButterflyOperator
        The fitted operator ``A_hat``, a ``scipy.sparse.linalg.LinearOperator``.
    factors_ : list of scipy.sparse.csr_array
        The sparse factors ``F_1, ..., F_L`` (of the padded size).
    chain_ : tuple of tuple of int
        The patterns ``(a, b, c, d)`` actually used.
    permutation_ : tuple of (ndarray or None)
        ``(row_perm, col_perm)`` of the fitted operator (None is the identity).
    permutation_name_ : str
        Name of the permutation that was fitted: ``"identity"``, one of the
        names above, the winning candidate of ``"auto"`` (such as
        ``"digit-reversal"`` or ``"dao-011"``), ``"explicit"`` or
        ``"candidate i (...)"`` for a list.
    depth_ : int
        Number of factors.
    relative_error_ : float
        ``||A - A_hat||_F / ||A||_F``. For a matrix given as an operator, an
        estimate from held-back Gaussian probes (see
        :class:`~skbutterfly.ProbedOperator`).
    reconstruction_err_ : float
        ``||A - A_hat||_F`` (estimated for an operator).
    n_products_ : dict
        ``{"forward": int, "adjoint": int}``: the products of the operator
        used by the fit (probes and error estimate). Defined only when the
        matrix was given as an operator.
    n_params_ : int
        Number of stored nonzeros of the factors.
    compression_ratio_ : float
        ``m * n / n_params_``.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    butterfly_factorize : The same factorization as a function.
    sklearn.decomposition.TruncatedSVD : Low-rank approximation.

    Notes
    -----
    A factor with pattern ``(a, b, c, d)`` has ``a*b*c*d`` nonzeros; the
    classical butterfly of size ``n = 2**L`` has ``L`` factors with ``2n``
    nonzeros each. Products of butterfly factors are recovered to machine
    precision by every tree.

    References
    ----------
    .. [1] Q.-T. Le, L. Zheng, E. Riccietti, R. Gribonval, "Butterfly
       factorization with error guarantees", SIAM J. Matrix Anal. Appl., 2025,
       :arxiv:`2411.04506`.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import ButterflyApproximator
    >>> from skbutterfly.datasets import hadamard_matrix
    >>> H = hadamard_matrix(16)
    >>> est = ButterflyApproximator().fit(H)
    >>> est.depth_, est.n_params_, est.relative_error_ < 1e-12
    (4, 128, True)
    >>> X = np.ones((2, 16))
    >>> bool(np.allclose(est.transform(X), X @ H.T))
    True
    """

    _parameter_constraints: dict = {
        "depth": [_Int(1, None, closed="left"), None],
        "rank": [_Int(1, None, closed="left")],
        "operator": [
            "array-like",
            "sparse matrix",
            HasMethods(["matvec", "rmatvec"]),
            None,
        ],
        "architecture": ["array-like", None],
        "tree": [StrOptions(set(TREES))],
        "orthonormalize": ["boolean"],
        "permutation": [
            StrOptions(
                {
                    "bit-reversal",
                    "digit-reversal",
                    "makhoul",
                    "makhoul-rows",
                    "auto",
                    "identify",
                }
            ),
            "array-like",
            None,
        ],
        "svd_solver": [StrOptions(set(SVD_SOLVERS), deprecated={"randomized"})],
        "n_jobs": [
            _Int(None, -1, closed="right"),
            _Int(1, None, closed="left"),
            None,
        ],
        "random_state": ["random_state"],
        "memory": [None, str, os.PathLike, Memory, SplitCache],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        depth=None,
        rank=1,
        *,
        operator=None,
        architecture=None,
        tree="balanced",
        orthonormalize=True,
        permutation=None,
        svd_solver="auto",
        n_jobs=None,
        random_state=None,
        memory=None,
        verbose=0,
    ):
        self.depth = depth
        self.rank = rank
        self.operator = operator
        self.architecture = architecture
        self.tree = tree
        self.orthonormalize = orthonormalize
        self.permutation = permutation
        self.svd_solver = svd_solver
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.memory = memory
        self.verbose = verbose

    def _validate_X(self, X, reset):
        """``X`` checked by the shared ``check_matrix``; features counted and named."""
        if reset and is_chunked(X):
            # A chunked matrix is read chunk by chunk by the fit: only its
            # number of features is recorded here.
            validate_data(self, X, skip_check_array=True, reset=True)
            return X
        # The one validator of every door (the function's and the command
        # line's): what it accepts or refuses is the same here. validate_data
        # then only records (or checks) the number of features and the names.
        checked = check_matrix(X, name="X")
        if reset or type(X) is not np.ndarray or hasattr(self, "feature_names_in_"):
            validate_data(self, X, skip_check_array=True, reset=reset)
        # (else: an ndarray has no feature names to check against none, and
        # validate_data's name check costs more than a small transform.)
        if not reset and checked.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {checked.shape[1]} features, but {type(self).__name__} is "
                f"expecting {self.n_features_in_} features as input."
            )
        return checked

    def fit(self, X, y=None):
        """Factorize ``operator`` (or ``X`` itself when ``operator`` is None).

        Parameters
        ----------
        X : {array-like, sparse matrix, LinearOperator} of shape \
                (n_samples, n_features)
            The matrix to approximate (a ``LinearOperator`` is fitted from
            its products, without being formed), or data with
            ``operator.shape[1]`` features when ``operator`` is set.
        y : Ignored
            Not used, present here for API consistency by convention.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        self._fit(X)
        return self

    def fit_transform(self, X, y=None):
        """Fit, then return ``X @ A_hat.T``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Matrix to approximate or data (see :meth:`fit`).
        y : Ignored
            Not used, present here for API consistency by convention.

        Returns
        -------
        X_new : ndarray of shape (n_samples, m)
            ``X @ A_hat.T``.
        """
        if self.operator is None and is_operator_input(X):
            raise TypeError(
                "fit_transform needs data, but X is an operator; use fit(X) and "
                "the fitted operator_ (or transform some data)."
            )
        X = self._fit(X)
        if is_chunked(X):
            X = self._validate_X(X, reset=False)  # the output is as large
        return self._transform(X)

    @_fit_context(prefer_skip_nested_validation=True)
    def _fit(self, X):
        if self.operator is None and is_operator_input(X):
            # Fitted from its products: X is never converted to an array.
            matrix = as_source(X, name="X")
            self.n_features_in_ = matrix.shape[1]
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        else:
            X = self._validate_X(X, reset=True)
            if self.operator is None:
                matrix = as_source(X, name="X")
            else:
                matrix = as_source(self.operator, name="operator")
                if matrix.shape[1] != X.shape[1]:
                    raise ValueError(
                        f"X has {X.shape[1]} features but operator has shape "
                        f"{matrix.shape}: X must have operator.shape[1] columns."
                    )
        op, info = self._factorize(matrix, compute_error=True)
        self.operator_ = op
        self.factors_ = op.factors
        self.chain_ = op.chain
        self.permutation_ = (op.row_perm, op.col_perm)
        self.permutation_name_ = info["permutation"]
        self.depth_ = op.depth
        self.relative_error_ = info["relative_error"]
        self.reconstruction_err_ = _absolute_error(info["relative_error"], matrix)
        self.n_params_ = op.n_params
        self.compression_ratio_ = matrix.shape[0] * matrix.shape[1] / op.n_params
        if "identification" in info:
            self.identification_ = info["identification"]
        if hasattr(matrix, "n_products"):
            self.n_products_ = dict(matrix.n_products)
        elif hasattr(self, "n_products_"):
            del self.n_products_
        return X

    def _factorize(self, matrix, *, compute_error):
        """Run the shared core on the block source ``matrix`` with these parameters."""
        return factorize_core(
            matrix,
            depth=self.depth,
            rank=self.rank,
            architecture=self.architecture,
            tree=self.tree,
            orthonormalize=self.orthonormalize,
            permutation=self.permutation,
            svd_solver=self.svd_solver,
            n_jobs=self.n_jobs,
            random_state=self.random_state,
            verbose=self.verbose,
            cache=resolve_memory(self.memory),
            compute_error=compute_error,
        )

    def _transform(self, X):
        # X @ A_hat.T through the factors on blocks of rows (or the dense form).
        return self.operator_._apply_rows(X)

    def transform(self, X):
        """Apply the fitted operator: ``X @ A_hat.T`` through the sparse factors.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data.

        Returns
        -------
        X_new : ndarray of shape (n_samples, m)
            ``X @ A_hat.T``; float32 input stays float32 (for a real operator)
            and complex operators give complex output.
        """
        if not hasattr(self, "operator_"):
            check_is_fitted(self)  # raises sklearn's NotFittedError
        X = self._validate_X(X, reset=False)
        return self._transform(X)

    def score(self, X, y=None):
        """Negative relative error of the approximation (greater is better).

        When the estimator approximates ``X`` itself, ``X`` must be that matrix
        and the score is ``-||X - A_hat||_F / ||X||_F``. With ``operator`` set,
        it is ``-||X A_hat^T - X A^T||_F / ||X A^T||_F``: how well the
        operator's action on this data is kept.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The approximated matrix, or data (see above).
        y : Ignored
            Not used, present here for API consistency by convention.

        Returns
        -------
        score : float
            Negative relative Frobenius error.
        """
        check_is_fitted(self)
        if self.operator is None and (is_chunked(X) or is_operator_input(X)):
            # Read chunk by chunk, like the fit; an operator's error is
            # estimated on held-back Gaussian probes, like relative_error_.
            source = as_source(X, name="X")
            if source.shape != self.operator_.shape:
                raise ValueError(
                    f"X has shape {source.shape} but the approximated matrix has "
                    f"shape {self.operator_.shape}."
                )
            return -source.relative_error(self.operator_)
        X = self._validate_X(X, reset=False)
        if is_operator_input(self.operator):
            A = as_linear_operator(self.operator, "operator")
            reference = np.asarray(A.matmat(X.T)).T
            err = frobenius_norm(reference - self.operator_.matmat(X.T).T)
            norm = frobenius_norm(reference)
            if norm == 0:
                return 0.0 if err == 0 else -np.inf
            return -float(err / norm)
        if self.operator is None:
            if X.shape != self.operator_.shape:
                raise ValueError(
                    f"X has shape {X.shape} but the approximated matrix has shape "
                    f"{self.operator_.shape}; to score on one matrix use "
                    "cv=FullMatrixSplit() from skbutterfly.model_selection."
                )
            return -relative_error(self.operator_, X)
        # The score is scale-free: exact power-of-two rescaling of X and A keeps
        # the products away from overflow and underflow.
        A, a_exp = scaled(check_matrix(self.operator, name="operator"))
        Xs, _ = scaled(X)
        reference = Xs @ A.T
        approx, _ = scaled(self.operator_.matmat(Xs.T).T, exponent=a_exp)
        norm = frobenius_norm(reference)
        err = frobenius_norm(reference - approx)
        if norm == 0:
            return 0.0 if err == 0 else -np.inf
        return -float(err / norm)

    @property
    def _n_features_out(self):
        """Number of transformed output features."""
        return self.operator_.shape[0]

    def __sklearn_is_fitted__(self):
        return hasattr(self, "operator_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


_FUNCTION_CONSTRAINTS = {
    "A": ["array-like", "sparse matrix", HasMethods(["matvec", "rmatvec"])],
    **{
        name: rule
        for name, rule in ButterflyApproximator._parameter_constraints.items()
        if name != "operator"
    },
}


@validate_params(_FUNCTION_CONSTRAINTS, prefer_skip_nested_validation=True)
def butterfly_factorize(
    A,
    depth=None,
    rank=1,
    *,
    architecture=None,
    tree="balanced",
    orthonormalize=True,
    permutation=None,
    svd_solver="auto",
    n_jobs=None,
    random_state=None,
    memory=None,
    verbose=0,
):
    """Approximate a matrix by a product of sparse butterfly factors.

    The hierarchical algorithm splits the chain of factors in two, again and
    again, along a tree; every split is solved exactly by one batch of small
    truncated SVDs. Products of butterfly factors (Hadamard, the DFT with
    bit reversal, random butterflies) are recovered to machine precision; with
    ``orthonormalize=True`` other matrices get an error within a constant of
    the best butterfly approximation.

    Parameters
    ----------
    A : {array-like, sparse matrix, LinearOperator} of shape (m, n)
        Matrix to factorize: real or complex, any ``m, n >= 1``. Integer and
        boolean input is converted to float64; float32, float64, complex64 and
        complex128 are kept. A :class:`~scipy.sparse.linalg.LinearOperator`
        (or anything :func:`~scipy.sparse.linalg.aslinearoperator` accepts
        that is not an array) is fitted from forward and adjoint products on
        random probes shared across blocks, without being formed (see
        :class:`~skbutterfly.ProbedOperator`).
    depth : int, default=None
        Number of factors. None means the finest butterfly for the shape and
        ``rank``. Shapes whose sizes have a prime factor larger than 7 are
        zero-padded (invisibly) to a size that factorizes.
    rank : int, default=1
        Rank of the blocks at every interior interface (1 is the classical
        butterfly).
    architecture : sequence of (a, b, c, d), default=None
        Expert override: an explicit chain of Kronecker-sparse patterns of
        shape ``(m, n)``.
    tree : {"balanced", "left-to-right", "right-to-left"}, default="balanced"
        Order of the two-factor splits.
    orthonormalize : bool, default=True
        Use the orthonormalized variant (error guarantee).
    permutation : None, str, array-like, tuple or list, default=None
        Permutation model ``A ~= P_r^T B P_c``: None (identity);
        ``"digit-reversal"`` (columns in mixed-radix digit-reversed order,
        matching the radices of the chain: the DFT and the Hartley transform of
        any composite size are exact); ``"bit-reversal"`` (the same, for
        power-of-two sizes only); ``"makhoul"`` (Makhoul's even/odd reorder,
        then digit reversal, of the columns: the DCT-II, DST-II and DCT-IV are
        exact at ``rank=2``); ``"makhoul-rows"`` (Makhoul's reorder of the rows,
        digit reversal of the columns: the DCT-III and DST-III at ``rank=2``);
        ``"auto"`` (the identity, these transform permutations and, for
        power-of-two sizes, the eight permutations of Dao et al. are screened
        by a cheap sampled test of their block ranks, then the best one or two
        are fitted); ``"identify"`` (find row and column permutations, for
        square power-of-two sizes); a column index array ``p``
        (``B ~= A[:, p]``); a tuple ``(row_perm, col_perm)`` of two arrays or
        None (``B ~= A[row_perm][:, col_perm]``; a tuple of integers is an index
        array); or a list of such candidates (best kept). The transform
        permutations use the exact radices of the size and never zero-pad: a
        large prime factor ``p`` gives dense ``p x p`` blocks.
    svd_solver : {"auto", "full", "gram", "randomized"}, default="auto"
        Solver of the block SVDs: LAPACK, Gram eigendecomposition (blocks with
        a side <= 2), the iterative solver (power steps, then a
        Chebyshev-filtered subspace iteration that matches the exact SVD to
        about eight digits), or chosen per split.
    n_jobs : int, default=None
        Number of threads over chunks of each SVD batch. None means 1 unless
        in a :obj:`joblib.parallel_config` context; -1 means all processors.
    random_state : int, RandomState instance or None, default=None
        Seed of the starting vectors of the iterative block solver. None means
        a fixed seed (0), so that the same input always gives the same factors;
        exact butterflies do not depend on it at all.
    memory : None, str, path-like, joblib.Memory or SplitCache, default=None
        Cache of the root split's block factors, shared with other fits of the
        same matrix (see :class:`ButterflyApproximator`). None caches nothing.
    verbose : int, default=0
        Print progress per tree level when > 0.

    Returns
    -------
    op : ButterflyOperator
        The fitted operator (a ``scipy.sparse.linalg.LinearOperator``).

    See Also
    --------
    ButterflyApproximator : The same factorization as a scikit-learn estimator.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import butterfly_factorize
    >>> from skbutterfly.datasets import dft_matrix
    >>> F = dft_matrix(64)
    >>> op = butterfly_factorize(F, permutation="bit-reversal")
    >>> op.depth, op.n_params
    (6, 768)
    >>> bool(np.linalg.norm(op.toarray() - F) < 1e-10 * np.linalg.norm(F))
    True
    """
    est = ButterflyApproximator(
        depth=depth,
        rank=rank,
        architecture=architecture,
        tree=tree,
        orthonormalize=orthonormalize,
        permutation=permutation,
        svd_solver=svd_solver,
        n_jobs=n_jobs,
        random_state=random_state,
        memory=memory,
        verbose=verbose,
    )
    # The core checks finiteness in its max|A| pass.
    matrix = as_source(A, name="A")
    op, _ = est._factorize(matrix, compute_error=False)
    return op
