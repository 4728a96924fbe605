"""The scalable association step: AO part 1 by a scan over the delay bound T.

For a fixed T the part-1 problem (see :mod:`pricing`) separates by user except
for the servers' caps: user n on server m pays ``B_nm + phi G_nm`` with phi in the interval that
keeps its delay ``base_nm + phi slope_nm`` within T, so its best phi is an end of that interval
and its cost on every server is known in closed form (one (N, M) array operation). Three
associations are then built and improved by moves (users move, largest gain first, to their
cheapest server that still has room; a few passes settle it): the current one (always within
the caps), every user's cheapest server repaired into the caps (users leave over-full servers,
smallest regret first), and, where the matrix is small enough, the min-cost matching of users
to server slots (``scipy.optimize.linear_sum_assignment``; a server has as many slots as users
fit its caps), repaired. The objective ``y w_t T + sum of costs`` is evaluated on a grid of T
values between the smallest T any association allows and the current delay, then at the
breakpoints (delays where some pair's best phi changes end) next to the best grid point; the
best association wins, and its phi and T are re-solved exactly by the phi LP.

Work is O(grid x N x M) plus the moves and matchings, with no MILP solver;
``benchmarks/scale.py`` prints the gap of its part-1 objective to the exact MILP where the MILP
finishes (0 at 50x5 and 300x10 once the matching was added; it was 0.2% and 0.04% without).
"""

from __future__ import annotations

import time
from types import ModuleType

import numpy as np

from mecllm.core.arrays import BoolArray, FloatArray, IntArray
from mecllm.systems.finetune.solvers.association.milp import MilpResult
from mecllm.systems.finetune.solvers.association.pricing import (
    PairCosts,
    optimal_phi,
    phi_interval,
    server_slots,
)

#: Relative slack on the caps, as in the MILP.
_CAP_RTOL = 1e-9
#: Pairs (N x M) above which the load checks run compiled (:mod:`load_kernels`). The scan
#: runs above the MILP's 300 pairs; at 1000 x 20 its Python loops cost seconds.
_COMPILED_PAIRS = 1_000
#: Passes of moves per T.
_PASSES = 3
#: Largest users x server-slots matrix matched at every T of the grid, and at the T values
#: near the best one (one matching of 1000 users x 1020 slots takes about 0.15 s).
_MATCH_ALL = 200_000
_MATCH_NEAR = 400_000


def costs_at(costs: PairCosts, t: float) -> FloatArray:
    """(N, M) cost of each pair with its best phi under the delay bound ``t`` (+inf where no
    phi fits)."""
    lo, hi = phi_interval(costs.delay_base, costs.delay_slope, costs.phi_cap, t)
    phi = np.where(costs.slope_cost < 0, hi, lo)
    value: FloatArray = np.where(lo <= hi + 1e-12, costs.constant + phi * costs.slope_cost, np.inf)
    return value


