"""``dashf-joint``: the joint solver's quality at any size (docs/algorithms.md, "dashf-joint").

``dashf-plus`` is good because it solves phi and the five resources of every user together,
from structured starts, and re-solves association moves jointly; it is small because its joint
problem is dense. This method keeps those three ingredients with the sparse joint solve of
:mod:`~mecllm.systems.finetune.solvers.allocation.joint_sparse` (Dinkelbach outside, one sparse
interior-point solve inside, linear in N):

1. **Seeds**: ``dashf-scale``'s plan, and up to :data:`SEED_USERS` users also the greedy, the
   strongest-channel and the cheap score's locally best associations.
2. **Each seed association** is solved jointly from the known plan and the structured starts
   (equal split, everyone offloaded, everyone local, slow server compute, one local user per
   server, random); the best two are chained (phi's LP, the sparse joint solve and, up to
   :data:`SLSQP_USERS` users, the dense solve's SLSQP, until none improves).
3. **Moves**: up to :data:`MOVE_USERS` users, single-user moves in a fixed cyclic order, each
   solved quickly from the inherited plan (the mover with an equal share of its new server),
   chained when it comes within :data:`CHAIN_WITHIN` of the incumbent and taken when it beats
   it; until a full pass finds nothing or :data:`MOVE_PASSES` passes are spent. Above,
   ``dashf-scale``'s short list of moves (ranked by the part-1 prices, confirmed exactly) runs
   from the joint plan and its result is chained.

It stops at :data:`BUDGET_S` (or ``--time-limit``, if lower) with the best plan so far; on
medium instances the moves usually run into it, so the plan depends on the machine's speed.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from mecllm.core.arrays import IntArray
from mecllm.core.options import SolveOptions
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.physics import evaluate
from mecllm.systems.finetune.solution import Plan, SolveResult
from mecllm.systems.finetune.solvers.allocation.joint import solve_joint, structured_starts
from mecllm.systems.finetune.solvers.allocation.joint_sparse import (
    MAX_ITERATIONS,
    MAX_ROUNDS,
    solve_joint_sparse,
)
from mecllm.systems.finetune.solvers.association.simple import (
    greedy_association,
    strongest_channel,
)
from mecllm.systems.finetune.solvers.result import finish
from mecllm.systems.finetune.solvers.search.move_shortlist import with_shortlist_search
from mecllm.systems.finetune.solvers.search.multistart import (
    _Found,
    _moved,
    cheap_local_search,
)
from mecllm.systems.finetune.solvers.search.scale import dashf_scale
from mecllm.systems.finetune.solvers.steps import phi_step

#: Wall-clock budget of one solve, s (a lower ``--time-limit`` wins): the searches stop there
#: with the best plan found.
BUDGET_S = 50.0
#: Up to this many users, the greedy, strongest-channel and cheap-score associations are seeds.
SEED_USERS = 60
#: Up to this many users, single-user moves are re-solved jointly.
MOVE_USERS = 60
#: Moves tried at most, as a multiple of the N (M - 1) single-user moves (full passes).
MOVE_PASSES = 3
#: A move is taken when it raises the SCR by more than this share.
ACCEPT = 1e-6
#: A move whose quick solve (one Dinkelbach solve at the incumbent's ratio, few iterations)
#: comes within this share of the incumbent is chained.
CHAIN_WITHIN = 0.10
#: Up to this many users the chain also runs the dense joint solve's SLSQP (an active-set
#: method: it lands on the bounds an interior point only approaches; 0.08 s at 10 users).
SLSQP_USERS = 20
#: IPOPT's iterations in a move's quick solve.
QUICK_ITERATIONS = 100
#: Joint solve + exact polish rounds at most in one chain.
CHAIN_ROUNDS = 4
#: phi LP + joint solve rounds of the polish at most.
POLISH_ROUNDS = 3


def _joint(
    instance: Instance, start: Plan, rounds: int = MAX_ROUNDS, iterations: int = MAX_ITERATIONS
) -> _Found | None:
    result = solve_joint_sparse(instance, start, rounds, iterations)
    return None if result.plan is None else _Found(result.scr, result.plan)


def _polish(instance: Instance, plan: Plan) -> Plan:
    """phi by its LP (resources kept) at the plan's own ratio, repeated while the SCR rises.
    The LP reaches the endpoints (phi exactly 0 or 1) that an interior-point solve only
    approaches (a user left at phi = 0.005 still pays for its local phase)."""
    value = evaluate(instance, plan).scr
    for _ in range(POLISH_ROUNDS):
        moved, _ = phi_step(instance, plan, value)
        score = evaluate(instance, moved)
        if not score.feasible or score.scr <= value * (1 + ACCEPT):
            break
        plan, value = moved, score.scr
    return plan


def _chain(instance: Instance, found: _Found, options: SolveOptions) -> _Found:
    """Alternate phi's LP, the sparse joint solve and (up to :data:`SLSQP_USERS` users) the
    dense active-set solve while any improves."""
    best = found
    for _ in range(CHAIN_ROUNDS):
        if options.expired():
            break
        polished = _polish(instance, best.plan)
        candidates = [_Found(evaluate(instance, polished).scr, polished)]
        candidates.append(_joint(instance, polished) or candidates[0])
        if instance.n_users <= SLSQP_USERS:
            top = max(candidates, key=lambda c: c.scr)
            dense = solve_joint(instance, top.plan, "slsqp")
            if dense.plan is not None:
                candidates.append(_Found(dense.scr, dense.plan))
        top = max(candidates, key=lambda c: c.scr)
        if top.scr <= best.scr * (1 + ACCEPT):
            break
        best = top
    return best


def _seeds(instance: Instance, scale_plan: Plan) -> list[tuple[IntArray, list[Plan]]]:
    seeds: list[tuple[IntArray, list[Plan]]] = [(scale_plan.assignment, [scale_plan])]
    if instance.n_users <= SEED_USERS and instance.n_servers > 1:
        others = [greedy_association(instance), strongest_channel(instance)]
        others.append(cheap_local_search(instance, others[1]))
        for assignment in others:
            if not any(np.array_equal(assignment, a) for a, _ in seeds):
                seeds.append((assignment, []))
    return seeds


def _optimise(
    instance: Instance,
    assignment: IntArray,
    known: list[Plan],
    options: SolveOptions,
    rng: np.random.Generator,
) -> _Found | None:
    """One association: the joint solve from the known plans and every structured start, the
    best two chained."""
    found: list[_Found] = []
    for start in [*known, *structured_starts(instance, assignment, rng)]:
        if found and options.expired():
            break
        result = _joint(instance, start)
        if result is not None:
            found.append(result)
    if not found:
        return None
    found.sort(key=lambda f: -f.scr)
    return max((_chain(instance, f, options) for f in found[:2]), key=lambda f: f.scr)


def _moves(instance: Instance, best: _Found, options: SolveOptions) -> tuple[_Found, int, int]:
    """First-improvement single-user moves in a fixed cyclic order: each neighbour solved
    quickly from its inherited plan, chained when it comes within :data:`CHAIN_WITHIN` of the
    incumbent, taken when it beats it; until a full pass finds nothing, the move cap, or the
    time limit. The result, moves tried and moves taken."""
    n_users, n_servers = instance.n_users, instance.n_servers
    pairs = [(n, m) for n in range(n_users) for m in range(1, n_servers)]
    cap = MOVE_PASSES * len(pairs)
    tried = taken = since_gain = 0
    position = 0
    while since_gain < len(pairs) and tried < cap and not options.expired():
        user, shift = pairs[position % len(pairs)]
        position += 1
        tried += 1
        since_gain += 1
        server = (int(best.plan.assignment[user]) + shift) % n_servers
        quick = _joint(
            instance,
            _moved(instance, best.plan, user, server),
            rounds=1,
            iterations=QUICK_ITERATIONS,
        )
        if quick is None or quick.scr < best.scr * (1 - CHAIN_WITHIN):
            continue
        found = _chain(instance, quick, options)
        if found.scr > best.scr * (1 + ACCEPT):
            best, taken, since_gain = found, taken + 1, 0
    return best, tried, taken


def dashf_joint(instance: Instance, options: SolveOptions) -> SolveResult:
    """Run the method of the module docstring."""
    started = time.perf_counter()
    options = options.with_deadline()
    assert options.deadline is not None
    options = dataclasses.replace(options, deadline=min(options.deadline, started + BUDGET_S))
    rng = options.rng()
    scale = dashf_scale(instance, options)
    history: list[dict[str, object]] = [
        {"stage": "dashf-scale", "y": scale.scr, "elapsed_s": time.perf_counter() - started}
    ]
    best = _Found(scale.scr, scale.plan)
    for assignment, known in _seeds(instance, scale.plan):
        if options.expired():
            break
        found = _optimise(instance, assignment, known, options, rng)
        if found is not None and found.scr > best.scr:
            best = found
    history.append({"stage": "joint seeds", "y": best.scr, "elapsed_s": _since(started)})
    tried = taken = 0
    if instance.n_servers > 1 and not options.expired():
        if instance.n_users <= MOVE_USERS:
            best, tried, taken = _moves(instance, best, options)
        else:
            # The shortlist's rounds from the joint plan, then the joint solve once more.
            first = finish(instance, "dashf-joint", best.plan, started)
            moved = with_shortlist_search(instance, "dashf-joint", first, options, started)
            again = _chain(instance, _Found(moved.scr, moved.plan), options)
            if again.scr > best.scr:
                best = again
        history.append(
            {
                "stage": "moves",
                "y": best.scr,
                "moves_tried": tried,
                "moves_taken": taken,
                "elapsed_s": _since(started),
            }
        )
    assert evaluate(instance, best.plan).feasible
    return finish(
        instance,
        "dashf-joint",
        best.plan,
        started,
        status="time_limit" if options.expired() else "converged",
        message=(
            f"joint solves of {len(history)} stages from dashf-scale's plan"
            + (f"; {tried} moves re-solved jointly, {taken} taken" if tried else "")
            + ("; stopped at the time limit" if options.expired() else "")
        ),
        iterations=len(history),
        history=history,
    )


def _since(started: float) -> float:
    return time.perf_counter() - started
