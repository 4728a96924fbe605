"""How every fine-tuning solver hands back a plan: scored by the physics, refused if infeasible."""

from __future__ import annotations

import time
from typing import Any

from mecllm.core.errors import SolverError
from mecllm.core.status import SolveStatus
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.physics import evaluate
from mecllm.systems.finetune.solution import Plan, SolveResult


def finish(
    instance: Instance,
    algorithm: str,
    plan: Plan,
    started: float,
    *,
    status: SolveStatus = "heuristic",
    message: str = "",
    iterations: int = 0,
    history: list[dict[str, Any]] | None = None,
) -> SolveResult:
    """Score ``plan`` with the physics and wrap it as a :class:`SolveResult`.

    Raises
    ------
    SolverError
        If the plan is infeasible: a solver must never hand one to a user.
    """
    report = evaluate(instance, plan)
    if not report.feasible:
        first = report.violations[0].message
        raise SolverError(
            f"{algorithm} produced an infeasible plan ({first}); this is a bug, "
            "please report it with the instance file"
        )
    return SolveResult(
        algorithm=algorithm,
        plan=plan,
        scr=report.scr,
        delay_s=report.delay_s,
        energy_j=report.energy_j,
        service=report.service,
        status=status,
        message=message,
        iterations=iterations,
        history=history or [],
        wall_time_s=time.perf_counter() - started,
    )
