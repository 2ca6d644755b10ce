"""Chunked inputs (dask, zarr, HDF5): same fit as in memory, read chunk by chunk."""

import os
import sys
import tracemalloc

import numpy as np
import pytest

from skbutterfly import ButterflyApproximator, butterfly_factorize
from skbutterfly._chunked import ChunkedSource, chunked_source
from skbutterfly.datasets import make_butterfly

try:  # the optional [dask] extra
    import dask.array as da
    import h5py
    import zarr
except ImportError:
    da = h5py = zarr = None

needs_dask = pytest.mark.skipif(
    da is None, reason='needs the [dask] extra: pip install "skbutterfly[dask]"'
)

N = 1024
RANK = 2


@pytest.fixture(scope="module")
def noisy():
    """A noisy rank-2 butterfly and its in-memory fit."""
    A = make_butterfly(N, rank=RANK, noise=0.05, random_state=0)
    return A, ButterflyApproximator(rank=RANK).fit(A)


def _zarr(path, A, chunks):
    Z = zarr.create_array(store=str(path), shape=A.shape, chunks=chunks, dtype=A.dtype)
    Z[:] = A
    return Z


def _assert_same_fit(est, ref, error_rtol=1e-6):
    assert est.n_features_in_ == ref.n_features_in_
    assert est.chain_ == ref.chain_
    assert est.relative_error_ == pytest.approx(ref.relative_error_, rel=error_rtol)
    got, want = est.operator_.toarray(), ref.operator_.toarray()
    # The noise leaves the blocks' two leading singular values well apart from
    # the rest: the factors' product is the in-memory one.
    assert np.linalg.norm(got - want) <= 1e-6 * np.linalg.norm(want)


@pytest.mark.parametrize(
    "kind", ["dask-rows", "dask-columns", "zarr-rows", "hdf5-rows"]
)
@needs_dask
def test_chunked_inputs_give_the_in_memory_fit(kind, noisy, tmp_path):
    A, ref = noisy
    if kind == "dask-rows":
        X = da.from_array(A, chunks=(100, N))
    elif kind == "dask-columns":
        X = da.from_array(A, chunks=(N, 256))
    elif kind == "zarr-rows":
        X = _zarr(tmp_path / "a.zarr", A, (64, N))
    else:
        with h5py.File(tmp_path / "a.h5", "w") as f:
            f.create_dataset("A", data=A, chunks=(96, N))
        X = h5py.File(tmp_path / "a.h5", "r")["A"]
    est = ButterflyApproximator(rank=RANK).fit(X)
    _assert_same_fit(est, ref)
    assert not hasattr(est, "feature_names_in_")


@needs_dask
def test_plans_read_row_chunks_once_and_column_chunks_directly(noisy):
    A, _ = noisy
    rows = chunked_source(da.from_array(A, chunks=(128, N)))
    cols = chunked_source(da.from_array(A, chunks=(N, 128)))
    panels = rows.panels(32, 32)
    assert len(panels) > 1
    # Row chunks: every panel would read the whole matrix.
    assert rows.read_amplification(panels, 32) == pytest.approx(len(panels))
    assert cols.read_amplification(panels, 32) == pytest.approx(1.0)
    for source, plan in ((rows, "panel files"), (cols, "direct")):
        source.root_split(
            32,
            32,
            1,
            orthonormalize=True,
            solver="auto",
            n_jobs=None,
            random_state=np.random.RandomState(0),
        )
        assert source.last_plan == plan
        source.release()


