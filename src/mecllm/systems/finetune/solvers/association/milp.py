"""AO part 1 solved exactly: a mixed-integer LP (McCormick products, exact for binary x) for
HiGHS (:mod:`mecllm.core.highs`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mecllm.core import highs
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

    Variables ``[x (N*M), w (N*M), tau]``; phi_n = sum_m w_nm. ``start`` is unused (no incumbent
    is passed to HiGHS) but kept for callers that may pass one.
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
    pair = np.arange(nm)
    x_col, w_col, tau_col = pair, nm + pair, 2 * nm
    # Rows: sum_m x_nm = 1 (n); w <= cap x (nm); delay sum_m base x + slope w - tau <= 0 (n);
    # each server's three caps (3 m).
    w_row, delay_row = n + pair, n + nm + user_of
    cap_rows = [n + nm + n + k * m + server_of for k in range(3)]
    rows = np.concatenate([user_of, w_row, w_row, delay_row, delay_row, n + nm + np.arange(n)])
    cols = np.concatenate([x_col, x_col, w_col, x_col, w_col, np.full(n, tau_col)])
    values = np.concatenate(
        [
            np.ones(nm),
            -costs.phi_cap.ravel(),
            np.ones(nm),
            (costs.delay_base / t_ref).ravel(),
            (costs.delay_slope / t_ref).ravel(),
            -np.ones(n),
        ]
    )
    for k in range(3):
        rows = np.concatenate([rows, cap_rows[k]])
        cols = np.concatenate([cols, x_col])
        values = np.concatenate([values, costs.usage[k].ravel() / costs.capacity[k][server_of]])
    lower = np.concatenate([np.ones(n), np.full(nm + n + 3 * m, -np.inf)])
    upper = np.concatenate([np.ones(n), np.zeros(nm + n), np.full(3 * m, 1 + 1e-9)])
    result = highs.solve(
        c,
        (rows, cols, values),
        (lower, upper),
        (np.zeros(2 * nm + 1), np.concatenate([np.ones(2 * nm), [np.inf]])),
        integer=np.arange(2 * nm + 1) < nm,
        # HiGHS's presolve costs more than it saves on these models (measured: MILP time at
        # 20x3 0.54 -> 0.26 s, at 60x5 6.1 -> 2.4 s, same optima): the root LP bound is tight.
        # The scaled objective is a small difference of terms near 1 (0.0015 at paper 4x2
        # seed 11), and two associations there differ by 6e-7: at HiGHS's default MIP
        # feasibility tolerance (1e-6) highspy 1.16 pruned the better one and reported the
        # other as optimal; at 1e-9 it finds the better, as scipy's build did.
        options={
            "time_limit": max(time_limit_s, 0.1),
            "mip_rel_gap": 1e-6,
            "mip_abs_gap": 0.0,
            "mip_feasibility_tolerance": 1e-9,
            "presolve": False,
        },
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
    bound = result.dual_bound * scale
    value = costs.objective(assignment, phi)
    gap = result.gap
    status: MilpStatus = "optimal" if result.status == "optimal" else "time_limit"
    return MilpResult(assignment, phi, value, bound, gap, status, seconds)
