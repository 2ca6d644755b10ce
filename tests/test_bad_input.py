"""Bad input through every front door: one table, the same answer everywhere.

Each bad matrix and each bad parameter is thrown at every door it can reach:
``butterfly_factorize``, ``ButterflyApproximator().fit`` (and ``transform`` and
the ``operator=`` parameter), ``LinearOperator`` inputs, chunked inputs (dask,
zarr; skipped when not installed) and the command line (``skbutterfly fit`` on a
``.npy`` file, run in process). Every door must raise the same exception type
with a message naming the parameter (``A`` for the function, ``X`` or
``operator`` for the estimator, the file for the command line) and the reason.
Inputs the doors accept must be accepted by all of them, with the same result
(issue 16, item 5: the doors disagreed).
"""

import re
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from _doors import cli_fit, with_value
from numpy.testing import assert_allclose, assert_array_equal
from scipy.sparse.linalg import aslinearoperator

from skbutterfly import ButterflyApproximator, ButterflyFitWarning, butterfly_factorize
from skbutterfly.datasets import hadamard_matrix, make_butterfly


def assert_names(exc_info, name, fragment):
    """The message names ``name`` (a whole word) before ``fragment``."""
    message = str(exc_info.value)
    pattern = rf"(?<![\w]){re.escape(name)}(?![\w]).*{re.escape(fragment)}"
    assert re.search(pattern, message, re.S), message


# ------------------------------------------------------------ bad matrices

# name: (builder, exception type, text of the message after the name,
#        whether a .npy file can hold it, whether a dask array can)
BAD_MATRICES = {
    "nan": (
        lambda: with_value(make_butterfly(8, random_state=0), (3, 5), np.nan),
        ValueError,
        "index (3, 5)",
        True,
        True,
    ),
    "two-nans-first-named": (
        lambda: with_value(
            with_value(np.ones((8, 8)), (6, 0), np.nan), (2, 7), -np.inf
        ),
        ValueError,
        "index (2, 7)",
        True,
        True,
    ),
    "inf": (
        lambda: with_value(np.ones((4, 6)), (0, 5), np.inf),
        ValueError,
        "index (0, 5)",
        True,
        True,
    ),
    "complex-nan-real": (
        lambda: with_value(np.ones((4, 4), complex), (1, 2), complex(np.nan, 1)),
        ValueError,
        "index (1, 2)",
        True,
        True,
    ),
    "complex-nan-imag": (
        lambda: with_value(np.ones((4, 4), complex), (2, 1), complex(1, np.nan)),
        ValueError,
        "index (2, 1)",
        True,
        True,
    ),
    "complex64-inf-imag": (
        lambda: with_value(np.ones((4, 4), np.complex64), (3, 3), complex(0, np.inf)),
        ValueError,
        "index (3, 3)",
        True,
        True,
    ),
    "float32-nan": (
        lambda: with_value(np.ones((4, 4), np.float32), (0, 1), np.nan),
        ValueError,
        "index (0, 1)",
        True,
        True,
    ),
    "float16-inf": (
        lambda: with_value(np.ones((4, 4), np.float16), (3, 2), np.inf),
        ValueError,
        "index (3, 2)",
        True,
        True,
    ),
    "sparse-nan": (
        lambda: sp.csr_array(with_value(np.ones((4, 4)), (3, 1), np.nan)),
        ValueError,
        "index (3, 1)",
        False,
        False,
    ),
    "object-none": (
        lambda: np.array([[1.0, None], [2.0, 3.0]], dtype=object),
        ValueError,
        "index (0, 1)",
        False,
        False,
    ),
    "empty-rows": (lambda: np.zeros((0, 4)), ValueError, "non-empty", True, True),
    "empty-cols": (lambda: np.zeros((4, 0)), ValueError, "non-empty", True, True),
    "empty-both": (lambda: np.zeros((0, 0)), ValueError, "non-empty", True, True),
    "0-d": (lambda: np.array(3.0), ValueError, "2-D", True, True),
    "1-d": (lambda: np.ones(4), ValueError, "2-D", True, True),
    "3-d": (lambda: np.ones((2, 4, 4)), ValueError, "2-D", True, True),
    "3-d-size-1": (lambda: np.ones((1, 4, 4)), ValueError, "2-D", True, True),
    "series": (
        lambda: pd.Series(np.arange(4.0), dtype="Float64"),
        ValueError,
        "2-D",
        False,
        False,
    ),
    "object-mixed": (
        lambda: np.array([[1.0, "a"], [2.0, 3.0]], dtype=object),
        TypeError,
        "numeric dtype",
        False,
        False,
    ),
    "object-numeric-strings": (
        lambda: np.array([["1", "2"], ["3", "4"]], dtype=object),
        TypeError,
        "numeric dtype",
        False,
        False,
    ),
    "object-dict": (
        lambda: np.array([[{"a": 1}, 1.0], [2.0, 3.0]], dtype=object),
        TypeError,
        "not all numbers",
        False,
        False,
    ),
    "string": (
        lambda: np.array([["a", "b"], ["c", "d"]]),
        TypeError,
        "numeric dtype",
        True,
        True,
    ),
    "numeric-string": (
        lambda: hadamard_matrix(4).astype(str),
        TypeError,
        "numeric dtype",
        True,
        True,
    ),
    "bytes": (
        lambda: np.array([[b"1", b"2"], [b"3", b"4"]]),
        TypeError,
        "numeric dtype",
        True,
        True,
    ),
    "datetime": (
        lambda: np.zeros((2, 2), dtype="datetime64[s]"),
        TypeError,
        "numeric dtype",
        True,
        True,
    ),
    "timedelta": (
        lambda: np.zeros((2, 2), dtype="timedelta64[s]"),
        TypeError,
        "numeric dtype",
        True,
        True,
    ),
    "structured": (
        lambda: np.zeros((2, 2), dtype=[("a", float)]),
        TypeError,
        "numeric dtype",
        True,
        False,
    ),
    "ragged-list": (lambda: [[1.0, 2.0], [3.0]], ValueError, "converted", False, False),
    "none": (lambda: None, TypeError, "array-like", False, False),
    "scalar": (lambda: 3.0, TypeError, "array-like", False, False),
    "dict": (lambda: {"a": [1.0]}, TypeError, "array-like", False, False),
    "masked": (
        lambda: np.ma.masked_array(np.eye(4), mask=np.eye(4, dtype=bool)),
        ValueError,
        "masked",
        False,
        False,
    ),
}


