"""A certified upper bound on the best SCR of a small instance, by spatial branch and bound
(SCIP through ``pyscipopt``; the ``bound`` extra). docs/quality.md proves each step.

For a ratio ``y``, let ``F(y) = max over plans of sum v - y (w_t T + w_e E)``. If some plan had
``SCR >= y`` then ``F(y) >= 0``; so a proof that ``F(y) < 0`` certifies ``SCR < y`` for every
plan. SCIP proves it on a *relaxation* of the plan set (every plan of the real problem is
feasible in it, so its maximum is at least ``F(y)``):

- the concave parts are replaced by polyhedral outer approximations (tangent planes): the
  rates ``b log2(1 + gamma p / b)`` (a concave, positively homogeneous function: every tangent
  plane through the origin lies above it) and the service ``ln(1 + norm s)``;
- phases are written without divisions, as ``t f >= k phi`` (``T1 = k phi / f``),
  ``t r >= k phi`` and so on, energies as ``e >= ... phi f^2`` and ``e >= p t``: products
  SCIP relaxes and branches on (spatial branch and bound);
- every variable gets bounds that any plan with ``SCR >= y`` must satisfy: with ``V`` an upper
  bound on the service (a server's users' scores are largest at an equal split of its three
  shares), such a plan has cost at most ``V / y``, so ``T <= V / (y w_t)``, and each user's
  band share is at least the ``b_min`` whose best rate still moves its whole adapter in that
  time (the transfer times of a user add up to at least its adapter over its faster link).

The association is enumerated (M^N of them): the instance's bound is the largest over
associations. The bound is searched over a ladder of ratios above a reference value (any plan's
SCR: it only decides where the search starts) and is the smallest rung SCIP proves within its
time limit for every association; if none is proven, there is no certificate.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from mecllm.core.arrays import IntArray
from mecllm.core.errors import InvalidInputError
from mecllm.systems.finetune.instance import Instance

_LN2 = math.log(2.0)
#: Rungs of the search: the bound tried is reference x each, smallest first.
LADDER = (1.001, 1.003, 1.01, 1.03, 1.1, 1.3, 2.0, 4.0)
#: Tangent planes per concave function.
_CUTS = 64
#: Largest number of associations enumerated.
MAX_ASSOCIATIONS = 64

Proof = Literal["proven", "not proven"]


@dataclass(frozen=True)
class Certificate:
    """A certified upper bound on the SCR of every plan, or none within the time given.

    Attributes
    ----------
    bound : float or None
        No plan of the instance has an SCR at or above this (``None``: nothing proven).
    reference : float
        The SCR the ladder started from.
    associations : int
        How many associations were enumerated.
    seconds : float
        Wall time.
    rungs : list of (ratio, proof) pairs tried, with the association that decided each.
    """

    bound: float | None
    reference: float
    associations: int
    seconds: float
    rungs: list[tuple[float, Proof]] = field(default_factory=list)


def _service_cap(instance: Instance, assignment: IntArray) -> float:
    """An upper bound on sum v: by concavity a server's k users score at most
    ``k ln(1 + norm 3 / k)`` together (each of its three shares sums to at most 1)."""
    total = 0.0
    for server in range(instance.n_servers):
        k = int(np.sum(assignment == server))
        if k:
            total += k * math.log1p(instance.service_norm * 3.0 / k)
    return float(instance.service_scale * total)


def _least_band(gamma: float, rate_needed: float) -> float:
    """The smallest band share b in (0, 1] with ``b log2(1 + gamma / b) >= rate_needed``
    (the rate at full power; increasing in b), or 0 if even b = 1 falls short."""

    def rate(b: float) -> float:
        return b * math.log2(1.0 + gamma / b)

    if rate(1.0) < rate_needed:
        return 0.0
    low, high = 1e-300, 1.0
    for _ in range(200):
        middle = math.sqrt(low * high)
        if rate(middle) >= rate_needed:
            high = middle
        else:
            low = middle
    return low  # rate(low) < rate_needed <= rate(high): low is a valid lower bound


def _prove_below(instance: Instance, assignment: IntArray, y: float, time_limit_s: float) -> Proof:
    """Whether SCIP proves that no plan of ``assignment`` reaches ``SCR >= y``."""
    from pyscipopt import Model, quicksum

    n = instance.n_users
    a = assignment
    rows = np.arange(n)
    bw = instance.bandwidth_hz[a]
    gain = instance.gain_over_noise[rows, a]
    d = instance.adapter_params
    bits = instance.bits_per_param
    w_t, w_e = instance.weight_delay, instance.weight_energy
    cost_cap = _service_cap(instance, a) / y
    if w_t <= 0:
        return "not proven"  # no delay price: T is unbounded and so is the relaxation
    t_cap = cost_cap / w_t
    model = Model()
    model.hideOutput()
    model.setParam("limits/time", max(time_limit_s, 1.0))
    # A loose feasibility tolerance lets the relaxation reach F >= 0 just above the optimum.
    model.setParam("numerics/feastol", 1e-7)
    tau = model.addVar("tau", lb=0.0, ub=t_cap)
    band, down, compute, scores, energies = [], [], [], [], []
    for i in range(n):
        gamma_up = gain[i] * instance.user_max_power_w[i] / bw[i]
        gamma_dn = gain[i] * instance.server_max_power_w[a[i]] / bw[i]
        k_bits = d[i] * bits / bw[i]  # upload time x rate in units of the band, phi = 1
        # T2 + T4 = k (phi / r_up + (1 - phi) / r_dn) >= k / max(r_up, r_dn) must fit in
        # t_cap, and max(r_up, r_dn) <= b log2(1 + gamma_max / b) (powers at most their caps).
        b_min = _least_band(max(gamma_up, gamma_dn), k_bits / t_cap)
        if b_min <= 0.0:
            return "proven"  # no plan of this association is fast enough to reach y
        # The chord is at most the work at every phi, so the relaxation stays a relaxation.
        k1 = instance.work.user_chord[i] * instance.user_epochs[i]
        k1 /= instance.user_max_flops[i]
        k3 = instance.work.server_chord[i] * instance.server_epochs[a[i]]
        k3 /= instance.server_max_flops[a[i]]
        eps1 = instance.user_kappa[i] * k1 * instance.user_max_flops[i] ** 3
        eps3 = instance.server_kappa[a[i]] * k3 * instance.server_max_flops[a[i]] ** 3
        b = model.addVar(lb=b_min, ub=1.0)
        p = model.addVar(lb=0.0, ub=1.0)
        q = model.addVar(lb=0.0, ub=1.0)
        phi = model.addVar(lb=0.0, ub=1.0)
        f = model.addVar(lb=0.0, ub=1.0)
        s = model.addVar(lb=0.0, ub=1.0)
        r_up = model.addVar(lb=0.0, ub=math.log2(1.0 + gamma_up))
        r_dn = model.addVar(lb=0.0, ub=math.log2(1.0 + gamma_dn))
        _rate_planes(model, r_up, b, p, gamma_up, b_min)
        _rate_planes(model, r_dn, b, q, gamma_dn, b_min)
        t1, t2, t3, t4 = (model.addVar(lb=0.0, ub=t_cap) for _ in range(4))
        model.addCons(t1 * f >= k1 * phi)
        model.addCons(t2 * r_up >= k_bits * phi)
        model.addCons(t3 * s >= k3 * (1 - phi))
        model.addCons(t4 * r_dn >= k_bits * (1 - phi))
        model.addCons(t1 + t2 + t3 + t4 <= tau)
        f2, s2 = model.addVar(lb=0.0, ub=1.0), model.addVar(lb=0.0, ub=1.0)
        model.addCons(f2 >= f * f)
        model.addCons(s2 >= s * s)
        e = model.addVar(lb=0.0)
        model.addCons(
            e
            >= eps1 * phi * f2
            + instance.user_max_power_w[i] * p * t2
            + eps3 * (1 - phi) * s2
            + instance.server_max_power_w[a[i]] * q * t4
        )
        v = model.addVar(lb=0.0, ub=math.log1p(3.0 * instance.service_norm))
        for x0 in np.linspace(0.0, 3.0, _CUTS):
            slope = instance.service_norm / (1.0 + instance.service_norm * x0)
            model.addCons(v <= math.log1p(instance.service_norm * x0) + slope * (b + q + s - x0))
        if not instance.count_idle:
            model.addCons(q <= 1 - phi)
            model.addCons(s <= 1 - phi)
        band.append(b)
        down.append(q)
        compute.append(s)
        scores.append(v)
        energies.append(e)
    for server in range(instance.n_servers):
        members = [i for i in range(n) if a[i] == server]
        for shares in (band, down, compute):
            if members:
                model.addCons(quicksum(shares[i] for i in members) <= 1.0)
    z = model.addVar(lb=-1e20, ub=1e20)
    model.addCons(
        z <= instance.service_scale * quicksum(scores) - y * (w_t * tau + w_e * quicksum(energies))
    )
    model.setObjective(z, "maximize")
    model.setObjlimit(0.0)  # only plans with F >= 0 matter; none found => F(y) < 0
    model.optimize()
    return "proven" if model.getStatus() == "infeasible" else "not proven"


def _rate_planes(
    model: object, rate: object, band: object, power: object, gamma: float, b_min: float
) -> None:
    """Tangent planes of ``h(b, p) = b log2(1 + gamma p / b)`` (concave, 1-homogeneous: each
    plane through the origin lies above h), along the directions ``p / b`` in ``[0, 1/b_min]``.
    """
    directions = np.concatenate([[0.0], np.geomspace(1e-4, max(1.0 / b_min, 1e-3), _CUTS)])
    for u in directions:
        slope_p = gamma / (_LN2 * (1.0 + gamma * u))
        slope_b = math.log2(1.0 + gamma * u) - gamma * u / (_LN2 * (1.0 + gamma * u))
        model.addCons(rate <= slope_b * band + slope_p * power)  # type: ignore[attr-defined]


def certify(instance: Instance, reference: float, time_limit_s: float = 60.0) -> Certificate:
    """The smallest rung of :data:`LADDER` x ``reference`` proven to bound every plan.

    ``time_limit_s`` is SCIP's limit per association and rung.

    Raises
    ------
    InvalidInputError
        If the instance has more than :data:`MAX_ASSOCIATIONS` associations, or SCIP is not
        installed.
    """
    try:
        import pyscipopt  # noqa: F401
    except ImportError:
        raise InvalidInputError(
            "the certified bound needs SCIP: pip install -e '.[bound]'"
        ) from None
    count = instance.n_servers**instance.n_users
    if count > MAX_ASSOCIATIONS:
        raise InvalidInputError(
            f"the certified bound enumerates associations and handles at most "
            f"{MAX_ASSOCIATIONS}; this instance has {count}"
        )
    if not reference > 0:
        raise InvalidInputError(f"reference must be a positive SCR, got {reference}")
    started = time.perf_counter()
    associations = [
        np.array(c, dtype=np.int64)
        for c in itertools.product(range(instance.n_servers), repeat=instance.n_users)
    ]
    rungs: list[tuple[float, Proof]] = []
    for factor in LADDER:
        y = reference * factor
        proof: Proof = "proven"
        for assignment in associations:
            if _prove_below(instance, assignment, y, time_limit_s) != "proven":
                proof = "not proven"
                break
        rungs.append((y, proof))
        if proof == "proven":
            return Certificate(y, reference, count, time.perf_counter() - started, rungs)
    return Certificate(None, reference, count, time.perf_counter() - started, rungs)
