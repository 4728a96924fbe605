"""AO part 2 (MODEL.md section 6): bandwidth, powers, compute and T for fixed x and phi.

The energies of the two transfers, ``p_n T2 = chi1 / r_up`` and ``q_n T4 = chi2 / r_dn``, are
ratios of a convex numerator over a concave rate. The quadratic transform replaces
``chi / r`` by ``chi^2 z + 1 / (4 r^2 z)``: equal at ``z = 1 / (2 chi r)`` and an upper bound for
every other ``z > 0``. For fixed z the Dinkelbach subproblem is concave; we alternate the
closed-form z update with one convex solve (cvxpy, Clarabel; SCS as fallback) until the true
objective settles. Because the surrogate is tight at the current point and a lower bound
elsewhere, the true objective never decreases from one inner iteration to the next.

The convex problem sees only well-scaled numbers: every resource is a share of its cap, rates
are in units of the server's whole band, T is relative to the starting delay and the objective
is divided by its starting magnitude.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from mecllm.checks import FloatArray
from mecllm.instance import Instance
from mecllm.physics import evaluate
from mecllm.solution import Plan

_LN2 = math.log(2.0)
#: One thread: results do not depend on scheduling, and parallel sweeps do not oversubscribe.
#: SCS is the fallback when Clarabel stops (it does on badly conditioned instances such as the
#: paper-literal noise); its default 100,000 iterations cost seconds for answers that rarely
#: improve the plan, so it is capped.
_SOLVER_OPTIONS: dict[str, dict[str, float | int]] = {
    "CLARABEL": {"max_threads": 1},
    "SCS": {"max_iters": 10_000, "eps_abs": 1e-5, "eps_rel": 1e-5},
}


def solve_with_fallback(
    problem: cp.Problem, variable: cp.Variable, solver_options: dict[str, dict[str, float | int]]
) -> str:
    """Solve ``problem`` with each solver of ``solver_options`` in turn (with its options) until
    one returns a solution: "optimal", "inaccurate" (``OPTIMAL_INACCURATE``) or "failed"."""
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


def dinkelbach_value(instance: Instance, plan: Plan, y: float) -> float:
    """The Dinkelbach subproblem objective ``sum v - y (w_t T + w_e E)`` of a plan."""
    report = evaluate(instance, plan)
    return report.service - y * report.cost


@dataclass(frozen=True)
class AllocationResult:
    """What one part-2 call returns.

    Attributes
    ----------
    plan : the new plan (x and phi unchanged).
    values : true Dinkelbach objective after each inner iteration (first: the start).
    status : "optimal", "inaccurate" or "failed" (the start plan is returned on failure).
    seconds : wall time.
    """

    plan: Plan
    values: list[float]
    status: str
    seconds: float


class _Surrogate:
    """The convex subproblem for one (x, phi, y), built once and re-solved for each z."""

    def __init__(self, instance: Instance, plan: Plan, y: float, t_ref: float, scale: float):
        n = instance.n_users
        m = plan.assignment
        phi = plan.phi
        self.instance, self.assignment, self.phi = instance, m, phi
        bw = instance.bandwidth_hz[m]
        c = instance.gain_over_noise[np.arange(n), m]
        d = instance.adapter_params
        bits = instance.bits_per_param
        self.up = np.flatnonzero(phi > 0)
        self.dn = np.flatnonzero(phi < 1)
        up, dn = self.up, self.dn

        self.bs = cp.Variable(n, nonneg=True)
        self.ps = cp.Variable(n, nonneg=True)
        self.qs = cp.Variable(n, nonneg=True)
        self.fs = cp.Variable(n, nonneg=True)
        self.ss = cp.Variable(n, nonneg=True)
        self.tau = cp.Variable(nonneg=True)
        member = sp.csr_matrix((np.ones(n), (m, np.arange(n))), shape=(instance.n_servers, n))

        gamma_up = c * instance.user_max_power_w / bw
        gamma_dn = c * instance.server_max_power_w[m] / bw
        self.rho_up = (
            -cp.rel_entr(self.bs[up], self.bs[up] + cp.multiply(gamma_up[up], self.ps[up])) / _LN2
        )
        self.rho_dn = (
            -cp.rel_entr(self.bs[dn], self.bs[dn] + cp.multiply(gamma_dn[dn], self.qs[dn])) / _LN2
        )
        user_work = instance.flops_per_param * phi * d * instance.user_epochs
        server_work = instance.flops_per_param * (1 - phi) * d * instance.server_epochs[m]
        k1 = user_work / instance.user_max_flops / t_ref
        k2 = phi * d * bits / bw / t_ref
        k3 = server_work / instance.server_max_flops[m] / t_ref
        k4 = (1 - phi) * d * bits / bw / t_ref
        # Energy prices, already multiplied by y w_e / scale.
        price = y * instance.weight_energy / scale
        eps1 = price * instance.user_kappa * user_work * instance.user_max_flops**2
        eps3 = price * instance.server_kappa[m] * server_work * instance.server_max_flops[m] ** 2
        self.k_up = price * instance.user_max_power_w * phi * d * bits / bw  # E2 = k_up ps/rho
        self.k_dn = price * instance.server_max_power_w[m] * (1 - phi) * d * bits / bw
        self.a_up = cp.Parameter(len(up), nonneg=True)  # k_up z
        self.c_up = cp.Parameter(len(up), nonneg=True)  # k_up / (4 z)
        self.a_dn = cp.Parameter(len(dn), nonneg=True)
        self.c_dn = cp.Parameter(len(dn), nonneg=True)

        user_delay: list[cp.Expression] = [cp.Constant(np.zeros(n))]
        # Sparse selections put each group's terms back at its users' rows.
        rows_up = sp.csr_matrix((np.ones(len(up)), (up, np.arange(len(up)))), shape=(n, len(up)))
        rows_dn = sp.csr_matrix((np.ones(len(dn)), (dn, np.arange(len(dn)))), shape=(n, len(dn)))
        if len(up):
            user_delay.append(
                rows_up
                @ (
                    cp.multiply(k1[up], cp.inv_pos(self.fs[up]))
                    + cp.multiply(k2[up], cp.inv_pos(self.rho_up))
                )
            )
        if len(dn):
            user_delay.append(
                rows_dn
                @ (
                    cp.multiply(k3[dn], cp.inv_pos(self.ss[dn]))
                    + cp.multiply(k4[dn], cp.inv_pos(self.rho_dn))
                )
            )
        service = cp.sum(
            cp.multiply(
                instance.service_scale / scale,
                cp.log1p(instance.service_norm * (self.bs + self.qs + self.ss)),
            )
        )
        energy = cp.sum(cp.multiply(eps1[up], cp.square(self.fs[up]))) if len(up) else 0
        if len(dn):
            energy = energy + cp.sum(cp.multiply(eps3[dn], cp.square(self.ss[dn])))
            energy = energy + cp.sum(
                cp.multiply(self.a_dn, cp.square(self.qs[dn]))
                + cp.multiply(self.c_dn, cp.power(self.rho_dn, -2))
            )
        if len(up):
            energy = energy + cp.sum(
                cp.multiply(self.a_up, cp.square(self.ps[up]))
                + cp.multiply(self.c_up, cp.power(self.rho_up, -2))
            )
        delay_price = y * instance.weight_delay * t_ref / scale
        constraints = [
            sum(user_delay[1:], user_delay[0]) <= self.tau,
            member @ self.bs <= 1,
            member @ self.qs <= 1,
            member @ self.ss <= 1,
            self.ps <= 1,
            self.fs <= 1,
        ]
        if not instance.count_idle:
            constraints += [self.qs <= 1 - phi, self.ss <= 1 - phi]
        self.problem = cp.Problem(
            cp.Maximize(service - delay_price * self.tau - energy), constraints
        )

    def set_z(self, plan: Plan) -> None:
        """The closed-form z update at ``plan``: z = 1 / (2 chi r) in the scaled units."""
        inst, m = self.instance, self.assignment
        n = inst.n_users
        bw = inst.bandwidth_hz[m]
        c = inst.gain_over_noise[np.arange(n), m]
        bs = plan.bandwidth_hz / bw
        for idx, power, cap, a, cc, k in (
            (self.up, plan.user_power_w, inst.user_max_power_w, self.a_up, self.c_up, self.k_up),
            (
                self.dn,
                plan.server_power_w,
                inst.server_max_power_w[m],
                self.a_dn,
                self.c_dn,
                self.k_dn,
            ),
        ):
            if not len(idx):
                continue
            share = np.maximum(power[idx] / cap[idx], 1e-9)
            gamma = c[idx] * cap[idx] / bw[idx]
            b = np.maximum(bs[idx], 1e-9)
            rho = b * np.log2(1 + gamma * share / b)
            # chi = share (the constant k is factored out of both terms of the bound)
            z = fp_optimal_z(share, np.maximum(rho, 1e-12))
            a.value = k[idx] * z
            cc.value = k[idx] / (4.0 * z)

    def solve(self) -> tuple[Plan | None, str]:
        """One convex solve; the plan it gives (shares mapped back to SI) and the status."""
        status = solve_with_fallback(self.problem, self.bs, _SOLVER_OPTIONS)
        return (None, status) if status == "failed" else (self._plan(), status)

    def _plan(self) -> Plan:
        inst, m = self.instance, self.assignment

        def share(var: cp.Variable) -> FloatArray:
            values: FloatArray = np.clip(np.asarray(var.value, dtype=float), 0.0, 1.0)
            return values

        bs, ps, qs, fs, ss = (share(v) for v in (self.bs, self.ps, self.qs, self.fs, self.ss))
        # Solver tolerance may overshoot a server's budget by ~1e-8: scale back exactly.
        for values in (bs, qs, ss):
            used = np.bincount(m, weights=values, minlength=inst.n_servers)
            over = np.where(used > 1.0, 1.0 / np.maximum(used, 1e-300), 1.0)
            values *= over[m]
        if not inst.count_idle:
            qs = np.minimum(qs, 1 - self.phi)
            ss = np.minimum(ss, 1 - self.phi)
        no_up = self.phi <= 0
        return Plan(
            assignment=m,
            phi=self.phi,
            bandwidth_hz=bs * inst.bandwidth_hz[m],
            user_power_w=np.where(no_up, 1.0, ps) * inst.user_max_power_w,
            server_power_w=qs * inst.server_max_power_w[m],
            user_flops=np.where(no_up, 1.0, fs) * inst.user_max_flops,
            server_flops=ss * inst.server_max_flops[m],
        )


def optimise_resources(
    instance: Instance, start: Plan, y: float, *, tolerance: float = 1e-4, max_iterations: int = 15
) -> AllocationResult:
    """Part 2 from ``start``: quadratic-transform FP iterations until the objective settles.

    Returns the best plan seen (never worse than ``start`` in the Dinkelbach objective).
    """
    started = time.perf_counter()
    start_report = evaluate(instance, start)
    best, best_value = start, start_report.service - y * start_report.cost
    values = [best_value]
    if not np.isfinite(best_value):
        raise ValueError("part 2 needs a feasible start plan")
    t_ref = max(start_report.delay_s, 1e-9)
    scale = max(abs(start_report.service), abs(y * start_report.cost), 1e-9)
    surrogate = _Surrogate(instance, start, y, t_ref, scale)
    current, status = start, "optimal"
    for _ in range(max_iterations):
        surrogate.set_z(current)
        plan, step_status = surrogate.solve()
        if plan is None:
            status = "failed" if len(values) == 1 else status
            break
        if step_status == "inaccurate":
            status = "inaccurate"
        report = evaluate(instance, plan)
        value = report.service - y * report.cost if report.feasible else -np.inf
        values.append(float(value))
        if value > best_value:
            improvement = value - best_value
            best, best_value = plan, value
            current = plan
            if improvement <= tolerance * max(abs(best_value), 1e-12):
                break
        else:
            break  # the surrogate is tight at `current`: no gain means it has settled
    return AllocationResult(best, values, status, time.perf_counter() - started)
