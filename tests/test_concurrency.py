"""Reliability under concurrency: threads, joblib contexts, GridSearchCV(n_jobs=2)."""

import os
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from joblib import parallel_config
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from threadpoolctl import threadpool_info

try:  # joblib >= 1.6 uses the cloudpickle package, older ones vendor it
    from cloudpickle import register_pickle_by_value
except ImportError:  # pragma: no cover
    from joblib.externals.cloudpickle import register_pickle_by_value

import skbutterfly._block_svd as svd_module
import skbutterfly._split as split_module
from skbutterfly import ButterflyApproximator, butterfly_factorize
from skbutterfly.datasets import make_butterfly
from skbutterfly.model_selection import (
    FullMatrixSplit,
    neg_n_params,
    neg_relative_error,
)


def _blas_threads():
    """Largest thread count of the loaded BLAS libraries."""
    return max(
        (
            info["num_threads"]
            for info in threadpool_info()
            if info["user_api"] == "blas"
        ),
        default=1,
    )


# ------------------------------------------------------ transform from threads


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
def test_transform_from_many_threads(complex_):
    """One fitted estimator, first used by 8 threads at once (its per-size
    product plans are built concurrently), with batch sizes in every plan
    bucket, adjoint products included."""
    n = 128
    A = make_butterfly(n, rank=2, depth=4, noise=0.01, random_state=0, complex=complex_)
    est_ref = ButterflyApproximator(depth=4, rank=2).fit(A)
    rng = np.random.default_rng(0)
    sizes = [1, 16, 17, 65, 300, 1030]  # every plan bucket and beyond
    inputs = [rng.standard_normal((k, n)) for k in sizes]
    expected = [est_ref.transform(X) for X in inputs]
    adjoint_expected = [est_ref.operator_.H @ X.T for X in inputs]

    for _ in range(2):  # fresh, unused estimators each round
        est = clone(est_ref).fit(A)
        barrier = threading.Barrier(8)

        def work(i, est=est, barrier=barrier):
            barrier.wait()
            out = []
            for j in range(len(sizes)):
                k = (i + j) % len(sizes)
                out.append((k, est.transform(inputs[k]), est.operator_.H @ inputs[k].T))
            return out

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(work, range(8)))
        for out in results:
            for k, Y, Z in out:
                assert_array_equal(Y, expected[k])
                assert_array_equal(Z, adjoint_expected[k])


def test_operator_products_from_threads_match_serial():
    op = butterfly_factorize(make_butterfly(128, random_state=1, complex=True))
    rng = np.random.default_rng(1)
    X = rng.standard_normal((128, 40)) + 1j * rng.standard_normal((128, 40))
    expected = (op @ X, op.H @ X, op.T @ X, op @ X[:, 0])
    fresh = butterfly_factorize(make_butterfly(128, random_state=1, complex=True))

    def work(_):
        return fresh @ X, fresh.H @ X, fresh.T @ X, fresh @ X[:, 0]

    with ThreadPoolExecutor(6) as pool:
        for got in pool.map(work, range(24)):
            for a, b in zip(got, expected):
                assert_array_equal(a, b)


# ---------------------------------------------------- fits under joblib contexts


@pytest.fixture
def blas_probe(monkeypatch):
    """Record the BLAS thread count inside every block decomposition.

    The block SVDs, Gram eigendecompositions and QR steps of a split go through
    ``np.linalg``; wrapping those functions (looked up at call time by the
    split code) sees the BLAS state the solver actually runs under, on
    whichever joblib thread it runs. Also forces the parallel paths (and
    several pieces per split) on small problems.
    """
    seen = []
    lock = threading.Lock()
    for name in ("svd", "eigh", "qr"):
        original = getattr(np.linalg, name)

        def wrapper(*args, _original=original, **kwargs):
            with lock:
                record = len(seen) < 400
            if record:
                threads = _blas_threads()
                worker = threading.current_thread() is not threading.main_thread()
                with lock:
                    seen.append((threading.get_ident(), worker, threads))
            return _original(*args, **kwargs)

        monkeypatch.setattr(np.linalg, name, wrapper)
    monkeypatch.setattr(svd_module, "PARALLEL_MIN_WORK", 0)
    # Several cache-sized pieces per split, so that the threads share them.
    monkeypatch.setattr(split_module, "_PIECE_BYTES", 1 << 12)
    return seen


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"svd_solver": "full"},
        {"svd_solver": "subspace", "rank": 2},
        {"tree": "left-to-right", "orthonormalize": False},
    ],
    ids=["default", "full", "subspace", "ltr"],
)
def test_fit_under_parallel_config_same_factors_blas_capped(blas_probe, kwargs):
    A = make_butterfly(256, noise=0.05, random_state=0)
    serial = butterfly_factorize(A, **kwargs)
    est_serial = ButterflyApproximator(**kwargs).fit(A)
    blas_before = _blas_threads()
    blas_probe.clear()
    with parallel_config(n_jobs=2):
        parallel = butterfly_factorize(A, **kwargs)
        est = ButterflyApproximator(**kwargs).fit(A)
    # Every decomposition run on a joblib worker thread saw BLAS capped to one
    # thread (no oversubscription); the QR steps between splits run serially
    # in the calling thread.
    in_workers = [t for _, worker, t in blas_probe if worker]
    assert in_workers, "no block decomposition ran on a joblib thread"
    assert set(in_workers) == {1}, f"BLAS threads inside splits: {set(in_workers)}"
    idents = {ident for ident, worker, _ in blas_probe if worker}
    assert len(idents) >= 2, "the splits did not run on two threads"
    assert _blas_threads() == blas_before  # restored afterwards
    for a, b in zip(parallel.twiddles, serial.twiddles):
        assert_array_equal(a, b)
    for a, b in zip(est.operator_.twiddles, est_serial.operator_.twiddles):
        assert_array_equal(a, b)
    assert est.relative_error_ == est_serial.relative_error_


