"""The equal-split allocation of the paper's baselines (docs/finetune.md section 7)."""

from __future__ import annotations

import numpy as np

from mecllm.core.arrays import FloatArray, IntArray
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.solution import Plan


def equal_split(instance: Instance, assignment: IntArray, phi: FloatArray) -> Plan:
    """Each server splits b, q and s equally among its users; p = p_max, f = F_max.

    With ``service.count_idle`` = false a user's server compute and downlink power are further
    capped at ``(1 - phi_n)`` times the server's caps, so that resources follow the work.
    """
    m = np.asarray(assignment, dtype=np.int64)
    counts = np.bincount(m, minlength=instance.n_servers).astype(float)
    per_user = 1.0 / counts[m]
    power = instance.server_max_power_w[m] * per_user
    flops = instance.server_max_flops[m] * per_user
    if not instance.count_idle:
        work = np.clip(1.0 - np.asarray(phi, dtype=float), 0.0, 1.0)
        power = np.minimum(power, work * instance.server_max_power_w[m])
        flops = np.minimum(flops, work * instance.server_max_flops[m])
    return Plan(
        assignment=m,
        phi=np.asarray(phi, dtype=float),
        bandwidth_hz=instance.bandwidth_hz[m] * per_user,
        user_power_w=instance.user_max_power_w.copy(),
        server_power_w=power,
        user_flops=instance.user_max_flops.copy(),
        server_flops=flops,
    )
