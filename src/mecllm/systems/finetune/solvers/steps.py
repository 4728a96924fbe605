"""The plug-ins of the Dinkelbach loop: association steps and allocation steps.

An association step changes x and phi with the resources fixed (AO part 1); an allocation step
changes the resources with x and phi fixed (AO part 2 or the equal split). Each takes the current
plan and the Dinkelbach ratio y and returns the new plan and a record for the history.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mecllm.core.arrays import FloatArray, IntArray
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.solution import Plan
from mecllm.systems.finetune.solvers.allocation.engines import optimise_resources
from mecllm.systems.finetune.solvers.allocation.equal_split import equal_split
from mecllm.systems.finetune.solvers.allocation.surrogate import dinkelbach_value
from mecllm.systems.finetune.solvers.association.endpoints import snap_to_endpoints
from mecllm.systems.finetune.solvers.association.pricing import (
    canonical,
    optimal_phi,
    pair_costs,
    price_moves,
)
from mecllm.systems.finetune.solvers.association.simple import greedy_association
from mecllm.systems.finetune.solvers.association.threshold import solve_by_threshold

Record = dict[str, Any]
#: Largest N x M for which ``part1_step("auto")`` solves the exact MILP (well under a second
#: with HiGHS on the paper scenario; its time grows fast beyond); larger ones use the T scan.
AUTO_MILP_PAIRS = 300
Step = Callable[[Instance, Plan, float], tuple[Plan, Record]]


def greedy_start(instance: Instance) -> Plan:
    """The common start of the optimisers: greedy association, equal split, phi = 0.5."""
    return equal_split(instance, greedy_association(instance), np.full(instance.n_users, 0.5))


# ---------------------------------------------------------------------- how resources follow x
def keep_resources(
    instance: Instance, previous: Plan, assignment: IntArray, priced: FloatArray
) -> Plan:
    """Resources after a move, for an optimised allocation (DASHF).

    A server that gained nobody leaves its stayers' shares as they were; on a server that gained
    users, stayers and newcomers get the shares part 1 priced them with. Any server still over
    a cap is scaled back into it (docs/finetune.md section 11).
    """
    n = instance.n_users
    rows = np.arange(n)
    moved = assignment != previous.assignment
    gained = np.bincount(assignment[moved], minlength=instance.n_servers) > 0
    use_priced = gained[assignment]
    own = np.stack([previous.bandwidth_hz, previous.server_power_w, previous.server_flops])
    chosen = np.where(use_priced[None, :], priced[:, rows, assignment], own)
    caps = np.stack([instance.bandwidth_hz, instance.server_max_power_w, instance.server_max_flops])
    for k in range(3):
        used = np.bincount(assignment, weights=chosen[k], minlength=instance.n_servers)
        factor = np.minimum(1.0, np.divide(caps[k], used, out=np.ones_like(used), where=used > 0))
        chosen[k] = chosen[k] * factor[assignment]
    return previous.replace(
        assignment=assignment,
        bandwidth_hz=chosen[0],
        server_power_w=chosen[1],
        server_flops=chosen[2],
    )


def _with_optimal_phi(instance: Instance, plan: Plan, y: float) -> tuple[Plan, float]:
    """Re-solve phi and T exactly (an LP) for the plan's association and resources."""
    tile = np.ones((1, instance.n_servers))
    costs = pair_costs(
        instance,
        y,
        plan.bandwidth_hz[:, None] * tile,
        plan.user_power_w,
        plan.server_power_w[:, None] * tile,
        plan.user_flops,
        plan.server_flops[:, None] * tile,
    )
    phi, value = optimal_phi(costs, plan.assignment)
    if not instance.work.linear:
        cap = costs.phi_cap[np.arange(instance.n_users), plan.assignment]
        phi = snap_to_endpoints(instance, plan.replace(phi=phi), cap)
    return canonical(instance, plan.replace(phi=phi)), value


