"""AO part 1 (MODEL.md section 6): association x, split phi and the delay bound T.

With the resources fixed, every user's delay and energy are linear in phi once its server is
known, so the Dinkelbach subproblem (the paper's (4)) is, in minimisation form,

    min  y w_t T + sum_{n,m} x_nm B_nm + sum_{n,m} (x_nm phi_n) G_nm
    s.t. sum_m x_nm = 1,  x binary,  0 <= phi_n <= 1,
         sum_m [x_nm base_nm + (x_nm phi_n) slope_nm] <= T          (3j)
         sum_n x_nm usage_knm <= cap_km   for bandwidth, power, compute   (3d, 3f, 3h)

where ``B = y w_e (E3 + E4 at phi=0) - v``, ``G = y w_e d(E)/d(phi)``, ``base`` is the delay at
phi = 0 and ``slope`` its derivative in phi. This module builds those coefficients from a plan
("pricing"), and solves the problem three ways: the paper's semidefinite relaxation with
Hungarian rounding, an exact MILP (McCormick products, HiGHS), and the phi-only linear program
for a fixed association.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.optimize as so
import scipy.sparse as sp

from mecllm.checks import FloatArray
from mecllm.instance import Instance
from mecllm.physics import shannon_rate
from mecllm.solution import IntArray, Plan

#: Resources below this share of their cap are priced as if they were this share, so that no
#: coefficient is infinite (a phase with no resource would forbid any work there).
_FLOOR_SHARE = 1e-6


@dataclass(frozen=True)
class PairCosts:
    """Part-1 coefficients of every (user, server) pair, each of shape (N, M).

    Attributes
    ----------
    constant : B_nm, the minimisation objective at phi = 0 (service counted negative).
    slope_cost : G_nm, objective change per unit of phi.
    delay_base : s, delay of the pair at phi = 0 (T3 + T4).
    delay_slope : s, delay change per unit of phi (T1 + T2 - T3 - T4 at phi = 1 minus 0).
    phi_cap : largest phi the pair allows (1, or less when resources must follow work).
    usage : (3, N, M) bandwidth, downlink power and compute the pair would use.
    capacity : (3, M) the servers' caps.
    delay_weight : y w_t, the price of the delay bound T.
    """

    constant: FloatArray
    slope_cost: FloatArray
    delay_base: FloatArray
    delay_slope: FloatArray
    phi_cap: FloatArray
    usage: FloatArray
    capacity: FloatArray
    delay_weight: float

    @property
    def shape(self) -> tuple[int, int]:
        """(N, M)."""
        n, m = self.constant.shape
        return int(n), int(m)

    def objective(self, assignment: IntArray, phi: FloatArray) -> float:
        """The minimisation objective of a rounded (x, phi), with T at the largest delay."""
        rows = np.arange(assignment.shape[0])
        delay = self.delay_base[rows, assignment] + phi * self.delay_slope[rows, assignment]
        return float(
            self.delay_weight * delay.max()
            + np.sum(self.constant[rows, assignment] + phi * self.slope_cost[rows, assignment])
        )


def pair_costs(
    instance: Instance,
    y: float,
    bandwidth: FloatArray,
    user_power: FloatArray,
    server_power: FloatArray,
    user_flops: FloatArray,
    server_flops: FloatArray,
) -> PairCosts:
    """Coefficients for per-pair resources: ``bandwidth``, ``server_power``, ``server_flops``
    of shape (N, M) and the users' own ``user_power``, ``user_flops`` of shape (N,)."""
    n_users, n_servers = instance.n_users, instance.n_servers
    b = np.maximum(bandwidth, _FLOOR_SHARE * instance.bandwidth_hz[None, :])
    q = np.maximum(server_power, _FLOOR_SHARE * instance.server_max_power_w[None, :])
    s = np.maximum(server_flops, _FLOOR_SHARE * instance.server_max_flops[None, :])
    p = np.maximum(user_power, _FLOOR_SHARE * instance.user_max_power_w)[:, None]
    f = np.maximum(user_flops, _FLOOR_SHARE * instance.user_max_flops)[:, None]
    c = instance.gain_over_noise
    d = instance.adapter_params[:, None]
    bits = d * instance.bits_per_param
    user_work = (instance.flops_per_param * instance.adapter_params * instance.user_epochs)[:, None]
    server_work = instance.flops_per_param[:, None] * d * instance.server_epochs[None, :]
    t1 = user_work / f * np.ones((1, n_servers))
    t2 = bits / shannon_rate(b, p, c)
    t3 = server_work / s
    t4 = bits / shannon_rate(b, q, c)
    e1 = instance.user_kappa[:, None] * user_work * f**2 * np.ones((1, n_servers))
    e2 = p * t2
    e3 = instance.server_kappa[None, :] * server_work * s**2
    e4 = q * t4
    share = (
        q / instance.server_max_power_w + s / instance.server_max_flops + b / instance.bandwidth_hz
    )
    service = instance.service_scale * np.log1p(instance.service_norm * share)
    we = y * instance.weight_energy
    if instance.count_idle:
        phi_cap = np.ones((n_users, n_servers))
    else:
        phi_cap = np.clip(
            1.0 - np.maximum(s / instance.server_max_flops, q / instance.server_max_power_w),
            0.0,
            1.0,
        )
    return PairCosts(
        constant=we * (e3 + e4) - service,
        slope_cost=we * (e1 + e2 - e3 - e4),
        delay_base=t3 + t4,
        delay_slope=t1 + t2 - t3 - t4,
        phi_cap=phi_cap,
        usage=np.stack([bandwidth, server_power, server_flops]),
        capacity=np.stack(
            [instance.bandwidth_hz, instance.server_max_power_w, instance.server_max_flops]
        ),
        delay_weight=y * instance.weight_delay,
    )


