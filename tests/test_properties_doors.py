"""Fuzzing the three front doors with random shapes, dtypes, values and parameters.

Each example must end in a documented exception (``ValueError`` or ``TypeError``;
scikit-learn's ``InvalidParameterError`` is a ``ValueError``; exit code 1 or 2 for
the command line) or in a result whose dense form matches the product of its
stored factors; never another exception, a crash or a hang; the input is never
modified. ``tests/test_properties.py`` checks the numerics on valid input.
"""

import contextlib
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest
from _doors import run_cli
from _reference import place_like_operator
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from skbutterfly import (
    ButterflyApproximator,
    ButterflyOperator,
    butterfly_factorize,
    feasible_depth_rank,
)

DOCUMENTED = (ValueError, TypeError)
EXAMPLE_TIMEOUT = 90  # seconds: a hang fails the example instead of the run

FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

DTYPES = [
    "float64",
    "float32",
    "complex128",
    "complex64",
    "float16",
    "int64",
    "int8",
    "uint8",
    "bool",
    "object",
]
KINDS = ["normal", "normal", "zeros", "huge", "tiny", "mixed", "sparse-ish", "ints"]
TREES = ["balanced", "left-to-right", "right-to-left"]

# ------------------------------------------------------------------ strategies


def _base_values(rng, shape, kind, dtype):
    """Float64 (or complex128) values of one of several kinds, before the cast."""
    complex_ = np.dtype(dtype).kind == "c"

    def normal():
        x = rng.standard_normal(shape)
        return np.asarray(x + 1j * rng.standard_normal(shape) if complex_ else x)

    if kind == "zeros":
        return np.zeros(shape, dtype=complex if complex_ else float)
    if kind == "huge":
        scale = {"float16": 6e3, "float32": 1e36, "complex64": 1e36}.get(dtype, 1e300)
        return normal() * scale
    if kind == "tiny":
        scale = {"float16": 1e-6, "float32": 1e-40, "complex64": 1e-40}.get(
            dtype, 1e-305
        )
        return normal() * scale
    if kind == "mixed":
        x = normal()
        if x.ndim == 0:
            return x
        x[..., ::2] *= 1e150 if dtype in ("float64", "complex128", "object") else 1e15
        return x
    if kind == "sparse-ish":
        x = normal()
        x[rng.random(shape) < 0.8] = 0
        return x
    if kind == "ints":
        return rng.integers(-3, 4, shape).astype(float)
    return normal()


