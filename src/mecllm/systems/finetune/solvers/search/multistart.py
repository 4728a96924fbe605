"""``dashf-plus``: the best plan this project finds on small instances (docs/algorithms.md).

The paper's route alternates a phi step and a resource step and moves users one relaxation at
a time, so it stops where neither block alone can improve. This method searches the same space
with the joint solver of :mod:`~mecllm.systems.finetune.solvers.allocation.joint` (phi and
every resource at once) and a local search over associations:

1. **Seeds**: ``dashf-scale``'s plan, the greedy and the strongest-channel associations, and
   the best few associations by a cheap solver-free score (every association is scored when
   M^N <= 729, else the cheap score's local optimum from the strongest channels).
2. **Each seed association** is optimised from structured starts (equal split, everyone
   offloaded, everyone local, slow server compute, one local user per server, random) by both
   local solvers; the best two are then *chained*: the joint solve alternates with an exact
   polish (phi by its LP, the resources by the direct cone program at tight tolerances) until
   neither improves.
3. **Local search over associations**: every single-user move, then every swap of two users on
   different servers, each neighbour optimised from its inherited plan (the mover with an equal
   share of its new server) and two structured starts; the first that raises the SCR by more
   than 1e-6 is taken, and the search starts again from it, until no neighbour improves or the
   time budget runs out.
4. The final association is optimised once more from every start, if time is left.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from mecllm.core.arrays import IntArray
from mecllm.core.options import SolveOptions
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.physics import evaluate
from mecllm.systems.finetune.solution import Plan, SolveResult
from mecllm.systems.finetune.solvers.allocation.equal_split import equal_split
from mecllm.systems.finetune.solvers.allocation.joint import (
    SOLVERS,
    solve_joint,
    structured_starts,
)
from mecllm.systems.finetune.solvers.association.simple import (
    greedy_association,
    strongest_channel,
)
from mecllm.systems.finetune.solvers.loop import dinkelbach
from mecllm.systems.finetune.solvers.result import finish
from mecllm.systems.finetune.solvers.search.exhaustive import screen
from mecllm.systems.finetune.solvers.search.fixed_association import cheap_score
from mecllm.systems.finetune.solvers.search.scale import dashf_scale
from mecllm.systems.finetune.solvers.steps import part2_step, phi_step

#: Wall-clock budget of one solve, s (a lower ``--time-limit`` wins): the local search over
#: associations stops there with the best plan found.
BUDGET_S = 20.0
#: Instances with at most this many associations (M^N) are screened exhaustively.
SCREEN_LIMIT = 729
#: Screened associations optimised besides the other seeds.
SCREENED_CANDIDATES = 4
#: Relative gain a neighbour must bring to be taken.
_ACCEPT = 1e-6
#: Tolerance of the exact polish (part 2's FP loop and the direct cone program).
_POLISH_TOLERANCE = 1e-9
#: A neighbour whose quick solve ends within this share of the incumbent is chained.
_CHAIN_WITHIN = 0.03
#: Joint solve + polish rounds at most in one chain.
_CHAIN_ROUNDS = 4


@dataclass(frozen=True)
class _Found:
    """A feasible plan and its SCR."""

    scr: float
    plan: Plan


def _moved(instance: Instance, plan: Plan, user: int, server: int) -> Plan:
    """``plan`` with ``user`` on ``server``, given an equal share there (others scaled back)."""
    assignment = plan.assignment.copy()
    assignment[user] = server
    k = np.sum(assignment == server)
    b, q, s = plan.bandwidth_hz.copy(), plan.server_power_w.copy(), plan.server_flops.copy()
    b[user] = instance.bandwidth_hz[server] / k
    q[user] = instance.server_max_power_w[server] / k
    s[user] = instance.server_max_flops[server] / k
    if not instance.count_idle:
        work = 1.0 - plan.phi[user]
        q[user] = min(q[user], work * instance.server_max_power_w[server])
        s[user] = min(s[user], work * instance.server_max_flops[server])
    on = assignment == server
    for values, cap in (
        (b, instance.bandwidth_hz),
        (q, instance.server_max_power_w),
        (s, instance.server_max_flops),
    ):
        used = values[on].sum()
        if used > cap[server]:
            values[on] *= cap[server] / used
    moved = plan.replace(assignment=assignment, bandwidth_hz=b, server_power_w=q, server_flops=s)
    if evaluate(instance, moved).feasible:
        return moved
    return equal_split(instance, assignment, plan.phi)


def _swapped(instance: Instance, plan: Plan, first: int, second: int) -> Plan:
    """``plan`` with two users on different servers exchanging servers and resource shares."""
    order = np.arange(instance.n_users)
    order[[first, second]] = order[[second, first]]
    swapped = plan.replace(
        assignment=plan.assignment[order],
        bandwidth_hz=plan.bandwidth_hz[order],
        server_power_w=plan.server_power_w[order],
        server_flops=plan.server_flops[order],
    )
    if evaluate(instance, swapped).feasible:
        return swapped
    return equal_split(instance, swapped.assignment, plan.phi)


def _neighbours(instance: Instance, plan: Plan) -> list[tuple[str, int, int]]:
    """Every single-user move, then every swap of two users on different servers."""
    a = plan.assignment
    moves = [
        ("move", n, m)
        for n in range(instance.n_users)
        for m in range(instance.n_servers)
        if m != a[n]
    ]
    swaps = [
        ("swap", n, k)
        for n in range(instance.n_users)
        for k in range(n + 1, instance.n_users)
        if a[n] != a[k]
    ]
    return moves + swaps


def cheap_local_search(instance: Instance, assignment: IntArray) -> IntArray:
    """Single-user moves that raise :func:`cheap_score`, until none does (first improvement)."""
    current = assignment.copy()
    value = cheap_score(instance, current)
    improved = True
    while improved:
        improved = False
        for n in range(instance.n_users):
            for m in range(instance.n_servers):
                if m == current[n]:
                    continue
                trial = current.copy()
                trial[n] = m
                score = cheap_score(instance, trial)
                if score > value * (1 + 1e-9):
                    current, value, improved = trial, score, True
    return current


def candidate_associations(instance: Instance, options: SolveOptions) -> list[IntArray]:
    """Associations worth a full solve besides DASHF's: the best few by the cheap score when
    the instance is small enough to screen every one, else the cheap local optimum reached
    from the strongest-channel association."""
    if instance.n_servers**instance.n_users <= SCREEN_LIMIT:
        return [a for _, a in screen(instance, options)[:SCREENED_CANDIDATES]]
    return [cheap_local_search(instance, strongest_channel(instance))]


def _polish(instance: Instance, plan: Plan, options: SolveOptions) -> Plan:
    """The exact alternation from ``plan``: phi by its LP, resources by the direct cone
    program at tight tolerances (it only stops where neither block improves)."""
    tight = SolveOptions(max_iterations=30, tolerance=_POLISH_TOLERANCE, deadline=options.deadline)
    step = part2_step(_POLISH_TOLERANCE, 30, "direct", _POLISH_TOLERANCE)
    return dinkelbach(instance, "polish", plan, phi_step, step, tight).plan


def _chain(instance: Instance, found: _Found, options: SolveOptions) -> _Found:
    """Alternate the joint solve (both solvers) with the exact polish while either improves."""
    best = found
    for _ in range(_CHAIN_ROUNDS):
        if options.expired():
            break
        joint = max(
            (solve_joint(instance, best.plan, solver) for solver in SOLVERS),
            key=lambda r: r.scr,
        )
        candidate = joint.plan if joint.plan is not None else best.plan
        polished = _polish(instance, candidate, options)
        scr = evaluate(instance, polished).scr
        if scr <= best.scr * (1 + _ACCEPT):
            break
        best = _Found(scr, polished)
    return best


def optimise_association(
    instance: Instance,
    assignment: IntArray,
    extra: list[Plan],
    options: SolveOptions,
    rng: np.random.Generator,
    *,
    thorough: bool = True,
    chain_within: float = 0.0,
    incumbent: float = -np.inf,
) -> _Found | None:
    """The best plan found for one association, or ``None`` if no start gave a feasible plan.

    Thorough: every start (``extra`` and the structured ones) by both local solvers, then the
    best two chained. Quick (for neighbours in the local search): ``extra`` and the everyone-
    offloaded start by SLSQP alone, chained only if the best comes within ``chain_within``
    (relative) of ``incumbent``.
    """
    structured = structured_starts(instance, assignment, rng)
    # Quick: the inherited plan, everyone offloaded, one local user per server.
    starts = [*extra, *structured] if thorough else [*extra, structured[1], structured[4]]
    solvers = SOLVERS if thorough else SOLVERS[:1]
    found: list[_Found] = []
    for start in starts:
        if found and options.expired():
            break
        for solver in solvers:
            result = solve_joint(instance, start, solver)
            if result.plan is not None:
                found.append(_Found(result.scr, result.plan))
    if not found:
        return None
    found.sort(key=lambda f: -f.scr)
    if not thorough and found[0].scr < incumbent * (1 - chain_within):
        return found[0]
    chained = [_chain(instance, f, options) for f in found[: 2 if thorough else 1]]
    return max(chained, key=lambda f: f.scr)


def _seeds(instance: Instance, options: SolveOptions) -> list[tuple[IntArray, list[Plan]]]:
    """Seed associations with the plans known for them (dashf-scale's plan for its own)."""
    from_scale = dashf_scale(instance, options).plan
    seeds: list[tuple[IntArray, list[Plan]]] = [(from_scale.assignment, [from_scale])]
    candidates = [greedy_association(instance), strongest_channel(instance)]
    candidates += candidate_associations(instance, options)
    for assignment in candidates:
        if not any(np.array_equal(assignment, a) for a, _ in seeds):
            seeds.append((assignment, []))
    return seeds


def dashf_plus(instance: Instance, options: SolveOptions) -> SolveResult:
    """Run the method of the module docstring."""
    started = time.perf_counter()
    options = options.with_deadline()
    assert options.deadline is not None
    options = dataclasses.replace(options, deadline=min(options.deadline, started + BUDGET_S))
    rng = options.rng()
    history: list[dict[str, object]] = []
    best: _Found | None = None
    for assignment, known in _seeds(instance, options):
        if best is not None and options.expired():
            break
        found = optimise_association(instance, assignment, known, options, rng)
        if found is not None and (best is None or found.scr > best.scr):
            best = found
    assert best is not None, "the equal split of dashf-scale's association is always feasible"
    history.append({"stage": "seeds", "y": best.scr, "elapsed_s": time.perf_counter() - started})
    tried, taken = 0, 0
    improved = instance.n_servers > 1
    while improved and not options.expired():
        improved = False
        for kind, n, other in _neighbours(instance, best.plan):
            if options.expired():
                break
            tried += 1
            neighbour = (
                _moved(instance, best.plan, n, other)
                if kind == "move"
                else _swapped(instance, best.plan, n, other)
            )
            found = optimise_association(
                instance,
                neighbour.assignment,
                [neighbour],
                options,
                rng,
                thorough=False,
                chain_within=_CHAIN_WITHIN,
                incumbent=best.scr,
            )
            if found is not None and found.scr > best.scr * (1 + _ACCEPT):
                best, improved, taken = found, True, taken + 1
                break
        history.append(
            {
                "stage": "local search",
                "y": best.scr,
                "moves_tried": tried,
                "moves_taken": taken,
                "elapsed_s": time.perf_counter() - started,
            }
        )
    if not options.expired():
        final = optimise_association(instance, best.plan.assignment, [best.plan], options, rng)
        if final is not None and final.scr > best.scr:
            best = final
        history.append(
            {"stage": "final", "y": best.scr, "elapsed_s": time.perf_counter() - started}
        )
    return finish(
        instance,
        "dashf-plus",
        best.plan,
        started,
        status="time_limit" if options.expired() else "converged",
        message=(
            f"joint solves of the seed associations; local search tried {tried} moves and "
            f"swaps and took {taken}"
            + ("; stopped at the time budget" if options.expired() else "")
        ),
        iterations=len(history),
        history=history,
    )
