"""Physics of the secure offsite-tuning system (docs/secure.md sections 2 and 3), vectorised.

Which owners can be served is a property of the instance (:func:`service_status`): an owner
whose eavesdropper is at least as strong as its own link (``h_n >= g_n``) has no positive
secrecy rate at any power, and one whose floor ``R_min`` is out of reach even with the whole
band at full power cannot use a secure link either. Such an owner is served over a plain uplink
if the instance says it accepts one, and otherwise excluded with the reason: it holds no
resources and adds nothing to U, T or E. Nothing is dropped silently and nothing becomes NaN.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mecllm.core.arrays import FloatArray
from mecllm.core.feasibility import FEASIBILITY_RTOL, Violation
from mecllm.core.phases import phase_time
from mecllm.core.radio import shannon_rate
from mecllm.systems.secure.instance import SecureInstance
from mecllm.systems.secure.solution import SecurePlan

#: Phase names, in order.
SECURE_PHASES = ("emulator build", "downlink", "local fine-tuning", "secure uplink")
#: Per-user service status values.
SECURE, INSECURE, EXCLUDED = "secure", "insecure", "excluded"


def secrecy_rate(
    bandwidth_hz: FloatArray,
    power_w: FloatArray,
    gain_over_noise: FloatArray,
    eve_gain_over_noise: FloatArray,
) -> FloatArray:
    """Wyner's Gaussian wiretap rate ``[b log2(1 + g p/(sigma^2 b)) - b log2(1 + h p/(sigma^2
    b))]^+`` in bit/s (0 when the eavesdropper is at least as strong)."""
    own = shannon_rate(bandwidth_hz, power_w, gain_over_noise)
    eve = shannon_rate(bandwidth_hz, power_w, eve_gain_over_noise)
    out: FloatArray = np.maximum(own - eve, 0.0)
    return out


def floor_bandwidth(instance: SecureInstance) -> FloatArray:
    """Smallest bandwidth (Hz) at which each owner reaches ``R_min`` at full power; ``inf`` for
    owners that cannot reach it within the whole band. R_sec increases with b when g > h."""
    n = instance.n_users
    c = instance.channel_gain / instance.noise_psd_w_per_hz
    ce = instance.eavesdropper_gain / instance.noise_psd_w_per_hz
    p = instance.user_max_power_w
    floor = instance.secrecy_floor_bps
    big = np.full(n, instance.bandwidth_hz)
    reachable = secrecy_rate(big, p, c, ce) >= floor
    if floor <= 0:
        return np.where(c > ce, 0.0, np.inf)
    lo, hi = np.zeros(n), big.copy()
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        ok = secrecy_rate(mid, p, c, ce) >= floor
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
    out: FloatArray = np.where(reachable, hi, np.inf)
    return out


@dataclass(frozen=True)
class ServiceStatus:
    """Who is served how: ``status[n]`` is secure, insecure or excluded; ``reasons[n]`` says
    why an owner is not served securely ("" when it is)."""

    status: list[str]
    reasons: list[str]

    @property
    def served(self) -> np.ndarray:
        """(N,) bool, owners that are served (securely or not)."""
        return np.array([s != EXCLUDED for s in self.status])

    @property
    def secure(self) -> np.ndarray:
        """(N,) bool, owners served over the secure uplink."""
        return np.array([s == SECURE for s in self.status])

    def lines(self) -> list[str]:
        """One sentence per owner not served securely."""
        return [
            f"user {n} {'excluded' if s == EXCLUDED else 'served over a plain uplink'}: {r}"
            for n, (s, r) in enumerate(zip(self.status, self.reasons, strict=True))
            if s != SECURE
        ]


_STATUS: weakref.WeakKeyDictionary[SecureInstance, ServiceStatus] = weakref.WeakKeyDictionary()


def service_status(instance: SecureInstance) -> ServiceStatus:
    """Classify every owner (see the module docstring). A property of the immutable instance,
    computed once per instance (every evaluation of a plan needs it)."""
    if instance not in _STATUS:
        _STATUS[instance] = _classify(instance)
    return _STATUS[instance]


def _classify(instance: SecureInstance) -> ServiceStatus:
    need = floor_bandwidth(instance)
    status, reasons = [], []
    for n in range(instance.n_users):
        g, h = instance.channel_gain[n], instance.eavesdropper_gain[n]
        if h >= g:
            reason = (
                f"eavesdropper gain {h:.3g} >= own gain {g:.3g}: no positive secrecy rate at "
                "any power"
            )
        elif not math.isfinite(need[n]):
            reason = (
                f"secrecy floor {instance.secrecy_floor_bps:.3g} bit/s out of reach even with "
                f"the whole band at full power"
            )
        else:
            status.append(SECURE)
            reasons.append("")
            continue
        assert instance.accept_insecure is not None
        status.append(INSECURE if instance.accept_insecure[n] else EXCLUDED)
        reasons.append(reason)
    return ServiceStatus(status, reasons)


def adapter_params(instance: SecureInstance, phi: FloatArray) -> FloatArray:
    """A_n = phi_n L P."""
    out: FloatArray = np.asarray(phi, dtype=float) * instance.model_params
    return out


def emulator_params(instance: SecureInstance, phi: FloatArray) -> FloatArray:
    """E_n = rho (1 - phi_n) L P."""
    out: FloatArray = (
        instance.emulator_ratio * (1.0 - np.asarray(phi, dtype=float)) * instance.model_params
    )
    return out


def utility(instance: SecureInstance, phi: FloatArray) -> FloatArray:
    """u_n = alpha_n ln(1 + beta phi_n) + gamma ln(rho), per owner."""
    out: FloatArray = instance.utility_weight * np.log1p(
        instance.beta * np.asarray(phi, dtype=float)
    ) + instance.gamma * math.log(instance.emulator_ratio)
    return out


@dataclass(frozen=True)
class SecureEvaluation:
    """Every figure of a plan; per-owner arrays have shape (N,), phases shape (4, N).

    Excluded owners have zero rows and do not count in U, T or E.
    """

    status: ServiceStatus
    downlink_rate_bps: FloatArray
    uplink_rate_bps: FloatArray
    secrecy_rate_bps: FloatArray
    eavesdropper_rate_bps: FloatArray
    times: FloatArray
    energies: FloatArray
    user_delay_s: FloatArray
    user_utility: FloatArray
    utility: float
    delay_s: float
    energy_j: float
    cost: float
    ratio: float
    violations: list[Violation] = field(default_factory=list)

    @property
    def feasible(self) -> bool:
        """True when no constraint is violated (beyond FEASIBILITY_RTOL)."""
        return not self.violations

    @property
    def floor_violations(self) -> list[int]:
        """Owners served securely whose secrecy rate is below R_min."""
        return [v.index for v in self.violations if v.constraint == "secrecy_floor"]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (inf becomes null)."""

        def clean(values: FloatArray) -> list[Any]:
            return [float(v) if math.isfinite(v) else None for v in np.ravel(values)]

        return {
            "us_ratio": _num(self.ratio),
            "utility": _num(self.utility),
            "cost": _num(self.cost),
            "delay_s": _num(self.delay_s),
            "energy_j": _num(self.energy_j),
            "feasible": self.feasible,
            "status": self.status.status,
            "not_secure": self.status.lines(),
            "secrecy_rate_bps": clean(self.secrecy_rate_bps),
            "eavesdropper_rate_bps": clean(self.eavesdropper_rate_bps),
            "downlink_rate_bps": clean(self.downlink_rate_bps),
            "uplink_rate_bps": clean(self.uplink_rate_bps),
            "phases": {f"T{k + 1}": clean(self.times[k]) for k in range(4)}
            | {f"E{k + 1}": clean(self.energies[k]) for k in range(4)},
            "user_delay_s": clean(self.user_delay_s),
            "user_utility": clean(self.user_utility),
            "violations": [v.to_dict() for v in self.violations],
        }


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def evaluate_secure(instance: SecureInstance, plan: SecurePlan) -> SecureEvaluation:
    """Recompute every delay, energy, rate and the ratio U/S, and list violated constraints."""
    status = service_status(instance)
    served = status.served
    secure = status.secure
    sigma2 = instance.noise_psd_w_per_hz
    c = instance.channel_gain / sigma2
    ce = instance.eavesdropper_gain / sigma2
    b, p, q = plan.bandwidth_hz, plan.user_power_w, plan.server_power_w
    f, s, phi = plan.user_flops, plan.server_flops, plan.phi
    a_n = adapter_params(instance, phi)
    e_n = emulator_params(instance, phi)
    bits = instance.bits_per_param
    r_dn = shannon_rate(b, q, c)
    own = shannon_rate(b, p, c)
    eve = shannon_rate(b, p, ce)
    r_sec = np.maximum(own - eve, 0.0)
    r_up = np.where(secure, r_sec, own)
    distill = instance.distill_flops_per_param * e_n
    train = instance.user_epochs * instance.flops_per_param * (a_n + e_n)
    t1 = phase_time(distill, s)
    t2 = phase_time((a_n + e_n) * bits, r_dn)
    t3 = phase_time(train, f)
    t4 = phase_time(a_n * bits, r_up)
    e1 = instance.server_kappa * distill * s**2
    e2 = np.where(np.isfinite(t2), q * np.where(np.isfinite(t2), t2, 0.0), np.inf)
    e3 = instance.user_kappa * train * f**2
    e4 = np.where(np.isfinite(t4), p * np.where(np.isfinite(t4), t4, 0.0), np.inf)
    times = np.where(served, np.vstack([t1, t2, t3, t4]), 0.0)
    energies = np.where(served, np.vstack([e1, e2, e3, e4]), 0.0)
    user_delay = times.sum(axis=0)
    user_u = np.where(served, utility(instance, phi), 0.0)
    u_total = float(user_u.sum())
    delay = float(user_delay.max()) if served.any() else 0.0
    energy = float(energies.sum())
    cost = instance.weight_delay * delay + instance.weight_energy * energy
    if not served.any():
        ratio = 0.0  # nobody can be served: nothing delivered, nothing spent
    else:
        ratio = u_total / cost if cost > 0 and math.isfinite(cost) else -math.inf
    violations = _violations(instance, plan, status, r_sec, times)
    return SecureEvaluation(
        status=status,
        downlink_rate_bps=np.where(served, r_dn, 0.0),
        uplink_rate_bps=np.where(served, r_up, 0.0),
        secrecy_rate_bps=r_sec,
        eavesdropper_rate_bps=eve,
        times=times,
        energies=energies,
        user_delay_s=user_delay,
        user_utility=user_u,
        utility=u_total,
        delay_s=delay,
        energy_j=energy,
        cost=float(cost),
        ratio=float(ratio),
        violations=violations,
    )