# ---------------------------------------------------------------------- association steps
def part1_step(method: str, resources: str, time_limit_s: float = 60.0) -> Step:
    """AO part 1, then phi and T re-solved exactly for the resources that follow the move.

    ``method``: ``"sdr"`` (the paper's relaxation in chordal form + Hungarian rounding),
    ``"sdr-full"`` (the same relaxation as one dense PSD matrix, as printed), ``"milp"``
    (exact, HiGHS), ``"threshold"`` (the scalable T scan of :mod:`threshold`)
    or ``"auto"`` (the MILP up to :data:`AUTO_MILP_PAIRS` user-server pairs, the scan above).
    ``resources``: ``"keep"`` (optimised allocation follows the move, DASHF) or ``"equal"``
    (the equal split, AAUCO).
    """

    def step(instance: Instance, plan: Plan, y: float) -> tuple[Plan, Record]:
        started = time.perf_counter()
        costs, priced = price_moves(instance, plan, y)
        record: Record = {}
        if method in ("sdr", "sdr-full"):
            # cvxpy (0.5 s to import) only for the relaxation's methods.
            from mecllm.systems.finetune.solvers.association.relaxation import (
                hungarian_round,
                solve_relaxation,
            )

            relaxed = solve_relaxation(costs, form="full" if method == "sdr-full" else "chordal")
            record.update(
                relaxation_status=relaxed.status,
                relaxation_solver=relaxed.solver,
                relaxation_value=relaxed.value,
                relaxation_s=relaxed.seconds,
                eigen_ratio=relaxed.eigen_ratio,
            )
            if relaxed.status == "failed":
                assignment = plan.assignment.copy()
                record["note"] = "relaxation failed with every solver; association kept"
            else:
                assignment = hungarian_round(costs, relaxed.x_fractional)
        elif method == "milp" or (method == "auto" and costs.constant.size <= AUTO_MILP_PAIRS):
            from mecllm.systems.finetune.solvers.association.milp import solve_milp

            exact = solve_milp(costs, time_limit_s=time_limit_s)
            record.update(
                milp_status=exact.status,
                milp_gap=exact.gap,
                milp_s=exact.seconds,
                association_value=exact.value,
            )
            assignment = exact.assignment if exact.status != "failed" else plan.assignment.copy()
        elif method in ("threshold", "auto"):
            scan = solve_by_threshold(costs, plan.assignment)
            record.update(threshold_s=scan.seconds, association_value=scan.value)
            assignment = scan.assignment
        else:
            raise ValueError(f"unknown part-1 method {method!r}")
        if resources == "equal":
            moved = equal_split(instance, assignment, np.zeros(instance.n_users))
        else:
            moved = keep_resources(instance, plan, assignment, priced)
        new_plan, value = _with_optimal_phi(instance, moved, y)
        if resources == "equal" and not instance.count_idle:
            new_plan = equal_split(instance, assignment, new_plan.phi)
        record.update(
            part1_objective=value,
            part1_s=time.perf_counter() - started,
            moved_users=int(np.sum(assignment != plan.assignment)),
        )
        return new_plan, record

    return step


# ---------------------------------------------------------------------- allocation steps
def equal_split_step(instance: Instance, plan: Plan, y: float) -> tuple[Plan, Record]:
    """The equal split of the baselines (phi unchanged)."""
    del y
    return equal_split(instance, plan.assignment, plan.phi), {}


def part2_step(
    tolerance: float = 1e-4,
    max_iterations: int = 15,
    engine: str = "conic",
    solver_tolerance: float | None = None,
    growth: float | None = None,
) -> Step:
    """AO part 2, started from the better of the current allocation and the equal split.

    ``engine``, ``solver_tolerance`` and ``growth``: as in
    :func:`surrogate.optimise_resources`.
    """

    def step(instance: Instance, plan: Plan, y: float) -> tuple[Plan, Record]:
        started = time.perf_counter()
        candidates = [plan, equal_split(instance, plan.assignment, plan.phi)]
        values = [dinkelbach_value(instance, c, y) for c in candidates]
        start = candidates[int(np.argmax(values))]
        result = optimise_resources(
            instance,
            start,
            y,
            tolerance=tolerance,
            max_iterations=max_iterations,
            engine=engine,
            solver_tolerance=solver_tolerance,
            growth=growth,
        )
        record: Record = {
            "part2_status": result.status,
            "part2_values": result.values,
            "inner_iterations": len(result.values) - 1,
            "part2_start": "previous" if start is plan else "equal split",
            "part2_engine": engine,
            "part2_s": time.perf_counter() - started,
        }
        return canonical(instance, result.plan), record

    return step


def phi_step(instance: Instance, plan: Plan, y: float) -> tuple[Plan, Record]:
    """Association kept, phi and T re-solved exactly (an LP) for the current resources."""
    started = time.perf_counter()
    # With count_idle = false the LP's phi caps keep s <= (1 - phi) F and q <= (1 - phi) p.
    new_plan, value = _with_optimal_phi(instance, plan, y)
    return new_plan, {"part1_objective": value, "part1_s": time.perf_counter() - started}
