"""The nested driver: levels solved in turn, lookahead, polish, and the trees."""

# SPDX-License-Identifier: BSD-3-Clause

import dataclasses

import numpy as np

from skbutterfly._permutation import bit_reversal
from skbutterfly.permutation._enumerate import exhaustive_level
from skbutterfly.permutation._exact import exact_level
from skbutterfly.permutation._level import LevelChoice, canonical, compress
from skbutterfly.permutation._matching import exchange, pair_costs, two_opt_gains
from skbutterfly.permutation._residual import abs2
from skbutterfly.permutation._robust import (
    EXHAUSTIVE_ROWS,
    alternate,
    refine_halves,
    robust_level,
)

__all__ = ["NestedFit", "nested_error", "nested_identify", "perms_from_dfs"]

# Lookahead: while K * M**3 is at most this, the best few level solutions are each
# completed greedily and judged on the total residual.
_LOOKAHEAD_SIZE = 2**13
_LOOKAHEAD_CANDIDATES = 6
# Polish: partner exchanges tried per round and evaluated per level; below this
# many pairs every pair is a candidate, above it only badly fitting ones.
_POLISH_MOVES = 16
_POLISH_EVALS = 64
_POLISH_ALL = 16


@dataclasses.dataclass(eq=False)
class NestedFit:
    """The levels of a nested identification, in order.

    ``states[i]`` is the input ``V`` of level ``i + 1``, ``history[i]`` its
    :class:`LevelChoice` and ``costs[i]`` its residual energy. ``failed_level``
    is the first level without a solution (exact mode), else None; ``row_perm``
    and ``col_perm`` are set once the trees are complete.
    """

    states: list = dataclasses.field(default_factory=list)
    history: list = dataclasses.field(default_factory=list)
    costs: list = dataclasses.field(default_factory=list)
    degenerate: bool = False
    failed_level: int | None = None
    row_perm: np.ndarray | None = None
    col_perm: np.ndarray | None = None

    @property
    def cost(self):
        """Total residual energy of the nested rank-one fit (NaN if a level failed)."""
        return np.nan if self.failed_level is not None else sum(self.costs)

    def replace_from(self, level, states, history, costs):
        """Replace the levels from ``level`` on (``states`` from ``level + 1``)."""
        self.states[level + 1 :] = states
        self.history[level + 1 :] = history
        self.costs[level + 1 :] = costs


def perms_from_dfs(row_dfs, col_dfs):
    """Permutations mapping identified trees onto the canonical ones.

    ``row_dfs`` and ``col_dfs`` are the leaf orders of a depth-first traversal of
    the identified row and column trees. The canonical column tree (contiguous
    halves) has the identity as DFS order; the canonical row tree (even/odd
    splits) has the bit reversal.
    """
    n = len(row_dfs)
    row_perm = np.empty(n, dtype=np.int64)
    row_perm[bit_reversal(n)] = row_dfs
    return row_perm, np.asarray(col_dfs, dtype=np.int64)


