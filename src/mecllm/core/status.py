"""The closed sets of outcomes (cvxpy style): of a whole solve, and of one convex step."""

from __future__ import annotations

from typing import Literal, get_args

#: How a solve ended. ``heuristic``: a one-shot rule, no optimisation; ``converged``: the
#: stopping rule held; ``iteration_limit``/``time_limit``: a cap stopped it (the best plan so
#: far is returned); ``optimal``/``inaccurate``: a solver's own verdict on a single solve.
SolveStatus = Literal[
    "optimal", "converged", "iteration_limit", "time_limit", "inaccurate", "heuristic"
]
SOLVE_STATUSES: tuple[str, ...] = get_args(SolveStatus)

#: How one convex solve ended: solved, solved to reduced accuracy, or no solution.
StepStatus = Literal["optimal", "inaccurate", "failed"]

#: How a Dinkelbach loop ended.
LoopStatus = Literal["converged", "iteration_limit", "time_limit"]
