"""Inputs of the benchmark cases, built the same way in every worker process.

A case is a plain dict (it travels as JSON to the worker processes)::

    {"case": "dft", "m": 1024, "n": 1024, "precision": "float64",
     "depth": None, "rank": 1}

``precision`` is the real precision: the DFT is complex128 for "float64" and
complex64 for "float32".
"""

import numpy as np

# Human-readable descriptions, in the order of the report.
CASES = {
    "dft": "DFT matrix, bit-reversal column permutation, square dyadic rank 1",
    "hadamard": "Hadamard matrix, square dyadic rank 1",
    "gaussian": "i.i.d. standard normal, square dyadic rank 1",
    "noisy-butterfly": "random square dyadic butterfly product + 10 % relative noise",
    "monarch": "i.i.d. standard normal, Monarch (depth 2, rank 1)",
    "rank4": "random depth-4 rank-4 butterfly product + 10 % relative noise",
    "rect": "i.i.d. standard normal 768 x 3072, depth 2, rank 4",
    "sweep": "the rank-4 input at n = 1024, every (depth, rank) of a grid",
}

# (depth, rank) grid of the "sweep" case (infeasible pairs are dropped).
SWEEP = (
    (10, 1), (6, 1), (4, 1), (3, 1), (2, 1), (6, 2), (4, 2), (2, 2),
    (5, 4), (4, 4), (3, 4), (2, 4), (4, 8),
)  # fmt: skip

# Cases whose architecture is the square dyadic rank-1 chain (all peers apply).
SQUARE_DYADIC = ("dft", "hadamard", "gaussian", "noisy-butterfly")

NOISE = 0.1
SEED = 0


def make_case(case, n, precision="float64", m=None, depth=None, rank=1):
    """The case dict of ``case`` at size ``n`` (``m`` rows for "rect").

    ``depth`` and ``rank`` are used by the "sweep" case only.
    """
    if case == "monarch":
        depth = 2
    elif case == "rank4":
        depth, rank = 4, 4
    elif case == "rect":
        depth, rank = 2, 4
        m = 768 if m is None else m
        n = 3072 if n is None else n
    return {
        "case": case,
        "m": n if m is None else m,
        "n": n,
        "precision": precision,
        "depth": depth,
        "rank": rank,
    }


def case_key(spec):
    """A short stable label of a case dict."""
    shape = f"{spec['m']}x{spec['n']}" if spec["m"] != spec["n"] else str(spec["n"])
    key = f"{spec['case']}/{spec['precision']}/{shape}"
    if spec["case"] == "sweep":
        key += f"/d{spec['depth']}r{spec['rank']}"
    return key


def dtype_of(spec):
    """The dtype of the input matrix of ``spec``."""
    if spec["case"] == "dft":
        return np.dtype(
            np.complex64 if spec["precision"] == "float32" else np.complex128
        )
    return np.dtype(np.float32 if spec["precision"] == "float32" else np.float64)


def uses_bit_reversal(spec):
    return spec["case"] == "dft"


def build_input(spec):
    """The input matrix of ``spec`` (deterministic)."""
    from skbutterfly import datasets

    case, m, n = spec["case"], spec["m"], spec["n"]
    dtype = dtype_of(spec)
    rng = np.random.default_rng(SEED)
    if case == "dft":
        return datasets.dft_matrix(n, dtype=dtype)
    if case == "hadamard":
        return datasets.hadamard_matrix(n, dtype=dtype)
    if case in ("gaussian", "monarch", "rect"):
        A = rng.standard_normal((m, n))
        return A.astype(dtype, copy=False)
    if case == "noisy-butterfly":
        return datasets.make_butterfly(n, noise=NOISE, random_state=SEED, dtype=dtype)
    if case in ("rank4", "sweep"):
        return datasets.make_butterfly(
            n, depth=4, rank=4, noise=NOISE, random_state=SEED, dtype=dtype
        )
    raise ValueError(f"unknown case {case!r}")


def bit_reversal(n):
    """Bit-reversal permutation of range(n) (n a power of two)."""
    bits = int(n).bit_length() - 1
    idx = np.arange(n)
    rev = np.zeros(n, dtype=np.intp)
    for _ in range(bits):
        rev = (rev << 1) | (idx & 1)
        idx >>= 1
    return rev
