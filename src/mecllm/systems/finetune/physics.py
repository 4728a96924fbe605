"""The physics of the fine-tuning system (docs/finetune.md, "Physics"), vectorised over users,
and the feasibility report.

Everything is in SI units. A phase that moves or trains nothing takes zero time and energy
whatever its resource; a phase with work and no resource takes infinite time, which makes the
plan infeasible (reported, never a crash or a NaN).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mecllm.core.arrays import FloatArray, IntArray
from mecllm.core.feasibility import FEASIBILITY_RTOL, Violation
from mecllm.core.phases import phase_time, power_times
from mecllm.core.radio import shannon_rate
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.solution import Plan

#: Names of the four phases, in order.
PHASES = ("local training", "upload", "server training", "download")


@dataclass(frozen=True)
class IdleAllocation:
    """Server resources given to users for whom the server has no work (phi = 1).

    docs/finetune.md section 11: the paper's service score rewards them at no cost.
    """

    users: list[int]
    compute_share: FloatArray
    power_share: FloatArray

    def to_dict(self) -> dict[str, Any]:
        """JSON form: user indices and, per server, the share of its caps they hold."""
        return {
            "users": self.users,
            "server_compute_share": self.compute_share.tolist(),
            "server_power_share": self.power_share.tolist(),
        }


@dataclass(frozen=True)
class Evaluation:
    """Every figure of a plan (per user arrays have shape (N,), SI units)."""

    uplink_rate_bps: FloatArray
    downlink_rate_bps: FloatArray
    t1: FloatArray
    t2: FloatArray
    t3: FloatArray
    t4: FloatArray
    e1: FloatArray
    e2: FloatArray
    e3: FloatArray
    e4: FloatArray
    user_delay_s: FloatArray
    user_service: FloatArray
    delay_s: float
    energy_j: float
    service: float
    cost: float
    scr: float
    violations: list[Violation] = field(default_factory=list)
    idle: IdleAllocation | None = None

    @property
    def feasible(self) -> bool:
        """True when no constraint is violated (beyond :data:`FEASIBILITY_RTOL`)."""
        return not self.violations

    @property
    def times(self) -> FloatArray:
        """(4, N) phase delays T1..T4, s."""
        return np.vstack([self.t1, self.t2, self.t3, self.t4])

    @property
    def energies(self) -> FloatArray:
        """(4, N) phase energies E1..E4, J."""
        return np.vstack([self.e1, self.e2, self.e3, self.e4])

    def to_dict(self) -> dict[str, Any]:
        """JSON form (non-finite numbers become null)."""

        def arr(values: FloatArray) -> list[float | None]:
            return [float(v) if np.isfinite(v) else None for v in values]

        def num(value: float) -> float | None:
            return float(value) if np.isfinite(value) else None

        return {
            "feasible": self.feasible,
            "scr": num(self.scr),
            "delay_s": num(self.delay_s),
            "energy_j": num(self.energy_j),
            "service": num(self.service),
            "cost": num(self.cost),
            "violations": [v.to_dict() for v in self.violations],
            "idle_allocations": self.idle.to_dict() if self.idle else None,
            "per_user": {
                "uplink_rate_bps": arr(self.uplink_rate_bps),
                "downlink_rate_bps": arr(self.downlink_rate_bps),
                "t1_s": arr(self.t1),
                "t2_s": arr(self.t2),
                "t3_s": arr(self.t3),
                "t4_s": arr(self.t4),
                "e1_j": arr(self.e1),
                "e2_j": arr(self.e2),
                "e3_j": arr(self.e3),
                "e4_j": arr(self.e4),
                "delay_s": arr(self.user_delay_s),
                "service": arr(self.user_service),
            },
        }


@dataclass(frozen=True)
class Phases:
    """Per-user figures of docs/finetune.md section 4 (SI units), shape (R,) each: the two link
    rates, the four phase delays and energies, and the service score."""

    r_up: FloatArray
    r_dn: FloatArray
    t: tuple[FloatArray, FloatArray, FloatArray, FloatArray]
    e: tuple[FloatArray, FloatArray, FloatArray, FloatArray]
    service: FloatArray

    @property
    def delay(self) -> FloatArray:
        """(R,) each user's total delay, s."""
        out: FloatArray = self.t[0] + self.t[1] + self.t[2] + self.t[3]
        return out

    @property
    def energy(self) -> FloatArray:
        """(R,) each user's total energy, J."""
        out: FloatArray = self.e[0] + self.e[1] + self.e[2] + self.e[3]
        return out


