"""The layout of the barrier method's per-user data (:mod:`barrier`): which column of a user's
five shares is which, and the per-user coefficient matrix its kernels read.

The kernels come in two builds with one contract: :mod:`barrier_kernels` (compiled by numba,
one user per loop pass) and :mod:`barrier_vectorised` (NumPy, all users at once).
"""

from __future__ import annotations

import numpy as np

from mecllm.core.arrays import FloatArray
from mecllm.systems.finetune.solvers.allocation.surrogate import SurrogateTerms

#: Positions of the five shares in a user's block.
BETA, PI, KAPPA, F, SIGMA = range(5)
#: Columns of the coefficient matrix.
K1, K2, K3, K4, GAMMA_UP, GAMMA_DN, UP, DN, EPS1, EPS3, A_UP, C_UP, A_DN, C_DN = range(14)
N_COEF = 14


def coefficients(terms: SurrogateTerms, weights: tuple[FloatArray, ...]) -> FloatArray:
    """(N, N_COEF) the per-user coefficients of ``terms`` with the FP ``weights``
    ``(a_up, c_up, a_dn, c_dn)``."""
    t = terms
    columns = [t.k1, t.k2, t.k3, t.k4, t.gamma_up, t.gamma_dn, t.up, t.dn, t.eps1, t.eps3]
    return np.ascontiguousarray(np.stack([*columns, *weights], axis=1), dtype=float)