def canonical(instance: Instance, plan: Plan) -> Plan:
    """Set the user-side resources of phases with no work to their caps (no effect on SCR).

    A solver may leave any value there; pricing a future move with it would be arbitrary.
    """
    idle_up = plan.phi <= 0.0
    return plan.replace(
        user_power_w=np.where(idle_up, instance.user_max_power_w, plan.user_power_w),
        user_flops=np.where(idle_up, instance.user_max_flops, plan.user_flops),
    )


def price_moves(instance: Instance, plan: Plan, y: float) -> tuple[PairCosts, FloatArray]:
    """Part-1 coefficients with room to move (MODEL.md section 11, capacity lock-in).

    A pair (n, m) is priced with the resources user n would have on server m if one more user
    joined m: a member keeps ``k/(k+1)`` of its current share (k = m's users now), a newcomer
    gets ``1/(k+1)`` of m's caps. Users' own power and compute stay as they are.

    Returns
    -------
    costs : PairCosts
    priced : (3, N, M) the priced bandwidth, downlink power and compute.
    """
    plan = canonical(instance, plan)
    n_users, n_servers = instance.n_users, instance.n_servers
    counts = np.bincount(plan.assignment, minlength=n_servers).astype(float)
    caps = np.stack([instance.bandwidth_hz, instance.server_max_power_w, instance.server_max_flops])
    priced = np.broadcast_to((caps / (counts + 1.0))[:, None, :], (3, n_users, n_servers)).copy()
    rows = np.arange(n_users)
    own = np.stack([plan.bandwidth_hz, plan.server_power_w, plan.server_flops])
    keep = counts[plan.assignment] / (counts[plan.assignment] + 1.0)
    priced[:, rows, plan.assignment] = own * keep
    costs = pair_costs(
        instance, y, priced[0], plan.user_power_w, priced[1], plan.user_flops, priced[2]
    )
    return costs, priced