def phases(instance: Instance, plan: Plan, users: IntArray | None = None) -> Phases:
    """The physics of every user of ``plan``, or of rows that need not form a plan.

    With ``users`` (R,), the plan's arrays are read as R rows, row r being real user
    ``users[r]`` on server ``plan.assignment[r]`` (rows may repeat a user, for example one
    user on several candidate servers); without it, row n is user n.
    """
    n = np.arange(instance.n_users) if users is None else users
    m = plan.assignment
    phi = plan.phi
    c = instance.gain_over_noise[n, m]
    d = instance.adapter_params[n]
    bits = instance.bits_per_param
    r_up = shannon_rate(plan.bandwidth_hz, plan.user_power_w, c)
    r_dn = shannon_rate(plan.bandwidth_hz, plan.server_power_w, c)
    work = instance.work
    user_work = work.user_work(n, phi) * instance.user_epochs[n]
    server_work = work.server_work(n, phi) * instance.server_epochs[m]
    t1 = phase_time(user_work, plan.user_flops)
    t2 = phase_time(phi * d * bits, r_up)
    t3 = phase_time(server_work, plan.server_flops)
    t4 = phase_time((1.0 - phi) * d * bits, r_dn)
    e1 = instance.user_kappa[n] * user_work * plan.user_flops**2
    e2 = power_times(plan.user_power_w, t2)
    e3 = instance.server_kappa[m] * server_work * plan.server_flops**2
    e4 = power_times(plan.server_power_w, t4)
    share = (
        plan.server_power_w / instance.server_max_power_w[m]
        + plan.server_flops / instance.server_max_flops[m]
        + plan.bandwidth_hz / instance.bandwidth_hz[m]
    )
    service: FloatArray = instance.service_scale * np.log1p(
        instance.service_norm * np.maximum(share, 0.0)
    )
    return Phases(r_up, r_dn, (t1, t2, t3, t4), (e1, e2, e3, e4), service)


def weighted_cost(instance: Instance, delay_s: Any, energy_j: Any) -> Any:
    """The model's cost ``omega_t T + omega_e E`` (floats or arrays alike)."""
    return instance.weight_delay * delay_s + instance.weight_energy * energy_j


def evaluate(instance: Instance, plan: Plan) -> Evaluation:
    """Score ``plan`` on ``instance``: every phase, the totals, SCR and a feasibility report."""
    figures = phases(instance, plan)
    r_up, r_dn, v = figures.r_up, figures.r_dn, figures.service
    t1, t2, t3, t4 = figures.t
    e1, e2, e3, e4 = figures.e
    delay_n = figures.delay
    delay = float(np.max(delay_n))
    energy = float(np.sum(figures.energy))
    cost = float(weighted_cost(instance, delay, energy))
    total_service = float(np.sum(v))
    scr = total_service / cost if np.isfinite(cost) and cost > 0 else 0.0
    return Evaluation(
        uplink_rate_bps=r_up,
        downlink_rate_bps=r_dn,
        t1=t1,
        t2=t2,
        t3=t3,
        t4=t4,
        e1=e1,
        e2=e2,
        e3=e3,
        e4=e4,
        user_delay_s=delay_n,
        user_service=v,
        delay_s=delay,
        energy_j=energy,
        service=total_service,
        cost=float(cost),
        scr=float(scr),
        violations=violations(instance, plan, (t1, t2, t3, t4)),
        idle=idle_allocations(instance, plan),
    )