def _violations(
    instance: SecureInstance,
    plan: SecurePlan,
    status: ServiceStatus,
    r_sec: FloatArray,
    times: FloatArray,
) -> list[Violation]:
    out: list[Violation] = []
    tol = FEASIBILITY_RTOL

    def add(constraint: str, index: int, amount: float, message: str) -> None:
        out.append(Violation(constraint, index, float(amount), message))

    for name in plan.__dataclass_fields__:
        values = getattr(plan, name)
        for k in np.flatnonzero(~np.isfinite(values) | (values < 0)):
            add("nonnegative", int(k), float(values[k]), f"{name}[{k}] = {values[k]:g} < 0")
    served = status.served
    for n in range(instance.n_users):
        if not served[n]:
            held = [
                k
                for k in ("bandwidth_hz", "server_power_w", "server_flops")
                if getattr(plan, k)[n] > 0
            ]
            if held:
                add(
                    "secrecy_floor",
                    n,
                    instance.secrecy_floor_bps - r_sec[n],
                    f"user {n} holds {', '.join(held)} but cannot be served securely "
                    f"({status.reasons[n]}); its adapter would leak",
                )
            continue
        phi = plan.phi[n]
        if phi < instance.phi_min * (1 - tol) or phi > instance.phi_max * (1 + tol):
            add(
                "phi_range",
                n,
                phi,
                f"phi[{n}] = {phi:.6g} outside [{instance.phi_min:g}, {instance.phi_max:g}]",
            )
        for name, cap in (
            ("user_power_w", instance.user_max_power_w[n]),
            ("user_flops", instance.user_max_flops[n]),
        ):
            value = getattr(plan, name)[n]
            if value > cap * (1 + tol):
                add(f"{name}_cap", n, value - cap, f"{name}[{n}] = {value:.6g} > cap {cap:.6g}")
        if status.status[n] == SECURE and r_sec[n] < instance.secrecy_floor_bps * (1 - tol):
            add(
                "secrecy_floor",
                n,
                instance.secrecy_floor_bps - r_sec[n],
                f"user {n}: secrecy rate {r_sec[n]:.4g} bit/s below the floor "
                f"{instance.secrecy_floor_bps:.4g} bit/s",
            )
        if not np.all(np.isfinite(times[:, n])):
            phase = int(np.flatnonzero(~np.isfinite(times[:, n]))[0])
            add(
                "unfinishable_phase",
                n,
                math.inf,
                f"user {n}: {SECURE_PHASES[phase]} has work but no resource (infinite delay)",
            )
    for name, cap in (
        ("bandwidth_hz", instance.bandwidth_hz),
        ("server_power_w", instance.server_max_power_w),
        ("server_flops", instance.server_max_flops),
    ):
        used = float(np.sum(getattr(plan, name)))
        if used > cap * (1 + tol):
            add(f"{name}_budget", -1, used - cap, f"sum of {name} = {used:.6g} > cap {cap:.6g}")
    return out
