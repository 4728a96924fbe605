"""AO part 2's convex surrogate (docs/finetune.md, "AO part 2"): bandwidth, powers, compute and T
for fixed x and phi, in scaled units.

The energies of the two transfers, ``p_n T2 = chi1 / r_up`` and ``q_n T4 = chi2 / r_dn``, are
ratios of a convex numerator over a concave rate. The quadratic transform
(:mod:`mecllm.core.fractional`) replaces ``chi / r`` by ``chi^2 z + 1 / (4 r^2 z)``; for fixed z
the Dinkelbach subproblem is concave. This module holds its coefficients
(:class:`SurrogateTerms`), the variables as shares of their caps (:class:`Shares`) and the
transform's weights; :mod:`.engines` alternates the closed-form z update with one convex solve
by one of three engines (:mod:`.modelled`, :mod:`.direct`, :mod:`.barrier`).

The convex problem sees only well-scaled numbers: every resource is a share of its cap, rates
are in units of the server's whole band, T is relative to the starting delay and the objective
is divided by its starting magnitude.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mecllm.core.arrays import BoolArray, FloatArray, IntArray
from mecllm.core.fractional import fp_optimal_z
from mecllm.core.radio import shannon_rate
from mecllm.core.status import StepStatus
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.physics import evaluate
from mecllm.systems.finetune.solution import Plan


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
    status: StepStatus
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
    rows = np.arange(n)
    user_work = instance.work.user_work(rows, phi) * instance.user_epochs
    server_work = instance.work.server_work(rows, phi) * instance.server_epochs[m]
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
        :func:`mecllm.systems.finetune.physics.phases`).
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
