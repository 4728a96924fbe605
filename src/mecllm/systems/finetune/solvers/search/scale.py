"""``dashf-scale``: DASHF with the scalable steps (docs/algorithms.md): association by the MILP
or the delay-bound scan, resources by the direct cone program or the barrier method, then
single-user moves (one round of the full screen and a tight final polish on small instances;
the price-ranked short list of :mod:`move_shortlist` on large ones)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from mecllm.core.options import SolveOptions
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.physics import evaluate
from mecllm.systems.finetune.solution import Plan, SolveResult
from mecllm.systems.finetune.solvers.allocation.engines import AUTO_CONIC_USERS
from mecllm.systems.finetune.solvers.loop import dinkelbach
from mecllm.systems.finetune.solvers.search.move_shortlist import with_shortlist_search
from mecllm.systems.finetune.solvers.search.moves import (
    MAX_SCREEN_ROWS,
    screen_rows,
    with_move_search,
)
from mecllm.systems.finetune.solvers.steps import greedy_start, part1_step, part2_step

#: The final polish: part 2's stopping tolerance (relative gain of an FP iteration) and
#: Clarabel's tolerances.
FINAL_TOLERANCE = 1e-9


def dashf_scale(
    instance: Instance, options: SolveOptions, start: Plan | None = None
) -> SolveResult:
    """DASHF for speed and scale (docs/algorithms.md, "dashf-scale"); from ``start`` (a
    feasible plan) instead of the greedy start when one is given."""
    started = time.perf_counter()
    step = part1_step("auto", "keep", time_limit_s=min(60.0, options.seconds_left()))
    allocation = part2_step(
        options.inner_tolerance,
        options.max_inner_iterations,
        "auto",
        growth=options.barrier_growth,
    )

    def loop(start: Plan, iterations: int = options.max_iterations) -> SolveResult:
        once = dataclasses.replace(options, max_iterations=iterations)
        return dinkelbach(instance, "dashf-scale", start, step, allocation, once)

    first = loop(greedy_start(instance) if start is None else start)
    # After moves, one AO iteration (association, phi, every resource) polishes the plan; the
    # move search that follows plays the role of the loop's convergence test. Where the
    # direct cone program applies, the final plan's resources are re-solved to tight
    # tolerances (the loop stops part 2 at a 1e-4 relative gain, Clarabel at 1e-8).
    tight = part2_step(FINAL_TOLERANCE, options.max_inner_iterations, "direct", FINAL_TOLERANCE)

    def polish(plan: Plan) -> tuple[Plan, dict[str, Any]]:
        return tight(instance, plan, evaluate(instance, plan).scr)

    if screen_rows(instance) > MAX_SCREEN_ROWS and instance.n_servers > 1:
        return with_shortlist_search(instance, "dashf-scale", first, options, started)
    small = instance.n_users <= AUTO_CONIC_USERS
    return with_move_search(
        instance,
        "dashf-scale",
        first,
        lambda plan: loop(plan, 1),
        options,
        started,
        polish if small else None,
    )
