"""The robust level solver: two-line clustering, matching and swaps under noise."""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np

from skbutterfly.permutation._enumerate import enumerated_level, exhaustive_level
from skbutterfly.permutation._level import (
    LevelSolution,
    ambiguous,
    bloch,
    canonical,
    canonical_halves,
    halves_from_mask,
    level_cost,
    split_norms,
    top_mask,
)
from skbutterfly.permutation._matching import matching, pair_costs
from skbutterfly.permutation._residual import abs2

__all__ = ["EXHAUSTIVE_ROWS", "alternate", "refine_halves", "robust_level"]

# Per level: seed pairs (reference rows and their best partner), starts refined
# from them, pairs trusted by the halving step (fit at most this many times the
# median), candidates of the Lloyd refinement of a partner fit, alternation
# rounds, Lloyd iterations, borderline columns tried in single swaps.
_SEED_PAIRS = 8
_ROBUST_REFS = 3
_TRUST = 3.0
_PARTNER_REFINE = 8
_ROBUST_ROUNDS = 8
_LLOYD_ITER = 30
_SWAP_CANDIDATES = 6
# Small levels: solved by enumeration (at most 8 row groups; or one stack of at
# most 16 columns); extra random starts and joint swaps while K * M**3 (the size
# of the level's search) is below the budget.
EXHAUSTIVE_ROWS = 8
_ENUMERATED_COLUMNS = 16
_START_BUDGET = 2.0**17
_RANDOM_STARTS = 32
_SWAP_EVALS = 48


def _ref_partner_fits(V, ref):
    """Best two-line fit of the pair (ref, a) on every stack, for every row ``a``.

    The principal axis of each candidate's Bloch points gives a first balanced
    split; the best candidates are then refined by balanced Lloyd steps. Returns
    the fit cost (sum over stacks of ``sigma_2^2`` on the two halves), shape
    ``(M,)``, and the half-0 masks, shape ``(K, M, M)``.
    """
    _K, M, _ = V.shape
    m = M // 2
    W, n = bloch(V[:, ref : ref + 1, :], V, axis=2)  # (K, M, D, Mc), (K, M, Mc)
    n_tot = n.sum(axis=-1)
    W_tot = W.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        P = np.nan_to_num(W / n[:, :, None, :])
        mean = np.nan_to_num(W_tot / n_tot[..., None])
    cov = np.matmul(W, P.swapaxes(-1, -2)) - n_tot[..., None, None] * (
        mean[..., :, None] * mean[..., None, :]
    )
    axis = np.linalg.eigh(cov)[1][..., -1]
    mask = top_mask((P * axis[..., None]).sum(axis=2), m)
    R0 = (W * mask[:, :, None, :]).sum(axis=-1)
    value = np.linalg.norm(R0, axis=-1) + np.linalg.norm(W_tot - R0, axis=-1)
    cost = 0.5 * (n_tot - value).sum(axis=0)
    cost[ref] = np.inf
    cand = np.argsort(cost, kind="stable")[: min(_PARTNER_REFINE, M - 1)]
    Wc, Wt, mk = W[:, cand], W_tot[:, cand], mask[:, cand]
    value = value[:, cand]
    for _ in range(_LLOYD_ITER):
        R0 = (Wc * mk[:, :, None, :]).sum(axis=-1)
        R1 = Wt - R0
        n0 = np.linalg.norm(R0, axis=-1, keepdims=True)
        n1 = np.linalg.norm(R1, axis=-1, keepdims=True)
        e = R0 / np.maximum(n0, 1e-300) - R1 / np.maximum(n1, 1e-300)
        new_mask = top_mask((Wc * e[..., None]).sum(axis=2), m)
        R0n = (Wc * new_mask[:, :, None, :]).sum(axis=-1)
        new_value = np.linalg.norm(R0n, axis=-1) + np.linalg.norm(Wt - R0n, axis=-1)
        better = new_value > value * (1 + 1e-13)
        if not better.any():
            break
        mk = np.where(better[..., None], new_mask, mk)
        value = np.where(better, new_value, value)
    cost[cand] = 0.5 * (n_tot[:, cand] - value).sum(axis=0)
    mask[:, cand] = mk
    return cost, mask