def _bad(name):
    build, exc, fragment, _, _ = BAD_MATRICES[name]
    return build(), exc, fragment


@pytest.mark.parametrize("name", list(BAD_MATRICES))
def test_bad_matrix_function(name):
    A, exc, fragment = _bad(name)
    with pytest.raises(exc) as info:
        butterfly_factorize(A)
    assert_names(info, "A", fragment)


@pytest.mark.parametrize("name", list(BAD_MATRICES))
def test_bad_matrix_estimator_fit(name):
    X, exc, fragment = _bad(name)
    with pytest.raises(exc) as info:
        ButterflyApproximator().fit(X)
    assert_names(info, "X", fragment)


def _two_dimensional(name):
    return len(getattr(BAD_MATRICES[name][0](), "shape", ())) == 2


@pytest.mark.parametrize("name", [k for k in BAD_MATRICES if _two_dimensional(k)])
def test_bad_matrix_estimator_transform(name):
    X, exc, fragment = _bad(name)
    if X.shape[1] == 0:
        pytest.skip("no estimator is fitted on zero features")
    fitted = ButterflyApproximator().fit(np.eye(X.shape[1]))
    with pytest.raises(exc) as info:
        fitted.transform(X)
    assert_names(info, "X", fragment)


@pytest.mark.parametrize("name", [k for k in BAD_MATRICES if k != "none"])
def test_bad_matrix_as_the_operator_parameter(name):
    """``operator=None`` means no operator: every other bad value is named."""
    A, exc, fragment = _bad(name)
    with pytest.raises(exc) as info:
        ButterflyApproximator(operator=A).fit(np.eye(4))
    assert_names(info, "operator", fragment)


@pytest.mark.parametrize("name", [k for k, v in BAD_MATRICES.items() if v[3]])
def test_bad_matrix_command_line(tmp_path, name):
    A, _, fragment = _bad(name)
    code, _, err = cli_fit(tmp_path, A)
    assert code == 1, err
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("skbutterfly: error: "), line
    assert f"{tmp_path / 'A.npy'}" in line and fragment in line, line
    assert not (tmp_path / "A.npz").exists()


