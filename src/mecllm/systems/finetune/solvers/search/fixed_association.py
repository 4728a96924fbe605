"""The continuous problem of one association: phi and every resource with x fixed, solved by
Dinkelbach over alternating phi-LP and fractional-programming steps, from structured starts;
and a solver-free score of an association (equal split, phi by LP) to screen many of them."""

from __future__ import annotations

import numpy as np

from mecllm.core.arrays import IntArray
from mecllm.core.options import SolveOptions
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.physics import evaluate
from mecllm.systems.finetune.solution import Plan, SolveResult
from mecllm.systems.finetune.solvers.allocation.equal_split import equal_split
from mecllm.systems.finetune.solvers.loop import dinkelbach
from mecllm.systems.finetune.solvers.steps import part2_step, phi_step


def multistarts(instance: Instance, assignment: IntArray, rng: np.random.Generator) -> list[Plan]:
    """Equal-split plans of ``assignment`` with phi = 0.5, 1, 0 and uniformly random."""
    n = instance.n_users
    phis = [np.full(n, 0.5), np.ones(n), np.zeros(n), rng.uniform(0, 1, n)]
    return [equal_split(instance, assignment, phi) for phi in phis]


def continuous(instance: Instance, start: Plan, options: SolveOptions) -> SolveResult:
    """Optimise phi and every resource for ``start``'s association (association fixed)."""
    inner = SolveOptions(
        max_iterations=options.max_iterations,
        tolerance=options.tolerance,
        time_limit_s=options.time_limit_s,
        deadline=options.deadline,
    )
    return dinkelbach(
        instance,
        "continuous",
        start,
        phi_step,
        part2_step(options.inner_tolerance, options.max_inner_iterations),
        inner,
    )


def cheap_score(instance: Instance, assignment: IntArray) -> float:
    """SCR of an association under the equal split with phi solved by LP (twice, so that phi
    is optimal for its own ratio). Cheap (no conic solve) and robust to bad conditioning."""
    n = instance.n_users
    plan = equal_split(instance, assignment, np.full(n, 0.5))
    y = evaluate(instance, plan).scr
    for _ in range(2):
        plan, _ = phi_step(instance, plan, y)
        plan = equal_split(instance, assignment, plan.phi)
        y = evaluate(instance, plan).scr
    return y