def refine_halves(V, pairs, halves):
    """Balanced two-line clustering of every stack's columns, given the pairs.

    Maximizes ``sum_p ||R_p0|| + ||R_p1||`` (``R_ph``: sum of the weighted Bloch
    vectors of pair p on half h), which minimizes the level's
    ``sum sigma_2^2``, by balanced Lloyd steps and single swaps of borderline
    columns. Returns the halves and the level cost.
    """
    K, M, _ = V.shape
    m = M // 2
    W, n = bloch(V[:, pairs[:, 0], :], V[:, pairs[:, 1], :], axis=1)  # (K, D, P, M)
    D = W.shape[1]
    W = W.reshape(K, -1, M)
    W_tot = W.sum(axis=-1)
    n_tot = n.sum(axis=(1, 2))
    mask = np.zeros((K, M), dtype=bool)
    np.put_along_axis(mask, halves[:, 0, :], True, axis=1)

    def objective(mask):
        R0 = np.matmul(W, mask[:, :, None].astype(W.dtype))[:, :, 0]
        R1 = W_tot - R0
        n0, n1 = split_norms(R0, D), split_norms(R1, D)
        return (n0 + n1).sum(axis=1), R0, R1, n0, n1

    value, R0, R1, n0, n1 = objective(mask)
    q = min(m, _SWAP_CANDIDATES)
    for _ in range(_LLOYD_ITER):
        changed = False
        # Balanced Lloyd step on the linearized objective.
        e = R0 / np.tile(np.maximum(n0, 1e-300), D) - R1 / np.tile(
            np.maximum(n1, 1e-300), D
        )
        score = np.matmul(e[:, None, :], W)[:, 0, :]
        new_mask = top_mask(score, m)
        new = objective(new_mask)
        better = new[0] > value * (1 + 1e-13)
        if better.any():
            changed = True
            mask[better] = new_mask[better]
            value, R0, R1, n0, n1 = objective(mask)
        # Single swaps between the borderline columns of the two halves.
        in0 = np.argpartition(np.where(mask, score, np.inf), q - 1, axis=1)[:, :q]
        in1 = np.argpartition(np.where(mask, np.inf, -score), q - 1, axis=1)[:, :q]
        W0 = np.take_along_axis(W, in0[:, None, :], axis=2)  # (K, DP, q)
        W1 = np.take_along_axis(W, in1[:, None, :], axis=2)
        delta = W1[:, :, None, :] - W0[:, :, :, None]  # (K, DP, q0, q1)
        shape = (K, D, -1, q, q)
        swapped = np.sqrt(((R0[:, :, None, None] + delta).reshape(shape) ** 2).sum(1))
        swapped += np.sqrt(((R1[:, :, None, None] - delta).reshape(shape) ** 2).sum(1))
        swapped = swapped.sum(axis=1).reshape(K, q * q)
        best = np.argmax(swapped, axis=1)
        gain = swapped[np.arange(K), best] - value
        do = gain > 1e-13 * np.maximum(value, 1e-300)
        if do.any():
            changed = True
            ks = np.flatnonzero(do)
            mask[ks, in0[ks, best[ks] // q]] = False
            mask[ks, in1[ks, best[ks] % q]] = True
            value, R0, R1, n0, n1 = objective(mask)
        if not changed:
            break
    cost = float(0.5 * (n_tot - value).sum())
    return halves_from_mask(mask), max(cost, 0.0)


def alternate(V, halves):
    """Alternate matching (given halves) and halving (given pairs) to a fixed point.

    The halving step trusts only the pairs that fit well (matched cost at most
    ``_TRUST`` times the median): a badly fitting pair is likely wrong and would
    pull the columns towards a self-consistent wrong solution. Returns a
    :class:`LevelSolution`.
    """
    key = canonical_halves(halves)
    for _ in range(_ROBUST_ROUNDS):
        C = pair_costs(V, halves)
        pairs = matching(C)
        fit = C[pairs[:, 0], pairs[:, 1]]
        trusted = fit <= _TRUST * np.median(fit) + 1e-300
        halves, _ = refine_halves(V, pairs[trusted], halves)
        new_key = canonical_halves(halves)
        if new_key == key:
            break
        key = new_key
    return LevelSolution(pairs, halves, level_cost(V, pairs, halves))


def _column_scores(V, pairs, halves):
    """Per column, how strongly it belongs to its half (Lloyd score, shape (K, M))."""
    K, M, _ = V.shape
    W, _ = bloch(V[:, pairs[:, 0], :], V[:, pairs[:, 1], :], axis=1)
    D = W.shape[1]
    W = W.reshape(K, -1, M)
    mask = np.zeros((K, M), dtype=bool)
    np.put_along_axis(mask, halves[:, 0, :], True, axis=1)
    R0 = np.matmul(W, mask[:, :, None].astype(W.dtype))[:, :, 0]
    R1 = W.sum(axis=-1) - R0
    e = R0 / np.tile(np.maximum(split_norms(R0, D), 1e-300), D) - R1 / np.tile(
        np.maximum(split_norms(R1, D), 1e-300), D
    )
    score = np.matmul(e[:, None, :], W)[:, 0, :]
    return np.where(mask, score, -score), mask


def _joint_swaps(V, solution, max_evals, record):
    """Swap two columns of a stack and re-match all rows; keep improvements.

    Escapes the self-consistent states of the alternation, where a misplaced
    column and a few wrong pairs justify each other. Candidates are the weakest
    columns of each half (by their Lloyd score). Every evaluated solution is
    appended to ``record``; returns the best one.
    """
    _K, M, _ = V.shape
    pairs, halves, cost = solution
    q = min(M // 2, 3)
    n_evals = 0
    while n_evals < max_evals:
        score, mask = _column_scores(V, pairs, halves)
        weak0 = np.argsort(np.where(mask, score, np.inf), axis=1)[:, :q]
        weak1 = np.argsort(np.where(mask, np.inf, score), axis=1)[:, :q]
        loss = (
            np.take_along_axis(score, weak0, axis=1)[:, :, None]
            + np.take_along_axis(score, weak1, axis=1)[:, None, :]
        )
        improved = False
        for flat in np.argsort(loss, axis=None, kind="stable"):
            b, i, j = np.unravel_index(flat, loss.shape)
            new_mask = mask.copy()
            new_mask[b, weak0[b, i]] = False
            new_mask[b, weak1[b, j]] = True
            new_halves = halves_from_mask(new_mask)
            new_pairs = matching(pair_costs(V, new_halves))
            new_halves, _ = refine_halves(V, new_pairs, new_halves)
            new_cost = level_cost(V, new_pairs, new_halves)
            n_evals += 1
            record.append(LevelSolution(new_pairs, new_halves, new_cost))
            if new_cost < cost * (1 - 1e-12):
                pairs, halves, cost, improved = new_pairs, new_halves, new_cost, True
                break
            if n_evals >= max_evals:
                break
        if not improved:
            break
    return LevelSolution(pairs, halves, cost)


def _seed_pairs(V):
    """Seed pairs: the best two-line partner of each of the best reference rows.

    Reference rows are those with the most even energy over the stacks. Returns
    the pairs ``(n_seeds, 2)``, each seed's half-0 mask ``(K, M)`` and the
    degeneracy flag (a reference with two equally good partners).
    """
    _K, M, _ = V.shape
    energy = abs2(V).sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        quality = np.nan_to_num(energy / energy.mean(axis=1, keepdims=True)).min(axis=0)
    order = np.argsort(-quality, kind="stable")
    n_seeds = min(M // 2, _SEED_PAIRS)
    used = np.zeros(M, dtype=bool)
    seeds, masks, degenerate = [], [], False
    for ref in order:
        if len(seeds) == n_seeds:
            break
        if used[ref]:
            continue
        cost, mask = _ref_partner_fits(V, ref)
        cost[used] = np.inf
        # Residual relative to the pair's energy: ~eps^2 for a true pair.
        rel = cost / np.maximum(energy[:, ref].sum() + energy.sum(axis=0), 1e-300)
        ranked = np.argsort(rel, kind="stable")
        partner = int(ranked[0])
        degenerate |= ambiguous(rel[ranked[0]], rel[ranked[1]])
        used[ref] = used[partner] = True
        seeds.append((int(ref), partner))
        masks.append(mask[:, partner, :])
    return np.array(seeds, dtype=np.int64), masks, degenerate


def robust_level(V, rng, init_halves=None, n_candidates=1):
    """One level of the robust search.

    Levels with at most ``EXHAUSTIVE_ROWS`` row groups are solved exactly by
    enumeration. Otherwise, seed pairs are the best two-line partners of several
    reference rows (the rows with the most even energy over the stacks), and the
    starts are: the halving of a seed pair refined by the balanced clustering of
    all seed pairs, each seed pair's own halving, random halvings while the level
    is small, and ``init_halves`` when given. Each start alternates matching and
    halving; joint column swaps polish the best state while the level is small.

    Returns the ``n_candidates`` best distinct :class:`LevelSolution` found and
    the degeneracy flag.
    """
    K, M, _ = V.shape
    if M <= EXHAUSTIVE_ROWS:
        return exhaustive_level(V, n_candidates)
    if K == 1 and M <= _ENUMERATED_COLUMNS:
        return enumerated_level(V, n_candidates)
    m = M // 2
    seeds, masks, degenerate = _seed_pairs(V)
    inits = [] if init_halves is None else [init_halves]
    for mask in masks[:_ROBUST_REFS]:
        inits.append(refine_halves(V, seeds, halves_from_mask(mask))[0])
    n_random = int(min(_RANDOM_STARTS, _START_BUDGET / (K * M**3)))
    if n_random > 0:
        inits.extend(halves_from_mask(mask) for mask in masks)
        for _ in range(n_random):
            inits.append(np.argsort(rng.random_sample((K, M)), axis=1).reshape(K, 2, m))
    found, seen = [], set()
    for halves in inits:
        key = canonical_halves(halves)
        if key in seen:
            continue
        seen.add(key)
        found.append(alternate(V, halves))
    best = min(found, key=lambda sol: sol.cost)
    n_swaps = int(min(_SWAP_EVALS, _START_BUDGET / (K * M**3)))
    if n_swaps > 0:
        found.append(_joint_swaps(V, best, n_swaps, record=found))
    found.sort(key=lambda sol: sol.cost)
    candidates, keys = [], set()
    for sol in found:
        key = canonical(sol.pairs, sol.halves)
        if key not in keys:
            keys.add(key)
            candidates.append(sol)
        if len(candidates) == n_candidates:
            break
    return candidates, degenerate
