"""Property-based tests of the inputs beyond an in-memory array.

The chunked source (dask arrays, here with random chunkings and memory budgets
small enough to force many panels) must give the factors of the in-memory fit
whatever the chunking; exact butterflies must stay exact through it. The
operator source adds its own campaign in ``test_operator_source.py``.
"""

import numpy as np
import pytest
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
