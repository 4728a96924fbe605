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
from numpy.typing import NDArray

from mecllm.checks import FloatArray
from mecllm.instance import Instance
from mecllm.physics import evaluate, shannon_rate
from mecllm.solution import IntArray, Plan

_LN2 = math.log(2.0)
BoolArray = NDArray[np.bool_]
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


@dataclass(frozen=True)
class SurrogateTerms:
    """Coefficients of the part-2 surrogate for one (x, phi, y), in scaled units, shape (N,).

    The variables are shares of their caps: ``beta = b / b_max``, ``pi = p / p_max(n)``,
    ``kappa = q / p_max(m)``, ``f = f / F_max(n)``, ``sigma = s / F_max(m)``, and
    ``tau = T / t_ref``. Rates in units of the server's band are
    ``rho = beta log2(1 + gamma pi / beta)``. The scaled objective (to maximise) is

        sum_n service log1p(norm (beta + kappa + sigma)) - delay_price tau
              - eps1 f^2 - eps3 sigma^2 - k_up pi / rho_up - k_dn kappa / rho_dn

    subject to ``k1 / f + k2 / rho_up + k3 / sigma + k4 / rho_dn <= tau`` for every user,
    each server's sums of beta, kappa and sigma at most 1, and ``0 <= share <= upper``.
    The two transfer energies ``k pi / rho`` are what the quadratic transform bounds by
    ``k (pi^2 z + 1 / (4 rho^2 z))``. Phases without work have zero coefficients; ``up`` and
    ``dn`` flag the users with an upload (phi > 0) and a download (phi < 1).
    """

    n_servers: int
    assignment: IntArray
    phi: FloatArray
    up: BoolArray
    dn: BoolArray
    gamma_up: FloatArray
    gamma_dn: FloatArray
    k1: FloatArray
    k2: FloatArray
    k3: FloatArray
    k4: FloatArray
    eps1: FloatArray
    eps3: FloatArray
    k_up: FloatArray
    k_dn: FloatArray
    service: float
    norm: float
    delay_price: float
    server_upper: FloatArray


def surrogate_terms(
    instance: Instance, plan: Plan, y: float, t_ref: float, scale: float
) -> SurrogateTerms:
    """The coefficients of :class:`SurrogateTerms` for ``plan``'s x and phi at ratio ``y``."""
    n = instance.n_users
    m = plan.assignment
    phi = plan.phi
    bw = instance.bandwidth_hz[m]
    c = instance.gain_over_noise[np.arange(n), m]
    d = instance.adapter_params
    bits = instance.bits_per_param
    user_work = instance.flops_per_param * phi * d * instance.user_epochs
    server_work = instance.flops_per_param * (1 - phi) * d * instance.server_epochs[m]
    price = y * instance.weight_energy / scale
    return SurrogateTerms(
        n_servers=instance.n_servers,
        assignment=m,
        phi=phi,
        up=phi > 0,
        dn=phi < 1,
        gamma_up=c * instance.user_max_power_w / bw,
        gamma_dn=c * instance.server_max_power_w[m] / bw,
        k1=user_work / instance.user_max_flops / t_ref,
        k2=phi * d * bits / bw / t_ref,
        k3=server_work / instance.server_max_flops[m] / t_ref,
        k4=(1 - phi) * d * bits / bw / t_ref,
        eps1=price * instance.user_kappa * user_work * instance.user_max_flops**2,
        eps3=price * instance.server_kappa[m] * server_work * instance.server_max_flops[m] ** 2,
        k_up=price * instance.user_max_power_w * phi * d * bits / bw,
        k_dn=price * instance.server_max_power_w[m] * (1 - phi) * d * bits / bw,
        service=instance.service_scale / scale,
        norm=instance.service_norm,
        delay_price=y * instance.weight_delay * t_ref / scale,
        server_upper=np.ones(n) if instance.count_idle else 1.0 - phi,
    )


def fp_weights(terms: SurrogateTerms, shares: Shares) -> tuple[FloatArray, ...]:
    """The quadratic transform's weights at ``shares``: ``(a_up, c_up, a_dn, c_dn)``, (N,) each.

    ``a = k z`` and ``c = k / (4 z)`` with ``z = 1 / (2 chi rho)``, ``chi`` the power share
    (the constant k is factored out of both terms of the bound). Zero where a link is idle.
    """
    out: list[FloatArray] = []
    for active, power, gamma, k in (
        (terms.up, shares.pi, terms.gamma_up, terms.k_up),
        (terms.dn, shares.kappa, terms.gamma_dn, terms.k_dn),
    ):
        chi = np.maximum(power, 1e-9)
        # The Shannon rate of a share of the band, in units of the band.
        rho = np.maximum(shannon_rate(np.maximum(shares.beta, 1e-9), chi, gamma), 1e-12)
        z = fp_optimal_z(chi, rho)
        out += [np.where(active, k * z, 0.0), np.where(active, k / (4.0 * z), 0.0)]
    return tuple(out)


