import re
import sys
import warnings

import numpy as np
import pytest
from scipy.linalg import dft

from skbutterfly import (
    ButterflyApproximator,
    ButterflyFitWarning,
    butterfly_factorize,
    feasible_depth_rank,
)
from skbutterfly._chain import chain_n_params, resolve_architecture
from skbutterfly._diagnostics import (
    POOR_FIT_ERROR,
    estimate_relative_error,
    oversized_message,
    poor_fit_message,
)
from skbutterfly._factorize import relative_error
from skbutterfly.datasets import dft_matrix, hadamard_matrix, make_butterfly
from skbutterfly.model_selection import feasible_grid


def _fit_warnings(func):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = func()
    return result, [w for w in caught if issubclass(w.category, ButterflyFitWarning)]


# ------------------------------------------------------------------ poor fits


def test_dft_without_permutation_warns_with_a_hint_naming_permutation():
    F = dft(1024)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = ButterflyApproximator().fit(F)
    line = sys._getframe().f_lineno - 1
    assert est.relative_error_ > 0.9
    assert len(caught) == 1
    message = str(caught[0].message)
    assert 'permutation="auto"' in message and 'permutation="identify"' in message
    assert "rank" in message and "TruncatedSVD" in message
    assert f"{est.relative_error_:.3g}" in message
    # the warning points at the caller's line, not inside the package
    assert (caught[0].filename, caught[0].lineno) == (__file__, line)


def test_function_warns_from_an_estimate():
    F = dft(1024)
    op, caught = _fit_warnings(lambda: butterfly_factorize(F))
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "estimated relative error" in message and "permutation=" in message
    estimate = float(re.search(r"estimated relative error ([0-9.e+-]+)", message)[1])
    exact = relative_error(op, F)
    assert exact > 0.9
    assert abs(estimate - exact) < 0.1 * exact
    assert caught[0].filename == __file__


def test_auto_that_fails_suggests_identify():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((64, 64))
    _, caught = _fit_warnings(lambda: ButterflyApproximator(permutation="auto").fit(A))
    (w,) = caught
    message = str(w.message)
    assert 'permutation="identify"' in message
    assert 'permutation="auto"' not in message


@pytest.mark.parametrize(
    "fit",
    [
        lambda: ButterflyApproximator(permutation="bit-reversal").fit(dft_matrix(1024)),
        lambda: butterfly_factorize(dft_matrix(1024), permutation="bit-reversal"),
        lambda: ButterflyApproximator().fit(hadamard_matrix(256)),
        lambda: butterfly_factorize(hadamard_matrix(256)),
        lambda: ButterflyApproximator(depth=3, rank=2).fit(
            make_butterfly(128, depth=3, rank=2, random_state=0)
        ),
        lambda: ButterflyApproximator(permutation="auto").fit(dft_matrix(64)),
        # depth 1 is the dense matrix itself: exact, never warned about
        lambda: ButterflyApproximator(depth=1).fit(np.eye(8)),
    ],
)
def test_good_fits_do_not_warn(fit):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit()


def test_noisy_butterfly_just_below_the_threshold_does_not_warn():
    B = make_butterfly(256, depth=8, rank=1, random_state=0)
    noise = np.random.default_rng(1).standard_normal(B.shape)
    A = B + 0.3 * noise * np.linalg.norm(B) / np.linalg.norm(noise)
    est, caught = _fit_warnings(lambda: ButterflyApproximator().fit(A))
    assert est.relative_error_ < POOR_FIT_ERROR
    assert caught == []


def test_estimate_matches_the_exact_error():
    B = make_butterfly(256, depth=8, rank=1, random_state=0)
    noise = np.random.default_rng(1).standard_normal(B.shape)
    for level in (1e-12, 1e-3, 0.3, 3.0):
        A = B + level * noise * np.linalg.norm(B) / np.linalg.norm(noise)
        op = butterfly_factorize(A) if level < 1 else butterfly_factorize(B)
        exact = relative_error(op, A)
        estimate = estimate_relative_error(op, A)
        assert estimate == estimate_relative_error(op, A)  # fixed seed
        assert abs(estimate - exact) < 0.25 * exact, (level, estimate, exact)


def test_poor_fit_message_threshold():
    args = dict(shape=(64, 64), n_params=768, rank=1, permutation="identity")
    assert poor_fit_message(0.5, **args) is None
    assert poor_fit_message(float("nan"), **args) is None
    message = poor_fit_message(0.51, **args)
    assert "0.51" in message and "n_components=6" in message
    # the rank cannot grow past min(m, n): no rank hint then
    assert "larger rank" not in poor_fit_message(0.9, **{**args, "rank": 64})


# -------------------------------------------------------- models larger than dense


