"""Placement plans: feasibility of every method's plan on random instances, and the planner's
MILP against brute force on instances small enough to enumerate."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mecllm.core.options import SolveOptions
from mecllm.systems.inference.algorithms import ALGORITHMS, solve
from mecllm.systems.inference.chains import (
    capacity_tokens_per_s,
    latency_proxy_s,
    typical_output,
)
from mecllm.systems.inference.instance import InferenceInstance
from mecllm.systems.inference.planner import (
    _CAPACITY_REWARD,
    _OVERLOAD_PENALTY,
    RHO_MAX,
    candidates,
    plan_chains,
)
from mecllm.systems.inference.requests import draw
from mecllm.systems.inference.scenario import generate, preset
from mecllm.systems.inference.simulator import check_memory, simulate
from mecllm.systems.inference.solution import Placement


def _random_instance(seed: int) -> InferenceInstance:
    rng = np.random.default_rng(seed)
    settings = preset(
        "default",
        n_strong=int(rng.integers(0, 2)),
        n_medium=int(rng.integers(2, 5)),
        n_weak=int(rng.integers(0, 4)),
        medium_memory_bytes=float(rng.uniform(14e9, 40e9)),
        weak_memory_bytes=float(rng.uniform(8e9, 20e9)),
        blocks=int(rng.integers(8, 48)),
        total_rate_per_s=float(rng.uniform(1.0, 20.0)),
        n_users=20,
        horizon_s=30.0,
    )
    return generate(settings, rng)


@pytest.mark.parametrize("seed", range(6))
def test_every_plan_fits_memory_and_covers_the_model(seed: int) -> None:
    instance = _random_instance(seed)
    stream = draw(instance, np.random.default_rng(seed))
    for name in ALGORITHMS:
        if name == "infer-monolithic" and not any(
            instance.memory_bytes >= instance.blocks * instance.block_bytes
        ):
            continue
        try:
            plan = solve(instance, name, SolveOptions(seed=seed)).plan
        except Exception as error:  # a method may refuse an instance, but only by saying why
            assert str(error), name
            continue
        assert check_memory(instance, plan) == [], name
        # The plan survives its own file format's checks (structure and coverage).
        again = Placement.from_dict(plan.to_dict(), instance.n_nodes, instance.blocks)
        assert again == plan, name
        if plan.routing == "chains":
            for chain in plan.chains:
                ends = [(plan.servers[k].start, plan.servers[k].end) for k in chain]
                assert ends[0][0] == 0 and ends[-1][1] == instance.blocks, name
                assert all(a[1] == b[0] for a, b in itertools.pairwise(ends)), name
        else:
            covered = np.zeros(instance.blocks, dtype=bool)
            for server in plan.servers:
                covered[server.start : server.end] = True
            assert covered.all(), name
        report = simulate(instance, plan, stream)
        assert report.lost == 0, name
        assert report.on_time + report.late + report.rejected == report.requests == len(stream)


def _proxies(instance: InferenceInstance, pool: list) -> tuple[np.ndarray, np.ndarray]:
    """Each candidate's latency proxy and capacity (what the MILP's objective reads)."""
    latency = np.array([latency_proxy_s(instance, c) for c in pool])
    capacity = np.array([capacity_tokens_per_s(instance, c) for c in pool])
    return latency, capacity


def _objective(
    latency: np.ndarray, capacity: np.ndarray, chosen: list[int], f: list[float]
) -> float:
    u = max(0.0, 1.0 - sum(f))
    return float(
        -_CAPACITY_REWARD * capacity[chosen].sum() / capacity.max()
        + sum(fk * latency[k] / latency.max() for k, fk in zip(chosen, f, strict=True))
        + _OVERLOAD_PENALTY * u
    )


def _brute_force(instance: InferenceInstance, replicas: int) -> float:
    """Best objective over every node-disjoint family of candidates (the demand split by a
    fractional knapsack: fastest chains first, each up to its load cap)."""
    pool = candidates(instance)
    demand = instance.total_rate_per_s * typical_output(instance)
    latency, capacity = _proxies(instance, pool)
    cap = [1.0 if demand <= 0 else min(1.0, RHO_MAX * c / demand) for c in capacity]
    best = math.inf

    def value(family: list[int]) -> float:
        left, f = 1.0, []
        for k in sorted(family, key=lambda k: latency[k]):
            take = min(cap[k], left)
            f.append((k, take))
            left -= take
        return _objective(latency, capacity, [k for k, _ in f], [x for _, x in f])

    def ok(family: list[int]) -> bool:
        if len(family) < replicas:
            return False
        if replicas >= 2:
            for node in range(instance.n_nodes):
                if sum(1 for k in family if node not in pool[k].nodes) < replicas - 1:
                    return False
        return True

    def walk(start: int, used: frozenset[int], family: list[int]) -> None:
        nonlocal best
        if family and ok(family):
            best = min(best, value(family))
        for k in range(start, len(pool)):
            nodes = set(pool[k].nodes)
            if nodes & used:
                continue
            walk(k + 1, used | nodes, [*family, k])

    walk(0, frozenset(), [])
    return best


@pytest.mark.parametrize(
    ("seed", "replicas", "rate"),
    [(0, 1, 4.0), (1, 1, 12.0), (2, 1, 40.0), (3, 2, 6.0), (4, 2, 20.0), (5, 1, 0.5)],
)
def test_milp_matches_brute_force(seed: int, replicas: int, rate: float) -> None:
    rng = np.random.default_rng(seed)
    settings = preset(
        "default",
        n_strong=1,
        n_medium=3,
        n_weak=int(rng.integers(1, 3)),
        medium_memory_bytes=float(rng.uniform(14e9, 40e9)),
        total_rate_per_s=rate,
        n_users=10,
    )
    instance = generate(settings, rng)
    pool = candidates(instance)
    planned = plan_chains(instance, replicas)
    index = {c: k for k, c in enumerate(pool)}
    chosen = [index[c] for c in planned.chains]
    got = _objective(*_proxies(instance, pool), chosen, planned.fractions)
    want = _brute_force(instance, replicas)
    # HiGHS stops at a relative gap of 1e-4.
    assert got <= want + 1e-4 * max(1.0, abs(want)) + 1e-9
    assert got >= want - 1e-6 * max(1.0, abs(want))


def test_replicas_two_survive_any_single_node_loss() -> None:
    instance = generate(preset("default"), np.random.default_rng(0))
    plan = solve(instance, "infer-planner-r2", SolveOptions(seed=0)).plan
    for node in range(instance.n_nodes):
        alive = [c for c in range(len(plan.chains)) if node not in plan.nodes_of(c)]
        assert alive, f"losing node {node} leaves no chain"


def test_placement_file_rejects_broken_plans() -> None:
    instance = generate(preset("small"), np.random.default_rng(0))
    good = solve(instance, "infer-planner", SolveOptions(seed=0)).plan.to_dict()
    cases = [
        ({**good, "servers": []}, "servers"),
        ({**good, "servers": [{"node": 99, "start": 0, "end": instance.blocks}]}, "node"),
        ({**good, "servers": [{"node": 0, "start": 0, "end": instance.blocks + 1}]}, "start"),
        ({**good, "chains": [[0, 0]]}, "chains[0]"),
        ({**good, "fractions": [2.0] * len(good["chains"])}, "fractions"),
        ({**good, "routing": "teleport"}, "routing"),
    ]
    from mecllm.core.errors import InvalidInputError

    for data, word in cases:
        with pytest.raises(InvalidInputError, match=word.replace("[", r"\[").replace("]", r"\]")):
            Placement.from_dict(data, instance.n_nodes, instance.blocks)