@dataclass(frozen=True)
class Shares:
    """The part-2 variables of every user as shares of their caps (shape (N,) each)."""

    beta: FloatArray
    pi: FloatArray
    kappa: FloatArray
    f: FloatArray
    sigma: FloatArray

    @classmethod
    def of(cls, instance: Instance, plan: Plan) -> Shares:
        """The shares of ``plan``."""
        m = plan.assignment
        return cls(
            beta=plan.bandwidth_hz / instance.bandwidth_hz[m],
            pi=plan.user_power_w / instance.user_max_power_w,
            kappa=plan.server_power_w / instance.server_max_power_w[m],
            f=plan.user_flops / instance.user_max_flops,
            sigma=plan.server_flops / instance.server_max_flops[m],
        )

    def to_plan(
        self,
        instance: Instance,
        terms: SurrogateTerms,
        rows: tuple[IntArray, IntArray] | None = None,
    ) -> Plan:
        """Back to SI units, clipped into the box and each server's caps (solver tolerance).

        ``rows``: for a stacked surrogate whose "servers" are not the instance's (the move
        screen's pieces), the real (users, servers) of its rows; the plan returned then has
        one row per surrogate row and its real servers (for
        :func:`mecllm.physics.phases`).
        """
        m = terms.assignment
        users, real = (np.arange(instance.n_users), m) if rows is None else rows
        bs, ps, qs, fs, ss = (
            np.clip(np.asarray(v, dtype=float), 0.0, 1.0)
            for v in (self.beta, self.pi, self.kappa, self.f, self.sigma)
        )
        for values in (bs, qs, ss):
            used = np.bincount(m, weights=values, minlength=instance.n_servers)
            over = np.where(used > 1.0, 1.0 / np.maximum(used, 1e-300), 1.0)
            values *= over[m]
        qs = np.minimum(qs, terms.server_upper)
        ss = np.minimum(ss, terms.server_upper)
        no_up = ~terms.up
        return Plan(
            assignment=real,
            phi=terms.phi,
            bandwidth_hz=bs * instance.bandwidth_hz[real],
            user_power_w=np.where(no_up, 1.0, ps) * instance.user_max_power_w[users],
            server_power_w=qs * instance.server_max_power_w[real],
            user_flops=np.where(no_up, 1.0, fs) * instance.user_max_flops[users],
            server_flops=ss * instance.server_max_flops[real],
        )


class _ConicSurrogate:
    """The surrogate as one cvxpy problem, built once per (x, phi, y) and re-solved for each z."""

    def __init__(self, terms: SurrogateTerms):
        n = terms.phi.shape[0]
        self.terms = terms
        up, dn = np.flatnonzero(terms.up), np.flatnonzero(terms.dn)
        self.up, self.dn = up, dn
        self.bs = cp.Variable(n, nonneg=True)
        self.ps = cp.Variable(n, nonneg=True)
        self.qs = cp.Variable(n, nonneg=True)
        self.fs = cp.Variable(n, nonneg=True)
        self.ss = cp.Variable(n, nonneg=True)
        self.tau = cp.Variable(nonneg=True)
        member = sp.csr_matrix(
            (np.ones(n), (terms.assignment, np.arange(n))), shape=(terms.n_servers, n)
        )
        rho_up = (
            -cp.rel_entr(self.bs[up], self.bs[up] + cp.multiply(terms.gamma_up[up], self.ps[up]))
            / _LN2
        )
        rho_dn = (
            -cp.rel_entr(self.bs[dn], self.bs[dn] + cp.multiply(terms.gamma_dn[dn], self.qs[dn]))
            / _LN2
        )
        self.a_up = cp.Parameter(len(up), nonneg=True)  # k_up z
        self.c_up = cp.Parameter(len(up), nonneg=True)  # k_up / (4 z)
        self.a_dn = cp.Parameter(len(dn), nonneg=True)
        self.c_dn = cp.Parameter(len(dn), nonneg=True)

        user_delay: list[cp.Expression] = [cp.Constant(np.zeros(n))]
        # Sparse selections put each group's terms back at its users' rows.
        rows_up = sp.csr_matrix((np.ones(len(up)), (up, np.arange(len(up)))), shape=(n, len(up)))
        rows_dn = sp.csr_matrix((np.ones(len(dn)), (dn, np.arange(len(dn)))), shape=(n, len(dn)))
        energy: cp.Expression | int = 0
        if len(up):
            user_delay.append(
                rows_up
                @ (
                    cp.multiply(terms.k1[up], cp.inv_pos(self.fs[up]))
                    + cp.multiply(terms.k2[up], cp.inv_pos(rho_up))
                )
            )
            energy = cp.sum(
                cp.multiply(terms.eps1[up], cp.square(self.fs[up]))
                + cp.multiply(self.a_up, cp.square(self.ps[up]))
                + cp.multiply(self.c_up, cp.power(rho_up, -2))
            )
        if len(dn):
            user_delay.append(
                rows_dn
                @ (
                    cp.multiply(terms.k3[dn], cp.inv_pos(self.ss[dn]))
                    + cp.multiply(terms.k4[dn], cp.inv_pos(rho_dn))
                )
            )
            energy = energy + cp.sum(
                cp.multiply(terms.eps3[dn], cp.square(self.ss[dn]))
                + cp.multiply(self.a_dn, cp.square(self.qs[dn]))
                + cp.multiply(self.c_dn, cp.power(rho_dn, -2))
            )
        service = cp.sum(terms.service * cp.log1p(terms.norm * (self.bs + self.qs + self.ss)))
        constraints = [
            sum(user_delay[1:], user_delay[0]) <= self.tau,
            member @ self.bs <= 1,
            member @ self.qs <= 1,
            member @ self.ss <= 1,
            self.ps <= 1,
            self.fs <= 1,
            self.qs <= terms.server_upper,
            self.ss <= terms.server_upper,
        ]
        self.problem = cp.Problem(
            cp.Maximize(service - terms.delay_price * self.tau - energy), constraints
        )

    def solve(self, weights: tuple[FloatArray, ...], start: Shares) -> tuple[Shares | None, str]:
        """One convex solve for the FP weights ``(a_up, c_up, a_dn, c_dn)`` (``start`` unused:
        the interior-point solver starts from its own point)."""
        del start
        a_up, c_up, a_dn, c_dn = weights
        if len(self.up):
            self.a_up.value, self.c_up.value = a_up[self.up], c_up[self.up]
        if len(self.dn):
            self.a_dn.value, self.c_dn.value = a_dn[self.dn], c_dn[self.dn]
        status = solve_with_fallback(self.problem, self.bs, _SOLVER_OPTIONS)
        if status == "failed":
            return None, status
        values = (
            np.asarray(v.value, dtype=float) for v in (self.bs, self.ps, self.qs, self.fs, self.ss)
        )
        return Shares(*values), status