@pytest.mark.parametrize(
    "fit",
    [
        lambda A: ButterflyApproximator(depth=2, rank=3).fit(A),
        lambda A: butterfly_factorize(A, depth=2, rank=3),
    ],
)
def test_model_larger_than_dense_warns(fit):
    A = make_butterfly(16, depth=2, rank=3, random_state=0)  # exact: no poor fit
    _, caught = _fit_warnings(lambda: fit(A))
    (w,) = caught
    message = str(w.message)
    assert "384 numbers" in message and "(256)" in message
    assert "rank" in message and "feasible_depth_rank" in message


def test_model_as_large_as_dense_warns_but_depth_one_does_not():
    assert oversized_message(16, (4, 4), depth=2) is not None
    assert oversized_message(15, (4, 4), depth=2) is None
    assert oversized_message(16, (4, 4), depth=1) is None
    A = make_butterfly(16, depth=2, rank=2, random_state=0)  # 256 = 16 * 16
    est, caught = _fit_warnings(lambda: ButterflyApproximator(depth=2, rank=2).fit(A))
    assert est.n_params_ == A.size and len(caught) == 1


@pytest.mark.parametrize(
    "shape", [(16, 16), (64, 64), (12, 18), (20, 3), (100, 10), (7, 13), (60, 64)]
)
def test_grids_leave_out_models_larger_than_dense(shape):
    m, n = shape
    pairs = feasible_depth_rank(shape)
    for depth, rank in pairs:
        chain, _ = resolve_architecture(shape, depth, rank)
        assert depth == 1 or chain_n_params(chain) <= m * n, (depth, rank)
    grid = feasible_grid(shape, ranks=range(1, 9))
    assert {(d, r) for g in grid for d in g["depth"] for r in g["rank"]} == {
        (d, r) for d, r in pairs if r <= 8
    }


def test_grid_of_16_drops_depth_2_rank_3():
    assert (2, 3) not in feasible_depth_rank((16, 16))
    assert feasible_depth_rank((16, 16), max_rank_per_depth=3) == [
        (1, 1),
        (2, 1),
        (2, 2),
        (3, 1),
        (4, 1),
    ]


# ------------------------------------------------------------------- progress


def _progress(out):
    return [
        (int(k), int(total), float(t))
        for k, total, t in re.findall(r"split (\d+) of (\d+), ([0-9.]+) s", out)
    ]


def test_estimator_progress_reaches_the_last_split_and_the_end(capsys):
    ButterflyApproximator(verbose=1).fit(hadamard_matrix(64))
    lines = capsys.readouterr().out.strip().splitlines()
    steps = _progress("\n".join(lines))
    assert [(k, total) for k, total, _ in steps] == [(k, 5) for k in range(1, 6)]
    assert [t for *_, t in steps] == sorted(t for *_, t in steps)
    assert "measuring the relative error" in lines[-2]
    assert re.match(r"\[skbutterfly\] done: relative error .*, [0-9.]+ s$", lines[-1])


def test_function_progress_counts_every_candidate(capsys):
    # "auto" screens its candidates and fits one here: give two explicitly.
    candidates = [np.arange(32), "bit-reversal"]
    butterfly_factorize(dft_matrix(32), permutation=candidates, verbose=1)
    out = capsys.readouterr().out
    steps = _progress(out)
    assert out.count("permutation candidate") == 2
    total = 4 * 2
    assert [(k, t) for k, t, _ in steps] == [(k, total) for k in range(1, total + 1)]
    assert "done: relative error" in out.strip().splitlines()[-1]


def test_progress_without_orthonormalization_counts_batched_splits(capsys):
    ButterflyApproximator(verbose=1, orthonormalize=False).fit(hadamard_matrix(64))
    steps = _progress(capsys.readouterr().out)
    assert steps[-1][:2] == (5, 5)


def test_verbose_zero_prints_nothing(capsys):
    ButterflyApproximator().fit(hadamard_matrix(64))
    with pytest.warns(ButterflyFitWarning):
        butterfly_factorize(dft(64))  # warns, prints nothing
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("shape", [(3, 64), (64, 5), (8, 8), (1, 100)])
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_error_of_a_thin_matrix_is_exact_not_probed(shape, dtype):
    """A side of at most 8 entries: the error on the identity (fewer products)."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal(shape)
    op = butterfly_factorize(A, depth=2) if min(shape) > 1 else butterfly_factorize(A)
    exact = relative_error(op, A)
    assert estimate_relative_error(op, A) == pytest.approx(exact, rel=1e-12, abs=1e-15)
    # At the top of the range, with the exponent the fit uses (no overflow).
    big = A * 2.0**1000
    op = (
        butterfly_factorize(big, depth=2)
        if min(shape) > 1
        else butterfly_factorize(big)
    )
    with np.errstate(over="raise"):
        scaled = estimate_relative_error(op, big, exponent=1001)
    assert scaled == pytest.approx(relative_error(op, big), rel=1e-12, abs=1e-15)
