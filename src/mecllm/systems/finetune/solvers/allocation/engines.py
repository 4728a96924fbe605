"""AO part 2 (docs/finetune.md, "AO part 2"): quadratic-transform iterations from a start plan,
each one convex solve of the surrogate by one of three engines, until the true objective
settles. Because the surrogate is tight at the current point and a lower bound elsewhere, the
true objective never decreases from one inner iteration to the next."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from mecllm.core.status import StepStatus
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.physics import Evaluation, evaluate, weighted_cost
from mecllm.systems.finetune.solution import Plan

if TYPE_CHECKING:
    from mecllm.systems.finetune.solvers.allocation.barrier import BarrierSurrogate
    from mecllm.systems.finetune.solvers.allocation.direct import DirectConicSurrogate
    from mecllm.systems.finetune.solvers.allocation.modelled import ConicSurrogate
from mecllm.systems.finetune.solvers.allocation.surrogate import (
    AllocationResult,
    Shares,
    fp_weights,
    surrogate_terms,
)

#: The engines of the convex step: one cvxpy problem (generic, the paper's DASHF), the same
#: cone program written directly for Clarabel (:mod:`direct`), the project's
#: vectorised barrier method (:mod:`barrier`, for large N), or "auto": direct
#: up to :data:`AUTO_CONIC_USERS` users (where Clarabel is quicker than the barrier method's
#: Python-level Newton loop), barrier above.
ENGINES = ("conic", "direct", "barrier", "auto")
AUTO_CONIC_USERS = 50


def optimise_resources(
    instance: Instance,
    start: Plan,
    y: float,
    *,
    tolerance: float = 1e-4,
    max_iterations: int = 15,
    engine: str = "conic",
    solver_tolerance: float | None = None,
    growth: float | None = None,
    delay_floor_s: float | None = None,
) -> AllocationResult:
    """Part 2 from ``start``: quadratic-transform FP iterations until the objective settles.

    ``engine`` solves each convex surrogate: ``"conic"`` (cvxpy, Clarabel then SCS),
    ``"direct"`` (the same cone program written directly for Clarabel, barrier as fallback),
    ``"barrier"`` (vectorised Newton barrier method, warm-started from the current plan) or
    ``"auto"`` (direct up to :data:`AUTO_CONIC_USERS` users, barrier above).
    ``solver_tolerance``: the direct engine's Clarabel tolerances (default 1e-8). ``growth``:
    the barrier engine's factor per centring (default x20). ``delay_floor_s``: a delay below
    which being faster gains nothing (the cost counts ``max(T, floor)``; the barrier engine
    only), as for a region whose delay is not the stitched one (docs/regions.md).
    Returns the best plan seen (never worse than ``start`` in the Dinkelbach objective).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "auto":
        engine = "direct" if instance.n_users <= AUTO_CONIC_USERS else "barrier"
    if delay_floor_s is not None and engine != "barrier":
        raise ValueError("a delay floor needs the barrier engine")
    floor = 0.0 if delay_floor_s is None else delay_floor_s

    def value_of(report: Evaluation) -> float:
        cost = weighted_cost(instance, max(report.delay_s, floor), report.energy_j)
        return float(report.service - y * cost)

    started = time.perf_counter()
    start_report = evaluate(instance, start)
    best, best_value = start, value_of(start_report)
    values = [best_value]
    if not np.isfinite(best_value):
        raise ValueError("part 2 needs a feasible start plan")
    t_ref = max(start_report.delay_s, 1e-9)
    scale = max(abs(start_report.service), abs(y * start_report.cost), 1e-9)
    terms = surrogate_terms(instance, start, y, t_ref, scale)
    # Each engine's solver stack (cvxpy, Clarabel, numba) is loaded when it is first used: a
    # command that never needs one does not pay for importing it.
    convex: ConicSurrogate | DirectConicSurrogate | BarrierSurrogate
    if engine == "conic":
        from mecllm.systems.finetune.solvers.allocation.modelled import ConicSurrogate

        convex = ConicSurrogate(terms)
    elif engine == "direct":
        from mecllm.systems.finetune.solvers.allocation.direct import DirectConicSurrogate

        convex = DirectConicSurrogate(terms, solver_tolerance)
    else:
        from mecllm.systems.finetune.solvers.allocation.barrier import BarrierSurrogate

        tau_floor = None if delay_floor_s is None else np.array([floor / t_ref])
        if growth is None:
            convex = BarrierSurrogate(terms, tau_floor=tau_floor)
        else:
            convex = BarrierSurrogate(terms, tau_floor=tau_floor, growth=growth)
    current = start
    status: StepStatus = "optimal"
    for _ in range(max_iterations):
        shares = Shares.of(instance, current)
        found, step_status = convex.solve(fp_weights(terms, shares), shares)
        if found is None:
            status = "failed" if len(values) == 1 else status
            break
        if step_status == "inaccurate":
            status = "inaccurate"
        plan = found.to_plan(instance, terms)
        report = evaluate(instance, plan)
        value = value_of(report) if report.feasible else -np.inf
        values.append(float(value))
        if value > best_value:
            improvement = value - best_value
            best, best_value = plan, value
            current = plan
            if improvement <= tolerance * max(abs(best_value), 1e-12):
                break
        else:
            break  # the surrogate is tight at `current`: no gain means it has settled
    return AllocationResult(best, values, status, time.perf_counter() - started)