def violations(
    instance: Instance, plan: Plan, times: tuple[FloatArray, ...] | None = None
) -> list[Violation]:
    """Every constraint of (3a)-(3i) the plan breaks, plus phases that can never finish."""
    found: list[Violation] = []
    m = plan.assignment
    n_users = instance.n_users

    def check_upper(name: str, values: FloatArray, caps: FloatArray, unit: str) -> None:
        excess = values - caps * (1 + FEASIBILITY_RTOL)
        for i in np.flatnonzero(excess > 0):
            found.append(
                Violation(
                    name,
                    int(i),
                    float(values[i] - caps[i]),
                    f"{name}[{i}] = {values[i]:.6g} {unit} exceeds the cap "
                    f"{caps[i]:.6g} {unit} by {values[i] - caps[i]:.3g}",
                )
            )

    def check_nonnegative(name: str, values: FloatArray) -> None:
        for i in np.flatnonzero(values < 0):
            found.append(
                Violation(
                    name, int(i), float(-values[i]), f"{name}[{i}] = {values[i]:.6g} must be >= 0"
                )
            )

    if plan.n_users != n_users:
        raise ValueError(f"plan has {plan.n_users} users, instance {n_users}")
    check_nonnegative("phi", plan.phi)
    check_upper("phi", plan.phi, np.ones(n_users), "")
    for name in ("bandwidth_hz", "user_power_w", "server_power_w", "user_flops", "server_flops"):
        check_nonnegative(name, getattr(plan, name))
    check_upper("user_power_w", plan.user_power_w, instance.user_max_power_w, "W")
    check_upper("user_flops", plan.user_flops, instance.user_max_flops, "FLOP/s")
    m_count = instance.n_servers
    for name, values, caps, unit in (
        ("server_bandwidth_hz", plan.bandwidth_hz, instance.bandwidth_hz, "Hz"),
        ("server_power_w", plan.server_power_w, instance.server_max_power_w, "W"),
        ("server_flops", plan.server_flops, instance.server_max_flops, "FLOP/s"),
    ):
        used = np.bincount(m, weights=np.maximum(values, 0.0), minlength=m_count).astype(float)
        check_upper(f"{name}_total", used, caps, unit)
    if not instance.count_idle:
        work_share = np.clip(1.0 - plan.phi, 0.0, 1.0)
        check_upper(
            "server_flops_idle",
            plan.server_flops,
            work_share * instance.server_max_flops[m],
            "FLOP/s",
        )
        check_upper(
            "server_power_idle",
            plan.server_power_w,
            work_share * instance.server_max_power_w[m],
            "W",
        )
    if times is not None:
        for phase, t in zip(PHASES, times, strict=True):
            for i in np.flatnonzero(~np.isfinite(t)):
                found.append(
                    Violation(
                        "unfinishable_phase",
                        int(i),
                        float("inf"),
                        f"user {i}: the {phase} phase has work but no "
                        "resource, so it never finishes",
                    )
                )
    return found


def idle_allocations(instance: Instance, plan: Plan) -> IdleAllocation | None:
    """Server compute and downlink power held by users with no server work (phi = 1)."""
    idle = plan.phi >= 1.0 - 1e-9
    holding = idle & ((plan.server_flops > 0) | (plan.server_power_w > 0))
    if not holding.any():
        return None
    m = plan.assignment
    count = instance.n_servers
    compute = np.bincount(m[holding], weights=plan.server_flops[holding], minlength=count)
    power = np.bincount(m[holding], weights=plan.server_power_w[holding], minlength=count)
    return IdleAllocation(
        users=[int(i) for i in np.flatnonzero(holding)],
        compute_share=compute / instance.server_max_flops,
        power_share=power / instance.server_max_power_w,
    )