class _Loads:
    """Each server's used bandwidth, power and compute, updated one user at a time. Above
    :data:`_COMPILED_PAIRS` pairs the checks and updates run compiled
    (:mod:`load_kernels`), since the repair makes millions of them at 10,000 users; below
    it, in Python, which spares a small solve numba's start-up."""

    def __init__(self, costs: PairCosts, assignment: IntArray):
        n, m = costs.shape
        rows = np.arange(n)
        self.usage: FloatArray = np.ascontiguousarray(costs.usage, dtype=np.float64)
        self.used: FloatArray = np.ascontiguousarray(
            np.stack(
                [
                    np.bincount(assignment, weights=costs.usage[k][rows, assignment], minlength=m)
                    for k in range(3)
                ]
            ).T,
            dtype=np.float64,
        )
        self.room: FloatArray = np.ascontiguousarray((costs.capacity * (1 + _CAP_RTOL)).T)
        self.compiled: ModuleType | None = None
        if n * m > _COMPILED_PAIRS:
            from mecllm.systems.finetune.solvers.association import load_kernels

            self.compiled = load_kernels

    def fits(self, user: int, server: int) -> bool:
        if self.compiled is not None:
            return bool(self.compiled.fits(self.used, self.room, self.usage, user, server))
        return bool(np.all(self.used[server] + self.usage[:, user, server] <= self.room[server]))

    def over(self, server: int) -> bool:
        if self.compiled is not None:
            return bool(self.compiled.over(self.used, self.room, server))
        return bool(np.any(self.used[server] > self.room[server]))

    def move(self, user: int, frm: int, to: int) -> None:
        if self.compiled is not None:
            self.compiled.move(self.used, self.usage, user, frm, to)
            return
        self.used[frm] -= self.usage[:, user, frm]
        self.used[to] += self.usage[:, user, to]

    def empty_server(
        self,
        server: int,
        members: IntArray,
        choices: IntArray,
        finite: BoolArray,
        order: IntArray,
        assignment: IntArray,
    ) -> None:
        """Members of an over-full ``server`` leave, in ``order``, each for the first server
        of its ``choices`` (cheapest first, while finite) that has room, until it fits."""
        if self.compiled is not None:
            self.compiled.empty_server(
                server,
                members,
                choices,
                finite,
                order,
                self.used,
                self.room,
                self.usage,
                assignment,
            )
            return
        for j in order.tolist():
            if not self.over(server):
                return
            user = int(members[j])
            for to in choices[j].tolist():
                if not finite[j, to]:
                    break
                if to != server and self.fits(user, to):
                    self.move(user, server, to)
                    assignment[user] = to
                    break


def _moves(costs: PairCosts, pair: FloatArray, current: IntArray) -> IntArray:
    """Users move from ``current`` to cheaper servers with room, largest gain first."""
    rows = np.arange(current.shape[0])
    assignment = current.copy()
    loads = _Loads(costs, assignment)
    for _ in range(_PASSES):
        target = np.argmin(pair, axis=1)
        with np.errstate(invalid="ignore"):
            gain = pair[rows, assignment] - pair[rows, target]
        order = np.flatnonzero(gain > 0)  # NaN (no server fits T) never moves
        moved = 0
        for i in order[np.argsort(-gain[order], kind="stable")].tolist():
            to = int(target[i])
            if loads.fits(i, to):
                loads.move(i, int(assignment[i]), to)
                assignment[i] = to
                moved += 1
        if not moved:
            break
    return assignment


def _repair(costs: PairCosts, pair: FloatArray, start: IntArray) -> IntArray | None:
    """From ``start``, users leave over-full servers, cheapest regret first, for their
    cheapest other server with room. None when some user has nowhere to go."""
    rows = np.arange(pair.shape[0])
    assignment: IntArray = start.astype(np.int64)
    if not np.all(np.isfinite(pair[rows, assignment])):
        return None
    loads = _Loads(costs, assignment)
    for server in range(pair.shape[1]):
        if not loads.over(server):
            continue
        members = np.flatnonzero(assignment == server)
        others = pair[members].copy()
        others[:, server] = np.inf
        choices = np.argsort(others, axis=1)  # each member's other servers, cheapest first
        regret = others[np.arange(len(members)), choices[:, 0]] - pair[members, server]
        loads.empty_server(
            server,
            members.astype(np.int64),
            np.ascontiguousarray(choices, dtype=np.int64),
            np.isfinite(others),
            np.argsort(regret, kind="stable").astype(np.int64),
            assignment,
        )
        if loads.over(server):
            return None
    return assignment


def _matched(pair: FloatArray, slots: IntArray) -> IntArray:
    """The cheapest association when server m holds ``slots[m]`` users (as many as fit its
    caps at the smallest usages; a min-cost matching to server slots,
    ``linear_sum_assignment``); it may still break a cap, so :func:`_repair` follows."""
    columns = np.repeat(np.arange(pair.shape[1]), slots)
    finite = np.isfinite(pair)
    big = 2.0 * float(np.max(np.abs(pair[finite]))) + 1.0 if finite.any() else 1.0
    matrix = np.where(finite, pair, big)[:, columns]
    from scipy.optimize import linear_sum_assignment  # 0.25 s to import: only when used

    rows, cols = linear_sum_assignment(matrix)
    out: IntArray = np.argmin(np.where(finite, pair, np.inf), axis=1).astype(np.int64)
    out[rows] = columns[cols]
    return out


