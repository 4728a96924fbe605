"""Tier 1 of the planner: which chains of shards to place, as a MILP for HiGHS
(docs/inference.md section 3).

Candidate chains are generated first: every node that holds the whole model alone, and groups of
two to ``max_stages`` nodes (for large instances only among each node's nearest neighbours by
backhaul latency) with the blocks split in proportion to their memory bandwidth (decode is
memory-bound), each within its weight share of memory. For each candidate the proxy gives its
service time of a typical request when idle, ``l_c``, and its decode capacity at full batches,
``mu_c`` (tokens/s). The MILP then chooses chains ``z_c`` and the demand's split ``f_c``:

    minimise   sum_c f_c l_c  +  M u  -  delta sum_c z_c mu_c / mu_max
    subject to sum_c f_c + u = 1,   f_c <= z_c,
               f_c (Lambda x O) <= rho_max mu_c            (no chain loaded past rho_max)
               sum_{c uses v} z_c <= 1  for every v         (node-disjoint chains)
               sum_{c avoids v} z_c >= R - 1  for every v   (R = 2: any one node may fail)
               sum_c z_c >= R

``u`` is demand no chain can take (overload); the small ``delta`` term places every chain that
adds capacity for free, which the online router (tier 2) then uses to absorb bursts. Chains are
node-disjoint: a node that held two different shards would read both sets of weights in a
step that serves both, and each candidate's shards already fit its nodes' weight share.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.optimize as so
import scipy.sparse as sp

from mecllm.core.errors import SolverError
from mecllm.systems.inference.chains import (
    WEIGHT_SHARE,
    Chain,
    capacity_tokens_per_s,
    fits_whole,
    latency_proxy_s,
    split,
    typical_output,
)
from mecllm.systems.inference.instance import InferenceInstance

#: Largest load share of a chain's capacity the plan allows.
RHO_MAX = 0.8
_OVERLOAD_PENALTY = 1e6
_CAPACITY_REWARD = 1e-3


@dataclass(frozen=True)
class PlannedChains:
    """The MILP's choice: chains, the demand's split, the share no chain takes, HiGHS's status."""

    chains: list[Chain]
    fractions: list[float]
    unserved: float
    candidates: int
    status: str


def candidates(
    instance: InferenceInstance, max_stages: int = 3, neighbours: int = 6
) -> list[Chain]:
    """Candidate chains (see the module docstring)."""
    v = instance.n_nodes
    out: list[Chain] = []
    for node in range(v):
        if fits_whole(instance, node):
            out.append(Chain((node,), (instance.blocks,)))
    bandwidth = instance.memory_bandwidth_bps
    groups: Iterator[tuple[int, ...]]
    if v <= 12:
        groups = (g for k in range(2, max_stages + 1) for g in itertools.combinations(range(v), k))
    else:  # large instances: groups among nearest neighbours only
        near = np.argsort(instance.route_latency_s, axis=1)[:, 1 : neighbours + 1]
        seen: set[tuple[int, ...]] = set()
        for node in range(v):
            for k in range(2, max_stages + 1):
                for rest in itertools.combinations(near[node].tolist(), k - 1):
                    seen.add(tuple(sorted((node, *rest))))
        groups = iter(sorted(seen))
    for group in groups:
        chain = split(instance, tuple(group), bandwidth[list(group)])
        if chain is not None and all(b > 0 for b in chain.blocks):
            out.append(chain)
    return out


def plan_chains(
    instance: InferenceInstance, replicas: int = 1, max_stages: int = 3, time_limit_s: float = 30.0
) -> PlannedChains:
    """Solve the MILP of the module docstring."""
    pool = candidates(instance, max_stages)
    if not pool:
        raise SolverError(
            "no chain of at most "
            f"{max_stages} nodes holds the model within {WEIGHT_SHARE:.0%} of its memory"
        )
    c = len(pool)
    v = instance.n_nodes
    latency = np.array([latency_proxy_s(instance, ch) for ch in pool])
    capacity = np.array([capacity_tokens_per_s(instance, ch) for ch in pool])
    demand = instance.total_rate_per_s * typical_output(instance)
    # Variables: z (c, binary), f (c), u (1).
    n_var = 2 * c + 1
    objective = np.concatenate(
        [
            -_CAPACITY_REWARD * capacity / max(capacity.max(), 1e-300),
            latency / max(latency.max(), 1e-300),
            [_OVERLOAD_PENALTY],
        ]
    )
    rows, lower, upper = [], [], []

    def add(row: dict[int, float], lo: float, hi: float) -> None:
        rows.append(row)
        lower.append(lo)
        upper.append(hi)

    add({**{c + k: 1.0 for k in range(c)}, 2 * c: 1.0}, 1.0, 1.0)
    for k in range(c):
        add({c + k: 1.0, k: -1.0}, -np.inf, 0.0)
        if demand > 0:
            add({c + k: demand / (RHO_MAX * capacity[k])}, -np.inf, 1.0)
    weights = np.zeros((v, c))
    for k, chain in enumerate(pool):
        for node, count in zip(chain.nodes, chain.blocks, strict=True):
            weights[node, k] += count * instance.block_bytes
    for node in range(v):
        used = {k: 1.0 for k in range(c) if weights[node, k] > 0}
        if used:  # node-disjoint chains: a node reads one shard's weights per step
            add(used, -np.inf, 1.0)
        if replicas >= 2:
            avoid = {k: 1.0 for k in range(c) if weights[node, k] == 0}
            add(avoid, replicas - 1, np.inf)
    add({k: 1.0 for k in range(c)}, replicas, np.inf)
    matrix = sp.lil_matrix((len(rows), n_var))
    for i, row in enumerate(rows):
        for j, value in row.items():
            matrix[i, j] = value
    result = so.milp(
        objective,
        constraints=so.LinearConstraint(matrix.tocsr(), np.array(lower), np.array(upper)),
        integrality=np.concatenate([np.ones(c), np.zeros(c + 1)]),
        bounds=so.Bounds(np.zeros(n_var), np.ones(n_var)),
        options={"time_limit": time_limit_s, "mip_rel_gap": 1e-4},
    )
    if result.x is None:
        raise SolverError(
            f"the placement MILP found no plan ({result.message}); with R = {replicas} the "
            "nodes may not hold enough disjoint copies of the model"
        )
    z = result.x[:c] > 0.5
    f = result.x[c : 2 * c]
    chosen = [k for k in range(c) if z[k]]
    fractions = [max(float(f[k]), 0.0) for k in chosen]
    if sum(fractions) <= 0:
        fractions = [capacity[k] for k in chosen]
    return PlannedChains(
        [pool[k] for k in chosen],
        fractions,
        float(result.x[2 * c]),
        c,
        "optimal" if result.status == 0 else "time_limit",
    )


def unserved_note(planned: PlannedChains) -> str:
    """A sentence on demand beyond the plan's capacity, if any."""
    if planned.unserved <= 1e-9:
        return ""
    return (
        f"; {planned.unserved:.0%} of the demand is beyond {RHO_MAX:.0%} of every chain's "
        "capacity (overload)"
    )
