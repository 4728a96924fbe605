"""The fine-tuning system's registered algorithms by name: each is an association step composed
with an allocation step.

The paper's five methods (docs/algorithms.md) and any method the project adds are listed in
:data:`ALGORITHMS`; ``mecllm algorithms`` prints them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from mecllm.core.algorithms import Algorithm, AlgorithmRegistry
from mecllm.core.errors import InvalidInputError, SolverError
from mecllm.core.options import SolveOptions
from mecllm.systems.finetune.instance import KIND, Instance
from mecllm.systems.finetune.solution import SolveResult
from mecllm.systems.finetune.solvers.allocation.equal_split import equal_split
from mecllm.systems.finetune.solvers.association.simple import (
    greedy_association,
    random_association,
)
from mecllm.systems.finetune.solvers.loop import dinkelbach
from mecllm.systems.finetune.solvers.result import finish
from mecllm.systems.finetune.solvers.steps import (
    Step,
    equal_split_step,
    greedy_start,
    part1_step,
    part2_step,
)

Runner = Callable[[Instance, SolveOptions], SolveResult]

#: The registered algorithms (``mecllm algorithms`` prints them).
ALGORITHMS: AlgorithmRegistry[Instance, SolveResult] = AlgorithmRegistry(KIND)
register = ALGORITHMS.register


def get_algorithm(name: str) -> Algorithm[Instance, SolveResult]:
    """The algorithm of a name; unknown names list the known ones (a module-level function, so
    that it travels to worker processes by name)."""
    return ALGORITHMS.lookup(name)


#: Solve an instance with the named algorithm (the one entry point, scipy style).
solve = ALGORITHMS.solve


HALF = 0.5


@register("rucaa", "random user connection, equal resource split, phi = 0.5 (paper baseline)")
def _rucaa(instance: Instance, options: SolveOptions) -> SolveResult:
    started = time.perf_counter()
    assignment = random_association(instance, options.rng())
    plan = equal_split(instance, assignment, np.full(instance.n_users, HALF))
    return finish(
        instance,
        "rucaa",
        plan,
        started,
        message=f"random association drawn with seed {options.seed}",
    )


@register(
    "gucaa", "greedy user connection (fewest users first), equal split, phi = 0.5 (paper baseline)"
)
def _gucaa(instance: Instance, options: SolveOptions) -> SolveResult:
    started = time.perf_counter()
    assignment = greedy_association(instance)
    plan = equal_split(instance, assignment, np.full(instance.n_users, HALF))
    return finish(instance, "gucaa", plan, started, message="greedy association")


def _loop(name: str, association: Step | None, allocation: Step) -> Runner:
    def run(instance: Instance, options: SolveOptions) -> SolveResult:
        return dinkelbach(instance, name, greedy_start(instance), association, allocation, options)

    return run


def _part2(options: SolveOptions, engine: str = "conic") -> Step:
    return part2_step(options.inner_tolerance, options.max_inner_iterations, engine)


@register(
    "aauco",
    "AO part 1 (SDR + Hungarian) for association and phi, equal resource split (paper baseline)",
)
def _aauco(instance: Instance, options: SolveOptions) -> SolveResult:
    return _loop("aauco", part1_step("sdr", "equal"), equal_split_step)(instance, options)


@register(
    "gucro",
    "greedy user connection, phi = 0.5, AO part 2 (fractional programming) for "
    "resources (paper baseline)",
)
def _gucro(instance: Instance, options: SolveOptions) -> SolveResult:
    return _loop("gucro", None, _part2(options))(instance, options)


@register(
    "dashf",
    "DASHF as the paper specifies: Dinkelbach + AO of part 1 (SDR, solved in its exact "
    "chordal form, + Hungarian) and part 2 (fractional programming)",
)
def _dashf(instance: Instance, options: SolveOptions) -> SolveResult:
    return _loop("dashf", part1_step("sdr", "keep"), _part2(options))(instance, options)


@register(
    "dashf-fullsdr",
    "DASHF with the relaxation solved as one dense PSD matrix of size N(M+1)+1, as printed "
    "(same result as dashf, far slower; for reproducing the paper's cost)",
)
def _dashf_fullsdr(instance: Instance, options: SolveOptions) -> SolveResult:
    return _loop("dashf-fullsdr", part1_step("sdr-full", "keep"), _part2(options))(
        instance, options
    )


@register(
    "dashf-milp",
    "DASHF with AO part 1 solved exactly as a mixed-integer LP (McCormick products, HiGHS)",
)
def _dashf_milp(instance: Instance, options: SolveOptions) -> SolveResult:
    step = part1_step("milp", "keep", time_limit_s=min(60.0, options.seconds_left()))
    return _loop("dashf-milp", step, _part2(options))(instance, options)


@register(
    "dashf-scale",
    "DASHF for speed and scale: association by the exact MILP up to 300 user-server pairs, "
    "by a scan over the delay bound above; resources by the vectorised barrier method "
    "(up to 50 users by the cone program written directly for Clarabel); then, up to about "
    "50x5, a search over single-user moves with both servers' resources re-split (all moves "
    "in one stacked solve)",
)
def _dashf_scale(instance: Instance, options: SolveOptions) -> SolveResult:
    from mecllm.systems.finetune.solvers.search.scale import dashf_scale

    return dashf_scale(instance, options)


@register(
    "exhaustive",
    "reference for small instances (M^N <= 6561): every association screened, the best 24 "
    "solved from 4 fixed starts each; independent of every other method's plan",
)
def _exhaustive(instance: Instance, options: SolveOptions) -> SolveResult:
    from mecllm.systems.finetune.solvers.search.exhaustive import exhaustive

    return exhaustive(instance, options)


@register(
    "dashf-plus",
    "phi and every resource solved jointly (SLSQP and IPOPT, structured starts) for the "
    "best seed associations, then a local search over moves and swaps; at most 20 s (the "
    "project's best method for quality on small instances, N <= 8)",
)
def _dashf_plus(instance: Instance, options: SolveOptions) -> SolveResult:
    from mecllm.systems.finetune.solvers.search.multistart import dashf_plus  # CasADi

    return dashf_plus(instance, options)


@register(
    "dashf-joint",
    "dashf-scale's plan re-solved jointly (phi and every resource at once, sparse Dinkelbach "
    "IPOPT, linear in N) from structured starts and seed associations, then moves re-solved "
    "jointly (every single-user move up to 60 users, the priced short list above)",
)
def _dashf_joint(instance: Instance, options: SolveOptions) -> SolveResult:
    from mecllm.systems.finetune.solvers.search.joint_scale import dashf_joint  # CasADi

    return dashf_joint(instance, options)


@register(
    "dashf-regions",
    "dashf-scale by regions of about 50 servers: servers cut by position, users priced into "
    "regions, the slowest regions solved again at a higher delay price, the plans stitched "
    "(for thousands of servers; options.extra: servers_per_region, delay_start, relax; "
    "docs/regions.md)",
)
def _dashf_regions(instance: Instance, options: SolveOptions) -> SolveResult:
    from mecllm.systems.finetune.regions import DELAY_START_FACTOR, InstanceScene, solve_regions

    started = time.perf_counter()
    extra = options.extra
    per_region = extra.get("servers_per_region", 50)
    if isinstance(per_region, bool) or not isinstance(per_region, int) or per_region < 1:
        raise InvalidInputError(
            f"solve option extra['servers_per_region'] must be a whole number >= 1, "
            f"got {per_region!r}"
        )
    solved = solve_regions(
        InstanceScene(instance),
        get_algorithm,
        servers_per_region=per_region,
        options=options,
        relax=bool(extra.get("relax", False)),
        delay_start=float(extra.get("delay_start", DELAY_START_FACTOR)),
    )
    failed = [r for r in solved.results if r.status != "solved"]
    if failed:
        raise SolverError(
            f"dashf-regions: {len(failed)} of {len(solved.results)} regions failed "
            f"({failed[0].message})"
        )
    regions = len({r.region for r in solved.results})
    return finish(
        instance,
        "dashf-regions",
        solved.stitched.plan,
        started,
        status="converged",
        message=f"{regions} regions of about {per_region} servers, stitched "
        f"(regions solved in {solved.solve_s:.1f} s)",
    )