# ---------------------------------------------------------------------------------- phi LP
def optimal_phi(costs: PairCosts, assignment: IntArray) -> tuple[FloatArray, float]:
    """Exact phi and T for a fixed association: a linear program (HiGHS).

    Returns
    -------
    phi : (N,) in [0, phi_cap]
    value : the minimisation objective at the optimum.
    """
    n = assignment.shape[0]
    rows = np.arange(n)
    g = costs.slope_cost[rows, assignment]
    base = costs.delay_base[rows, assignment]
    slope = costs.delay_slope[rows, assignment]
    cap = costs.phi_cap[rows, assignment]
    # Scale T by the largest possible delay so that HiGHS sees numbers near 1.
    t_ref = float(max(np.max(base), np.max(base + slope * cap), 1e-12))
    scale = float(max(np.max(np.abs(g)), costs.delay_weight * t_ref, 1e-300))
    objective = np.concatenate([g, [costs.delay_weight * t_ref]]) / scale
    a_ub = sp.hstack([sp.diags(slope / t_ref), -np.ones((n, 1))], format="csr")
    b_ub = -base / t_ref
    bounds = [(0.0, float(u)) for u in cap] + [(0.0, 1.0)]
    result = so.linprog(objective, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if result.status != 0:
        # The LP is always feasible and bounded; a failure is numerical. Fall back to the
        # exact piecewise search over T, which needs no solver.
        return _phi_by_search(costs, assignment)
    phi = np.clip(result.x[:n], 0.0, cap)
    return phi, costs.objective(assignment, phi)


def _phi_by_search(costs: PairCosts, assignment: IntArray) -> tuple[FloatArray, float]:
    rows = np.arange(assignment.shape[0])
    base = costs.delay_base[rows, assignment]
    slope = costs.delay_slope[rows, assignment]
    cap = costs.phi_cap[rows, assignment]
    g = costs.slope_cost[rows, assignment]
    candidates = np.unique(np.concatenate([base, base + slope * cap]))
    best_phi, best = np.zeros_like(base), np.inf
    for t in candidates:
        lo, hi = _phi_interval(base, slope, cap, t)
        if np.any(lo > hi + 1e-12):
            continue
        phi = np.where(g < 0, hi, lo)
        value = costs.objective(assignment, phi)
        if value < best:
            best_phi, best = phi, value
    return best_phi, best


def _phi_interval(
    base: FloatArray, slope: FloatArray, cap: FloatArray, t: float
) -> tuple[FloatArray, FloatArray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = (t - base) / slope
    lo = np.where(slope < 0, np.maximum(bound, 0.0), 0.0)
    hi = np.where(slope > 0, np.minimum(bound, cap), cap)
    lo = np.where((slope == 0) & (base > t), np.inf, lo)
    return lo, hi


# ---------------------------------------------------------------------------------- SDR
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
    status: str
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

    The relaxation as printed is unbounded (MODEL.md section 11), so the McCormick inequalities
    of the products w = x phi, S[phi, phi] <= phi and the one-hot structure of x are added; they
    hold for every 0/1 x and phi in [0, 1], so the value stays a valid lower bound.

    ``form`` is ``"full"`` (one dense PSD matrix of size N + NM + 1, as printed) or
    ``"chordal"`` (the identical relaxation split into per-user PSD blocks, much faster).
    """
    started = time.perf_counter()
    n, m = costs.shape
    scale = _objective_scale(costs)
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
    status, used = "failed", ""
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


def _objective_scale(costs: PairCosts) -> float:
    magnitude = max(float(np.max(np.abs(costs.constant))), float(np.max(np.abs(costs.slope_cost))))
    return magnitude if magnitude > 0 else 1.0


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
    slots = np.array([_slots(costs, j) for j in range(m)])
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


def _slots(costs: PairCosts, server: int) -> int:
    n = costs.shape[0]
    fit = n
    for k in range(3):
        usage = np.sort(costs.usage[k][:, server])
        fit = min(
            fit,
            int(
                np.searchsorted(
                    np.cumsum(usage), costs.capacity[k][server] * (1 + 1e-9), side="right"
                )
            ),
        )
    return max(fit, 1)


# ---------------------------------------------------------------------------------- MILP
@dataclass(frozen=True)
class MilpResult:
    """Outcome of the exact part-1 MILP."""

    assignment: IntArray
    phi: FloatArray
    value: float
    bound: float
    gap: float
    status: str
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
    scale = _objective_scale(costs)
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
    status = "optimal" if result.status == 0 else "time_limit"
    return MilpResult(assignment, phi, value, bound, gap, status, seconds)
