"""One Dinkelbach loop for every system (docs/architecture.md, "The one Dinkelbach loop").

A ratio objective ``N(plan) / D(plan)`` is maximised by iterating: for the current ratio y, run
the step plug-ins in order on the plan (each solves, exactly or approximately, its block of
``max N - y D`` with the other blocks fixed), then set y to the ratio of the new plan. The loop
stops when ``y_new / y - 1 <= tolerance`` (the paper's criterion: a decrease stops it too), at
the iteration cap, or at the deadline (checked before every iteration), and
returns the best plan it has seen with one history record per iteration.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from mecllm.core.options import SolveOptions
from mecllm.core.status import LoopStatus

Plan = TypeVar("Plan")
#: What a step adds to its iteration's history record (step times, inner counts, statuses).
StepRecord = dict[str, Any]
#: A step plug-in: ``(plan, y) -> (new plan, record)``. A record may carry a ``"note"``.
Step = Callable[[Plan, float], tuple[Plan, StepRecord]]


@dataclass(frozen=True)
class NamedStep(Generic[Plan]):
    """A step and its name; every step but the last gets ``y_after_<name>`` in the record."""

    name: str
    run: Step[Plan]


@dataclass(frozen=True)
class LoopOutcome(Generic[Plan]):
    """What the loop returns: the best plan and its ratio, the history, how it ended."""

    best: Plan
    best_value: float
    history: list[dict[str, Any]]
    status: LoopStatus
    notes: list[str] = field(default_factory=list)

    @property
    def iterations(self) -> int:
        """Iterations run."""
        return len(self.history)


def dinkelbach(
    score: Callable[[Plan], float],
    start: Plan,
    steps: Sequence[NamedStep[Plan]],
    options: SolveOptions,
    *,
    start_value: float | None = None,
    deadline: float | None = None,
) -> LoopOutcome[Plan]:
    """Run the loop from ``start``.

    Parameters
    ----------
    score : the ratio of a plan (the true objective, from the system's physics).
    start : a feasible plan.
    steps : the plug-ins, run in order each iteration.
    options : tolerance, iteration cap, time limit and progress callback.
    start_value : ``score(start)`` when the caller has it already.
    deadline : an absolute ``time.perf_counter()`` time shared with other work; default:
        ``options.deadline``, or the loop's own start plus ``options.time_limit_s``.
    """
    started = time.perf_counter()
    limit = deadline if deadline is not None else options.with_deadline().deadline
    assert limit is not None
    y = score(start) if start_value is None else start_value
    best, best_y, plan = start, y, start
    history: list[dict[str, Any]] = []
    notes: list[str] = []
    status: LoopStatus = "iteration_limit"
    for iteration in range(1, options.max_iterations + 1):
        if time.perf_counter() >= limit:
            status = "time_limit"
            notes.append(f"time limit {options.time_limit_s:g} s reached")
            break
        record: dict[str, Any] = {"iteration": iteration, "y_prev": y}
        for k, step in enumerate(steps):
            plan, part = step.run(plan, y)
            record.update(part)
            if k < len(steps) - 1:
                record[f"y_after_{step.name}"] = score(plan)
            if "note" in part:
                notes.append(f"iteration {iteration}: {part['note']}")
        new_y = score(plan)
        record["y"] = new_y
        record["elapsed_s"] = time.perf_counter() - started
        history.append(record)
        if options.progress is not None:
            options.progress(record)
        if new_y > best_y:
            best, best_y = plan, new_y
        if not _gains(new_y, y, options.tolerance):
            status = "converged"
            break
        y = new_y
    return LoopOutcome(best, best_y, history, status, notes)


def _gains(new: float, old: float, tolerance: float) -> bool:
    """Whether ``new`` improves on ``old`` by more than ``tolerance`` (relative)."""
    if old > 0:
        return new / old - 1.0 > tolerance
    return new > old + tolerance * abs(old)
