"""``dashf-plus``: DASHF made less local.

Measured on small instances against the exhaustive reference (benchmarks/quality.py), the
paper's route stops at the first association it cannot improve by one relaxation. This method

1. runs the DASHF loop with the exact part-1 step (MILP) from two starts: the greedy
   association and the strongest-channel association; and, resources first, part 2 alone with
   phi = 0.5 on the greedy association (GUCRO) and on the best association so far;
2. polishes the best plan by alternating exact phi (LP) and part 2 with the association fixed,
   so that phi moves jointly with the resources, from the plan itself and from four more
   starts (phi = 0.5, 1, 0 and random with the equal split); does the same for a few more
   associations chosen by a cheap, solver-free score (equal split, phi by LP): the best six of
   all M^N when M^N <= 729, else the local optimum of that score from the strongest channels;
3. tries every single-user move to another server (the mover gets an equal share there) and
   every swap of two users on different servers (they exchange shares), polishes each (from
   the inherited shares, and if that does not improve, from a fresh equal split), and
   keeps each one that raises the SCR, until a full pass finds none or the time budget runs
   out.
"""

from __future__ import annotations

import time

import numpy as np

from mecllm.core.arrays import IntArray
from mecllm.core.options import SolveOptions
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.physics import evaluate
from mecllm.systems.finetune.solution import Plan, SolveResult
from mecllm.systems.finetune.solvers.allocation.equal_split import equal_split
from mecllm.systems.finetune.solvers.association.simple import (
    greedy_association,
    strongest_channel,
)
from mecllm.systems.finetune.solvers.loop import dinkelbach
from mecllm.systems.finetune.solvers.result import finish
from mecllm.systems.finetune.solvers.search.exhaustive import screen
from mecllm.systems.finetune.solvers.search.fixed_association import (
    cheap_score,
    continuous,
    multistarts,
)
from mecllm.systems.finetune.solvers.steps import part1_step, part2_step

#: Instances with at most this many associations (M^N) are screened exhaustively.
SCREEN_LIMIT = 729
#: Screened associations polished from several starts.
SCREENED_CANDIDATES = 6

#: Moves and swaps tried per pass at most (the rest are skipped, and the message says so).
MAX_MOVES_PER_PASS = 400


def _scr(result: SolveResult) -> float:
    return result.scr


def _polish_multistart(instance: Instance, plan: Plan, options: SolveOptions) -> SolveResult:
    """The continuous problem of ``plan``'s association from ``plan`` and the reference's
    starts (phi = 0.5, 1, 0 and random, equal split); the best result."""
    starts = [plan, *multistarts(instance, plan.assignment, options.rng())]
    return max((continuous(instance, s, options) for s in starts), key=lambda r: r.scr)


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


def dashf_plus(instance: Instance, options: SolveOptions) -> SolveResult:
    """Run the method of the module docstring."""
    started = time.perf_counter()
    options = options.with_deadline()
    deadline = options.deadline or started + options.time_limit_s
    step1 = part1_step("milp", "keep", time_limit_s=min(60.0, options.seconds_left()))
    step2 = part2_step(options.inner_tolerance, options.max_inner_iterations)
    half = np.full(instance.n_users, 0.5)
    history = []
    best: SolveResult | None = None
    for label, assignment in (
        ("greedy", greedy_association(instance)),
        ("strongest channel", strongest_channel(instance)),
    ):
        start = equal_split(instance, assignment, half)
        result = dinkelbach(instance, "dashf-plus", start, step1, step2, options)
        history.append(
            {
                "stage": f"DASHF-MILP from {label}",
                "y": result.scr,
                "elapsed_s": time.perf_counter() - started,
            }
        )
        if best is None or result.scr > best.scr:
            best = result
    assert best is not None
    # Resources first: with phi held at 0.5 part 2 can reach plans that the phi-LP, run first
    # on an equal split, never visits (it jumps to phi = 1 when server energy dominates).
    for assignment in (greedy_association(instance), best.plan.assignment):
        start = equal_split(instance, assignment, half)
        resources_first = dinkelbach(instance, "dashf-plus", start, None, step2, options)
        best = max(best, resources_first, key=lambda r: r.scr)
    history.append(
        {"stage": "resources first", "y": best.scr, "elapsed_s": time.perf_counter() - started}
    )
    best = max(best, _polish_multistart(instance, best.plan, options), key=lambda r: r.scr)
    history.append({"stage": "polish", "y": best.scr, "elapsed_s": time.perf_counter() - started})
    for assignment in candidate_associations(instance, options):
        if time.perf_counter() >= deadline:
            break
        start = equal_split(instance, assignment, half)
        best = max(best, _polish_multistart(instance, start, options), key=lambda r: r.scr)
    history.append(
        {"stage": "screened candidates", "y": best.scr, "elapsed_s": time.perf_counter() - started}
    )
    moves_tried, accepted, note = 0, 0, ""
    improved = instance.n_servers > 1
    while improved and time.perf_counter() < deadline:
        improved = False
        pairs = _neighbours(instance, best.plan)
        if len(pairs) > MAX_MOVES_PER_PASS:
            note = f"; {len(pairs) - MAX_MOVES_PER_PASS} moves per pass skipped (budget)"
            pairs = pairs[:MAX_MOVES_PER_PASS]
        for kind, n, other in pairs:
            if time.perf_counter() >= deadline:
                note += "; time limit reached during local search"
                break
            a = best.plan.assignment
            if (kind == "move" and a[n] == other) or (kind == "swap" and a[n] == a[other]):
                continue  # an earlier accepted move made this one void
            moves_tried += 1
            neighbour = (
                _moved(instance, best.plan, n, other)
                if kind == "move"
                else _swapped(instance, best.plan, n, other)
            )
            candidate = continuous(instance, neighbour, options)
            if candidate.scr <= best.scr * (1 + 1e-6):
                # The inherited shares can trap part 2 in a poor local optimum; a fresh
                # equal split of the same association is the second chance.
                fresh = equal_split(instance, neighbour.assignment, half)
                candidate = max(candidate, continuous(instance, fresh, options), key=_scr)
            if candidate.scr > best.scr * (1 + 1e-6):
                best, improved, accepted = candidate, True, accepted + 1
        history.append(
            {
                "stage": "local search pass",
                "y": best.scr,
                "moves_tried": moves_tried,
                "moves_accepted": accepted,
                "elapsed_s": time.perf_counter() - started,
            }
        )
    if accepted:
        best = max(best, _polish_multistart(instance, best.plan, options), key=lambda r: r.scr)
        history.append(
            {"stage": "final polish", "y": best.scr, "elapsed_s": time.perf_counter() - started}
        )
    return finish(
        instance,
        "dashf-plus",
        best.plan,
        started,
        status="time_limit" if options.expired() else "converged",
        message=(
            f"best of 2 DASHF-MILP starts, polished; local search tried {moves_tried} "
            f"moves and swaps and kept {accepted}{note}"
        ),
        iterations=len(history),
        history=history,
    )
