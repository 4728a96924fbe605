"""Single-user moves at scale: a short list ranked by the part-1 prices, confirmed exactly.

The full move screen of :mod:`moves` re-splits two servers' resources for every one of the
N (M - 1) moves: about 2 N^2 rows, which stops it near 50 x 5. This module screens only the
moves the threshold scan's prices rank best, a short list at a time:

1. **Rank.** Every pair (n, b) is priced as part 1 prices it
   (:func:`~..association.pricing.price_moves`: the resources n would get on b if it joined,
   its best phi under the plan's delay bound); a move's promise is its price on b minus its
   price where it is. Each user's :data:`CANDIDATES` best servers enter the ranking, O(N M)
   array work and O(N K) candidates.
2. **Confirm.** The next :data:`CONFIRM` untried candidates are screened by
   :func:`moves.screen_moves`, which re-splits both servers' resources by the barrier method
   and scores each move's plan exactly. Small batches are cheap (60 moves of 1000 x 20 in
   0.23 s; 300 at once took 9 s, since the barrier waits for its slowest pieces).
3. **Batch.** Confirmed moves that raise the SCR and touch disjoint pairs of servers are taken
   together (each changes only its two servers' users; their totals add and the delay is the
   largest). The batch is scored exactly and kept if it beats the best single move, which is
   taken otherwise.

A cheaper estimate, the mover taking a proportional share of its new server with the
incumbents scaled down, was tried and never finds a move: in an optimised plan every user sits
at the delay bound (1000 x 20, seed 0: all 1000 users within 0.1 % of it), so any scaling down
raises the delay. The prices do rank: on that plan, of 294 moves screened exactly 10 raise the
SCR, 8 of them among the 30 best by price (notes of the commit that added this module).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from mecllm.core.arrays import IntArray
from mecllm.core.options import ProgressCallback, SolveOptions
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.physics import Evaluation, evaluate
from mecllm.systems.finetune.solution import Plan, SolveResult
from mecllm.systems.finetune.solvers.association.pricing import price_moves
from mecllm.systems.finetune.solvers.association.threshold import costs_at
from mecllm.systems.finetune.solvers.result import finish
from mecllm.systems.finetune.solvers.search.moves import Move, screen_moves

#: Servers per user ranked (the user's cheapest other servers by the part-1 prices).
CANDIDATES = 3
#: Candidates screened exactly per round.
CONFIRM = 48
#: The barrier's stopping gap in a confirmation. The screen's default (1e-2) is loose next
#: to what one move is worth among thousands of users: at 10,000 x 100 it turned the 14
#: improving moves of 48 (+1.1e-4 at best, at 1e-4 or tighter) into losses of 4e-4.
CONFIRM_GAP = 1e-5
#: A batch or move is taken when it raises the SCR by more than this share.
ACCEPT = 1e-7
#: Rounds ``dashf-scale`` runs (above the full screen's size). A fixed count, not a share of
#: the time, so that a solve gives the same plan on any machine and under any load. Measured on
#: the paper scenario, seed 0: a round takes 0.18 s at 1000 x 20 and 0.8 s at 10,000 x 100
#: and the first rounds raise the SCR by 0.03-0.1 % each; 15 s of rounds (18) raised
#: 10,000 x 100 by 0.25 %.
ROUNDS = 3
#: Rounds in a row without an improving move after which the search stops.
IDLE_ROUNDS = 2


def ranked_moves(
    instance: Instance, plan: Plan, report: Evaluation, k: int = CANDIDATES
) -> list[tuple[int, int, int]]:
    """Moves (user, server, 0) best first by their price difference: each user's ``k``
    cheapest other servers by the part-1 pair costs with room to move (:func:`price_moves`)
    at the plan's ratio and delay, minus the cost where it is; pairs without a feasible phi
    are left out. The variant is 0 (the phi of the plan): the AO loop re-solves phi."""
    n = instance.n_users
    rows = np.arange(n)
    costs, _ = price_moves(instance, plan, report.scr)
    price = costs_at(costs, report.delay_s)
    here = price[rows, plan.assignment]
    with np.errstate(invalid="ignore"):
        delta = price - here[:, None]
    delta[rows, plan.assignment] = np.inf
    delta[~np.isfinite(delta)] = np.inf
    k = min(k, instance.n_servers - 1)
    best: IntArray = np.argpartition(delta, k - 1, axis=1)[:, :k]
    users = np.repeat(rows, k)
    servers = best.ravel()
    value = delta[users, servers]
    order = np.argsort(value, kind="stable")
    order = order[np.isfinite(value[order])]
    return [(int(users[i]), int(servers[i]), 0) for i in order]


def combine(plan: Plan, moves: list[Move]) -> Plan:
    """``plan`` with every move of ``moves`` applied; their pairs of servers must be disjoint.
    Each move's plan differs from ``plan`` only in the users of its two servers."""
    out = {f.name: getattr(plan, f.name).copy() for f in dataclasses.fields(Plan)}
    for move in moves:
        touched = np.isin(plan.assignment, [plan.assignment[move.user], move.server])
        for name, values in out.items():
            values[touched] = getattr(move.plan, name)[touched]
    return Plan(**out)