@needs_dask
@pytest.mark.parametrize("permuted", [False, True])
def test_error_from_the_panel_files_equals_the_store_pass(noisy, permuted, tmp_path):
    # Row chunks and a small budget: several panels copied into files, which
    # also give the statistics (no pass of their own) and then the error.
    from skbutterfly._factorize import factorize_core

    A, _ = noisy
    X = da.from_array(A, chunks=(64, N))
    perm = None
    if permuted:
        rng = np.random.default_rng(3)
        perm = (rng.permutation(N), rng.permutation(N))
    source = ChunkedSource(X, memory_budget=N * 64 * 8, temp_folder=str(tmp_path))
    op, info = factorize_core(source, rank=RANK, permutation=perm, compute_error=True)
    assert source.last_error_plan == "panel files"
    assert os.listdir(tmp_path) == []  # deleted once the error is known
    fresh = chunked_source(X)  # no panel files: one pass over the chunks
    store_error = fresh.relative_error(op)
    assert fresh.last_error_plan == "store"
    want = np.linalg.norm(op.toarray() - A) / np.linalg.norm(A)
    assert info["relative_error"] == pytest.approx(want, rel=1e-10)
    assert store_error == pytest.approx(want, rel=1e-10)
    # The statistics folded into the copy are the chunk pass's.
    assert source.top == np.abs(A).max() == fresh.top
    assert source.norm == pytest.approx(fresh.norm, rel=1e-12)


@needs_dask
def test_panel_files_go_with_the_fit(noisy, tmp_path, monkeypatch):
    import tempfile

    A, ref = noisy
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    X = da.from_array(A, chunks=(64, N))
    op = butterfly_factorize(X, rank=RANK)  # no error: dropped with the sources
    assert os.listdir(tmp_path) == []
    assert np.linalg.norm(
        op.toarray() - ref.operator_.toarray()
    ) <= 1e-6 * np.linalg.norm(A)


@needs_dask
def test_nan_in_row_chunks_copied_to_panel_files(tmp_path):
    A = make_butterfly(256, random_state=0)
    A[100, 200] = np.inf
    X = da.from_array(A, chunks=(32, 128))
    source = ChunkedSource(X, memory_budget=256 * 16 * 8, temp_folder=str(tmp_path))
    with pytest.raises(ValueError, match=r"chunk \(3, 1\).*\(100, 200\): inf"):
        source.root_split(
            16,
            16,
            1,
            orthonormalize=True,
            solver="auto",
            n_jobs=None,
            random_state=np.random.RandomState(0),
        )
    assert source.last_plan == "panel files"
    assert os.listdir(tmp_path) == []


@needs_dask
def test_function_permutations_and_padding(noisy, tmp_path):
    rng = np.random.default_rng(1)
    A = make_butterfly(shape=(1024, 512), rank=1, noise=0.02, random_state=1)
    A = A[:1000, :500]  # padded to the chain's shape
    perm = (rng.permutation(1000), rng.permutation(500))
    ref = butterfly_factorize(A, permutation=perm)
    got = butterfly_factorize(da.from_array(A, chunks=(64, 500)), permutation=perm)
    assert got.padded_shape == ref.padded_shape
    D, R = got.toarray(), ref.toarray()
    assert np.linalg.norm(D - R) <= 1e-6 * np.linalg.norm(R)
    F, _ = noisy
    Z = _zarr(tmp_path / "b.zarr", F, (100, N))
    got = butterfly_factorize(Z, rank=RANK, permutation="bit-reversal")
    want = butterfly_factorize(F, rank=RANK, permutation="bit-reversal")
    assert np.array_equal(got.col_perm, want.col_perm)
    err = [np.linalg.norm(op.toarray() - F) for op in (got, want)]
    assert err[0] == pytest.approx(err[1], rel=1e-6)


@needs_dask
def test_estimator_doors(noisy):
    A, ref = noisy
    X = da.from_array(A, chunks=(128, N))
    est = ButterflyApproximator(rank=RANK, operator=X).fit(np.ones((3, N)))
    _assert_same_fit(est, ref)
    with pytest.raises(ValueError, match=r"operator\.shape"):
        ButterflyApproximator(operator=X).fit(np.ones((3, 5)))
    est = ButterflyApproximator(rank=RANK)
    Y = est.fit_transform(X)
    assert np.allclose(Y, A @ ref.operator_.toarray().T, atol=1e-6 * np.abs(Y).max())
    assert est.score(X) == pytest.approx(-ref.relative_error_, rel=1e-6)


@needs_dask
def test_depth_one_reads_the_whole_matrix():
    A = np.arange(12.0).reshape(3, 4)
    op = butterfly_factorize(da.from_array(A, chunks=(1, 4)), depth=1)
    assert np.array_equal(op.toarray(), A)


