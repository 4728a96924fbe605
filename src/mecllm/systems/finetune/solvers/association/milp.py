"""AO part 1 solved exactly: a mixed-integer LP (McCormick products, exact for binary x) for
HiGHS through ``scipy.optimize.milp``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.optimize as so
import scipy.sparse as sp

from mecllm.core.arrays import FloatArray, IntArray
from mecllm.systems.finetune.solvers.association.pricing import PairCosts, objective_scale

#: How an association step ended: proven optimal (MILP), stopped at its time limit with an
#: incumbent (MILP), a heuristic answer (the threshold scan), or no answer.
MilpStatus = Literal["optimal", "time_limit", "heuristic", "failed"]


@dataclass(frozen=True)
class MilpResult:
    """Outcome of the exact part-1 MILP."""

    assignment: IntArray
    phi: FloatArray
    value: float
    bound: float
    gap: float
    status: MilpStatus
    seconds: float


def solve_milp(
    costs: PairCosts, time_limit_s: float = 60.0, start: IntArray | None = None
) -> MilpResult:
    """Part 1 exactly: x binary, w = x phi linearised (exact since x is binary), HiGHS.

    Variables ``[x (N*M), w (N*M), tau]``; phi_n = sum_m w_nm. ``start`` is unused by scipy's
    interface but kept for callers that may pass an incumbent.
    """
    del start
    started = time.perf_counter()
    n, m = costs.shape
    nm = n * m
    scale = objective_scale(costs)
    t_ref = float(
        max(np.max(costs.delay_base), np.max(costs.delay_base + costs.delay_slope), 1e-12)
    )
    c = (
        np.concatenate(
            [costs.constant.ravel(), costs.slope_cost.ravel(), [costs.delay_weight * t_ref]]
        )
        / scale
    )
    user_of = np.repeat(np.arange(n), m)
    server_of = np.tile(np.arange(m), n)
    eye_nm = sp.identity(nm, format="csr")
    # sum_m x_nm = 1
    one_hot = sp.csr_matrix((np.ones(nm), (user_of, np.arange(nm))), shape=(n, nm))
    # w <= cap * x
    w_le_x = sp.hstack([-sp.diags(costs.phi_cap.ravel()), eye_nm, sp.csr_matrix((nm, 1))])
    # delay: sum_m base x + slope w - tau <= 0
    delay = sp.hstack(
        [
            sp.csr_matrix(
                ((costs.delay_base / t_ref).ravel(), (user_of, np.arange(nm))), shape=(n, nm)
            ),
            sp.csr_matrix(
                ((costs.delay_slope / t_ref).ravel(), (user_of, np.arange(nm))), shape=(n, nm)
            ),
            -np.ones((n, 1)),
        ]
    )
    blocks = [sp.hstack([one_hot, sp.csr_matrix((n, nm + 1))]), w_le_x, delay]
    lower = [np.ones(n), np.full(nm, -np.inf), np.full(n, -np.inf)]
    upper = [np.ones(n), np.zeros(nm), np.zeros(n)]
    for k in range(3):
        usage = costs.usage[k].ravel() / costs.capacity[k][server_of]
        blocks.append(
            sp.hstack(
                [
                    sp.csr_matrix((usage, (server_of, np.arange(nm))), shape=(m, nm)),
                    sp.csr_matrix((m, nm + 1)),
                ]
            )
        )
        lower.append(np.full(m, -np.inf))
        upper.append(np.ones(m) * (1 + 1e-9))
    constraints = so.LinearConstraint(
        sp.vstack(blocks, format="csr"), np.concatenate(lower), np.concatenate(upper)
    )
    integrality = np.concatenate([np.ones(nm), np.zeros(nm + 1)])
    bounds = so.Bounds(np.zeros(2 * nm + 1), np.concatenate([np.ones(2 * nm), [np.inf]]))
    result = so.milp(
        c,
        constraints=constraints,
        integrality=integrality,
        bounds=bounds,
        # HiGHS's presolve costs more than it saves on these models (measured: MILP time at
        # 20x3 0.54 -> 0.26 s, at 60x5 6.1 -> 2.4 s, same optima): the root LP bound is tight.
        options={"time_limit": max(time_limit_s, 0.1), "mip_rel_gap": 1e-6, "presolve": False},
    )
    seconds = time.perf_counter() - started
    if result.x is None:
        return MilpResult(
            np.zeros(n, dtype=np.int64),
            np.zeros(n),
            float("nan"),
            float("nan"),
            float("inf"),
            "failed",
            seconds,
        )
    x = result.x[:nm].reshape(n, m)
    assignment = np.argmax(x, axis=1).astype(np.int64)
    phi = np.clip(result.x[nm : 2 * nm].reshape(n, m).sum(axis=1), 0.0, 1.0)
    bound = float(getattr(result, "mip_dual_bound", np.nan)) * scale
    value = costs.objective(assignment, phi)
    gap = float(getattr(result, "mip_gap", 0.0) or 0.0)
    status: MilpStatus = "optimal" if result.status == 0 else "time_limit"
    return MilpResult(assignment, phi, value, bound, gap, status, seconds)