def _disjoint(moves: list[Move], assignment: IntArray) -> list[Move]:
    """Greedily, best first, the moves whose users and server pairs overlap no earlier one."""
    used: set[int] = set()
    chosen: list[Move] = []
    for move in moves:
        pair = {int(assignment[move.user]), move.server}
        if pair & used:
            continue
        used |= pair
        chosen.append(move)
    return chosen


def improve_by_shortlist(
    instance: Instance,
    plan: Plan,
    deadline: float,
    max_rounds: int = 50,
    progress: ProgressCallback | None = None,
) -> tuple[Plan, list[dict[str, Any]]]:
    """Rounds of ranking, confirmation and batch (module docstring) until
    :data:`IDLE_ROUNDS` rounds in a row take nothing, the ranking is used up, ``max_rounds``,
    or another round as long as the last would end after ``deadline``
    (``time.perf_counter()``). Moves confirmed not to pay are not tried
    again unless one of their servers changed. Returns the final plan (never worse than
    ``plan``) and one record per round."""
    current = plan
    report = evaluate(instance, current)
    history: list[dict[str, Any]] = []
    tried: set[tuple[int, int, int]] = set()
    idle, last = 0, 0.0
    for _ in range(max_rounds):
        started = time.perf_counter()
        if started + last >= deadline or instance.n_servers < 2 or idle >= IDLE_ROUNDS:
            break
        fresh = [key for key in ranked_moves(instance, current, report) if key not in tried]
        shortlist = set(fresh[:CONFIRM])
        if not shortlist:
            break
        tried |= shortlist
        confirmed = screen_moves(instance, current, only=shortlist, best=CONFIRM, gap=CONFIRM_GAP)
        better = [mv for mv in confirmed if mv.scr > report.scr * (1 + ACCEPT)]
        record: dict[str, Any] = {
            "stage": "shortlist move screen",
            "moves_screened": len(shortlist),
            "moves_improving": len(better),
        }
        if better:
            idle = 0
            chosen, taken = better[0].plan, [better[0]]
            batch = _disjoint(better, current.assignment)
            if len(batch) > 1:
                together = combine(current, batch)
                result = evaluate(instance, together)
                if result.feasible and result.scr > better[0].scr:
                    chosen, taken = together, batch
            touched = {int(current.assignment[mv.user]) for mv in taken}
            touched |= {mv.server for mv in taken}
            current = chosen
            report = evaluate(instance, current)
            tried = {
                key
                for key in tried
                if key[1] not in touched and int(current.assignment[key[0]]) not in touched
            }
            record["moves_taken"] = len(taken)
        else:
            idle += 1
        last = time.perf_counter() - started
        record.update(y=report.scr, screen_s=last)
        history.append(record)
        if progress is not None:
            progress(record)
    return current, history


def with_shortlist_search(
    instance: Instance,
    name: str,
    first: SolveResult,
    options: SolveOptions,
    started: float,
) -> SolveResult:
    """``first`` (the AO loop's result) improved by :data:`ROUNDS` rounds of
    :func:`improve_by_shortlist` (fewer if the solve's time limit comes first)."""
    deadline = options.with_deadline().deadline or time.perf_counter() + options.time_limit_s
    best, records = improve_by_shortlist(
        instance, first.plan, deadline, max_rounds=ROUNDS, progress=options.progress
    )
    taken = sum(int(r.get("moves_taken", 0)) for r in records)
    return finish(
        instance,
        name,
        best,
        started,
        status=first.status,
        message=(
            f"{first.message}; shortlist move search took {taken} single-user moves "
            f"in {len(records)} rounds"
        ),
        iterations=first.iterations,
        history=[*first.history, *records],
    )
