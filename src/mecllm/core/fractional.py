"""Fractional-programming helpers shared by the systems' resource steps.

The quadratic transform (Shen and Yu) replaces a ratio ``chi / r`` of a convex numerator over a
concave rate by ``chi^2 z + 1 / (4 r^2 z)``: equal at ``z = 1 / (2 chi r)`` and an upper bound
for every other ``z > 0``, so alternating the closed-form z with one convex solve never
increases the true cost. The convex solves go through cvxpy with a list of fallback solvers.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from mecllm.core.arrays import FloatArray
from mecllm.core.status import StepStatus

if TYPE_CHECKING:  # cvxpy takes 0.7 s to import: only the solves that use it load it
    import cvxpy as cp

#: Per-solver options of the resource steps. One thread: results do not depend on scheduling,
#: and parallel sweeps do not oversubscribe. SCS is the fallback when Clarabel stops (it does
#: on badly conditioned instances such as the paper-literal noise); its default 100,000
#: iterations cost seconds for answers that rarely improve the plan, so it is capped.
SOLVER_OPTIONS: dict[str, dict[str, float | int]] = {
    "CLARABEL": {"max_threads": 1},
    "SCS": {"max_iters": 10_000, "eps_abs": 1e-5, "eps_rel": 1e-5},
}


def solve_with_fallback(
    problem: cp.Problem, variable: cp.Variable, solver_options: dict[str, dict[str, float | int]]
) -> StepStatus:
    """Solve ``problem`` with each solver of ``solver_options`` in turn (with its options) until
    one returns a solution: "optimal", "inaccurate" (``OPTIMAL_INACCURATE``) or "failed"."""
    import cvxpy as cp

    for solver, options in solver_options.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                problem.solve(solver=solver, **options)
        except (cp.error.SolverError, ArithmeticError, ValueError):
            continue
        if problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) and variable.value is not None:
            return "optimal" if problem.status == cp.OPTIMAL else "inaccurate"
    return "failed"


def fp_bound(chi: FloatArray, rate: FloatArray, z: FloatArray) -> FloatArray:
    """The quadratic transform ``chi^2 z + 1 / (4 r^2 z)`` of ``chi / r`` (an upper bound)."""
    out: FloatArray = chi**2 * z + 1.0 / (4.0 * rate**2 * z)
    return out


def fp_optimal_z(chi: FloatArray, rate: FloatArray) -> FloatArray:
    """The z where :func:`fp_bound` touches ``chi / r``: ``1 / (2 chi r)``."""
    out: FloatArray = 1.0 / (2.0 * chi * rate)
    return out