@st.composite
def matrices(draw, dtype=None, max_side=40, special=None):
    """A random array (mostly 2-D) of a random dtype, with random special values."""
    # hypothesis favours small integers: 0 is the common case
    odd = draw(st.integers(0, 15))  # 15: not 2-D, 14: empty, else 2-D
    if odd == 15:
        ndim = draw(st.sampled_from([0, 1, 3]))
        shape = tuple(draw(st.integers(1, 16)) for _ in range(ndim))
    elif odd == 14:
        shape = draw(st.sampled_from([(0, 0), (0, 1), (1, 0), (0, 16), (5, 0)]))
    else:
        side = st.one_of(st.integers(1, max_side), st.sampled_from([16, 32]))
        shape = (draw(side), draw(side))
    if dtype is None:
        dtype = draw(st.sampled_from(DTYPES))
    kind = draw(st.sampled_from(KINDS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = np.array(_base_values(rng, shape, kind, dtype))
    if special is not None:
        pass
    elif draw(st.integers(0, 3)) == 3:  # hypothesis favours 0: about 1 in 6
        first = "nan-imag" if np.dtype(dtype).kind == "c" else "nan"
        special = draw(st.sampled_from([first, "nan", "inf", "-inf", "inf-imag"]))
    else:
        special = None
    if special and values.size:
        index = tuple(int(rng.integers(0, s)) for s in shape)
        if special.endswith("imag"):
            values = values.astype(complex)
            values[index] = complex(1, np.nan if special == "nan-imag" else np.inf)
        else:
            values = values.astype(np.result_type(values, float))
            values[index] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}[special]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # casts of NaN/inf/complex to int or bool
        if dtype == "object":
            A = values.astype(object)
        elif np.dtype(dtype).kind in "biu" and np.iscomplexobj(values):
            A = values.real.astype(dtype)
        elif np.dtype(dtype).kind in "biu":
            A = np.nan_to_num(values).astype(dtype)
        elif np.dtype(dtype).kind == "f" and np.iscomplexobj(values):
            A = values.real.astype(dtype)
        else:
            A = values.astype(dtype)
    A = np.asarray(A)
    layout = draw(st.sampled_from(["C", "F", "strided"]))
    if layout == "F":
        A = np.asfortranarray(A)
    elif layout == "strided" and A.ndim == 2:
        big = np.zeros((A.shape[0], 2 * A.shape[1]), dtype=A.dtype)
        big[:, ::2] = A
        A = big[:, ::2]
    return A


INVALID = {
    "depth": [0, -1, 2.5, "3", True],
    "rank": [0, 1.5, None],
    "tree": ["random"],
    "orthonormalize": ["yes", None],
    "svd_solver": ["lapack"],
    "permutation": ["bogus", "bad-array"],
}


@st.composite
def parameters(draw, shape, invalid=True):
    """Keyword arguments: valid ones mostly (depth and rank often from the
    feasible pairs of the shape), one invalid value in a quarter of the cases."""
    params = {}
    pairs = feasible_depth_rank(shape) if len(shape) == 2 and min(shape) > 0 else []
    if pairs and draw(st.integers(0, 2)) < 2:
        params["depth"], params["rank"] = draw(st.sampled_from(pairs))
    else:
        if draw(st.booleans()):
            params["depth"] = draw(st.one_of(st.none(), st.integers(1, 7)))
        if draw(st.booleans()):
            params["rank"] = draw(st.integers(1, 4))
    if draw(st.booleans()):
        params["tree"] = draw(st.sampled_from(TREES))
    if draw(st.booleans()):
        params["orthonormalize"] = draw(st.booleans())
    if draw(st.booleans()):
        params["svd_solver"] = draw(
            st.sampled_from(["auto", "full", "gram", "subspace"])
        )
    if draw(st.integers(0, 3)) == 3:
        params["permutation"] = draw(
            st.sampled_from(["bit-reversal", "auto", "shuffle", "identify"])
        )
    if invalid and draw(st.integers(0, 3)) == 3:
        key = draw(st.sampled_from(sorted(INVALID)))
        params[key] = draw(st.sampled_from(INVALID[key]))
    n = max(shape[-1], 1) if shape else 1
    if params.get("permutation") == "shuffle":
        seed = draw(st.integers(0, 1000))
        params["permutation"] = np.random.default_rng(seed).permutation(n)
    elif params.get("permutation") == "bad-array":
        params["permutation"] = np.zeros(n, dtype=int)
    return params


# --------------------------------------------------------------------- checks


@contextlib.contextmanager
def watchdog(seconds=EXAMPLE_TIMEOUT):
    """Fail (TimeoutError, not a documented exception) instead of hanging."""

    def alarm(signum, frame):
        raise TimeoutError(f"example took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _snapshot(A):
    copy = np.array(A, copy=True)
    if isinstance(A, np.ndarray) and A.ndim:
        A.setflags(write=False)  # any write raises
    return copy


def _assert_unchanged(A, before):
    assert A.dtype == before.dtype and A.shape == before.shape
    if A.dtype == object:
        assert all(
            (x == y) or (x != x and y != y) for x, y in zip(A.ravel(), before.ravel())
        )
    else:
        np.testing.assert_array_equal(A, before)


def _log2_norm(X):
    """``log2 ||X||_F`` without overflow or underflow (``-inf`` for zero)."""
    X = np.asarray(X)
    parts = (X.real, X.imag) if X.dtype.kind == "c" else (X,)
    top = max(float(np.abs(p).max(initial=0)) for p in parts)
    if top == 0:
        return -np.inf
    e = int(np.frexp(top)[1])
    scaled = np.ldexp(X.real, -e) + (
        1j * np.ldexp(X.imag, -e) if X.dtype.kind == "c" else 0
    )
    return e + float(np.log2(np.linalg.norm(scaled)))


def _product_of_factors(op):
    """Dense product of the stored sparse factors, cropped and permuted."""
    wide = np.complex128 if op.dtype.kind == "c" else np.float64
    factors = [F.astype(wide) for F in op.factors]
    prod = factors[0]
    for F in factors[1:]:
        prod = prod @ F
    out = place_like_operator(op, prod.toarray())
    return out, sum(_log2_norm(F.toarray()) for F in factors)


def _reference(A):
    """The input's values as float64 / complex128."""
    A = np.asarray(A)
    return A.astype(np.complex128 if A.dtype.kind == "c" else np.float64)


def check_operator(op, A, orthonormalize=True):
    """The fitted operator is finite and its dense form is its factors' product."""
    assert isinstance(op, ButterflyOperator)
    assert op.shape == A.shape
    assert op.dtype in (np.float32, np.float64, np.complex64, np.complex128)
    D = op.toarray()
    assert D.shape == A.shape and D.dtype == op.dtype
    assert np.isfinite(D).all(), "non-finite dense form from finite input"
    P, log2_bound = _product_of_factors(op)
    tol = 1e-4 if op.dtype in (np.float32, np.complex64) else 1e-10
    # ||P - D|| <= tol * max(||D||, prod ||F_i||): rounding of the products
    scale = max(_log2_norm(D), log2_bound)
    assert _log2_norm(P - D) <= np.log2(tol) + scale, "toarray != product of factors"
    ref = _reference(A)
    if orthonormalize is True and _log2_norm(ref) > -np.inf:
        # the orthonormalized algorithm is never worse than the zero matrix
        assert _log2_norm(ref - D) <= _log2_norm(ref) + np.log2(1 + 1e3 * tol)
    x = np.ones(A.shape[1], dtype=op.dtype)
    y = op @ x
    assert _log2_norm(y - D @ x) <= np.log2(1e3 * tol) + max(_log2_norm(D), 0)
    return D


def _orthonormalize(params):
    return params.get("orthonormalize", True)


# ------------------------------------------------------------------ function


# max_examples per dtype: 15 x 10 dtypes = 150 examples (stratified by dtype,
# since hypothesis' own choices would favour the first dtypes)
@pytest.mark.parametrize("dtype", DTYPES)
@settings(FUZZ, max_examples=15)
@given(data=st.data())
def test_fuzz_butterfly_factorize(dtype, data):
    A = data.draw(matrices(dtype), label="A")
    params = data.draw(parameters(A.shape), label="params")
    before = _snapshot(A)
    with watchdog(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "identify is not certain"
        try:
            op = butterfly_factorize(A, **params)
        except DOCUMENTED:
            op = None
    _assert_unchanged(A, before)
    if op is not None:
        check_operator(op, A, _orthonormalize(params))


@pytest.mark.parametrize(
    "dtype, special",
    [
        ("float64", "nan"),
        ("float32", "-inf"),
        ("float16", "inf"),
        ("complex128", "nan-imag"),
        ("complex64", "inf-imag"),
        ("complex128", "nan"),
    ],
)
@settings(FUZZ, max_examples=8)
@given(data=st.data())
def test_fuzz_non_finite_entry_is_named(dtype, special, data):
    """Every matrix with one NaN/inf entry (any shape, layout, parameters) is
    refused with a ValueError naming that entry, by the function and the CLI."""
    A = data.draw(matrices(dtype, max_side=24, special=special), label="A")
    assume(A.ndim == 2 and A.size > 0)
    params = data.draw(parameters(A.shape, invalid=False), label="params")
    bad = tuple(int(i) for i in np.argwhere(~np.isfinite(A))[0])
    with watchdog(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            butterfly_factorize(A, **params)
        except ValueError as exc:
            # an infeasible (depth, rank) may be reported first
            assert f"index {bad}" in str(exc) or "feasible" in str(exc), str(exc)
        else:
            raise AssertionError("a non-finite matrix was accepted")


# ----------------------------------------------------------------- estimator


@pytest.mark.parametrize("dtype", DTYPES)
@settings(FUZZ, max_examples=10)
@given(data=st.data())
def test_fuzz_estimator(dtype, data):
    A = data.draw(matrices(dtype), label="A")
    params = data.draw(parameters(A.shape), label="params")
    before = _snapshot(A)
    est = ButterflyApproximator(**params)
    with watchdog(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            est.fit(A)
        except DOCUMENTED:
            est = None
    _assert_unchanged(A, before)
    if est is None:
        return
    D = check_operator(est.operator_, A, _orthonormalize(params))
    assert len(est.factors_) == est.depth_ == est.operator_.depth
    assert np.isfinite(est.relative_error_) and est.relative_error_ >= 0
    ref = _reference(A)
    if _log2_norm(ref) > -np.inf:
        measured = 2.0 ** (_log2_norm(ref - D) - _log2_norm(ref))
        assert abs(est.relative_error_ - measured) <= 1e-3 * max(measured, 1e-3)
    X = np.ones((2, A.shape[1]), dtype=est.operator_.dtype)
    with watchdog():
        Y = est.transform(X)
    assert Y.shape == (2, A.shape[0])
    assert _log2_norm(Y - X @ D.T) <= -10 + max(_log2_norm(D), 0)


# ------------------------------------------------------------- command line


def _cli_arguments(params, tmp_path):
    """Command line options for ``params`` (None when one is not expressible)."""
    args = []
    for key, flag in [("depth", "--depth"), ("rank", "--rank")]:
        if key in params and params[key] is not None:
            args += [flag, str(params[key])]
    if "tree" in params:
        args += ["--tree", params["tree"]]
    if "svd_solver" in params:
        args += ["--svd-solver", params["svd_solver"]]
    if params.get("orthonormalize") is False:
        args.append("--no-orthonormalize")
    perm = params.get("permutation")
    if isinstance(perm, np.ndarray):
        np.save(tmp_path / "perm.npy", perm)
        args += ["--permutation", str(tmp_path / "perm.npy")]
    elif perm is not None:
        args += ["--permutation", perm]
    return args


def _check_cli_outcome(code, err, A, out_path, params):
    assert "Traceback" not in err, err
    if code == 0:
        op = ButterflyOperator.load(out_path)
        check_operator(op, A, _orthonormalize(params))
    elif code == 1:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("skbutterfly: error: "), err
    else:
        assert code == 2 and "usage:" in err, (code, err)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(FUZZ, max_examples=4)
@given(data=st.data())
def test_fuzz_command_line_in_process(dtype, data, tmp_path_factory):
    A = data.draw(matrices(dtype, max_side=24), label="A")
    params = data.draw(parameters(A.shape), label="params")
    folder = tmp_path_factory.mktemp("cli")
    np.save(folder / "A.npy", A, allow_pickle=True)  # object arrays: refused
    raw = (folder / "A.npy").read_bytes()
    args = ["fit", folder / "A.npy", "-o", folder / "A.npz", "-q"]
    args += _cli_arguments(params, folder)
    with watchdog(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, _, err = run_cli(*args)
    assert (folder / "A.npy").read_bytes() == raw
    _check_cli_outcome(code, err, A, folder / "A.npz", params)


@settings(FUZZ, max_examples=3)
@given(data=st.data())
def test_fuzz_command_line_subprocess(data, tmp_path_factory):
    A = data.draw(matrices(max_side=24), label="A")
    assume(A.dtype != object)
    params = data.draw(parameters(A.shape), label="params")
    folder = tmp_path_factory.mktemp("cli")
    np.save(folder / "A.npy", A)
    args = ["fit", str(folder / "A.npy"), "-o", str(folder / "A.npz"), "-q"]
    args += _cli_arguments(params, folder)
    res = subprocess.run(
        [sys.executable, "-m", "skbutterfly._cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode >= 0, f"killed by signal {-res.returncode}"
    _check_cli_outcome(res.returncode, res.stderr, A, folder / "A.npz", params)
