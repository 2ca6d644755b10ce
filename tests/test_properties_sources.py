"""Property-based tests of the inputs beyond an in-memory array.

The chunked source (dask arrays, here with random chunkings and memory budgets
small enough to force many panels) must give the factors of the in-memory fit
whatever the chunking; exact butterflies must stay exact through it. The
operator source adds its own campaign in ``test_operator_source.py``.
"""

import numpy as np
import pytest
from _reference import scaled_butterfly
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.sparse.linalg import aslinearoperator

from skbutterfly import ProbedOperator, butterfly_factorize
from skbutterfly._chunked import chunked_source
from skbutterfly._factorize import factorize_core
from skbutterfly.datasets import make_butterfly

try:
    import dask.array as da
except ImportError:  # the [dask] extra is optional; the operator tests still run
    da = None

SETTINGS = settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def chunked_problems(draw):
    n = draw(st.sampled_from([16, 32, 64]))
    depth = draw(st.sampled_from([2, 3]))
    rank = draw(st.sampled_from([1, 2]))
    noise = draw(st.sampled_from([0.0, 1e-3, 0.1]))
    dtype = draw(st.sampled_from([np.float64, np.complex128]))
    seed = draw(st.integers(0, 2**16))
    A = make_butterfly(n, depth=depth, rank=rank, noise=noise, random_state=seed)
    if dtype == np.complex128:
        # Complex column phases merge into the last factor: still a butterfly.
        phases = np.random.default_rng(seed).random(n)
        A = A * np.exp(2j * np.pi * phases)[None, :]
    row_chunk = draw(st.integers(1, n))
    col_chunk = draw(st.sampled_from([n, max(1, n // 2), draw(st.integers(1, n))]))
    budget = draw(st.sampled_from([None, 4 * n * 16, 16 * n * 16]))
    params = {
        "depth": depth,
        "rank": rank,
        "permutation": draw(st.sampled_from([None, "bit-reversal"])),
        "orthonormalize": draw(st.booleans()),
    }
    return A, (row_chunk, col_chunk), budget, params, noise


@SETTINGS
@given(chunked_problems())
@pytest.mark.skipif(da is None, reason="needs the [dask] extra")
def test_any_chunking_gives_the_in_memory_factors(problem):
    A, chunks, budget, params, noise = problem
    dense = butterfly_factorize(A, **params)
    source = chunked_source(da.from_array(A, chunks=chunks), memory_budget=budget)
    op, info = factorize_core(source, **params, compute_error=True)
    scale = np.linalg.norm(A)
    want = np.linalg.norm(dense.toarray() - A) / scale
    got = np.linalg.norm(op.toarray() - A) / scale
    if noise == 0.0 and params["permutation"] is None:
        # Exact butterflies are recovered to roundoff through any chunking.
        assert got <= 1e-10
    # The in-memory error, to 1e-6 relative (the blocks' solver is the same).
    assert abs(got - want) <= 1e-6 * want + 1e-12
    # The chunk-wise error measurement agrees with the dense one.
    np.testing.assert_allclose(info["relative_error"], got, rtol=1e-6, atol=1e-12)


@pytest.mark.skipif(da is None, reason="needs the [dask] extra")
@SETTINGS
@given(
    st.integers(1, 64),
    st.integers(1, 64),
    st.sampled_from([None, 2048, 8192]),
)
def test_chunking_and_budget_never_change_the_factors(row_chunk, col_chunk, budget):
    A = make_butterfly(64, depth=2, rank=2, noise=0.05, random_state=7)
    params = {"depth": 2, "rank": 2}
    reference = factorize_core(
        chunked_source(da.from_array(A, chunks=(64, 64))), **params
    )[0].toarray()
    source = chunked_source(
        da.from_array(A, chunks=(row_chunk, col_chunk)), memory_budget=budget
    )
    got = factorize_core(source, **params)[0].toarray()
    np.testing.assert_allclose(got, reference, rtol=0, atol=1e-12 * np.abs(A).max())


@st.composite
def operator_problems(draw):
    n = draw(st.sampled_from([256, 1024]))
    rank = draw(st.sampled_from([1, 2]))
    depth = draw(st.sampled_from([2, 4]))
    seed = draw(st.integers(0, 2**16))
    complex_ = draw(st.booleans())
    A = make_butterfly(n, depth=depth, rank=rank, random_state=seed)
    # A column scaling merges into the last factor: still an exact butterfly,
    # with block singular values spread over up to 1e-8, complex if drawn.
    spread = draw(st.sampled_from([1.0, 1e-4, 1e-8]))
    scale = np.geomspace(1.0, spread, n)
    if complex_:
        scale = scale * np.exp(2j * np.pi * np.random.default_rng(seed).random(n))
    A = A * scale[None, :]
    return A, {"depth": depth, "rank": rank}, draw(st.integers(0, 3))


@SETTINGS
@given(operator_problems())
def test_exact_butterflies_given_as_operators_are_recovered(problem):
    A, params, random_state = problem
    wrapped = ProbedOperator(aslinearoperator(A), oversampling=2)
    op = butterfly_factorize(wrapped, **params, random_state=random_state)
    error = np.linalg.norm(op.toarray() - A) / np.linalg.norm(A)
    n = A.shape[0]
    products = wrapped.n_products["forward"] + wrapped.n_products["adjoint"]
    if products < n:  # the sketch ran (small ones are formed once instead)
        assert products <= 8 * (params["rank"] + 4) * np.sqrt(n)
    assert error < 1e-9
    again = butterfly_factorize(
        ProbedOperator(aslinearoperator(A), oversampling=2),
        **params,
        random_state=random_state,
    )
    np.testing.assert_array_equal(again.toarray(), op.toarray())


# --------------------- precision and determinism through the other sources


@st.composite
def ill_conditioned_sources(draw, sizes, depths):
    """Exact butterflies with interfaces spread over 1e-8, and a solver."""
    n = draw(st.sampled_from(sizes))
    depth = draw(st.sampled_from(depths))
    rank = draw(st.sampled_from([1, 2, 3]))
    spread = 10.0 ** -draw(st.floats(0, 8))
    scaling = np.geomspace(1.0, spread, rank)[list(draw(st.permutations(range(rank))))]
    dtype = draw(st.sampled_from([np.float64, np.complex128]))
    A = scaled_butterfly(n, depth, rank, scaling, dtype, seed=draw(st.integers(0, 99)))
    params = {
        "depth": depth,
        "rank": rank,
        "svd_solver": draw(st.sampled_from(["auto", "full", "gram", "subspace"])),
        "tree": draw(st.sampled_from(["balanced", "left-to-right", "right-to-left"])),
    }
    return A, params


def _error(op, A):
    return np.linalg.norm(op.toarray() - A) / np.linalg.norm(A)


def _global_state():
    return np.random.get_state()[1].copy()  # noqa: NPY002


@pytest.mark.skipif(da is None, reason="needs the [dask] extra")
@SETTINGS
@given(ill_conditioned_sources([16, 32, 64], [2, 3]), st.data())
def test_chunked_ill_conditioned_butterflies_exact_and_deterministic(problem, data):
    """Any chunking, every solver: machine precision, identical repeated fits,
    and the global random state untouched."""
    A, params = problem
    n = A.shape[0]
    chunks = (data.draw(st.integers(1, n)), data.draw(st.integers(1, n)))
    before = _global_state()
    op = butterfly_factorize(da.from_array(A, chunks=chunks), **params)
    assert _error(op, A) < 1e-13
    again = butterfly_factorize(da.from_array(A, chunks=chunks), **params)
    for a, b in zip(again.twiddles, op.twiddles):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(_global_state(), before)


@settings(SETTINGS, max_examples=10)
@given(ill_conditioned_sources([512, 1024], [2, 4]), st.sampled_from([None, 0, 5]))
def test_operator_ill_conditioned_butterflies_exact_and_deterministic(
    problem, random_state
):
    """Operators (sketched from products at n = 1024, formed from n products
    when that is cheaper), every solver and random_state, None included:
    machine precision and identical repeated fits."""
    A, params = problem
    before = _global_state()
    fits = [
        butterfly_factorize(
            ProbedOperator(aslinearoperator(A), oversampling=2),
            **params,
            random_state=random_state,
        )
        for _ in range(2)
    ]
    assert _error(fits[0], A) < 1e-12
    for a, b in zip(fits[0].twiddles, fits[1].twiddles):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(_global_state(), before)
