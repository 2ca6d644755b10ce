"""Butterfly factorization of dense matrices, inside scikit-learn."""

# SPDX-License-Identifier: BSD-3-Clause

from skbutterfly._approximator import ButterflyApproximator, butterfly_factorize
from skbutterfly._chain import (
    butterfly_chain,
    feasible_depth_rank,
    low_rank_chain,
    monarch_chain,
    square_dyadic_chain,
    validate_chain,
)
from skbutterfly._diagnostics import ButterflyFitWarning
from skbutterfly._operator import ButterflyOperator
from skbutterfly._probes import ProbedOperator

__version__ = "0.2.0"

__all__ = [
    "ButterflyApproximator",
    "ButterflyFitWarning",
    "ButterflyOperator",
    "ProbedOperator",
    "__version__",
    "butterfly_chain",
    "butterfly_factorize",
    "feasible_depth_rank",
    "low_rank_chain",
    "monarch_chain",
    "square_dyadic_chain",
    "validate_chain",
]
