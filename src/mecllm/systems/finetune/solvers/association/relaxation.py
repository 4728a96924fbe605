"""AO part 1 as the paper solves it: the semidefinite relaxation of the part-1 QCQP over
``S = [phi; x; 1][phi; x; 1]^T``, in the paper's dense form or in the equivalent chordal form
(one small PSD block per user), then Hungarian rounding (docs/finetune.md, "AO part 1").
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.optimize as so

from mecllm.core.arrays import FloatArray, IntArray
from mecllm.core.status import StepStatus
from mecllm.systems.finetune.solvers.association.pricing import (
    PairCosts,
    objective_scale,
    server_slots,
)


@dataclass(frozen=True)
class RelaxationResult:
    """Outcome of the semidefinite relaxation.

    Attributes
    ----------
    x_fractional : (N, M) relaxed association (last column of S).
    value : relaxation optimum in the part-1 minimisation units (a lower bound), or nan.
    status : "optimal", "inaccurate" or "failed".
    solver : the solver that produced it (or the last one tried).
    eigen_ratio : second over first eigenvalue of S (0 means rank one).
    seconds : wall time.
    """

    x_fractional: FloatArray
    value: float
    status: StepStatus
    solver: str
    eigen_ratio: float
    seconds: float


#: Interior-point tolerances: 1e-6 is well below what the rounding needs and lets Clarabel
#: finish with "solved" instead of "almost solved" on these mixed-scale problems.
_SOLVER_OPTIONS: dict[str, dict[str, float | int]] = {
    "CLARABEL": {
        "tol_gap_abs": 1e-6,
        "tol_gap_rel": 1e-6,
        "tol_feas": 1e-7,
        "max_iter": 300,
        "max_threads": 1,  # deterministic, and no oversubscription under parallel sweeps
    },
    "SCS": {"eps_abs": 1e-5, "eps_rel": 1e-5, "max_iters": 5000},
}


def relaxation_solvers() -> list[str]:
    """Solvers for the SDR in order of preference: MOSEK if installed, Clarabel, SCS."""
    installed = set(cp.installed_solvers())
    return [s for s in ("MOSEK", "CLARABEL", "SCS") if s in installed]


@dataclass(frozen=True)
class _Lifted:
    """The entries of the lifted matrix S the relaxation uses, as cvxpy expressions."""

    phi: cp.Expression  # (N,)      S[phi_n, 1]
    x: cp.Expression  # (N, M)      S[x_nm, 1]
    w: cp.Expression  # (N, M)      S[phi_n, x_nm]
    phi_square: cp.Expression  # (N,)  S[phi_n, phi_n]
    x_square: cp.Expression  # (N, M)  S[x_nm, x_nm]
    x_cross: cp.Expression | None  # S[x_nm, x_nm'], m < m'
    structure: list[cp.Constraint]  # S[1, 1] = 1
    matrices: list[cp.Variable]  # the PSD variables (one, or one per user)


def _lift_full(n: int, m: int) -> _Lifted:
    """One dense PSD matrix of size N + NM + 1, exactly as the paper writes it."""
    size = n + n * m + 1
    last = size - 1
    xi = n + np.arange(n * m).reshape(n, m)  # index of x_nm in S
    s_var = cp.Variable((size, size), PSD=True)
    col = s_var[:, last]
    users = np.repeat(np.arange(n), m)
    cross = None
    if m > 1:
        a, b = np.triu_indices(m, k=1)
        cross = s_var[xi[:, a].ravel(), xi[:, b].ravel()]
    return _Lifted(
        phi=col[:n],
        x=cp.reshape(col[n:last], (n, m), order="C"),
        w=cp.reshape(s_var[users, xi.ravel()], (n, m), order="C"),
        phi_square=cp.diag(s_var)[:n],
        x_square=cp.reshape(cp.diag(s_var)[n:last], (n, m), order="C"),
        x_cross=cross,
        structure=[s_var[last, last] == 1],
        matrices=[s_var],
    )


def _lift_chordal(n: int, m: int) -> _Lifted:
    """The same relaxation with S split into one (M+2) x (M+2) PSD block per user.

    Every entry of S that the objective or a constraint touches lies in a block
    {phi_n, x_n1..x_nM, 1}; these blocks meet only in the entry S[1, 1] = 1, so the pattern is
    chordal and (Grone et al., 1984) a partial S with PSD blocks has a PSD completion. The
    relaxation's value and its x are therefore those of the dense form, at a fraction of the
    cost (N small cones instead of one cone of size N(M+1)+1).
    """
    k = m + 2
    one = k - 1
    blocks = [cp.Variable((k, k), PSD=True) for _ in range(n)]
    a, b = np.triu_indices(m, k=1)
    return _Lifted(
        phi=cp.hstack([z[0, one] for z in blocks]),
        x=cp.vstack([z[1:one, one] for z in blocks]),
        w=cp.vstack([z[0, 1:one] for z in blocks]),
        phi_square=cp.hstack([z[0, 0] for z in blocks]),
        x_square=cp.vstack([cp.diag(z)[1:one] for z in blocks]),
        x_cross=cp.hstack([z[1 + a, 1 + b] for z in blocks]) if m > 1 else None,
        structure=[cp.hstack([z[one, one] for z in blocks]) == 1],
        matrices=blocks,
    )


def solve_relaxation(
    costs: PairCosts, solvers: list[str] | None = None, form: str = "chordal"
) -> RelaxationResult:
    """The paper's SDR (its (8)) over S = [phi; x; 1][phi; x; 1]^T with valid inequalities.

    The relaxation as printed is unbounded (docs/finetune.md section 11), so the McCormick
    inequalities of the products w = x phi, S[phi, phi] <= phi and the one-hot structure of x
    are added; they hold for every 0/1 x and phi in [0, 1], so the value stays a valid lower bound.

    ``form`` is ``"full"`` (one dense PSD matrix of size N + NM + 1, as printed) or
    ``"chordal"`` (the identical relaxation split into per-user PSD blocks, much faster).
    """
    started = time.perf_counter()
    n, m = costs.shape
    scale = objective_scale(costs)
    t_ref = float(
        max(np.max(costs.delay_base), np.max(costs.delay_base + costs.delay_slope), 1e-12)
    )
    if form == "full":
        lifted = _lift_full(n, m)
    elif form == "chordal":
        lifted = _lift_chordal(n, m)
    else:
        raise ValueError(f"unknown relaxation form {form!r}")
    tau = cp.Variable(nonneg=True)
    phi, x, w = lifted.phi, lifted.x, lifted.w
    phi_nm = cp.reshape(phi[np.repeat(np.arange(n), m)], (n, m), order="C")
    constraints = [
        *lifted.structure,
        lifted.x_square == x,  # x (x - 1) = 0
        cp.sum(x, axis=1) == 1,
        phi >= 0,
        phi <= 1,
        lifted.phi_square <= phi,
        w >= 0,
        w <= x,
        w <= phi_nm,
        w >= phi_nm + x - 1,
        cp.sum(w, axis=1) == phi,
        w <= cp.multiply(costs.phi_cap, x),
        cp.sum(
            cp.multiply(costs.delay_base / t_ref, x) + cp.multiply(costs.delay_slope / t_ref, w),
            axis=1,
        )
        <= tau,
    ]
    if lifted.x_cross is not None:
        constraints.append(lifted.x_cross == 0)  # x_nm x_nm' = 0 for m != m'
    for k in range(3):
        share = costs.usage[k] / costs.capacity[k][None, :]
        constraints.append(cp.sum(cp.multiply(share, x), axis=0) <= 1)
    objective = cp.Minimize(
        costs.delay_weight * t_ref / scale * tau
        + cp.sum(cp.multiply(costs.constant / scale, x))
        + cp.sum(cp.multiply(costs.slope_cost / scale, w))
    )
    problem = cp.Problem(objective, constraints)
    status: StepStatus = "failed"
    used = ""
    kept: tuple[FloatArray, float, str, float] | None = None
    for solver in solvers or relaxation_solvers():
        used = solver
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # statuses are checked below
                problem.solve(solver=solver, **_SOLVER_OPTIONS.get(solver, {}))
        except (cp.error.SolverError, ArithmeticError, ValueError):
            continue
        if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or x.value is None:
            continue
        answer = (
            np.asarray(x.value, dtype=float),
            float(problem.value),
            solver,
            _eigen_ratio(lifted.matrices),
        )
        if problem.status == cp.OPTIMAL:
            status, kept = "optimal", answer
            break
        if kept is None:
            # Keep the first inaccurate answer (an interior-point one is usually closer than
            # a first-order "optimal"), but try the next solver for an accurate one.
            status, kept = "inaccurate", answer
    if kept is None:
        nan = float("nan")
        return RelaxationResult(
            np.full((n, m), nan), nan, "failed", used, nan, time.perf_counter() - started
        )
    x_value, value, used, ratio = kept
    return RelaxationResult(
        x_fractional=np.clip(x_value.reshape(n, m), 0.0, 1.0),
        value=value * scale,
        status=status,
        solver=used,
        eigen_ratio=ratio,
        seconds=time.perf_counter() - started,
    )


def _eigen_ratio(matrices: list[cp.Variable]) -> float:
    """Largest second-to-first eigenvalue ratio over the PSD blocks (0: every block rank one)."""
    worst = 0.0
    for matrix in matrices:
        values = np.linalg.eigvalsh(np.asarray(matrix.value, dtype=float))
        if values[-1] > 0 and values.size > 1:
            worst = max(worst, float(values[-2] / values[-1]))
    return worst


def hungarian_round(costs: PairCosts, x_fractional: FloatArray) -> IntArray:
    """Round a fractional association by maximum-weight matching (the paper's rounding).

    Rows whose sum exceeds 1 are rescaled; each server is replicated into as many slots as
    users could fit within its capacities (priced at the smallest usage), so that several users
    share one server; zero columns pad the matrix (the paper's augmented zero vectors).
    """
    n, m = costs.shape
    weights = np.nan_to_num(np.clip(x_fractional, 0.0, None))
    sums = weights.sum(axis=1, keepdims=True)
    weights = np.where(sums > 1.0, weights / np.where(sums > 0, sums, 1.0), weights)
    slots = np.array([server_slots(costs, j) for j in range(m)])
    columns = np.repeat(np.arange(m), slots)
    matrix = weights[:, columns]
    if matrix.shape[1] < n:  # cannot happen with slots >= 1 each unless n > sum(slots)
        matrix = np.hstack([matrix, np.zeros((n, n - matrix.shape[1]))])
        columns = np.concatenate([columns, np.full(n - len(columns), -1)])
    rows, cols = so.linear_sum_assignment(matrix, maximize=True)
    out = np.empty(n, dtype=np.int64)
    out[rows] = columns[cols]
    if np.any(out < 0):  # a user matched to padding: give it its heaviest server
        bad = out < 0
        out[bad] = np.argmax(weights[bad], axis=1)
    return out
