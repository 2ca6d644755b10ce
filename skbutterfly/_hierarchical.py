"""The hierarchical butterfly factorization: a tree of exact two-factor splits."""

# SPDX-License-Identifier: BSD-3-Clause

from math import prod

from skbutterfly._chain import _gb_factors
from skbutterfly._diagnostics import FitProgress
from skbutterfly._split import split_group
from skbutterfly._twiddle import qr_push

__all__ = ["TREES", "hierarchical_factorize", "split_schedule"]

TREES = ("balanced", "left-to-right", "right-to-left")


def split_schedule(n_factors, tree):
    """Split positions grouped by tree level.

    Split ``i`` cuts between factors ``i`` and ``i + 1`` (0-based). The balanced
    tree gives the right part the extra factor when a node has an odd number
    of factors.

    Returns
    -------
    levels : list of list of int
        ``levels[t]`` are the splits of tree level ``t``, from left to right.
    """
    if tree not in TREES:
        raise ValueError(f"tree={tree!r} must be one of {TREES}.")
    levels = []
    nodes = [(0, n_factors - 1)] if n_factors > 1 else []
    while nodes:
        splits, children = [], []
        for s, e in nodes:
            if tree == "balanced":
                i = s + (e - s + 1) // 2 - 1
            elif tree == "left-to-right":
                i = s
            else:
                i = e - 1
            splits.append(i)
            children.extend(c for c in ((s, i), (i + 1, e)) if c[1] > c[0])
        levels.append(splits)
        nodes = children
    return levels


class _Node:
    """A contiguous run of factors ``[start, end]`` and its current twiddle."""

    __slots__ = ("end", "start", "twiddle")

    def __init__(self, start, end, twiddle):
        self.start, self.end, self.twiddle = start, end, twiddle


def hierarchical_factorize(
    source,
    chain,
    *,
    tree="balanced",
    orthonormalize=True,
    svd_solver="auto",
    n_jobs=None,
    random_state=None,
    verbose=0,
    cache=None,
    progress=None,
):
    """Factorize the working matrix of ``source`` on ``chain`` (hierarchical algorithm).

    Parameters
    ----------
    source : block source
        The matrix to factorize, already permuted, padded and scaled (see
        :mod:`skbutterfly._sources`); only the root split reads it.
    chain : tuple of (a, b, c, d)
        A validated chain of shape ``source.padded_shape``.
    tree : {"balanced", "left-to-right", "right-to-left"}
        Order of the two-factor splits.
    orthonormalize : bool
        Keep the factors left of the node being split column-orthonormal and the
        factors right of it row-orthonormal, so that each split sees the
        orthogonal projection of ``A`` (the error-guaranteed variant). Nodes are
        then split one after the other; without it, the nodes of a tree level
        that share a block shape go through one batched SVD.
    svd_solver : {"auto", "full", "gram", "subspace"}
        Solver for the batched block SVDs.
    n_jobs : int or None
        Threads over chunks of each SVD batch.
    random_state : numpy.random.Generator or None
        Randomness of the iterative solver.
    verbose : int
        Print one line per split (``split k of N`` and the elapsed time) when
        > 0, with the next block shapes when > 1.
    cache : SplitCache or None
        Where the root split's block factors are looked up and stored.
    progress : FitProgress, default=None
        The progress of the whole fit this factorization belongs to (its
        total counts all the splits of the fit); None starts a new one.

    Returns
    -------
    twiddles : list of ndarray
        One twiddle of shape ``(a, d, b, c)`` per factor, leftmost first.
    """
    gb = _gb_factors(chain)
    if len(gb) == 1:
        # The twiddle may be a view of the user's matrix: the operator keeps a copy.
        return [source.root_twiddle().copy()]
    solver_args = (svd_solver, n_jobs, random_state)
    if progress is None:
        progress = FitProgress(verbose, len(gb) - 1)
    levels = split_schedule(len(gb), tree)
    (root,) = levels[0]
    b2, c1, rank = _split_sizes(_Node(0, len(gb) - 1, None), gb, root)
    split_root = source.root_split if cache is None else cache._bind(source)
    left, right = split_root(
        b2,
        c1,
        rank,
        orthonormalize=orthonormalize,
        solver=svd_solver,
        n_jobs=n_jobs,
        random_state=random_state,
    )
    nodes = [_Node(0, root, left), _Node(root + 1, len(gb) - 1, right)]
    # With orthonormalize: nodes left of ``center`` have orthonormal columns.
    center = 1
    progress.splits_done(1, _shapes_note(nodes, gb, verbose))
    for level, splits in enumerate(levels[1:], start=1):
        children = {}
        if orthonormalize:
            for i in splits:
                k = _node_index(nodes, i)
                center = _move_center(nodes, gb, center, k)
                pair = _split_nodes([(nodes[k], i)], gb, True, *solver_args)
                nodes[k : k + 1] = pair[0]
                center = k + 1
                progress.splits_done(1, _shapes_note(nodes, gb, verbose))
        else:
            groups = {}
            for i in splits:
                node = nodes[_node_index(nodes, i)]
                groups.setdefault(_block_key(node, gb, i), []).append((node, i))
            for batch in groups.values():
                pairs = _split_nodes(batch, gb, False, *solver_args)
                children.update({id(node): p for (node, _), p in zip(batch, pairs)})
                progress.splits_done(len(batch))
            nodes = [c for node in nodes for c in children.get(id(node), [node])]
            if verbose > 1:
                progress.say(f"tree level {level + 1} done{_shapes_note(nodes, gb, 2)}")
    return [node.twiddle for node in nodes]