@needs_dask
def test_integer_and_float32_chunks_keep_the_dense_dtype_rules():
    A = np.arange(64).reshape(8, 8) % 5
    assert butterfly_factorize(da.from_array(A, chunks=4)).dtype == np.float64
    A32 = A.astype(np.float32)
    op = butterfly_factorize(da.from_array(A32, chunks=4))
    assert op.dtype == np.float32


def test_without_dask_the_error_says_what_to_install(monkeypatch):
    class FakeZarr:
        shape, dtype, ndim = (4, 4), np.dtype(float), 2

    FakeZarr.__module__ = "zarr.core.array"
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match=r'pip install "skbutterfly\[dask\]"'):
        butterfly_factorize(FakeZarr())


def test_read_ahead_keeps_the_order_and_raises_where_the_item_is_consumed():
    from skbutterfly._chunked_panels import read_ahead

    assert list(read_ahead(lambda k: 2 * k, range(5))) == [0, 2, 4, 6, 8]
    assert list(read_ahead(lambda k: k, [])) == []

    def read(k):
        if k == 3:
            raise OSError("disk read error")
        return k

    got = []
    with pytest.raises(OSError, match="disk read error"):
        for item in read_ahead(read, range(6), depth=2):
            got.append(item)
    assert got == [0, 1, 2]


# -- bad inputs ---------------------------------------------------------------


@needs_dask
def test_nan_names_the_chunk_and_the_entry():
    A = np.ones((64, 64))
    A[37, 5] = np.nan
    with pytest.raises(ValueError, match=r"chunk \(2, 0\).*\(37, 5\)"):
        butterfly_factorize(da.from_array(A, chunks=(16, 64)))


@needs_dask
def test_a_chunk_that_fails_to_load_is_a_clear_error():
    def load(block, block_info=None):
        if block_info[0]["chunk-location"] == (1, 0):
            raise OSError("disk read error")
        return block

    X = da.from_array(np.ones((64, 64)), chunks=(16, 64))
    X = X.map_blocks(load, dtype=X.dtype)
    with pytest.raises(ValueError, match=r"reading the chunked matrix failed.*disk"):
        butterfly_factorize(X)


@needs_dask
def test_missing_and_corrupt_zarr_chunks(tmp_path):
    A = make_butterfly(64, random_state=0)
    Z = _zarr(tmp_path / "m.zarr", A, (16, 64))
    chunk_files = sorted(
        os.path.join(d, f)
        for d, _, files in os.walk(tmp_path / "m.zarr")
        for f in files
        if "zarr.json" not in f
    )
    assert len(chunk_files) == 4
    with open(chunk_files[1], "r+b") as f:
        f.write(b"\x00garbage" * 8)
    with pytest.raises(ValueError, match="reading the chunked matrix failed"):
        butterfly_factorize(Z)
    os.remove(chunk_files[2])
    Z = zarr.open_array(str(tmp_path / "m.zarr"), mode="r")
    with pytest.raises(ValueError, match="only 3 are stored"):
        butterfly_factorize(Z)


@needs_dask
def test_truncated_hdf5_file(tmp_path):
    A = make_butterfly(256, random_state=0)
    path = tmp_path / "t.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("A", data=A, chunks=(32, 256))
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    try:
        dataset = h5py.File(path, "r")["A"]
    except OSError:
        return  # h5py refuses the file itself: a clear error
    with pytest.raises(ValueError, match="reading the chunked matrix failed"):
        butterfly_factorize(dataset)


# -- dask.distributed -----------------------------------------------------------


# -- memory -------------------------------------------------------------------


