"""The explicit split cache: reuse, equality with uncached fits, threads, lifetime."""

import gc
import threading
import weakref

import numpy as np
import pytest
from joblib import Memory
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from skbutterfly import ButterflyApproximator, butterfly_factorize
from skbutterfly._cache import active_cache
from skbutterfly._sources import relative_error
from skbutterfly.datasets import make_butterfly
from skbutterfly.model_selection import (
    FullMatrixSplit,
    SplitCache,
    neg_n_params,
    neg_relative_error,
    smallest_within_tolerance,
    split_cache,
)

SCORING = {"error": neg_relative_error, "n_params": neg_n_params}


def _search(memory, tol=1e-8):
    return GridSearchCV(
        ButterflyApproximator(depth=2, memory=memory),
        {"rank": [1, 2, 4]},
        scoring=SCORING,
        cv=FullMatrixSplit(),
        refit=smallest_within_tolerance(tol),
        error_score="raise",
    )


def test_reuses_root_split_across_ranks_with_the_uncached_result():
    B = make_butterfly(256, depth=2, rank=4, random_state=0, noise=1e-3)
    plain = [butterfly_factorize(B, depth=2, rank=r) for r in (1, 2, 4)]
    cache = SplitCache()
    cached = [butterfly_factorize(B, depth=2, rank=r, memory=cache) for r in (1, 2, 4)]
    assert (cache.misses, cache.hits) == (1, 2)
    for p, c in zip(plain, cached):
        assert p.chain == c.chain
        # Same approximation up to the block solver's tolerance.
        np.testing.assert_allclose(
            relative_error(c, B), relative_error(p, B), rtol=1e-6, atol=1e-12
        )
    assert relative_error(cached[-1], B) < 2e-3


@pytest.mark.parametrize("orthonormalize", [True, False])
def test_cached_factors_match_direct_on_exact_butterflies(orthonormalize):
    B = make_butterfly(64, depth=3, rank=2, random_state=1)
    cache = SplitCache()
    for rank in (2, 1, 2):
        direct = butterfly_factorize(
            B, depth=3, rank=rank, orthonormalize=orthonormalize
        )
        hit = butterfly_factorize(
            B, depth=3, rank=rank, orthonormalize=orthonormalize, memory=cache
        )
        np.testing.assert_allclose(hit.toarray(), direct.toarray(), atol=1e-12)
    assert cache.hits >= 1


def test_order_of_requests_does_not_change_the_factors():
    B = make_butterfly(128, depth=2, rank=4, random_state=2, noise=1e-2)
    up, down = SplitCache(), SplitCache()
    ups = {r: butterfly_factorize(B, depth=2, rank=r, memory=up) for r in (1, 2, 4)}
    downs = {r: butterfly_factorize(B, depth=2, rank=r, memory=down) for r in (4, 2, 1)}
    for r in (1, 2, 4):
        np.testing.assert_array_equal(ups[r].toarray(), downs[r].toarray())


def test_clones_share_the_cache_and_grid_search_hits():
    B = make_butterfly(64, depth=2, rank=4, random_state=0)
    cache = SplitCache()
    assert clone(ButterflyApproximator(memory=cache)).memory is cache
    search = _search(cache).fit(B)
    assert cache.hits >= 2
    assert search.best_params_ == {"rank": 4}


def test_two_threads_searching_at_once_score_as_one_after_the_other():
    matrices = [
        make_butterfly(64, depth=2, rank=4, random_state=s, noise=1e-2) for s in (3, 4)
    ]
    sequential = [
        _search(SplitCache(), 0.1).fit(B).cv_results_["mean_test_error"]
        for B in matrices
    ]
    results = [None, None]
    barrier = threading.Barrier(2)

    def run(i):
        barrier.wait()
        search = _search(SplitCache(), 0.1)
        results[i] = search.fit(matrices[i]).cv_results_["mean_test_error"]

    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, sequential):
        np.testing.assert_array_equal(got, want)


def test_no_cache_outlives_its_owner():
    B = make_butterfly(32, depth=2, rank=2, random_state=0)
    cache = SplitCache()
    est = ButterflyApproximator(depth=2, memory=cache).fit(B)
    ref = weakref.ref(cache)
    del cache, est
    gc.collect()
    assert ref() is None
    assert active_cache() is None


def test_deprecated_split_cache_still_works_and_closes():
    B = make_butterfly(64, depth=2, rank=4, random_state=0)
    with pytest.warns(FutureWarning, match="memory=SplitCache"):
        with split_cache() as cache:
            _search(None).fit(B)
            assert active_cache() is cache
    assert cache.hits >= 2
    assert active_cache() is None


def test_deprecated_split_cache_threads_do_not_close_each_other():
    entered, leave = threading.Event(), threading.Event()
    seen = {}

    def other():
        with pytest.warns(FutureWarning), split_cache() as mine:
            seen["other"] = mine
            entered.set()
            leave.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    entered.wait(10)
    with pytest.warns(FutureWarning), split_cache() as own:
        assert active_cache() is own
    # Leaving our block leaves the other thread's cache open for its workers.
    assert active_cache() is seen["other"]
    leave.set()
    thread.join()
    assert active_cache() is None


def test_joblib_memory_caches_on_disk(tmp_path):
    B = make_butterfly(64, depth=2, rank=2, random_state=0, noise=1e-3)
    first = butterfly_factorize(B, depth=2, rank=2, memory=str(tmp_path))
    assert any(tmp_path.rglob("*.pkl"))
    again = butterfly_factorize(B, depth=2, rank=1, memory=Memory(tmp_path, verbose=0))
    direct = butterfly_factorize(B, depth=2, rank=1)
    np.testing.assert_allclose(again.toarray(), direct.toarray(), atol=1e-10)
    assert first.n_params > again.n_params


def test_bad_memory_names_the_parameter():
    with pytest.raises(ValueError, match="'memory' parameter"):
        butterfly_factorize(np.eye(4), memory=3)
