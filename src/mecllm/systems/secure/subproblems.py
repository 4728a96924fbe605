"""The two subproblems of the secure system (docs/secure.md section 4) and the equal split.

Subproblem 1 (:func:`phi_step`): resources fixed, every owner's delay and energy are affine in
phi_n and the utility is concave, so for a fixed completion time T each phi_n has a closed form
(stationary point of ``alpha ln(1 + beta phi) - y w_e c'_n phi`` clipped to the box and to the
delay constraint ``a_n + c_n phi_n <= T``); the objective as a function of T is concave, and a
bounded 1-D search finds T.

Subproblem 2 (:func:`resources_step`): phi fixed, minimise the cost ``w_t T + w_e E`` (the
utility does not depend on the resources). Transfer energies ``power x bits / rate`` use the
quadratic transform ``chi / r <= chi^2 z + 1 / (4 r^2 z)``; the eavesdropper's rate, concave in
(b, p), is replaced by its tangent plane at the current point (an upper bound, so the secrecy
rate becomes a concave lower bound and the floor ``R_min`` on it is conservative). Both bounds
are tight at the current point, so each convex solve can only lower the true cost.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
from scipy.optimize import minimize_scalar

from mecllm.core.arrays import FloatArray
from mecllm.core.errors import InvalidInputError
from mecllm.core.fractional import fp_optimal_z, solve_with_fallback
from mecllm.systems.secure.instance import SecureInstance
from mecllm.systems.secure.physics import (
    ServiceStatus,
    evaluate_secure,
    floor_bandwidth,
    service_status,
    utility,
)
from mecllm.systems.secure.solution import SecurePlan

_LN2 = math.log(2.0)
_SOLVER_OPTIONS: dict[str, dict[str, float | int]] = {
    "CLARABEL": {"max_threads": 1},
    "SCS": {"max_iters": 20_000, "eps_abs": 1e-6, "eps_rel": 1e-6},
}


def equal_resources(
    instance: SecureInstance, phi: FloatArray, status: ServiceStatus | None = None
) -> SecurePlan:
    """Equal shares of the server's band, power and compute among served owners, every
    owner's device at full power and speed; bandwidth is first given to each secure owner up
    to what its floor ``R_min`` needs at full power, the rest split equally.

    Raises
    ------
    InvalidInputError
        When the floors together need more than the whole band.
    """
    status = status or service_status(instance)
    served, secure = status.served, status.secure
    k = max(int(served.sum()), 1)
    need = np.where(secure, floor_bandwidth(instance), 0.0) * (1 + 1e-6)
    total = float(need.sum())
    if total > instance.bandwidth_hz:
        raise InvalidInputError(
            f"the secrecy floors need {total:.4g} Hz together at full power, more than the "
            f"band of {instance.bandwidth_hz:.4g} Hz: lower secrecy_floor_bps or serve fewer "
            "owners"
        )
    spare = (instance.bandwidth_hz - total) / k
    on = served.astype(float)
    return SecurePlan(
        phi=np.where(served, np.asarray(phi, dtype=float), 0.0),
        bandwidth_hz=on * (need + spare),
        user_power_w=on * instance.user_max_power_w,
        server_power_w=on * instance.server_max_power_w / k,
        user_flops=on * instance.user_max_flops,
        server_flops=on * instance.server_max_flops / k,
    )


# ----------------------------------------------------------------------------- subproblem 1
@dataclass(frozen=True)
class AffineCosts:
    """Per-owner delay ``a + c phi`` and energy ``a_e + c_e phi`` at fixed resources."""

    a: FloatArray
    c: FloatArray
    a_e: FloatArray
    c_e: FloatArray


def affine_costs(instance: SecureInstance, plan: SecurePlan) -> AffineCosts:
    """Delay and energy of every owner as affine functions of its phi (resources of ``plan``).

    Evaluates the physics at phi = 0 and phi = 1 (both are affine in phi exactly)."""
    zero = evaluate_secure(instance, plan.replace(phi=np.zeros_like(plan.phi)))
    one = evaluate_secure(instance, plan.replace(phi=np.ones_like(plan.phi)))
    d0, d1 = zero.times.sum(axis=0), one.times.sum(axis=0)
    e0, e1 = zero.energies.sum(axis=0), one.energies.sum(axis=0)
    return AffineCosts(a=d0, c=d1 - d0, a_e=e0, c_e=e1 - e0)


def _phi_at(
    instance: SecureInstance, costs: AffineCosts, y: float, t: float, served: np.ndarray
) -> FloatArray:
    """The KKT phi of every served owner for completion time ``t``."""
    lo = np.full_like(costs.a, instance.phi_min)
    hi = np.full_like(costs.a, instance.phi_max)
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = (t - costs.a) / costs.c
    hi = np.where(costs.c > 0, np.minimum(hi, bound), hi)
    lo = np.where(costs.c < 0, np.maximum(lo, bound), lo)
    price = y * instance.weight_energy * costs.c_e
    with np.errstate(divide="ignore"):
        free = np.where(
            price > 0,
            instance.utility_weight / np.where(price > 0, price, 1.0) - 1 / instance.beta,
            np.inf,
        )
    phi: FloatArray = np.where(served, np.clip(free, lo, np.maximum(lo, hi)), 0.0)
    return phi


def subproblem1_value(
    instance: SecureInstance, costs: AffineCosts, y: float, phi: FloatArray, served: np.ndarray
) -> float:
    """``U(phi) - y (w_t max_n D_n + w_e sum_n E_n)`` with the affine delays and energies."""
    u = float(np.sum(np.where(served, utility(instance, phi), 0.0)))
    delay = float(np.max(np.where(served, costs.a + costs.c * phi, 0.0)))
    energy = float(np.sum(np.where(served, costs.a_e + costs.c_e * phi, 0.0)))
    return u - y * (instance.weight_delay * delay + instance.weight_energy * energy)


def phi_step(instance: SecureInstance, plan: SecurePlan, y: float) -> SecurePlan:
    """Subproblem 1: the best phi for the Dinkelbach objective at ``plan``'s resources."""
    served = service_status(instance).served
    costs = affine_costs(instance, plan)
    box = np.array([instance.phi_min, instance.phi_max])
    ends = costs.a[:, None] + costs.c[:, None] * box[None, :]
    t_lo = float(np.max(np.where(served, ends.min(axis=1), -np.inf)))
    t_hi = float(np.max(np.where(served, ends.max(axis=1), -np.inf)))

    def negative(t: float) -> float:
        return -subproblem1_value(instance, costs, y, _phi_at(instance, costs, y, t, served),
                                  served)  # fmt: skip

    candidates = [t_lo, t_hi]
    if t_hi > t_lo * (1 + 1e-12):
        found = minimize_scalar(
            negative, bounds=(t_lo, t_hi), method="bounded", options={"xatol": 1e-9 * t_hi}
        )
        candidates.append(float(found.x))
    best_t = min(candidates, key=negative)
    phi = _phi_at(instance, costs, y, best_t, served)
    return plan.replace(phi=np.clip(phi, 0.0, instance.phi_max))


