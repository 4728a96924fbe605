"""The Dinkelbach outer loop (MODEL.md sections 5-6), composing an association step and an
allocation step.

For the current ratio y, each iteration runs the association step (or none) and then the
allocation step on ``sum v - y (w_t T + w_e E)``, and sets y to the SCR of the new plan. It stops
when ``y_new / y - 1 <= tolerance`` (the paper's criterion: a decrease stops it too), at the
iteration cap or at the time limit, and returns the best plan it has seen.
"""

from __future__ import annotations

import time
from typing import Any

from mecllm.instance import Instance
from mecllm.physics import evaluate
from mecllm.solution import Plan, SolveResult
from mecllm.solvers.base import SolveOptions, finish
from mecllm.solvers.steps import Step


def dinkelbach(
    instance: Instance,
    name: str,
    start: Plan,
    association: Step | None,
    allocation: Step,
    options: SolveOptions,
) -> SolveResult:
    """Run the loop from ``start`` and return the best feasible plan as a result."""
    started = time.perf_counter()
    report = evaluate(instance, start)
    if not report.feasible:
        raise ValueError(f"{name}: the start plan is infeasible: {report.violations[0].message}")
    best, best_y = start, report.scr
    y = best_y
    history: list[dict[str, Any]] = []
    plan = start
    status, notes = "iteration_limit", []
    for iteration in range(1, options.max_iterations + 1):
        record: dict[str, Any] = {"iteration": iteration, "y_prev": y}
        if association is not None:
            plan, part1 = association(instance, plan, y)
            record.update(part1)
            record["y_after_part1"] = evaluate(instance, plan).scr
            if "note" in part1:
                notes.append(f"iteration {iteration}: {part1['note']}")
        plan, part2 = allocation(instance, plan, y)
        record.update(part2)
        new_y = evaluate(instance, plan).scr
        record["y"] = new_y
        record["elapsed_s"] = time.perf_counter() - started
        history.append(record)
        if options.progress is not None:
            options.progress(record)
        if new_y > best_y:
            best, best_y = plan, new_y
        if new_y / y - 1.0 <= options.tolerance:
            status = "converged"
            break
        y = new_y
        if time.perf_counter() - started > options.time_limit_s:
            status = "time_limit"
            notes.append(f"time limit {options.time_limit_s:g} s reached")
            break
    message = f"best SCR {best_y:.6g} after {len(history)} iterations"
    if notes:
        message += "; " + "; ".join(notes)
    return finish(
        instance,
        name,
        best,
        started,
        status=status,
        message=message,
        iterations=len(history),
        history=history,
    )
