"""The scalable association step: AO part 1 by a scan over the delay bound T.

For a fixed T the part-1 problem (see :mod:`mecllm.solvers.part1`) separates by user except
for the servers' caps: user n on server m pays ``B_nm + phi G_nm`` with phi in the interval that
keeps its delay ``base_nm + phi slope_nm`` within T, so its best phi is an end of that interval
and its cost on every server is known in closed form (one (N, M) array operation). Starting from
the current association (always within the caps), users then move, largest gain first, to their
cheapest server that still has room for them; a few passes settle it. The objective
``y w_t T + sum of costs`` is evaluated on a grid of T values between the smallest T any
association allows and the current delay, and the best association wins; its phi and T are
then re-solved exactly by the phi LP.

Work is O(grid x N x M) plus the moves, with no solver; ``benchmarks/scale.py`` prints the gap
of its part-1 objective to the exact MILP where the MILP finishes.
"""

from __future__ import annotations

import time

import numpy as np

from mecllm.checks import FloatArray
from mecllm.solution import IntArray
from mecllm.solvers.part1 import MilpResult, PairCosts, _phi_interval, optimal_phi

#: Relative slack on the caps, as in the MILP.
_CAP_RTOL = 1e-9
#: Passes of moves per T.
_PASSES = 3


def _costs_at(costs: PairCosts, t: float) -> FloatArray:
    """(N, M) cost of each pair with its best phi under the delay bound ``t`` (+inf where no
    phi fits)."""
    lo, hi = _phi_interval(costs.delay_base, costs.delay_slope, costs.phi_cap, t)
    phi = np.where(costs.slope_cost < 0, hi, lo)
    value: FloatArray = np.where(lo <= hi + 1e-12, costs.constant + phi * costs.slope_cost, np.inf)
    return value


class _Loads:
    """Each server's used bandwidth, power and compute, updated one user at a time (plain
    Python floats: the loops below touch three numbers per move)."""

    def __init__(self, costs: PairCosts, assignment: IntArray):
        n, m = costs.shape
        rows = np.arange(n)
        self.usage = costs.usage
        self.used = np.stack(
            [
                np.bincount(assignment, weights=costs.usage[k][rows, assignment], minlength=m)
                for k in range(3)
            ]
        ).T.tolist()
        self.room = (costs.capacity * (1 + _CAP_RTOL)).T.tolist()

    def fits(self, user: int, server: int) -> bool:
        used, room, usage = self.used[server], self.room[server], self.usage
        return all(used[k] + usage[k, user, server] <= room[k] for k in range(3))

    def over(self, server: int) -> bool:
        return any(u > r for u, r in zip(self.used[server], self.room[server], strict=True))

    def move(self, user: int, frm: int, to: int) -> None:
        for k in range(3):
            self.used[frm][k] -= float(self.usage[k, user, frm])
            self.used[to][k] += float(self.usage[k, user, to])


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


def _repair(costs: PairCosts, pair: FloatArray) -> IntArray | None:
    """Each user's cheapest server, then users leave over-full servers, cheapest regret
    first, for their cheapest other server with room. None when some user has nowhere to go."""
    rows = np.arange(pair.shape[0])
    assignment: IntArray = np.argmin(pair, axis=1).astype(np.int64)
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
        for j in np.argsort(regret, kind="stable").tolist():
            if not loads.over(server):
                break
            user = int(members[j])
            for to in choices[j].tolist():
                if not np.isfinite(others[j, to]):
                    break
                if to != server and loads.fits(user, to):
                    loads.move(user, server, to)
                    assignment[user] = to
                    break
        if loads.over(server):
            return None
    return assignment


def solve_by_threshold(costs: PairCosts, current: IntArray, grid: int = 48) -> MilpResult:
    """Part 1 by the T scan, from the association ``current`` (which must fit the caps).

    Returns the same record as the MILP (``bound`` and ``gap`` are NaN: there is no bound)
    with status ``"heuristic"``.
    """
    started = time.perf_counter()
    n = current.shape[0]
    rows = np.arange(n)
    # Smallest T any association allows: each user's fastest pair; largest useful: today's.
    fastest = np.minimum(costs.delay_base, costs.delay_base + costs.delay_slope * costs.phi_cap)
    t_low = float(np.max(np.min(fastest, axis=1)))
    phi_now, _ = optimal_phi(costs, current)
    t_now = float(
        np.max(costs.delay_base[rows, current] + phi_now * costs.delay_slope[rows, current])
    )
    t_high = max(t_now, t_low)
    candidates = np.unique(
        np.concatenate([np.geomspace(max(t_low, 1e-300), t_high, grid), [t_now]])
    )
    best_assignment, best_value = current.copy(), costs.objective(current, phi_now)
    for t in candidates:
        pair = _costs_at(costs, float(t))
        # From today's association (users whose pair misses T have an infinite gain and
        # move first) and from every user's cheapest server, repaired into the caps.
        repaired = _repair(costs, pair)
        starts = [current] if repaired is None else [current, repaired]
        for assignment in (_moves(costs, pair, start) for start in starts):
            if assignment is None or not np.all(np.isfinite(pair[rows, assignment])):
                continue
            value = costs.delay_weight * t + float(np.sum(pair[rows, assignment]))
            if value < best_value - 1e-12 * abs(best_value):
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