@needs_dask
def test_fit_memory_grows_by_less_than_a_quarter_of_the_matrix(tmp_path):
    # numpy's allocations are traced (allocator caching aside); the benchmark
    # measures the process's peak RSS at n = 16384. Equality with the
    # in-memory fit is checked above.
    n = 4096
    A = make_butterfly(n, noise=0.01, random_state=0)
    Z = _zarr(tmp_path / "big.zarr", A, (32, n))
    del A
    ButterflyApproximator().fit(_zarr(tmp_path / "small.zarr", np.eye(64), (8, 64)))
    tracemalloc.start()
    try:
        est = ButterflyApproximator().fit(Z)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < n * n * 8 / 4
    # The noise (1 % of the norm) is what a butterfly fit cannot represent.
    assert 0.009 < est.relative_error_ < 0.0101


@needs_dask
@pytest.mark.slow
def test_noisy_4096_from_zarr(tmp_path):
    A = make_butterfly(4096, rank=2, noise=0.05, random_state=0)
    ref = ButterflyApproximator(rank=2).fit(A)
    est = ButterflyApproximator(rank=2).fit(_zarr(tmp_path / "a.zarr", A, (128, 4096)))
    _assert_same_fit(est, ref)
    assert isinstance(chunked_source(da.from_array(A, chunks=512)), ChunkedSource)


# -- dask.distributed -----------------------------------------------------------


@pytest.fixture(scope="class")
def client():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=40,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


class _no_client:
    """Hide the default client (and its scheduler) for a local fit."""

    def __enter__(self):
        import dask

        from skbutterfly import _chunked

        self._saved = _chunked.active_client
        _chunked.active_client = lambda: None
        self._config = dask.config.set(scheduler="threads")
        self._config.__enter__()

    def __exit__(self, *exc):
        from skbutterfly import _chunked

        _chunked.active_client = self._saved
        self._config.__exit__(*exc)


def _claim_call_number(folder):
    """The first ``i`` whose file ``call-i`` this call creates (any process)."""
    i = 0
    while True:
        try:
            os.close(os.open(os.path.join(folder, f"call-{i}"), os.O_CREAT | os.O_EXCL))
            return i
        except FileExistsError:
            i += 1


@needs_dask
class TestCluster:
    """On a 2-worker LocalCluster, started and closed around these tests."""

    def test_runs_on_both_workers_and_equals_local(self, client, noisy, tmp_path):
        from distributed import get_task_stream

        A, _ = noisy
        Z = _zarr(tmp_path / "c.zarr", A, (64, N))
        with get_task_stream(client) as stream:
            got = butterfly_factorize(Z, rank=RANK)
        keys = [(str(t["key"]), t["worker"]) for t in stream.data]
        assert len({worker for key, worker in keys if "solve_panel" in key}) == 2
        with _no_client():  # the same fit in this process, same solver
            want = butterfly_factorize(Z, rank=RANK)
        for t, u in zip(got.twiddles, want.twiddles):
            np.testing.assert_allclose(t, u, rtol=1e-10, atol=1e-12 * np.abs(u).max())

    def test_losing_a_worker_mid_fit_gives_the_right_result(
        self, client, noisy, tmp_path
    ):
        A, ref = noisy
        folder = str(tmp_path)
        n_chunks = 8

        def die_once_in_the_panel_pass(block):
            # Calls are numbered across processes; the stats pass reads every
            # chunk once, so call n_chunks + 3 belongs to the panel pass.
            if _claim_call_number(folder) == n_chunks + 3:
                os._exit(1)
            return block

        X = da.from_array(A, chunks=(N // n_chunks, N)).map_blocks(
            die_once_in_the_panel_pass, dtype=A.dtype
        )
        est = ButterflyApproximator(rank=RANK).fit(X)
        assert len(os.listdir(folder)) > n_chunks + 3  # a worker did die
        _assert_same_fit(est, ref)

    def test_grid_search_with_the_dask_joblib_backend(self, client, noisy):
        from joblib import parallel_config
        from sklearn.model_selection import GridSearchCV

        from skbutterfly.model_selection import FullMatrixSplit

        A = make_butterfly(64, rank=2, noise=0.01, random_state=0)
        search = GridSearchCV(
            ButterflyApproximator(), {"rank": [1, 2]}, cv=FullMatrixSplit(), n_jobs=2
        )
        with parallel_config(backend="dask"):
            search.fit(A)
        assert search.best_params_ == {"rank": 2}
