"""The phi step's correction for work models with fixed parts (docs/finetune.md section 12).

The phi LP prices work by the chord of the work model, exact at phi = 0 and at the cap and
below the true work in between. Under the profiled model an interior phi pays both sides'
fixed work, so after the LP every user with an interior phi is offered its two end points:
it takes the one (or keeps its phi) with the least energy whose exact delay stays within the
plan's exact delay T. The delay never rises and no user's energy rises, so the plan's cost
can only fall; the resources are unchanged.
"""

from __future__ import annotations

import numpy as np

from mecllm.core.arrays import FloatArray
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.physics import phases
from mecllm.systems.finetune.solution import Plan


def snap_to_endpoints(instance: Instance, plan: Plan, cap: FloatArray) -> FloatArray:
    """Each user's phi: the plan's, 0 or ``cap`` (N,), whichever costs least within T."""
    phi = plan.phi
    interior = np.flatnonzero((phi > 0.0) & (phi < cap))
    if interior.size == 0:
        return phi
    current = phases(instance, plan)
    limit = float(np.max(current.delay))
    rows = np.concatenate([interior, interior])
    candidate = plan.replace(
        assignment=plan.assignment[rows],
        phi=np.concatenate([np.zeros(interior.size), cap[interior]]),
        bandwidth_hz=plan.bandwidth_hz[rows],
        user_power_w=plan.user_power_w[rows],
        server_power_w=plan.server_power_w[rows],
        user_flops=plan.user_flops[rows],
        server_flops=plan.server_flops[rows],
    )
    ends = phases(instance, candidate, rows)
    k = interior.size
    energy = np.stack([current.energy[interior], ends.energy[:k], ends.energy[k:]])
    delay = np.stack([current.delay[interior], ends.delay[:k], ends.delay[k:]])
    energy = np.where(delay <= limit * (1.0 + 1e-12), energy, np.inf)
    choice = np.argmin(energy, axis=0)
    values = np.stack([phi[interior], np.zeros(k), cap[interior]])
    out = phi.copy()
    out[interior] = values[choice, np.arange(k)]
    return out
