"""The fine-tuning system's Dinkelbach loop: the generic loop of :mod:`mecllm.core.dinkelbach`
with an association step (or none) and an allocation step, scored by the SCR of the physics
(docs/algorithms.md, "Dinkelbach loop")."""

from __future__ import annotations

import time

from mecllm.core.dinkelbach import NamedStep
from mecllm.core.dinkelbach import dinkelbach as generic_dinkelbach
from mecllm.core.options import SolveOptions
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.physics import evaluate
from mecllm.systems.finetune.solution import Plan, SolveResult
from mecllm.systems.finetune.solvers.result import finish
from mecllm.systems.finetune.solvers.steps import Step


def dinkelbach(
    instance: Instance,
    name: str,
    start: Plan,
    association: Step | None,
    allocation: Step,
    options: SolveOptions,
) -> SolveResult:
    """Run the loop from ``start`` and return the best feasible plan as a result.

    ``association`` (AO part 1, or ``None`` to keep x and phi) runs before ``allocation`` (AO
    part 2 or the equal split) in every iteration; the history records the SCR after each.
    """
    started = time.perf_counter()
    report = evaluate(instance, start)
    if not report.feasible:
        raise ValueError(f"{name}: the start plan is infeasible: {report.violations[0].message}")
    steps: list[NamedStep[Plan]] = []
    if association is not None:
        steps.append(NamedStep("part1", lambda plan, y: association(instance, plan, y)))
    steps.append(NamedStep("part2", lambda plan, y: allocation(instance, plan, y)))
    outcome = generic_dinkelbach(
        lambda plan: evaluate(instance, plan).scr, start, steps, options, start_value=report.scr
    )
    message = f"best SCR {outcome.best_value:.6g} after {outcome.iterations} iterations"
    if outcome.notes:
        message += "; " + "; ".join(outcome.notes)
    return finish(
        instance,
        name,
        outcome.best,
        started,
        status=outcome.status,
        message=message,
        iterations=outcome.iterations,
        history=outcome.history,
    )