def _greedy(V, mode, tol, rng, warm=None, verbose=0, lookahead=True):
    """Level-by-level construction; returns a :class:`NestedFit`.

    In robust mode, while the remaining problem is small, the best few solutions
    of a level are each completed greedily and the one of smallest total residual
    is kept (the best solution of a level alone can ruin the later levels under
    noise). ``warm`` is the history of a previous run whose halves start the
    levels as long as the run follows it.
    """
    n_levels = V.shape[1].bit_length() - 1
    fit = NestedFit()
    on_track = warm is not None
    for level in range(1, n_levels):
        K, M, _ = V.shape
        Vh = None
        if mode == "exact":
            pairs, halves, Vh, deg = exact_level(V, tol, rng)
            fit.degenerate |= deg
            if pairs is None:
                fit.failed_level = level
                if verbose:
                    print(f"[identify] exact: no consistent pairing at level {level}")
                return fit
        else:
            init = None
            if on_track and level - 1 < len(warm):
                init = warm[level - 1].halves
            n_cand = 1
            if lookahead and level < n_levels - 1 and K * M**3 <= _LOOKAHEAD_SIZE:
                n_cand = _LOOKAHEAD_CANDIDATES
            candidates, deg = robust_level(V, rng, init, n_cand)
            fit.degenerate |= deg
            pairs, halves, _ = candidates[0]
            if len(candidates) > 1:
                best_total = np.inf
                for cand_pairs, cand_halves, cand_cost in candidates:
                    V_next, _ = compress(V, cand_pairs, cand_halves)
                    sub = _greedy(V_next, mode, tol, rng, lookahead=False)
                    total = cand_cost + sum(sub.costs)
                    if total < best_total:
                        best_total, pairs, halves = total, cand_pairs, cand_halves
            on_track = (
                on_track
                and level - 1 < len(warm)
                and canonical(pairs, halves) == canonical(*warm[level - 1])
            )
        V_next, blocks = compress(V, pairs, halves, Vh)
        fit.states.append(V)
        fit.history.append(LevelChoice(pairs, halves))
        fit.costs.append(float(blocks.sum()))
        if verbose > 1:
            print(f"[identify] {mode}: level {level}, residual {fit.costs[-1]:.3e}")
        V = V_next
    return fit


def _downstream(V, history):
    """Re-solve the given levels from ``V``, warm-started from their halves.

    Small levels are solved exactly (enumeration), the others by alternation
    from the previous halves. Returns the new states, history and costs.
    """
    states, new_history, costs = [], [], []
    for _, halves in history:
        if V.shape[1] <= EXHAUSTIVE_ROWS:
            pairs, halves, _ = exhaustive_level(V)[0][0]
        else:
            pairs, halves, _ = alternate(V, halves)
        V_next, blocks = compress(V, pairs, halves)
        states.append(V)
        new_history.append(LevelChoice(pairs, halves))
        costs.append(float(blocks.sum()))
        V = V_next
    return states, new_history, costs


def _resolve_later(fit, rng):
    """Re-run the full level search on every level after the first, keep gains."""
    for level in range(1, len(fit.history)):
        V = fit.states[level]
        candidates, _ = robust_level(V, rng, fit.history[level].halves)
        pairs, halves, _ = candidates[0]
        V_next, blocks = compress(V, pairs, halves)
        downstream = _downstream(V_next, fit.history[level + 1 :])
        new_total = float(blocks.sum()) + sum(downstream[2])
        if new_total < sum(fit.costs[level:]) * (1 - 1e-12):
            fit.history[level] = LevelChoice(pairs, halves)
            fit.costs[level] = float(blocks.sum())
            fit.replace_from(level, *downstream)


def _blame(fit, level):
    """Per pair of ``level``, the residual of its block at the next level."""
    nxt_pairs, nxt_halves = fit.history[level + 1]
    _, nxt_blocks = compress(fit.states[level + 1], nxt_pairs, nxt_halves)
    per_pair = nxt_blocks.sum(axis=(0, 1))
    blame = np.empty(fit.history[level].pairs.shape[0])
    blame[nxt_pairs[:, 0]] = per_pair
    blame[nxt_pairs[:, 1]] = per_pair
    return blame