def test_object_npy_is_refused_without_unpickling(tmp_path):
    code, _, err = cli_fit(
        tmp_path, np.array([[1.0, 2.0], [2.0, 3.0]], dtype=object), allow_pickle=True
    )
    assert code == 1 and "never unpickles" in err and "Traceback" not in err


@pytest.mark.parametrize("name", [k for k, v in BAD_MATRICES.items() if v[4]])
def test_bad_matrix_dask(name):
    da = pytest.importorskip("dask.array")
    A, exc, fragment = _bad(name)
    chunks = tuple(max(1, s // 2) for s in A.shape) or ()
    with pytest.raises(exc) as info:
        butterfly_factorize(da.from_array(A, chunks=chunks))
    assert_names(info, "A", fragment)
    if A.ndim == 2 and A.shape[1] > 0:
        with pytest.raises(exc) as info:
            ButterflyApproximator().fit(da.from_array(A, chunks=chunks))
        assert_names(info, "X", fragment)


@pytest.mark.parametrize("name", ["nan", "two-nans-first-named", "inf"])
def test_bad_matrix_zarr(name):
    zarr = pytest.importorskip("zarr")
    A, exc, fragment = _bad(name)
    Z = zarr.create_array(store={}, shape=A.shape, chunks=(4, 4), dtype=A.dtype)
    Z[:] = A
    with pytest.raises(exc) as info:
        butterfly_factorize(Z)
    assert_names(info, "A", fragment)


def test_linear_operator_returning_nan_is_named():
    A = with_value(np.ones((8, 8)), (3, 5), np.nan)
    with pytest.raises(ValueError, match=r"\bA\.matmat\b.*NaN"):
        butterfly_factorize(aslinearoperator(A))


# ------------------------------------------------------------ bad parameters

# name: (keyword arguments, the parameter the message must name, the
#        command-line options or None when the option cannot express it,
#        the exit code of the command line)
BAD_PARAMETERS = {
    "rank-0": ({"rank": 0}, "rank", ["--rank", "0"], 2),
    "rank-float": ({"rank": 1.5}, "rank", ["--rank", "1.5"], 2),
    "rank-bool": ({"rank": True}, "rank", None, None),
    "rank-too-large": ({"rank": 9}, "rank", ["--rank", "9"], 1),
    "depth-0": ({"depth": 0}, "depth", ["--depth", "0"], 2),
    "depth-string": ({"depth": "2"}, "depth", None, None),
    "depth-too-large": ({"depth": 10}, "depth", ["--depth", "10"], 1),
    "tree": ({"tree": "x"}, "tree", ["--tree", "x"], 2),
    "svd-solver": ({"svd_solver": "x"}, "svd_solver", ["--svd-solver", "x"], 2),
    "orthonormalize": ({"orthonormalize": "yes"}, "orthonormalize", None, None),
    "n-jobs-bool": ({"n_jobs": True}, "n_jobs", ["--n-jobs", "True"], 2),
    "n-jobs-0": ({"n_jobs": 0}, "n_jobs", None, None),
    "random-state-string": ({"random_state": "x"}, "random_state", None, None),
    "random-state-negative": ({"random_state": -1}, "random_state", None, None),
    "permutation-name": (
        {"permutation": "x"},
        "permutation",
        ["--permutation", "x"],
        1,
    ),
    "permutation-short": ({"permutation": np.arange(7)}, "permutation", "file", 1),
    "permutation-2-d": (
        {"permutation": np.arange(8).reshape(2, 4)},
        "permutation",
        "file",
        1,
    ),
    "permutation-floats": ({"permutation": [0.0] * 8}, "permutation", "file", 1),
    "permutation-repeated": (
        {"permutation": np.array([0, 0, 1, 2, 3, 4, 5, 6])},
        "permutation",
        "file",
        1,
    ),
    "row-permutation-short": (
        {"permutation": (np.arange(7), None)},
        "permutation",
        None,
        None,
    ),
    "column-permutation-short-in-pair": (
        {"permutation": (np.arange(8), np.arange(7))},
        "permutation",
        None,
        None,
    ),
    "permutation-candidate-list": (
        {"permutation": [np.arange(8), np.arange(9)]},
        "permutation",
        None,
        None,
    ),
    "architecture-wrong-shape": (
        {"architecture": [(1, 2, 2, 4), (2, 2, 2, 4)]},
        "architecture",
        None,
        None,
    ),
    "column-permutation-floats": (
        {"permutation": (None, [0.5] * 8)},
        "permutation",
        None,
        None,
    ),
}


def _param_check(name, call):
    kwargs, param, _, _ = BAD_PARAMETERS[name]
    with pytest.raises(ValueError) as info:
        call(kwargs)
    message = str(info.value)
    assert re.search(rf"(?<![\w]){param}(?![\w])", message), message
    return message


@pytest.mark.parametrize("name", list(BAD_PARAMETERS))
def test_bad_parameter_function(name):
    A = hadamard_matrix(8)
    _param_check(name, lambda kw: butterfly_factorize(A, **kw))


@pytest.mark.parametrize("name", list(BAD_PARAMETERS))
def test_bad_parameter_estimator(name):
    A = hadamard_matrix(8)
    message = _param_check(name, lambda kw: ButterflyApproximator(**kw).fit(A))
    # The same rule and the same text as the function's (the class name aside).
    function = _param_check(name, lambda kw: butterfly_factorize(A, **kw))
    assert message.replace("ButterflyApproximator", "butterfly_factorize") == function


@pytest.mark.parametrize("name", list(BAD_PARAMETERS))
def test_bad_parameter_linear_operator(name):
    op = aslinearoperator(hadamard_matrix(8))
    _param_check(name, lambda kw: butterfly_factorize(op, **kw))
    _param_check(name, lambda kw: ButterflyApproximator(**kw).fit(op))


@pytest.mark.parametrize("name", list(BAD_PARAMETERS))
def test_bad_parameter_dask(name):
    da = pytest.importorskip("dask.array")
    D = da.from_array(hadamard_matrix(8), chunks=4)
    _param_check(name, lambda kw: butterfly_factorize(D, **kw))


@pytest.mark.parametrize("name", [k for k, v in BAD_PARAMETERS.items() if v[2]])
def test_bad_parameter_command_line(tmp_path, name):
    kwargs, param, options, expected_code = BAD_PARAMETERS[name]
    if options == "file":
        np.save(tmp_path / "perm.npy", np.asarray(kwargs["permutation"]))
        options = ["--permutation", tmp_path / "perm.npy"]
    code, _, err = cli_fit(tmp_path, hadamard_matrix(8), *options)
    assert code == expected_code, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    option = "--" + param.replace("_", "-")
    assert option in last or re.search(rf"(?<![\w]){param}(?![\w])", last), last
    assert not (tmp_path / "A.npz").exists()


# ------------------------------------------------- what every door accepts

ACCEPTED = {
    "object-numbers": lambda: hadamard_matrix(4).astype(object),
    "object-complex": lambda: (hadamard_matrix(4) * (1 + 2j)).astype(object),
    "object-python-ints": lambda: np.array([[1, -1], [1, 1]], dtype=object),
    "bool": lambda: np.eye(4, dtype=bool),
    "int8": lambda: hadamard_matrix(4).astype(np.int8),
    "uint64": lambda: np.eye(4, dtype=np.uint64),
    "float16": lambda: hadamard_matrix(4).astype(np.float16),
    "list": lambda: hadamard_matrix(4).tolist(),
    "fortran": lambda: np.asfortranarray(make_butterfly(8, random_state=0)),
    "dataframe-Float64": lambda: pd.DataFrame(hadamard_matrix(4)).astype("Float64"),
    "dataframe-Int64": lambda: pd.DataFrame(np.eye(4, dtype=int)).astype("Int64"),
    "sparse-dok": lambda: sp.dok_array(np.eye(4)),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_every_door_accepts_the_same_inputs_alike(name, tmp_path):
    A = ACCEPTED[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ButterflyFitWarning)
        op = butterfly_factorize(A)
        est = ButterflyApproximator().fit(A)
    assert op.chain == est.operator_.chain
    for a, b in zip(op.twiddles, est.operator_.twiddles):
        assert_array_equal(a, b)
    dense = np.asarray(sp.csr_array(A).toarray() if sp.issparse(A) else A)
    dense = np.asarray(dense.tolist(), dtype=op.dtype)
    assert_allclose(op.toarray(), dense, atol=1e-6)
    assert_array_equal(est.transform(np.eye(dense.shape[1])), op.toarray().T)
