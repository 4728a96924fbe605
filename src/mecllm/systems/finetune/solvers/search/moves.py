"""Every single-user move, re-optimised at once: a neighbourhood screen for the AO loop.

The AO loop's association step prices a user on another server with a fixed guess of the
resources it would get there, so it misses moves that pay only once the two servers' resources
are re-split (measured on the paper scenario at 20x3: from DASHF-MILP's end point six of the 40
single-user moves raise the SCR, by up to 2.8%, none of which part 1 proposes).

This module re-splits the resources for every move at once. A move of user n from server a to
server b changes only those two servers, so its value is the rest of the plan unchanged plus
two pieces: server a without n and server b with n (n with its current phi, or with phi = 0 or
1, each a separate move). Each piece is a copy of the part-2 surrogate restricted to one
server's users; the two pieces of a move share one delay bound, floored at the delay of the
servers the move leaves alone (a move gains nothing by being faster than the rest). The
pieces of all moves are stacked into one problem of about 2 N^2 (M - 1) / M rows per phi
choice, solved by the barrier method of :mod:`barrier` with one group per move
(each group centres and steps on its own), with the fractional-programming weights refreshed
``rounds`` times. Each move's plan is then put together from its pieces and scored exactly by
:func:`~mecllm.systems.finetune.physics.evaluate`, so the SCR reported for a move is that of a
real, feasible plan, not an estimate.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mecllm.core.arrays import FloatArray, IntArray
from mecllm.core.options import ProgressCallback, SolveOptions
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.physics import Evaluation, evaluate, phases, weighted_cost
from mecllm.systems.finetune.solution import Plan, SolveResult
from mecllm.systems.finetune.solvers.allocation.barrier import BarrierSurrogate, kernels_for
from mecllm.systems.finetune.solvers.allocation.surrogate import (
    Shares,
    SurrogateTerms,
    fp_weights,
    surrogate_terms,
)
from mecllm.systems.finetune.solvers.result import finish

#: The per-user fields of :class:`SurrogateTerms` (gathered row by row for the pieces).
_PER_USER = tuple(
    f.name
    for f in dataclasses.fields(SurrogateTerms)
    if f.name not in ("n_servers", "assignment", "service", "norm", "delay_price")
)

#: The barrier's stopping duality gap in a screen (relative; the exact score comes after).
SCREEN_GAP = 1e-2
#: Share of the moves whose piece must be centred before the barrier parameter rises.
SCREEN_QUORUM = 0.95
#: Newton decrement below which a piece counts as centred in a screen.
SCREEN_CENTRED = 1e-5
#: A move is taken when it raises the SCR by more than this share.
_ACCEPT = 1e-4
#: Improving moves of one screen re-screened alone after the best is taken.
SHORTLIST = 8


@dataclass(frozen=True)
class Move:
    """One screened move: ``user`` joins ``server`` with split ``phi``; ``plan`` is feasible,
    ``scr`` exact."""

    user: int
    server: int
    phi: float
    plan: Plan
    scr: float
    kind: int = 0

    @property
    def key(self) -> tuple[int, int, int]:
        """(user, server, phi variant: 0 the plan's, 1 zero, 2 one), for :func:`screen_moves`."""
        return (self.user, self.server, self.kind)


@dataclass(frozen=True)
class _Pieces:
    """The stacked pieces. Row r is real user ``users[r]`` on real server ``servers[r]`` with
    the split of variant ``variant[r]`` (0: the plan's phi, 1: phi = 0, 2: phi = 1), in piece
    ``piece[r]``; ``start`` holds the starting shares, (R, 5). Piece p belongs to move
    ``move_of[p]``; move g is ``moves[g]`` = (user, server, variant), its delay bound is
    floored at ``floor[g]`` (scaled) and the servers it leaves alone have delay
    ``others_delay[g]`` (s; 0 if there are none)."""

    users: IntArray
    servers: IntArray
    variant: IntArray
    piece: IntArray
    start: FloatArray
    move_of: IntArray
    floor: FloatArray
    others_delay: FloatArray
    moves: list[tuple[int, int, int]]

    @property
    def bounds(self) -> IntArray:
        """(G + 1,) move g's rows are ``bounds[g]:bounds[g + 1]`` (a move's pieces are
        consecutive)."""
        row_move = self.move_of[self.piece]
        out: IntArray = np.searchsorted(row_move, np.arange(len(self.moves) + 1))
        return out


def _matrix(s: Shares) -> FloatArray:
    """(N, 5) the shares as columns (beta, pi, kappa, f, sigma)."""
    return np.stack([s.beta, s.pi, s.kappa, s.f, s.sigma], axis=1)


def _share_matrix(instance: Instance, plan: Plan) -> FloatArray:
    return _matrix(Shares.of(instance, plan))


def _keys(plan: Plan, n_servers: int) -> list[tuple[int, int, int]]:
    """Every move (user, server, variant) of ``plan``: each user to each other server, with
    each distinct phi among its own, 0 and 1."""
    out: list[tuple[int, int, int]] = []
    for n, (home, own) in enumerate(zip(plan.assignment, plan.phi, strict=True)):
        phis = [own, 0.0, 1.0]
        kinds = [v for v in range(3) if all(abs(phis[v] - phis[u]) > 1e-9 for u in range(v))]
        out += [(n, b, kind) for b in range(n_servers) if b != home for kind in kinds]
    return out


def _pieces(
    instance: Instance,
    plan: Plan,
    delay: FloatArray,
    t_ref: float,
    only: set[tuple[int, int, int]] | None,
) -> _Pieces | None:
    """For every user n, server b != a(n) and distinct phi_n among the plan's, 0 and 1 (or
    those of ``only``): the piece "a(n) without n" (if anyone stays) and the piece "b with n".
    None when there is no such move."""
    a = plan.assignment
    n_servers = instance.n_servers
    current = _share_matrix(instance, plan)
    on = [np.flatnonzero(a == m) for m in range(n_servers)]
    server_delay = np.array([delay[u].max() if u.size else -np.inf for u in on])
    users: list[IntArray] = []
    servers: list[IntArray] = []
    variants: list[IntArray] = []
    starts: list[FloatArray] = []
    move_of: list[int] = []
    slowest_others: list[float] = []
    moves: list[tuple[int, int, int]] = []

    def add(rows: IntArray, server: int, variant: IntArray, start: FloatArray) -> None:
        users.append(rows)
        servers.append(np.full(rows.size, server))
        variants.append(variant)
        starts.append(start)
        move_of.append(len(moves))

    for n, b, kind in _keys(plan, n_servers) if only is None else sorted(only):
        stay = on[a[n]][on[a[n]] != n]
        k = on[b].size
        share = current[on[b]].copy()
        share[:, [0, 2, 4]] *= k / (k + 1.0)
        newcomer = current[n].copy()
        newcomer[[0, 2, 4]] = 1.0 / (k + 1.0)
        others = np.delete(server_delay, [a[n], b])
        if stay.size:
            add(stay, int(a[n]), np.zeros(stay.size, np.int64), current[stay])
        add(
            np.append(on[b], n),
            b,
            np.append(np.zeros(k, np.int64), kind),
            np.vstack([share, newcomer]),
        )
        moves.append((n, b, kind))
        slowest_others.append(float(others.max()) if others.size else -np.inf)
    if not moves:
        return None
    sizes = [u.size for u in users]
    return _Pieces(
        users=np.concatenate(users).astype(np.int64),
        servers=np.concatenate(servers).astype(np.int64),
        variant=np.concatenate(variants).astype(np.int64),
        piece=np.repeat(np.arange(len(users)), sizes),
        start=np.vstack(starts),
        move_of=np.array(move_of, dtype=np.int64),
        floor=np.array(slowest_others) / t_ref,
        others_delay=np.maximum(np.array(slowest_others), 0.0),
        moves=moves,
    )


def _stacked_terms(
    instance: Instance, plan: Plan, pieces: _Pieces, y: float, t_ref: float, scale: float
) -> SurrogateTerms:
    """One surrogate whose servers are the pieces: row r holds user ``pieces.users[r]``'s terms
    on its real server for its variant's phi. Terms are built once per (variant, server) that
    some row needs, so a short list of moves costs O(N) per server it touches, not O(N M)."""
    n = instance.n_users
    phis = (plan.phi, np.zeros(n), np.ones(n))
    fields: dict[str, Any] = {}
    first: SurrogateTerms | None = None
    combos = np.unique(np.stack([pieces.variant, pieces.servers]), axis=1)
    for variant, server in combos.T:
        moved = plan.replace(assignment=np.full(n, server), phi=phis[variant])
        terms = surrogate_terms(instance, moved, y, t_ref, scale)
        if first is None:
            first = terms
            fields = {
                name: np.empty(pieces.users.size, dtype=getattr(terms, name).dtype)
                for name in _PER_USER
            }
        rows = np.flatnonzero((pieces.variant == variant) & (pieces.servers == server))
        for name in _PER_USER:
            fields[name][rows] = getattr(terms, name)[pieces.users[rows]]
    assert first is not None
    return SurrogateTerms(
        n_servers=int(pieces.piece.max()) + 1,
        assignment=pieces.piece,
        service=first.service,
        norm=first.norm,
        delay_price=first.delay_price,
        **fields,
    )


def _to_shares(matrix: FloatArray) -> Shares:
    return Shares(*(matrix[:, k] for k in range(5)))


def screen_moves(
    instance: Instance,
    plan: Plan,
    rounds: int = 1,
    gap: float = SCREEN_GAP,
    only: set[tuple[int, int, int]] | None = None,
    best: int | None = None,
) -> list[Move]:
    """Every single-user move of ``plan`` with both servers' resources re-split; best first.
    ``only``: screen just these moves (keys as :attr:`Move.key`); ``best``: return only that
    many, the best by the vectorised exact score of their pieces (every move is scored so;
    only those returned have their plan assembled and checked by
    :func:`mecllm.systems.finetune.physics.evaluate`).

    ``rounds`` is the number of fractional-programming weight updates (one barrier solve of
    the stacked pieces each), ``gap`` the barrier's stopping duality gap. Moves whose assembled
    plan is infeasible are left out.
    """
    report = evaluate(instance, plan)
    if not report.feasible:
        raise ValueError("screen_moves needs a feasible plan")
    if instance.n_servers < 2:
        return []
    y = report.scr
    t_ref = max(report.delay_s, 1e-9)
    scale = max(abs(report.service), abs(y * report.cost), 1e-9)
    pieces = _pieces(instance, plan, report.user_delay_s, t_ref, only)
    if pieces is None:
        return []
    terms = _stacked_terms(instance, plan, pieces, y, t_ref, scale)
    barrier = BarrierSurrogate(
        terms,
        server_group=pieces.move_of,
        tau_floor=pieces.floor,
        gap=gap,
        quorum=SCREEN_QUORUM,
        centred=SCREEN_CENTRED,
        kernels=kernels_for(instance.n_users),
    )
    shares = _to_shares(pieces.start)
    for _ in range(rounds):
        found, _status = barrier.solve(fp_weights(terms, shares), shares)
        if found is None:
            break
        shares = found
    solved = _matrix(shares)
    order = np.argsort(-_scores(instance, report, pieces, terms, solved), kind="stable")
    chosen = order if best is None else order[:best]
    return _assemble(instance, plan, pieces, solved, y, t_ref, scale, chosen)


def _scores(
    instance: Instance,
    report: Evaluation,
    pieces: _Pieces,
    terms: SurrogateTerms,
    solved: FloatArray,
) -> FloatArray:
    """(G,) each move's exact SCR, from its pieces' rows alone (no plan is built).

    A move changes only its pieces' users, so its service and energy are the plan's totals
    (``report``) with those users' figures replaced by the rows', and its delay is the larger
    of the rows' and of the servers the move leaves alone.
    """
    rows = _to_shares(solved).to_plan(instance, terms, (pieces.users, pieces.servers))
    figures = phases(instance, rows, pieces.users)
    energy_now = report.energies.sum(axis=0)
    first = pieces.bounds[:-1]
    users = pieces.users
    service = report.service + np.add.reduceat(figures.service - report.user_service[users], first)
    energy = report.energy_j + np.add.reduceat(figures.energy - energy_now[users], first)
    delay = np.maximum(np.maximum.reduceat(figures.delay, first), pieces.others_delay)
    cost = weighted_cost(instance, delay, energy)
    with np.errstate(all="ignore"):
        scr = np.where(np.isfinite(cost) & (cost > 0), service / cost, -np.inf)
    out: FloatArray = np.where(np.isfinite(scr), scr, -np.inf)
    return out


def _assemble(
    instance: Instance,
    plan: Plan,
    pieces: _Pieces,
    solved: FloatArray,
    y: float,
    t_ref: float,
    scale: float,
    chosen: IntArray,
) -> list[Move]:
    """The plans of moves ``chosen`` (indices into ``pieces.moves``) from their pieces, each
    scored exactly by :func:`evaluate`; best first, infeasible ones left out."""
    current = _share_matrix(instance, plan)
    bounds = pieces.bounds
    moves: list[Move] = []
    for g in chosen:
        user, server, kind = pieces.moves[g]
        rows = slice(bounds[g], bounds[g + 1])
        shares = current.copy()
        shares[pieces.users[rows]] = solved[rows]
        assignment = plan.assignment.copy()
        assignment[user] = server
        phi = plan.phi.copy()
        phi[user] = (plan.phi[user], 0.0, 1.0)[kind]
        moved = plan.replace(assignment=assignment, phi=phi)
        terms = surrogate_terms(instance, moved, y, t_ref, scale)
        candidate = _to_shares(shares).to_plan(instance, terms)
        result = evaluate(instance, candidate)
        if result.feasible:
            moves.append(Move(user, server, float(phi[user]), candidate, result.scr, kind))
    moves.sort(key=lambda move: -move.scr)
    return moves


def screen_rows(instance: Instance) -> int:
    """Rows of one screen's stacked problem, about 2 N^2 (M - 1) / M (for budgeting)."""
    n, m = instance.n_users, instance.n_servers
    return int(2 * n * (m - 1) * (2 * n / m + 1))


def improve_by_moves(
    instance: Instance,
    plan: Plan,
    deadline: float,
    max_moves: int = 100,
    progress: ProgressCallback | None = None,
    full_screens: int | None = None,
) -> tuple[Plan, list[dict[str, Any]]]:
    """Best-improvement local search over :func:`screen_moves`.

    After a move is taken, the other moves that raised the SCR in the same screen (up to
    :data:`SHORTLIST`, the mover's excluded) are re-screened alone on the new plan, which is
    far cheaper than a full screen; a full screen runs when none of them still improves, and
    the search stops when a full screen finds nothing, ``max_moves`` are taken or
    ``time.perf_counter()`` passes ``deadline``, or, with ``full_screens``, when that many
    full screens have run and a move was taken. Returns the final plan (never worse than
    ``plan``) and one record per screen (each also passed to ``progress``).
    """
    current, scr = plan, evaluate(instance, plan).scr
    history: list[dict[str, Any]] = []
    shortlist: set[tuple[int, int, int]] | None = None
    taken, full = 0, 0
    while taken < max_moves and time.perf_counter() < deadline:
        if shortlist is None:
            if full_screens is not None and full >= full_screens and taken:
                break
            full += 1
        started = time.perf_counter()
        moves = screen_moves(instance, current, only=shortlist, best=SHORTLIST + 1)
        record: dict[str, Any] = {
            "stage": "move screen" if shortlist is None else "shortlist screen",
            "moves_screened": len(moves),
            "screen_s": time.perf_counter() - started,
        }
        better = [m for m in moves if m.scr > scr * (1 + _ACCEPT)]
        if not better:
            record["y"] = scr
            history.append(record)
            if progress is not None:
                progress(record)
            if shortlist is None:
                break
            shortlist = None
            continue
        best = better[0]
        current, scr, taken = best.plan, best.scr, taken + 1
        record.update(y=scr, moved_user=best.user, to_server=best.server, phi=best.phi)
        history.append(record)
        if progress is not None:
            progress(record)
        shortlist = {m.key for m in better[1 : SHORTLIST + 1] if m.user != best.user} or None
    return current, history


#: Largest :func:`screen_rows` for which :func:`with_move_search` searches (about 50x5 on the
#: paper scenario; one screen there takes seconds).
MAX_SCREEN_ROWS = 10_000
#: Rounds of (one full move screen and its shortlist, one AO iteration from its end point).
#: One round keeps dashf-scale at about 0.5 s at 20x3; measured on the paper scenario
#: (10x2 and 20x3, seeds 0-4), up to 12 rounds (until a screen finds nothing) raised the
#: final SCR by 0-7% (median 1.7%) for 2-4x the time.
MOVE_ROUNDS = 1


def with_move_search(
    instance: Instance,
    name: str,
    first: SolveResult,
    rerun: Callable[[Plan], SolveResult],
    options: SolveOptions,
    started: float,
    polish: Callable[[Plan], tuple[Plan, dict[str, Any]]] | None = None,
) -> SolveResult:
    """``first`` (the AO loop's result) improved by rounds of :func:`improve_by_moves` (one full
    screen and its shortlist each), each followed by ``rerun`` (AO from the moved plan), until
    a full screen finds no move, :data:`MOVE_ROUNDS` or the time limit; then ``polish`` (a
    final step on the best plan, kept if it raises the SCR).

    ``dashf-scale`` calls it up to :data:`MAX_SCREEN_ROWS` only (above, the short list of
    :mod:`move_shortlist` runs instead). With one server there is no move.
    """
    if instance.n_servers < 2:
        return dataclasses.replace(first, message=first.message + "; no move (one server)")
    deadline = options.with_deadline().deadline or started + options.time_limit_s
    best = first.plan
    history = list(first.history)
    taken = 0
    for _ in range(MOVE_ROUNDS):
        best, records = improve_by_moves(
            instance, best, deadline, progress=options.progress, full_screens=1
        )
        history += records
        moved = sum("moved_user" in r for r in records)
        taken += moved
        if not moved or time.perf_counter() >= deadline:
            break
        again = rerun(best)
        history += [dict(r, stage="AO loop after moves") for r in again.history]
        best = again.plan  # the loop returns the best plan it saw, its start included
    if polish is not None:
        polished, record = polish(best)
        history.append(dict(record, stage="final polish"))
        if evaluate(instance, polished).scr > evaluate(instance, best).scr:
            best = polished
    return finish(
        instance,
        name,
        best,
        started,
        status=first.status,
        message=f"{first.message}; move search took {taken} single-user moves",
        iterations=len(history),
        history=history,
    )
