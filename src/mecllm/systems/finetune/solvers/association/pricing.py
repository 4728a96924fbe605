"""AO part 1's coefficients (docs/finetune.md, "AO part 1"): association x, split phi and the
delay bound T with the resources fixed.

With the resources fixed, every user's delay and energy are linear in phi once its server is
known, so the Dinkelbach subproblem (the paper's (4)) is, in minimisation form,

    min  y w_t T + sum_{n,m} x_nm B_nm + sum_{n,m} (x_nm phi_n) G_nm
    s.t. sum_m x_nm = 1,  x binary,  0 <= phi_n <= 1,
         sum_m [x_nm base_nm + (x_nm phi_n) slope_nm] <= T          (3j)
         sum_n x_nm usage_knm <= cap_km   for bandwidth, power, compute   (3d, 3f, 3h)

where ``B = y w_e (E3 + E4 at phi=0) - v``, ``G = y w_e d(E)/d(phi)``, ``base`` is the delay at
phi = 0 and ``slope`` its derivative in phi. This module builds those coefficients from a plan
("pricing") and solves the phi-only linear program of a fixed association; the association
itself is chosen by :mod:`.relaxation` (the paper's SDR), :mod:`.milp` (exact) or
:mod:`.threshold` (scalable).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mecllm.core import highs
from mecllm.core.arrays import FloatArray, IntArray
from mecllm.core.radio import shannon_rate
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.solution import Plan

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
    # Linear in phi: the work model's chord (exact at phi = 0 and 1; docs/finetune.md s. 12).
    user_work = (instance.work.user_chord * instance.user_epochs)[:, None]
    server_work = instance.work.server_chord[:, None] * instance.server_epochs[None, :]
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
    """Part-1 coefficients with room to move (docs/finetune.md section 11, capacity lock-in).

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
#: Distance from a bound within which the phi LP's answer is put on the bound.
_SNAP = 1e-9


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
    # Row n: slope_n / t_ref phi_n - tau <= -base_n / t_ref.
    rows = np.concatenate([np.arange(n), np.arange(n)])
    cols = np.concatenate([np.arange(n), np.full(n, n)])
    values = np.concatenate([slope / t_ref, -np.ones(n)])
    result = highs.solve(
        objective,
        (rows, cols, values),
        (np.full(n, -np.inf), -base / t_ref),
        (np.zeros(n + 1), np.append(cap, 1.0)),
        options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10},
    )
    if result.x is None or result.status != "optimal":
        # The LP is always feasible and bounded; a failure is numerical. Fall back to the
        # exact piecewise search over T, which needs no solver.
        return _phi_by_search(costs, assignment)
    phi = np.clip(result.x[:n], 0.0, cap)
    # A vertex of this LP has each phi at 0, at its cap or where its delay meets T; the
    # solver returns bounds up to its tolerance (1 - 1e-10), which would leave a phantom
    # download of 1e-10 of the adapter. Snap them.
    phi = np.where(phi <= _SNAP, 0.0, np.where(phi >= cap - _SNAP, cap, phi))
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
        lo, hi = phi_interval(base, slope, cap, t)
        if np.any(lo > hi + 1e-12):
            continue
        phi = np.where(g < 0, hi, lo)
        value = costs.objective(assignment, phi)
        if value < best:
            best_phi, best = phi, value
    return best_phi, best


def phi_interval(
    base: FloatArray, slope: FloatArray, cap: FloatArray, t: float
) -> tuple[FloatArray, FloatArray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = (t - base) / slope
    lo = np.where(slope < 0, np.maximum(bound, 0.0), 0.0)
    hi = np.where(slope > 0, np.minimum(bound, cap), cap)
    lo = np.where((slope == 0) & (base > t), np.inf, lo)
    return lo, hi


def objective_scale(costs: PairCosts) -> float:
    """The largest coefficient magnitude, to divide the objective by (1 if all are 0)."""
    magnitude = max(float(np.max(np.abs(costs.constant))), float(np.max(np.abs(costs.slope_cost))))
    return magnitude if magnitude > 0 else 1.0


def server_slots(costs: PairCosts, server: int) -> int:
    """How many users server ``server`` can take within its caps, each priced at its smallest
    usage there (at least 1)."""
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
