"""The edge-inference system's registered planners (tier 1), by name: the MILP planner and the
baselines of docs/inference.md section 3. Tier 2 (routing and admission) runs in the
simulator, and in ``mecllm serve``'s gateway."""

from __future__ import annotations

import time
from collections.abc import Callable

from mecllm.core.algorithms import AlgorithmRegistry
from mecllm.core.options import SolveOptions
from mecllm.systems.inference import baselines
from mecllm.systems.inference.chains import placement
from mecllm.systems.inference.instance import KIND, InferenceInstance
from mecllm.systems.inference.planner import plan_chains, unserved_note
from mecllm.systems.inference.solution import InferenceResult, Placement

Runner = Callable[[InferenceInstance, SolveOptions], InferenceResult]


#: The registered planners.
ALGORITHMS: AlgorithmRegistry[InferenceInstance, InferenceResult] = AlgorithmRegistry(KIND)
_register = ALGORITHMS.register
#: The planner of a name; unknown names list the known ones.
get_algorithm = ALGORITHMS.lookup
#: Plan an instance with the named planner.
solve = ALGORITHMS.solve


def _simple(name: str, build: Callable[[InferenceInstance], Placement], message: str) -> Runner:
    def run(instance: InferenceInstance, options: SolveOptions) -> InferenceResult:
        del options
        started = time.perf_counter()
        plan = build(instance)
        return InferenceResult(
            algorithm=name,
            plan=plan,
            message=message,
            wall_time_s=time.perf_counter() - started,
        )

    return run


def _planner(replicas: int) -> Runner:
    name = "infer-planner" if replicas == 1 else f"infer-planner-r{replicas}"

    def run(instance: InferenceInstance, options: SolveOptions) -> InferenceResult:
        started = time.perf_counter()
        planned = plan_chains(instance, replicas, time_limit_s=min(30.0, options.time_limit_s))
        plan = placement(planned.chains, planned.fractions)
        chains = "; ".join(
            "+".join(f"node {v}:{b}" for v, b in zip(c.nodes, c.blocks, strict=True))
            for c in planned.chains
        )
        return InferenceResult(
            algorithm=name,
            plan=plan,
            status="optimal" if planned.status == "optimal" else "time_limit",
            message=f"{len(planned.chains)} chains chosen of {planned.candidates} candidates "
            f"(R = {replicas}): {chains}{unserved_note(planned)}",
            wall_time_s=time.perf_counter() - started,
            details={"candidates": planned.candidates, "unserved_share": planned.unserved},
        )

    return run


_register(
    "infer-planner",
    "MILP placement of node-disjoint chains (HiGHS) for latency under a load cap; "
    "earliest-finish routing and deadline-aware admission online",
)(_planner(1))
_register(
    "infer-planner-r2",
    "infer-planner with every block on two node-disjoint chains (survives one node failure)",
)(_planner(2))
_register("infer-monolithic", "the whole model on the one node that holds it (baseline)")(
    _simple("infer-monolithic", baselines.monolithic, "whole model on one node")
)
_register(
    "infer-exo", "exo-style: one ring over every node, blocks in proportion to memory (baseline)"
)(_simple("infer-exo", baselines.exo_ring, "one memory-proportional ring"))
_register(
    "infer-petals",
    "Petals-style: greedy block windows where throughput is weakest, Dijkstra routing (baseline)",
)(_simple("infer-petals", baselines.petals, "greedy windows, shortest-path routing"))
_register(
    "infer-edgeshard",
    "EdgeShard-style: dynamic programming for the single fastest chain (baseline)",
)(_simple("infer-edgeshard", baselines.edgeshard, "single least-latency chain"))


@_register("infer-random", "random nodes in random order, blocks by memory (baseline)")
def _random(instance: InferenceInstance, options: SolveOptions) -> InferenceResult:
    started = time.perf_counter()
    plan = baselines.random_plan(instance, options.rng())
    return InferenceResult(
        algorithm="infer-random",
        plan=plan,
        message=f"seed {options.seed}",
        wall_time_s=time.perf_counter() - started,
    )