def _shapes_note(nodes, gb, verbose):
    """``", next blocks [...]"`` at ``verbose > 1``, else ``""``."""
    if verbose <= 1:
        return ""
    shapes = sorted({_block_shape(n, gb) for n in nodes if n.end > n.start})
    return f", next blocks {shapes}" if shapes else ""


def _split_sizes(node, gb, i):
    """``(b2, c1, rank)`` of the split of ``node`` after factor ``i``."""
    b2 = prod(f.bp for f in gb[i + 1 : node.end + 1])
    c1 = prod(f.cp for f in gb[node.start : i + 1])
    return b2, c1, gb[i].q


def _block_key(node, gb, i):
    b2, c1, r = _split_sizes(node, gb, i)
    _, _, B, C = node.twiddle.shape
    return (B // b2, C // c1, r)


def _block_shape(node, gb):
    i = node.start + (node.end - node.start + 1) // 2 - 1
    return _block_key(node, gb, i)[:2]


def _node_index(nodes, i):
    for k, node in enumerate(nodes):
        if node.start <= i < node.end:
            return k
    raise AssertionError(f"no node contains split {i}")  # pragma: no cover


def _move_center(nodes, gb, center, k):
    """Make nodes left of ``k`` column-orthonormal and right of it row-orthonormal."""
    while center < k:
        left, right = nodes[center], nodes[center + 1]
        c1 = prod(f.cp for f in gb[left.start : left.end + 1])
        b2 = prod(f.bp for f in gb[right.start : right.end + 1])
        left.twiddle, right.twiddle = qr_push(
            left.twiddle, right.twiddle, c1, b2, "left"
        )
        center += 1
    while center > k:
        left, right = nodes[center - 1], nodes[center]
        c1 = prod(f.cp for f in gb[left.start : left.end + 1])
        b2 = prod(f.bp for f in gb[right.start : right.end + 1])
        left.twiddle, right.twiddle = qr_push(
            left.twiddle, right.twiddle, c1, b2, "right"
        )
        center -= 1
    return center


def _split_nodes(batch, gb, orthonormalize, solver, n_jobs, random_state):
    """Split the nodes ``batch = [(node, i), ...]``, whose blocks share one shape.

    Blocks split on views (Gram or subspace iteration) go node by node, each
    call batched over the node's blocks; other blocks of all the nodes go
    through one batched SVD.

    Returns
    -------
    children : list of [left, right]
        The two new nodes of every split, in the order of ``batch``.
    """
    rank = gb[batch[0][1]].q
    sizes = [_split_sizes(node, gb, i)[:2] for node, i in batch]
    results = split_group(
        [node.twiddle for node, _ in batch],
        [b2 for b2, _ in sizes],
        [c1 for _, c1 in sizes],
        rank,
        orthonormalize=orthonormalize,
        solver=solver,
        n_jobs=n_jobs,
        random_state=random_state,
    )
    return [
        [_Node(node.start, i, left), _Node(i + 1, node.end, right)]
        for (node, i), (left, right) in zip(batch, results)
    ]