def _best_at(
    costs: PairCosts, current: IntArray, t: float, slots: IntArray | None = None
) -> tuple[float, IntArray | None]:
    """The scan's objective and association for the delay bound ``t`` (inf, None if nothing
    fits): moves from ``current`` and from every user's cheapest server repaired into the
    caps (users whose pair misses ``t`` have an infinite gain and move first); given
    ``slots``, also from the min-cost matching to server slots, repaired."""
    rows = np.arange(current.shape[0])
    pair = costs_at(costs, t)
    firsts = [np.argmin(pair, axis=1)]
    if slots is not None:
        firsts.append(_matched(pair, slots))
    starts = [current]
    for first in firsts:
        repaired = _repair(costs, pair, first)
        if repaired is not None:
            starts.append(repaired)
    best_value, best = np.inf, None
    for assignment in (_moves(costs, pair, start) for start in starts):
        if not np.all(np.isfinite(pair[rows, assignment])):
            continue
        value = costs.delay_weight * t + float(np.sum(pair[rows, assignment]))
        if value < best_value:
            best_value, best = value, assignment
    return best_value, best


def solve_by_threshold(costs: PairCosts, current: IntArray, grid: int = 48) -> MilpResult:
    """Part 1 by the T scan, from the association ``current`` (which must fit the caps).

    T runs over a geometric grid between the smallest T any association allows and today's,
    then (where the slot matching is affordable) over the breakpoints (the delays at which
    some pair's best phi changes end) between the best grid point's neighbours, at most
    ``grid`` of them.

    Returns the same record as the MILP (``bound`` and ``gap`` are NaN: there is no bound)
    with status ``"heuristic"``.
    """
    started = time.perf_counter()
    n = current.shape[0]
    rows = np.arange(n)
    # Smallest T any association allows: each user's fastest pair; largest useful: today's.
    ends = np.stack([costs.delay_base, costs.delay_base + costs.delay_slope * costs.phi_cap])
    t_low = float(np.max(np.min(ends.min(axis=0), axis=1)))
    phi_now, _ = optimal_phi(costs, current)
    t_now = float(
        np.max(costs.delay_base[rows, current] + phi_now * costs.delay_slope[rows, current])
    )
    t_high = max(t_now, t_low)
    coarse = np.unique(np.concatenate([np.geomspace(max(t_low, 1e-300), t_high, grid), [t_now]]))
    best_assignment, best_value = current.copy(), costs.objective(current, phi_now)
    slots = np.array([server_slots(costs, j) for j in range(costs.shape[1])])
    cells = n * int(slots.sum())  # matching matrix size
    values = np.full(coarse.size, np.inf)
    for i, t in enumerate(coarse):
        every = slots if cells <= _MATCH_ALL else None
        values[i], assignment = _best_at(costs, current, float(t), every)
        if assignment is not None and values[i] < best_value - 1e-12 * abs(best_value):
            best_assignment, best_value = assignment, values[i]
    if np.isfinite(values).any() and cells <= _MATCH_NEAR:
        i = int(np.argmin(values))
        lo, hi = coarse[max(i - 1, 0)], coarse[min(i + 1, coarse.size - 1)]
        inside = np.unique(ends[(ends > lo) & (ends < hi)])
        if inside.size > grid:
            inside = inside[np.linspace(0, inside.size - 1, grid).astype(int)]
        for t in np.append(inside, coarse[i]):
            value, assignment = _best_at(costs, current, float(t), slots)
            if assignment is not None and value < best_value - 1e-12 * abs(best_value):
                best_assignment, best_value = assignment, value
    phi, value = optimal_phi(costs, best_assignment)
    return MilpResult(
        best_assignment,
        phi,
        value,
        float("nan"),
        float("nan"),
        "heuristic",
        time.perf_counter() - started,
    )