def _polish(fit, verbose=0):
    """Exchange partners at a level when the later levels gain more than it costs.

    Under noise a row pair can be ambiguous at its own level (e.g. rows whose
    energy sits almost entirely in one half) while a wrong choice ruins every
    later level. Candidate exchanges involve pairs whose compressed rows fit badly
    at the next level, cheapest first; each is scored by re-solving all later
    levels (warm-started) and kept if the total residual decreases. Modifies
    ``fit`` in place; returns the number of exchanges accepted.
    """
    costs = fit.costs
    n_accepted = 0
    for level in range(len(fit.history) - 1):
        n_evals = 0
        while n_evals < _POLISH_EVALS:
            V = fit.states[level]
            pairs, halves = fit.history[level]
            later = sum(costs[level + 1 :])
            if later <= 1e-14 * (sum(costs) + 1e-300):
                break
            blame = _blame(fit, level)
            suspect = blame > 2.0 * np.median(blame) + 1e-300
            if pairs.shape[0] <= _POLISH_ALL:
                suspect[:] = True
            if not suspect.any():
                break
            alt1, alt2, gain = two_opt_gains(pair_costs(V, halves), pairs)
            delta = -gain
            allowed = suspect[:, None] & suspect[None, :]
            if suspect.sum() < 2:
                allowed = suspect[:, None] | suspect[None, :]
            delta = np.where(np.triu(allowed, 1), delta, np.inf)
            order = np.argsort(delta, axis=None, kind="stable")[:_POLISH_MOVES]
            accepted = False
            for flat in order:
                if not delta.flat[flat] < later:
                    break
                p, q = np.unravel_index(flat, delta.shape)
                new_pairs = exchange(pairs, p, q, alt1[p, q] <= alt2[p, q])
                new_halves, _ = refine_halves(V, new_pairs, halves)
                V_next, blocks = compress(V, new_pairs, new_halves)
                downstream = _downstream(V_next, fit.history[level + 1 :])
                n_evals += 1
                new_total = float(blocks.sum()) + sum(downstream[2])
                if new_total < costs[level] + later - 1e-12 * (costs[level] + later):
                    fit.history[level] = LevelChoice(new_pairs, new_halves)
                    costs[level] = float(blocks.sum())
                    fit.replace_from(level, *downstream)
                    accepted = True
                    n_accepted += 1
                    break
                if n_evals >= _POLISH_EVALS:
                    break
            if not accepted:
                break
    if verbose > 1:
        print(f"[identify] robust: {n_accepted} exchanges accepted by the polish")
    return n_accepted


def _replay(n, history):
    """Permutations of the trees described by the levels' pairs and halves."""
    members = np.arange(n, dtype=np.int64)[:, None]
    cols = np.arange(n, dtype=np.int64)[None, :]
    for pairs, halves in history:
        K, M = cols.shape
        members = np.concatenate([members[pairs[:, 0]], members[pairs[:, 1]]], axis=1)
        cols = np.take_along_axis(cols, halves.reshape(K, M), axis=1)
        cols = cols.reshape(2 * K, M // 2)
    return perms_from_dfs(members.reshape(-1), cols.reshape(-1))


def nested_identify(A, mode, tol, rng, warm=None, verbose=0):
    """Identify both trees level by level on compressed rows.

    ``mode`` is ``"exact"`` or ``"robust"``; ``warm`` is the history of a
    previous fit (robust mode). Returns a :class:`NestedFit` whose ``row_perm``
    and ``col_perm`` are None when a level failed.
    """
    fit = _greedy(A[None], mode, tol, rng, warm=warm, verbose=verbose)
    if fit.failed_level is not None:
        return fit
    if mode == "robust" and _polish(fit, verbose=verbose):
        _resolve_later(fit, rng)
    fit.row_perm, fit.col_perm = _replay(A.shape[0], fit.history)
    return fit


def nested_error(B):
    """Relative error of the nested rank-one fit of ``B`` with the canonical trees.

    This is the error of the orthonormal left-to-right hierarchical
    factorization of ``B`` (a small reference for benchmarks).
    """
    n = B.shape[0]
    V = np.asarray(B)[None]
    total = 0.0
    while V.shape[1] > 2:
        K, M, _ = V.shape
        pairs = np.stack([np.arange(M // 2), np.arange(M // 2, M)], axis=1)
        halves = np.broadcast_to(np.arange(M).reshape(1, 2, M // 2), (K, 2, M // 2))
        V, blocks = compress(V, pairs, halves)
        total += float(blocks.sum())
    norm2 = float(abs2(np.asarray(B)).sum())
    return float(np.sqrt(total / norm2)) if norm2 > 0 and n > 2 else 0.0