def test_concurrent_fits_in_threads_restore_blas_threads():
    before = _blas_threads()
    if before < 2:  # pragma: no cover - the machine has 2 cores
        pytest.fail("needs a BLAS with >= 2 threads to observe the bug")
    A = make_butterfly(256, noise=0.1, random_state=0)
    expected = butterfly_factorize(A, svd_solver="full")

    def work(_):
        return [butterfly_factorize(A, svd_solver="full") for _ in range(15)]

    try:
        with ThreadPoolExecutor(4) as pool:
            results = [op for ops in pool.map(work, range(4)) for op in ops]
        for op in results:  # the results themselves are right
            for a, b in zip(op.twiddles, expected.twiddles):
                assert_array_equal(a, b)
        assert _blas_threads() == before
    finally:
        from threadpoolctl import threadpool_limits

        threadpool_limits(before, user_api="blas")  # repair for later tests


def test_concurrent_fits_in_threads_give_identical_results():
    A = make_butterfly(128, noise=0.1, random_state=0, complex=True)
    expected = butterfly_factorize(A, rank=2, depth=3)
    before = _blas_threads()
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(
                pool.map(lambda _: butterfly_factorize(A, rank=2, depth=3), range(12))
            )
    finally:
        from threadpoolctl import threadpool_limits

        threadpool_limits(before, user_api="blas")
    for op in results:
        for a, b in zip(op.twiddles, expected.twiddles):
            assert_array_equal(a, b)


# ------------------------------------------------------ GridSearchCV(n_jobs=2)


class ProbedApproximator(ButterflyApproximator):
    """Records, during fit, the largest BLAS thread count seen inside the splits."""

    def fit(self, X, y=None):
        seen = [_blas_threads()]
        originals = {name: getattr(np.linalg, name) for name in ("svd", "eigh", "qr")}

        def wrap(original):
            def wrapper(*args, **kwargs):
                if len(seen) < 50:
                    seen.append(_blas_threads())
                return original(*args, **kwargs)

            return wrapper

        try:
            for name, original in originals.items():
                setattr(np.linalg, name, wrap(original))
            super().fit(X, y)
        finally:
            for name, original in originals.items():
                setattr(np.linalg, name, original)
        self.blas_threads_ = max(seen)
        self.fit_pid_ = os.getpid()
        return self


def _blas_score(est, X, y=None):
    return float(est.blas_threads_)


def _pid_score(est, X, y=None):
    return float(est.fit_pid_)


def _factors_crc(est, X, y=None):
    """A checksum of the fitted factors' bytes: equal factors, equal score."""
    crc = 0
    for twiddle in est.operator_.twiddles:
        crc = zlib.crc32(np.ascontiguousarray(twiddle).tobytes(), crc)
    return float(crc)


def test_gridsearchcv_n_jobs_2_same_results_and_blas_capped():
    # The test module is not importable in the worker processes: pickle its
    # class and scorers by value.
    register_pickle_by_value(sys.modules[__name__])
    A = make_butterfly(128, rank=2, depth=4, noise=0.01, random_state=0)
    grid = {"depth": [2, 4, 7], "rank": [1, 2]}
    scoring = {
        "error": neg_relative_error,
        "n_params": neg_n_params,
        "blas": _blas_score,
        "pid": _pid_score,
        "factors": _factors_crc,
    }
    searches = {}
    for n_jobs in (None, 2):
        start = time.perf_counter()
        searches[n_jobs] = GridSearchCV(
            ProbedApproximator(),
            grid,
            scoring=scoring,
            cv=FullMatrixSplit(),
            refit="error",
            n_jobs=n_jobs,
        ).fit(A)
        elapsed = time.perf_counter() - start
        assert elapsed < 60, f"n_jobs={n_jobs} took {elapsed:.1f} s"
    serial, parallel = searches[None], searches[2]
    # the candidates ran in other processes, under a BLAS cap of one thread
    pids = set(parallel.cv_results_["mean_test_pid"])
    assert os.getpid() not in pids
    assert max(parallel.cv_results_["mean_test_blas"]) == 1
    # and gave the same factors (checksums) and scores as the serial search
    assert_array_equal(
        parallel.cv_results_["mean_test_factors"],
        serial.cv_results_["mean_test_factors"],
    )
    assert_allclose(
        parallel.cv_results_["mean_test_error"],
        serial.cv_results_["mean_test_error"],
        rtol=1e-12,
    )
    assert parallel.best_params_ == serial.best_params_
    for a, b in zip(
        parallel.best_estimator_.operator_.twiddles,
        serial.best_estimator_.operator_.twiddles,
    ):
        assert_array_equal(a, b)
    direct = ButterflyApproximator(**parallel.best_params_).fit(A)
    for a, b in zip(
        parallel.best_estimator_.operator_.twiddles, direct.operator_.twiddles
    ):
        assert_array_equal(a, b)
    assert_allclose(parallel.best_estimator_.relative_error_, direct.relative_error_)
