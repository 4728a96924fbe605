"""The continuous problem of one association solved jointly: phi, bandwidth, both powers, both
compute speeds and the delay bound of every user at once (docs/algorithms.md, "Joint solve").

DASHF alternates a phi step (resources fixed) with a resource step (phi fixed); each step is
solved well, but the alternation stops where neither block alone can improve, which on small
instances is often far from the best plan of the association (docs/quality.md). Here the SCR
itself, ``sum v / (w_t T + w_e E)``, is maximised over all six variables of every user and T in
one smooth nonlinear program, with exact first and second derivatives from CasADi's automatic
differentiation, by two local solvers: SLSQP (scipy's active-set SQP) and the interior-point
solver IPOPT (bundled with CasADi).

Every variable is a share of its cap (``beta = b / b_max``, ``pi = p / p_max(n)``,
``kappa = q / p_max(m)``, ``f' = f / F_max(n)``, ``sigma = s / F_max(m)``), T is relative to a
reference delay and both halves of the ratio to their values at a reference plan, so IPOPT sees
numbers near 1. Shares are kept above ``1e-7`` so that no rate or speed is 0 inside the solver;
the plan it returns is snapped (phi within 1e-6 of 0 or 1 set to it, and with
``count_idle: false`` a server's resources of a user with phi = 1 set to 0), and the physics
(:func:`~mecllm.systems.finetune.physics.evaluate`) judges the result, as every plan.

One NLP is built per (N, M, count_idle) and reused: the association and every coefficient are
parameters, so a local search over associations re-solves without rebuilding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import casadi as ca
import numpy as np
from scipy.optimize import minimize

from mecllm.core.arrays import FloatArray, IntArray
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.physics import evaluate
from mecllm.systems.finetune.solution import Plan

#: Smallest share any resource takes inside the solver (no rate or speed is exactly 0).
FLOOR = 1e-7
#: phi this close to 0 or 1 is snapped to it after the solve.
SNAP = 1e-6
_LN2 = math.log(2.0)
#: Coefficients per user, in this order, in the parameter vector.
PER_USER = (
    "gamma_up",
    "gamma_dn",
    "k1",
    "k2",
    "k3",
    "k4",
    "eps1",
    "eps3",
    "pmax",
    "qmax",
    "service",
)
_IPOPT: dict[str, Any] = {
    "ipopt.print_level": 0,
    "print_time": False,
    "ipopt.sb": "yes",
    "ipopt.max_iter": 200,
    "ipopt.tol": 1e-7,
    "ipopt.acceptable_tol": 1e-5,
    "ipopt.acceptable_iter": 5,
    "ipopt.mu_strategy": "adaptive",
    # Start where the start is: IPOPT's default moves every variable 1e-2 inside its bounds,
    # which throws a good start (phi at 0 or 1, tiny shares) into another basin.
    "ipopt.bound_push": 1e-9,
    "ipopt.bound_frac": 1e-9,
    "ipopt.mu_init": 1e-6,
}


@dataclass(frozen=True)
class _Nlp:
    """The built problem of N users on M servers: IPOPT's solver, and compiled functions of
    the objective (value, gradient) and the constraints (values, Jacobian) for SLSQP."""

    ipopt: ca.Function
    objective: ca.Function
    constraints: ca.Function
    n_users: int
    n_servers: int
    count_idle: bool


def symbolic_terms(x: Any, c: dict[str, Any], n: int, norm: Any) -> tuple[Any, Any, Any]:
    """Each user's delay and energy (N-vectors) and the total service, as CasADi expressions
    of the variables ``x = [beta, pi, kappa, phi, f', sigma, tau]`` and the per-user
    coefficients ``c`` (``PER_USER``), in the scaled units of :func:`coefficients`."""
    beta, pi, kappa, phi, f, sigma = (x[k * n : (k + 1) * n] for k in range(6))
    rho_up = beta * ca.log1p(c["gamma_up"] * pi / beta) / _LN2
    rho_dn = beta * ca.log1p(c["gamma_dn"] * kappa / beta) / _LN2
    t2 = c["k2"] * phi / rho_up
    t4 = c["k4"] * (1 - phi) / rho_dn
    delay = c["k1"] * phi / f + t2 + c["k3"] * (1 - phi) / sigma + t4
    energy = (
        c["eps1"] * phi * f**2
        + c["pmax"] * pi * t2
        + c["eps3"] * (1 - phi) * sigma**2
        + c["qmax"] * kappa * t4
    )
    service = ca.sum1(c["service"] * ca.log1p(norm * (beta + kappa + sigma)))
    return delay, energy, service


@lru_cache(maxsize=32)
def _build(n_users: int, n_servers: int, count_idle: bool) -> _Nlp:
    """The problem of N users on M servers (association and coefficients as parameters).

    Variables ``x = [beta, pi, kappa, phi, f', sigma, tau]`` (N each, then T / t_ref);
    the objective is ``-(sum v / v_ref) / (cost / c_ref)``; the constraints, all ``<= 0``, are
    each user's delay minus tau, each server's three sums of shares minus 1 and, with
    ``count_idle: false``, ``kappa + phi - 1`` and ``sigma + phi - 1``.
    """
    n, m = n_users, n_servers
    x = ca.SX.sym("x", 6 * n + 1)
    beta, kappa, phi, sigma = (x[k * n : (k + 1) * n] for k in (0, 2, 3, 5))
    tau = x[6 * n]
    p = ca.SX.sym("p", len(PER_USER) * n + n * m + 4)
    c = {name: p[k * n : (k + 1) * n] for k, name in enumerate(PER_USER)}
    rest = len(PER_USER) * n
    member = ca.reshape(p[rest : rest + n * m], m, n)  # member[j, i] = 1 if user i is on j
    norm, delay_price, energy_price, tiny = (p[rest + n * m + k] for k in range(4))
    delay, energy, service = symbolic_terms(x, c, n, norm)
    cost = delay_price * tau + energy_price * ca.sum1(energy) + tiny
    objective = -service / cost
    parts = [delay - tau]
    parts += [ca.mtimes(member, share) - 1 for share in (beta, kappa, sigma)]
    if not count_idle:
        parts += [kappa + phi - 1, sigma + phi - 1]
    g = ca.vertcat(*parts)
    ipopt = ca.nlpsol("joint", "ipopt", {"x": x, "p": p, "f": objective, "g": g}, _IPOPT)
    return _Nlp(
        ipopt,
        ca.Function("objective", [x, p], [objective, ca.gradient(objective, x)]),
        ca.Function("constraints", [x, p], [g, ca.jacobian(g, x)]),
        n,
        m,
        count_idle,
    )


def coefficients(
    instance: Instance, assignment: IntArray, t_ref: float, v_ref: float, c_ref: float
) -> tuple[dict[str, FloatArray], list[float]]:
    """Each user's coefficients on its server (``PER_USER``, (N,) each; shares, T in units of
    ``t_ref``, the objective's halves in units of ``v_ref`` and ``c_ref``) and the four
    scalars: the service norm, the delay and energy prices and the cost's floor."""
    n = instance.n_users
    rows = np.arange(n)
    a = assignment
    bw = instance.bandwidth_hz[a]
    gain = instance.gain_over_noise[rows, a]
    d = instance.adapter_params
    bits = instance.bits_per_param
    # The relaxation is linear in phi: the work model's chord (docs/finetune.md section 12).
    user_work = instance.work.user_chord * instance.user_epochs
    server_work = instance.work.server_chord * instance.server_epochs[a]
    per_user = {
        "gamma_up": gain * instance.user_max_power_w / bw,
        "gamma_dn": gain * instance.server_max_power_w[a] / bw,
        "k1": user_work / instance.user_max_flops / t_ref,
        "k2": d * bits / bw / t_ref,
        "k3": server_work / instance.server_max_flops[a] / t_ref,
        "k4": d * bits / bw / t_ref,
        "eps1": instance.user_kappa * user_work * instance.user_max_flops**2,
        "eps3": instance.server_kappa[a] * server_work * instance.server_max_flops[a] ** 2,
        "pmax": instance.user_max_power_w * t_ref,
        "qmax": instance.server_max_power_w[a] * t_ref,
        "service": np.full(n, instance.service_scale / v_ref),
    }
    # Energies above are in joules (times t_ref for the transfers, which are in t_ref units).
    tail = [
        instance.service_norm,
        instance.weight_delay * t_ref / c_ref,
        instance.weight_energy / c_ref,
        1e-12,
    ]
    return per_user, tail


def _parameters(
    instance: Instance, assignment: IntArray, t_ref: float, v_ref: float, c_ref: float
) -> FloatArray:
    """The parameter vector of ``assignment`` (see :func:`coefficients`)."""
    n, m = instance.n_users, instance.n_servers
    per_user, tail = coefficients(instance, assignment, t_ref, v_ref, c_ref)
    member = np.zeros((m, n))
    member[assignment, np.arange(n)] = 1.0
    return np.concatenate([*(per_user[k] for k in PER_USER), member.reshape(-1, order="F"), tail])


def shares(instance: Instance, plan: Plan) -> FloatArray:
    """The solver's variables at ``plan`` (without tau), clipped into the solver's box."""
    a = plan.assignment
    values = np.concatenate(
        [
            plan.bandwidth_hz / instance.bandwidth_hz[a],
            plan.user_power_w / instance.user_max_power_w,
            plan.server_power_w / instance.server_max_power_w[a],
            plan.phi,
            plan.user_flops / instance.user_max_flops,
            plan.server_flops / instance.server_max_flops[a],
        ]
    )
    out: FloatArray = np.clip(values, FLOOR, 1.0)
    n = instance.n_users
    out[3 * n : 4 * n] = np.clip(plan.phi, 0.0, 1.0)
    return out


def to_plan(instance: Instance, assignment: IntArray, x: FloatArray, snap: bool) -> Plan:
    """SI plan of the solver's variables, clipped into every cap (solver tolerance)."""
    n = instance.n_users
    a = assignment
    beta, pi, kappa, phi, f, sigma = (np.clip(x[k * n : (k + 1) * n], 0.0, 1.0) for k in range(6))
    if snap:
        phi = np.where(phi < SNAP, 0.0, np.where(phi > 1.0 - SNAP, 1.0, phi))
    if not instance.count_idle:
        kappa = np.minimum(kappa, 1.0 - phi)
        sigma = np.minimum(sigma, 1.0 - phi)
    for values in (beta, kappa, sigma):
        used = np.bincount(a, weights=values, minlength=instance.n_servers)
        values *= np.where(used > 1.0, 1.0 / np.maximum(used, 1e-300), 1.0)[a]
    return Plan(
        assignment=a,
        phi=phi,
        bandwidth_hz=beta * instance.bandwidth_hz[a],
        user_power_w=pi * instance.user_max_power_w,
        server_power_w=kappa * instance.server_max_power_w[a],
        user_flops=f * instance.user_max_flops,
        server_flops=sigma * instance.server_max_flops[a],
    )


@dataclass(frozen=True)
class JointResult:
    """The best feasible plan of one joint solve (or ``None``) and the solver's verdict."""

    plan: Plan | None
    scr: float
    status: str


#: The local solvers of the joint problem: SLSQP (scipy; an active-set SQP that starts where the
#: start is and keeps phi at its bounds when that is best) and IPOPT (an interior-point method
#: that reaches other optima from the same start). ``joint_multistart`` uses both.
SOLVERS = ("slsqp", "ipopt")


def solve_joint(instance: Instance, start: Plan, solver: str = "slsqp") -> JointResult:
    """Maximise the SCR over every continuous variable for ``start``'s association, from
    ``start`` (feasible or not: it is clipped into the box), by one local solver.

    Returns the best feasible plan among the solver's point as it is, snapped (phi to 0 or 1
    where it is within 1e-6) and ``start`` itself (so the result is never worse than a feasible
    start).
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    n, m = instance.n_users, instance.n_servers
    nlp = _build(n, m, bool(instance.count_idle))
    reference = evaluate(instance, start)
    finite = math.isfinite(reference.delay_s) and reference.delay_s > 0
    t_ref = reference.delay_s if finite else 1.0
    v_ref = max(reference.service, 1e-9)
    c_ref = max(reference.cost, 1e-9) if math.isfinite(reference.cost) else 1.0
    params = _parameters(instance, start.assignment, t_ref, v_ref, c_ref)
    x0 = np.append(shares(instance, start), delay_at(instance, start) / t_ref)
    lower = np.full(6 * n + 1, FLOOR)
    upper = np.ones(6 * n + 1)
    lower[3 * n : 4 * n] = 0.0
    lower[-1], upper[-1] = 0.0, np.inf
    if solver == "ipopt":
        answer = nlp.ipopt(x0=x0, p=params, lbx=lower, ubx=upper, lbg=-np.inf, ubg=0.0)
        status = str(nlp.ipopt.stats()["return_status"])
        x = np.asarray(answer["x"], dtype=float).ravel()
    else:
        x, status = _slsqp(nlp, params, x0, lower, upper)
    best: tuple[float, Plan | None] = (-math.inf, None)
    if reference.feasible:
        best = (reference.scr, start)
    for snap in (False, True):
        plan = to_plan(instance, start.assignment, x, snap)
        report = evaluate(instance, plan)
        if report.feasible and report.scr > best[0]:
            best = (report.scr, plan)
    return JointResult(best[1], best[0], status)


def _slsqp(
    nlp: _Nlp, params: FloatArray, x0: FloatArray, lower: FloatArray, upper: FloatArray
) -> tuple[FloatArray, str]:
    """One SLSQP run with the compiled derivatives; returns its point and message."""

    def objective(z: FloatArray) -> tuple[float, FloatArray]:
        value, gradient = nlp.objective(z, params)
        return float(value), np.asarray(gradient, dtype=float).ravel()

    last: dict[bytes, tuple[FloatArray, FloatArray]] = {}

    def evaluated(z: FloatArray) -> tuple[FloatArray, FloatArray]:
        # SLSQP asks for the values and the Jacobian at the same point: compute both once.
        key = z.tobytes()
        if key not in last:
            values, jac = nlp.constraints(z, params)
            last.clear()
            last[key] = (
                -np.asarray(values, dtype=float).ravel(),
                -np.asarray(jac, dtype=float),
            )
        return last[key]

    def constraints(z: FloatArray) -> FloatArray:
        return evaluated(z)[0]

    def jacobian(z: FloatArray) -> FloatArray:
        return evaluated(z)[1]

    bounds = [(lo, None if math.isinf(hi) else hi) for lo, hi in zip(lower, upper, strict=True)]
    result = minimize(
        objective,
        np.clip(x0, lower, upper),
        jac=True,
        method="SLSQP",
        bounds=bounds,
        constraints=[{"type": "ineq", "fun": constraints, "jac": jacobian}],
        options={"maxiter": 200, "ftol": 1e-10},
    )
    return np.clip(np.asarray(result.x, dtype=float), lower, upper), str(result.message)


def delay_at(instance: Instance, plan: Plan) -> float:
    """The system delay of ``plan`` clipped into the solver's box (the start's T)."""
    report = evaluate(instance, to_plan(instance, plan.assignment, shares(instance, plan), False))
    return report.delay_s if math.isfinite(report.delay_s) else 1.0


def structured_starts(
    instance: Instance, assignment: IntArray, rng: np.random.Generator
) -> list[Plan]:
    """Starts that reach the kinds of optimum seen on small instances: the equal split with
    phi = 0.5, everyone offloaded (phi = 0), everyone local (phi = 1), the server's work at
    low speed, one user per server local with the rest offloaded, and a random split."""
    n = instance.n_users
    a = assignment
    counts = np.bincount(a, minlength=instance.n_servers).astype(float)[a]
    equal = np.concatenate(
        [1.0 / counts, np.ones(n), 1.0 / counts, np.full(n, 0.5), np.ones(n), 1.0 / counts]
    )
    starts = []

    def plan_of(phi: FloatArray, server_speed: float = 1.0) -> Plan:
        x = equal.copy()
        x[3 * n : 4 * n] = phi
        x[5 * n : 6 * n] *= server_speed
        return to_plan(instance, a, np.clip(x, FLOOR, 1.0), snap=False)

    # Strongest link per server: the user who can send its whole adapter up most cheaply.
    gain = instance.channel_gain[np.arange(n), a]
    local_one = np.zeros(n)
    for server in np.unique(a):
        members = np.flatnonzero(a == server)
        local_one[members[np.argmax(gain[members])]] = 1.0 - 2 * FLOOR
    for phi, speed in (
        (np.full(n, 0.5), 1.0),
        (np.zeros(n), 1.0),
        (np.full(n, 1.0 - 2 * FLOOR), 1.0),
        (np.zeros(n), 0.2),
        (local_one, 0.5),
        (rng.uniform(0.0, 1.0, n), float(rng.uniform(0.2, 1.0))),
    ):
        starts.append(plan_of(phi, speed))
    return starts


def joint_multistart(
    instance: Instance,
    assignment: IntArray,
    rng: np.random.Generator,
    extra: list[Plan],
    solvers: tuple[str, ...] = SOLVERS,
) -> JointResult:
    """The best joint solve of ``assignment`` by every solver in ``solvers`` from the
    structured starts and from ``extra`` plans of the same association."""
    best = JointResult(None, -math.inf, "not solved")
    for start in [*extra, *structured_starts(instance, assignment, rng)]:
        for solver in solvers:
            result = solve_joint(instance, start, solver)
            if result.plan is not None and result.scr > best.scr:
                best = result
    return best