#: The engines of the convex step: one cvxpy problem (generic, the paper's DASHF), the same
#: cone program written directly for Clarabel (:mod:`mecllm.solvers.cone`), the project's
#: vectorised barrier method (:mod:`mecllm.solvers.barrier`, for large N), or "auto": direct
#: up to :data:`AUTO_CONIC_USERS` users (where Clarabel is quicker than the barrier method's
#: Python-level Newton loop), barrier above.
ENGINES = ("conic", "direct", "barrier", "auto")
AUTO_CONIC_USERS = 50


def optimise_resources(
    instance: Instance,
    start: Plan,
    y: float,
    *,
    tolerance: float = 1e-4,
    max_iterations: int = 15,
    engine: str = "conic",
    solver_tolerance: float | None = None,
) -> AllocationResult:
    """Part 2 from ``start``: quadratic-transform FP iterations until the objective settles.

    ``engine`` solves each convex surrogate: ``"conic"`` (cvxpy, Clarabel then SCS),
    ``"direct"`` (the same cone program written directly for Clarabel, barrier as fallback),
    ``"barrier"`` (vectorised Newton barrier method, warm-started from the current plan) or
    ``"auto"`` (direct up to :data:`AUTO_CONIC_USERS` users, barrier above).
    ``solver_tolerance``: the direct engine's Clarabel tolerances (default 1e-8).
    Returns the best plan seen (never worse than ``start`` in the Dinkelbach objective).
    """
    from mecllm.solvers.barrier import BarrierSurrogate
    from mecllm.solvers.cone import DirectConicSurrogate

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "auto":
        engine = "direct" if instance.n_users <= AUTO_CONIC_USERS else "barrier"
    started = time.perf_counter()
    start_report = evaluate(instance, start)
    best, best_value = start, start_report.service - y * start_report.cost
    values = [best_value]
    if not np.isfinite(best_value):
        raise ValueError("part 2 needs a feasible start plan")
    t_ref = max(start_report.delay_s, 1e-9)
    scale = max(abs(start_report.service), abs(y * start_report.cost), 1e-9)
    terms = surrogate_terms(instance, start, y, t_ref, scale)
    convex: _ConicSurrogate | DirectConicSurrogate | BarrierSurrogate
    if engine == "conic":
        convex = _ConicSurrogate(terms)
    elif engine == "direct":
        convex = DirectConicSurrogate(terms, solver_tolerance)
    else:
        convex = BarrierSurrogate(terms)
    current, status = start, "optimal"
    for _ in range(max_iterations):
        shares = Shares.of(instance, current)
        found, step_status = convex.solve(fp_weights(terms, shares), shares)
        if found is None:
            status = "failed" if len(values) == 1 else status
            break
        if step_status == "inaccurate":
            status = "inaccurate"
        plan = found.to_plan(instance, terms)
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
