"""Permutations of the butterfly model: fixed reversals and identification.

A matrix may be a butterfly only once its rows and columns are put in the right
order. This module gives the fixed orders of the fast transforms (bit and digit
reversal, the candidates of ``permutation="auto"``), the checker that measures
how far a matrix is from a butterfly (:func:`butterfly_residual`) and the
identification of unknown row and column permutations
(:func:`identify_permutations`, used by ``permutation="identify"``).
"""

# SPDX-License-Identifier: BSD-3-Clause

from skbutterfly._permutation import (
    bit_reversal,
    candidate_permutations,
    digit_reversal,
)
from skbutterfly.permutation._identify import identify_permutations
from skbutterfly.permutation._residual import butterfly_residual
from skbutterfly.permutation._result import PermutationIdentification

__all__ = [
    "PermutationIdentification",
    "bit_reversal",
    "butterfly_residual",
    "candidate_permutations",
    "digit_reversal",
    "identify_permutations",
]