# ----------------------------------------------------------------------------- subproblem 2
def eavesdropper_tangent(
    gamma: FloatArray, b0: FloatArray, p0: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Tangent plane of ``R(b, p) = b log2(1 + gamma p / b)`` at ``(b0, p0)``: coefficients
    ``(dR/db, dR/dp)``. R is concave and 1-homogeneous, so ``R(b, p) <= dR/db b + dR/dp p``
    everywhere, with equality at the point (the SCA upper bound of the eavesdropper's rate)."""
    u = gamma * p0 / b0
    d_b: FloatArray = np.log2(1 + u) - u / ((1 + u) * _LN2)
    d_p: FloatArray = gamma / ((1 + u) * _LN2)
    return d_b, d_p


@dataclass(frozen=True)
class ResourceResult:
    """What :func:`resources_step` returns: plan, true cost after each iteration, status."""

    plan: SecurePlan
    costs: list[float]
    status: str
    seconds: float


class _Surrogate:
    """The convex surrogate of subproblem 2 for fixed phi, built once, re-solved per point."""

    def __init__(self, instance: SecureInstance, plan: SecurePlan, t_ref: float, scale: float):
        status = service_status(instance)
        self.instance, self.status, self.phi = instance, status, plan.phi
        idx = np.flatnonzero(status.served)
        self.idx = idx
        k = len(idx)
        sec = status.secure[idx]
        self.sec = sec
        big_b = instance.bandwidth_hz
        sigma2 = instance.noise_psd_w_per_hz
        g = instance.channel_gain[idx] / sigma2
        h = instance.eavesdropper_gain[idx] / sigma2
        pmax = instance.user_max_power_w[idx]
        fmax = instance.user_max_flops[idx]
        self.gamma_up = g * pmax / big_b
        self.gamma_eve = np.where(sec, h * pmax / big_b, 0.0)
        gamma_dn = g * instance.server_max_power_w / big_b
        phi = plan.phi[idx]
        lp = instance.model_params
        a_n, e_n = phi * lp, instance.emulator_ratio * (1 - phi) * lp
        bits = instance.bits_per_param
        distill = instance.distill_flops_per_param * e_n
        train = instance.user_epochs[idx] * instance.flops_per_param[idx] * (a_n + e_n)

        self.bs = cp.Variable(k, nonneg=True)
        self.ps = cp.Variable(k, nonneg=True)
        self.qs = cp.Variable(k, nonneg=True)
        self.fs = cp.Variable(k, nonneg=True)
        self.ss = cp.Variable(k, nonneg=True)
        self.tau = cp.Variable(nonneg=True)
        self.eve_b = cp.Parameter(k)  # tangent plane of the eavesdropper's rate (B units)
        self.eve_p = cp.Parameter(k, nonneg=True)
        self.z_up = cp.Parameter(k, nonneg=True)
        self.w_up = cp.Parameter(k, nonneg=True)
        self.z_dn = cp.Parameter(k, nonneg=True)
        self.w_dn = cp.Parameter(k, nonneg=True)

        r_dn = -cp.rel_entr(self.bs, self.bs + cp.multiply(gamma_dn, self.qs)) / _LN2
        own = -cp.rel_entr(self.bs, self.bs + cp.multiply(self.gamma_up, self.ps)) / _LN2
        r_up = own - cp.multiply(self.eve_b, self.bs) - cp.multiply(self.eve_p, self.ps)
        delay = (
            cp.multiply(distill / instance.server_max_flops / t_ref, cp.inv_pos(self.ss))
            + cp.multiply((a_n + e_n) * bits / big_b / t_ref, cp.inv_pos(r_dn))
            + cp.multiply(train / fmax / t_ref, cp.inv_pos(self.fs))
            + cp.multiply(a_n * bits / big_b / t_ref, cp.inv_pos(r_up))
        )
        price = instance.weight_energy / scale
        # E2 = Q q_s (A+E) bits / (B r_dn) and E4 = p_max p_s A bits / (B r_up): chi/r bounds.
        self.k_dn = price * instance.server_max_power_w * (a_n + e_n) * bits / big_b
        self.k_up = price * pmax * a_n * bits / big_b
        energy = (
            cp.sum(
                cp.multiply(
                    price * instance.server_kappa * distill * instance.server_max_flops**2,
                    cp.square(self.ss),
                )
            )
            + cp.sum(
                cp.multiply(price * instance.user_kappa[idx] * train * fmax**2, cp.square(self.fs))
            )
            + cp.sum(cp.multiply(self.z_dn, cp.square(self.qs)))
            + cp.sum(cp.multiply(self.w_dn, cp.power(r_dn, -2)))
            + cp.sum(cp.multiply(self.z_up, cp.square(self.ps)))
            + cp.sum(cp.multiply(self.w_up, cp.power(r_up, -2)))
        )
        constraints = [
            delay <= self.tau,
            cp.sum(self.bs) <= 1,
            cp.sum(self.qs) <= 1,
            cp.sum(self.ss) <= 1,
            self.ps <= 1,
            self.fs <= 1,
        ]
        if sec.any():
            floor = instance.secrecy_floor_bps / big_b
            constraints.append(r_up[np.flatnonzero(sec)] >= floor)
        objective = instance.weight_delay * t_ref / scale * self.tau + energy
        self.problem = cp.Problem(cp.Minimize(objective), constraints)

    def set_point(self, plan: SecurePlan) -> None:
        """Tangent plane and FP weights at ``plan`` (all in the surrogate's share units)."""
        inst, idx = self.instance, self.idx
        big_b = inst.bandwidth_hz
        b = np.maximum(plan.bandwidth_hz[idx] / big_b, 1e-12)
        ps = np.maximum(plan.user_power_w[idx] / inst.user_max_power_w[idx], 1e-12)
        qs = np.maximum(plan.server_power_w[idx] / inst.server_max_power_w, 1e-12)
        self.eve_b.value, self.eve_p.value = eavesdropper_tangent(self.gamma_eve, b, ps)
        u = self.gamma_eve * ps / b
        gamma_dn = inst.channel_gain[idx] / inst.noise_psd_w_per_hz
        gamma_dn = gamma_dn * inst.server_max_power_w / big_b
        r_dn = b * np.log2(1 + gamma_dn * qs / b)
        r_up = b * np.log2(1 + self.gamma_up * ps / b) - b * np.log2(1 + u)
        z_dn = fp_optimal_z(qs, np.maximum(r_dn, 1e-12))
        z_up = fp_optimal_z(ps, np.maximum(r_up, 1e-12))
        self.z_dn.value = self.k_dn * z_dn
        self.w_dn.value = self.k_dn / (4 * z_dn)
        self.z_up.value = self.k_up * z_up
        self.w_up.value = self.k_up / (4 * z_up)

    def solve(self) -> tuple[SecurePlan | None, str]:
        """One convex solve (Clarabel, SCS as fallback)."""
        status = solve_with_fallback(self.problem, self.bs, _SOLVER_OPTIONS)
        return (None, status) if status == "failed" else (self._plan(), status)

    def _plan(self) -> SecurePlan:
        inst, idx = self.instance, self.idx
        n = inst.n_users

        def full(var: cp.Variable, cap: FloatArray | float, budget: bool) -> FloatArray:
            share = np.clip(np.asarray(var.value, dtype=float), 0.0, 1.0)
            if budget and share.sum() > 1.0:
                share = share / share.sum()
            out = np.zeros(n)
            out[idx] = share * (cap[idx] if isinstance(cap, np.ndarray) else cap)
            return out

        return SecurePlan(
            phi=self.phi,
            bandwidth_hz=full(self.bs, inst.bandwidth_hz, True),
            user_power_w=full(self.ps, inst.user_max_power_w, False),
            server_power_w=full(self.qs, inst.server_max_power_w, True),
            user_flops=full(self.fs, inst.user_max_flops, False),
            server_flops=full(self.ss, inst.server_max_flops, True),
        )


def resources_step(
    instance: SecureInstance,
    start: SecurePlan,
    *,
    tolerance: float = 1e-5,
    max_iterations: int = 30,
) -> ResourceResult:
    """Subproblem 2 from ``start``: FP + SCA iterations until the true cost stops falling.

    Returns the best feasible plan seen (never costlier than ``start``).
    """
    started = time.perf_counter()
    report = evaluate_secure(instance, start)
    if not report.feasible:
        raise ValueError(f"subproblem 2 needs a feasible start ({report.violations[0].message})")
    best, best_cost = start, report.cost
    costs = [best_cost]
    if not service_status(instance).served.any():
        return ResourceResult(best, costs, "optimal", time.perf_counter() - started)
    surrogate = _Surrogate(instance, start, max(report.delay_s, 1e-9), max(report.cost, 1e-12))
    status = "optimal"
    for _ in range(max_iterations):
        surrogate.set_point(best)
        plan, step_status = surrogate.solve()
        if plan is None:
            status = "failed" if len(costs) == 1 else status
            break
        if step_status == "inaccurate":
            status = "inaccurate"
        trial = evaluate_secure(instance, plan)
        cost = trial.cost if trial.feasible else math.inf
        costs.append(float(cost))
        if cost < best_cost:
            gain = best_cost - cost
            best, best_cost = plan, cost
            if gain <= tolerance * best_cost:
                break
        else:
            break
    return ResourceResult(best, costs, status, time.perf_counter() - started)
