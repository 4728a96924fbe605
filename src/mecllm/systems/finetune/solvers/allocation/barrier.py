"""A vectorised Newton barrier method for the part-2 surrogate (the scalable allocation step).

The surrogate of :class:`surrogate.SurrogateTerms` (fixed quadratic-transform
weights) is convex and almost separable: each user has five shares (beta, pi, kappa, f, sigma),
and users are coupled only by the shared delay bound tau and by their server's three caps. The
barrier method minimises

    t * (-objective) - sum_n log(tau - D_n) - sum_{m,k} log(1 - sum_{n in m} x_nk)
                     - sum_{n,i} [log x_ni + log(upper_ni - x_ni)]

for a rising t (x20 per centring, until the duality-gap bound, constraints / t, is 1e-7 of the
scaled objective).
Its Newton system is block diagonal (one 5x5 block per user) plus one rank-one term per delay
constraint (coupling the user to tau) and three rank-one terms per server. Eliminating the user
blocks leaves one 3x3 system per server and one scalar equation for tau, so a Newton step costs
O(N) and the whole solve needs no generic conic solver. Everything per user (the surrogate's
terms, the barrier, building and solving the 5x5 blocks) runs in the compiled kernels of
:mod:`barrier_kernels`; the per-server and per-group algebra stays in NumPy.

The Hessian is scaled primal-dual fashion: each constraint's curvature is weighted by a dual
estimate that is stepped alongside the primal variables, not by the barrier's own ``1 /
slack``. With pure barrier weights, the one user whose delay sets T sits at a tiny slack and
its ``1 / slack^2`` term limits every Newton step to crawl along that constraint (measured on
1000 users: 60 Newton steps per centring, never centred); with the duals it centres. Steps keep
at least a tenth of every slack (box, caps, delays), and an Armijo search on the barrier
function makes each step a descent step.

Many independent problems can share one solve (the move screen of
:mod:`moves` stacks one per candidate move): servers are put into groups, each
group has its own delay bound (optionally floored), and decrements, step lengths, dual steps
and the line search are per group, so that one slow group does not shorten every group's step;
with a quorum below 1 the barrier parameter rises once that share of groups is centred. The
stopping test is per group too (its own constraint count over t), so that stacking many
problems does not tighten the accuracy each of them is solved to.

It solves the same convex problem as the conic engine: ``tests/test_scale.py`` checks the
optimum against cvxpy on small instances and ``benchmarks/scale.py`` prints the SCR gap
between the two engines where both finish.
"""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np

from mecllm.core.arrays import BoolArray, FloatArray, IntArray
from mecllm.systems.finetune.solvers.allocation import barrier_vectorised
from mecllm.systems.finetune.solvers.allocation.barrier_layout import (
    BETA,
    KAPPA,
    SIGMA,
    coefficients,
)
from mecllm.systems.finetune.solvers.allocation.surrogate import Shares, SurrogateTerms

#: Largest instance (users) whose barrier solves use the NumPy build of the per-user kernels
#: (:mod:`barrier_vectorised`); larger ones use the numba build (:mod:`barrier_kernels`).
#: Numba costs about 0.4 s once per process (importing it, loading the cached kernels); the
#: NumPy build is slower per Newton step. Measured (one process each, the second call timed):
#: a full move screen took 0.13 / 0.10 s (NumPy / numba) at 20x3, 0.28 / 0.20 s at 30x4 and
#: 1.14 / 0.75 s at 50x5; part 2 by the barrier 0.18 / 0.10 s at 60 users and 2.0 / 1.3 s at
#: 300. A small solve runs about two screens, so NumPy wins up to about 30 users.
VECTORISED_USERS = 32


def kernels_for(users: int) -> ModuleType:
    """The build of the per-user kernels for an instance of ``users`` users: the NumPy one up
    to :data:`VECTORISED_USERS`, else the compiled one (numba is imported on first use)."""
    if users <= VECTORISED_USERS:
        return barrier_vectorised
    from mecllm.systems.finetune.solvers.allocation import barrier_kernels

    return barrier_kernels


#: The shares that count against a server cap, in the order of the caps.
CAPPED = (BETA, KAPPA, SIGMA)
#: Barrier parameter growth per centring step (default), and the final duality-gap bound (the
#: objective is scaled to magnitude about 1, so this is a relative accuracy).
_GROWTH = 20.0
_GAP = 1e-7
_MAX_NEWTON = 60
#: Backtracking halvings per Newton step when many groups share one solve.
_HALVINGS = 3
#: Newton decrement (lambda^2 / 2) below which a centring step is done: an absolute floor,
#: and a multiple of the barrier value below which double precision cannot see a decrease.
_CENTRED = 1e-9
_ROUNDING = 1e-13
#: Interior start: shares are pulled at least this far inside their bounds.
_MARGIN = 1e-2
#: Share of each slack (box, caps, delays) a Newton step must leave.
_KEEP = 0.1


def _by_server(values: FloatArray, server: IntArray, count: int) -> FloatArray:
    """Sum per-user arrays (first axis) over each server's users: shape (count, ...)."""
    flat = values.reshape(values.shape[0], -1)
    out = np.stack(
        [np.bincount(server, weights=flat[:, j], minlength=count) for j in range(flat.shape[1])],
        axis=1,
    )
    return out.reshape((count, *values.shape[1:]))


class BarrierSurrogate:
    """The surrogate of one (x, phi, y), solved by the barrier method for each FP weight set."""

    def __init__(
        self,
        terms: SurrogateTerms,
        server_group: IntArray | None = None,
        tau_floor: FloatArray | None = None,
        gap: float = _GAP,
        quorum: float = 1.0,
        centred: float = _CENTRED,
        growth: float = _GROWTH,
        kernels: ModuleType | None = None,
    ):
        """``terms``: the surrogate. ``server_group`` (M,): optional independent groups of
        servers, each with its own delay bound tau_g (default: one group, the model's T);
        ``tau_floor`` (G,): optional lower bounds on each tau_g (``-inf``: none), in the
        scaled units of ``terms``. Groups let one solve hold many independent problems.
        ``gap``: the duality-gap bound at which a solve stops (relative to the scaled
        objective; a screen can stop far earlier than the allocation step). ``quorum``: the
        share of groups that must be centred before t rises (below 1, a few slow groups do
        not hold the others up; their answers are then less accurate). ``centred``: the
        Newton decrement (lambda^2 / 2) below which a group counts as centred. ``growth``: the
        factor t rises by after each centring. ``kernels``: the build of the per-user kernels
        (default :func:`kernels_for` the number of rows)."""
        self.terms = terms
        self.growth = growth
        self.gap = gap
        self.quorum = quorum
        self.centred = centred
        n = terms.phi.shape[0]
        self.n = n
        self.kernels = kernels_for(n) if kernels is None else kernels
        ones = np.ones(n)
        self.upper = np.stack(
            [ones, ones, terms.server_upper, ones, terms.server_upper], axis=1
        ).astype(float)
        #: Shares whose upper bound is 0 (server resources of a user with no server work when
        #: they must follow work) are fixed at 0 and left out of the Newton system.
        self.free = self.upper > 1e-12
        self.server = terms.assignment
        self.m = terms.n_servers
        groups = np.zeros(self.m, np.int64) if server_group is None else server_group
        self.server_group = groups
        self.groups = int(groups.max()) + 1
        self.user_group = groups[self.server]
        floor = np.full(self.groups, -np.inf) if tau_floor is None else tau_floor
        self.bounded = np.isfinite(floor)
        self.floor = np.where(self.bounded, floor, 0.0)
        #: Step length each group starts its line search from (see _search).
        self.trust: FloatArray = np.ones(self.groups)
        self.constraints = int(self.free.sum()) * 2 + n + 3 * self.m + int(self.bounded.sum())
        #: Each group's constraint count: its duality-gap bound at barrier parameter t is
        #: this over t (the groups are independent problems; the stopping test is per group).
        self.group_constraints = (
            self._by_group(2.0 * self.free.sum(axis=1) + 1.0)
            + 3.0 * np.bincount(groups, minlength=self.groups)
            + self.bounded
        )

    # ------------------------------------------------------------------ pieces
    def _set_weights(self, weights: tuple[FloatArray, ...]) -> None:
        """The FP weights ``(a_up, c_up, a_dn, c_dn)`` the next solve uses."""
        self.weights = weights
        self.coef = coefficients(self.terms, weights)

    @property
    def _model(self) -> tuple[BoolArray, FloatArray, FloatArray, float, float]:
        """The kernels' description of the problem: which shares are free, their upper
        bounds, the per-user coefficients and the service scalars."""
        return self.free, self.upper, self.coef, self.terms.service, self.terms.norm

    def _rows(self, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(N,) each user's scaled delay and (N,) its part of the surrogate (minimisation
        form), at interior shares ``x`` (N, 5)."""
        kernels = self.kernels
        delay, objective = kernels.delays_objectives(
            x, self.coef, self.terms.service, self.terms.norm
        )
        return delay, objective

    def _objective(self, x: FloatArray, tau: FloatArray) -> float:
        """The surrogate in minimisation form (negated objective), all groups together."""
        return float(np.sum(self._rows(x)[1]) + self.terms.delay_price * np.sum(tau))

    def value(self, weights: tuple[FloatArray, ...], shares: Shares) -> float:
        """The surrogate's objective (maximisation form) at ``shares`` for the FP ``weights``,
        each group's delay bound at its slowest user (for tests and diagnostics)."""
        self._set_weights(weights)
        x = np.stack([shares.beta, shares.pi, shares.kappa, shares.f, shares.sigma], axis=1)
        tau = np.full(self.groups, -np.inf)
        np.maximum.at(tau, self.user_group, self._rows(x)[0])
        return -self._objective(x, tau)

    def _by_group(self, per_user: FloatArray) -> FloatArray:
        """Sum an (N,) array over each group's users: (G,)."""
        out = np.bincount(self.user_group, weights=per_user, minlength=self.groups)
        return out.astype(float)

    def _group_min(self, per_user: FloatArray, per_server: FloatArray) -> FloatArray:
        """(G,) the smallest of each group's entries of an (N,) and an (M,) array."""
        out = np.full(self.groups, np.inf)
        np.minimum.at(out, self.user_group, per_user)
        np.minimum.at(out, self.server_group, per_server)
        return out

    def _cap_slack(self, x: FloatArray) -> FloatArray:
        """(M, 3) one minus each server's used share of bandwidth, power and compute."""
        used = np.stack(
            [np.bincount(self.server, weights=x[:, k], minlength=self.m) for k in CAPPED], axis=1
        )
        slack: FloatArray = (1.0 - used).astype(float)
        return slack

    def _floor_slack(self, tau: FloatArray) -> FloatArray:
        """(G,) each group's tau minus its floor (1 where there is no floor)."""
        slack: FloatArray = np.where(self.bounded, tau - self.floor, 1.0)
        return slack

    def _barrier(
        self, x: FloatArray, tau: FloatArray, t_barrier: float, floor: FloatArray | float = 0.0
    ) -> FloatArray:
        """The barrier function of each group, (G,); +inf for a group outside the interior or
        with a delay slack at ``floor`` or below (the line search keeps each slack above a
        share of its value, so that one step cannot jump next to a nonlinear constraint)."""
        slack = self._cap_slack(x)
        floor_slack = self._floor_slack(tau)
        per_user, bad_user = self.kernels.barrier_rows(
            *self._model, x, tau[self.user_group], np.zeros(self.n) + floor, t_barrier
        )
        bad_server = slack.min(axis=1) <= 0
        per_server = -np.sum(np.log(np.where(bad_server[:, None], 1.0, slack)), axis=1)
        value = (
            self._by_group(per_user)
            + np.bincount(self.server_group, weights=per_server, minlength=self.groups)
            + t_barrier * self.terms.delay_price * tau
            - np.log(np.where(floor_slack > 0, floor_slack, 1.0))
        )
        bad = (
            self._group_min(np.where(bad_user, 0.0, 1.0), np.where(bad_server, 0.0, 1.0)) <= 0
        ) | (floor_slack <= 0)
        out: FloatArray = np.where(bad, np.inf, value)
        return out

    # ------------------------------------------------------------------ Newton step
    def _newton(
        self, x: FloatArray, tau: FloatArray, t_barrier: float
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """The Newton direction (dx, dtau), each group's decrement lambda^2 and the delay
        slacks."""
        fixed, server = ~self.free, self.server
        groups, user_group, server_group = self.groups, self.user_group, self.server_group
        floor_slack = self._floor_slack(tau)
        slack = self._cap_slack(x)
        grad, d_grad, gap, solved = self.kernels.newton_rows(
            *self._model,
            x,
            tau[user_group],
            t_barrier,
            self.dual_delay,
            self.dual_lower,
            self.dual_upper,
            np.ascontiguousarray(1.0 / slack[server]),
        )
        # The derivative in each group's tau of t delay_price tau - sum log(tau - D_n) and of
        # the floor's barrier.
        g_tau = (
            t_barrier * self.terms.delay_price
            - np.bincount(user_group, weights=1.0 / gap, minlength=groups)
            - np.where(self.bounded, 1.0 / floor_slack, 0.0)
        )
        # Unknowns: dx, dtau, one multiplier zeta_n per delay term (zeta_n = (grad D_n . dx_n
        # - dtau) / gap_n^2) and nu_m (3) per server's caps. Eliminate each user's block, then
        # each server's 3x3 system, then solve one scalar equation per group for its dtau.
        # E (N, 5, 3) puts each capped free share into its server's cap row; E^T v picks them.
        capped = list(CAPPED)
        picked = solved[:, capped, :] * self.free[:, capped, None]
        r_g, r_d, r_e = solved[:, :, 0], solved[:, :, 1], solved[:, :, 2:]
        a = np.sum(d_grad * r_g, axis=1)  # grad D^T H^-1 g
        delta = np.sum(d_grad * r_d, axis=1) + gap / self.dual_delay
        b = picked[:, :, 1]  # E^T H^-1 grad D, (N, 3)
        e_r_e = picked[:, :, 2:]  # E^T H^-1 E, (N, 3, 3)
        e_r_g = picked[:, :, 0]
        b_over = b / delta[:, None]
        a_m = _by_server(e_r_e - b[:, :, None] * b_over[:, None, :], server, self.m)
        a_m += np.eye(3)[None] * (slack / self.dual_caps)[:, :, None]
        r_m = _by_server(-e_r_g + b_over * a[:, None], server, self.m)
        q_m = _by_server(b_over, server, self.m)
        a_inv = np.linalg.solve(a_m, np.stack([r_m, q_m], axis=2))
        a_inv_r, a_inv_q = a_inv[:, :, 0], a_inv[:, :, 1]
        lhs = (
            np.bincount(user_group, weights=1.0 / delta, minlength=groups)
            + np.bincount(server_group, weights=np.sum(q_m * a_inv_q, axis=1), minlength=groups)
            + np.where(self.bounded, self.dual_floor / floor_slack, 0.0)
        )
        d_tau = (
            -g_tau
            - np.bincount(user_group, weights=a / delta, minlength=groups)
            - np.bincount(server_group, weights=np.sum(q_m * a_inv_r, axis=1), minlength=groups)
        ) / lhs
        nu = a_inv_r + a_inv_q * d_tau[server_group][:, None]
        zeta = -(a + np.sum(b * nu[server], axis=1) + d_tau[user_group]) / delta
        dx = -r_g - r_d * zeta[:, None] - np.matmul(r_e, nu[server][:, :, None])[:, :, 0]
        dx[fixed] = 0.0
        decrement = -(self._by_group(np.sum(grad * dx, axis=1)) + g_tau * d_tau)
        lower = np.where(self.free, x, 1.0)  # fixed shares: any positive stand-in
        upper = np.where(self.free, self.upper - x, 1.0)
        self._dual_direction = (
            1.0 / gap
            - self.dual_delay * (1.0 + (d_tau[user_group] - np.sum(d_grad * dx, axis=1)) / gap),
            np.where(self.free, 1.0 / lower - self.dual_lower * (1.0 + dx / lower), 0.0),
            np.where(self.free, 1.0 / upper - self.dual_upper * (1.0 - dx / upper), 0.0),
            1.0 / slack - self.dual_caps * (1.0 - (1.0 - self._cap_slack(dx)) / slack),
            np.where(
                self.bounded, 1.0 / floor_slack - self.dual_floor * (1.0 + d_tau / floor_slack), 0.0
            ),
        )
        return dx, d_tau, decrement, gap

    def _init_duals(self, x: FloatArray, tau: FloatArray) -> None:
        """Dual estimates of the central path at (x, tau): 1 / slack for every constraint."""
        self.dual_delay = 1.0 / (tau[self.user_group] - self._rows(x)[0])
        self.dual_floor = np.where(self.bounded, 1.0 / self._floor_slack(tau), 0.0)
        self.dual_lower = np.where(self.free, 1.0 / np.where(self.free, x, 1.0), 0.0)
        self.dual_upper = np.where(self.free, 1.0 / np.where(self.free, self.upper - x, 1.0), 0.0)
        self.dual_caps = 1.0 / self._cap_slack(x)

    def _step_duals(self) -> None:
        """Move the duals along their direction, keeping each above 1 - _KEEP of its value
        (one step length per group)."""
        duals = self._duals()
        with np.errstate(divide="ignore", invalid="ignore"):
            limits = [
                np.where((change < 0) & (value > 0), -value / change, np.inf)
                for value, change in zip(duals, self._dual_direction, strict=True)
            ]
        delay, lower, upper, caps, floor = limits
        per_user = np.minimum(delay, np.minimum(lower.min(axis=1), upper.min(axis=1)))
        step = np.minimum(1.0, np.minimum(self._group_min(per_user, caps.min(axis=1)), floor))
        step = step * (1 - _KEEP)
        by_user, by_server = step[self.user_group], step[self.server_group]
        scales = (by_user, by_user[:, None], by_user[:, None], by_server[:, None], step)
        self._set_duals(
            *(
                value + scale * change
                for value, change, scale in zip(duals, self._dual_direction, scales, strict=True)
            )
        )

    def _duals(self) -> tuple[FloatArray, ...]:
        return (self.dual_delay, self.dual_lower, self.dual_upper, self.dual_caps, self.dual_floor)

    def _set_duals(self, *duals: FloatArray) -> None:
        (self.dual_delay, self.dual_lower, self.dual_upper, self.dual_caps, self.dual_floor) = duals

    def _max_step(
        self, x: FloatArray, dx: FloatArray, tau: FloatArray, d_tau: FloatArray
    ) -> FloatArray:
        """Each group's largest step (times 1 - _KEEP, at most 1) that keeps the box, caps
        and floors strictly satisfied, (G,)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            down = np.where((dx < 0) & self.free, -x / dx, np.inf)
            rise = np.where((dx > 0) & self.free, (self.upper - x) / dx, np.inf)
            slack = self._cap_slack(x)
            change = 1.0 - self._cap_slack(dx)  # each server's summed change per cap
            caps = np.where(change > 0, slack / change, np.inf)
            floors = np.where(self.bounded & (d_tau < 0), -self._floor_slack(tau) / d_tau, np.inf)
        per_user = np.minimum(down.min(axis=1), rise.min(axis=1))
        step = np.minimum(self._group_min(per_user, caps.min(axis=1)), floors) * (1 - _KEEP)
        out: FloatArray = np.minimum(step, 1.0)
        return out

    # ------------------------------------------------------------------ driver
    def _interior(self, start: Shares) -> tuple[FloatArray, FloatArray]:
        x = np.stack([start.beta, start.pi, start.kappa, start.f, start.sigma], axis=1)
        x = np.where(self.free, np.clip(x, _MARGIN * self.upper, (1 - _MARGIN) * self.upper), 0.0)
        for k in CAPPED:
            used = np.bincount(self.server, weights=x[:, k], minlength=self.m)
            factor = np.where(used > 1 - _MARGIN, (1 - _MARGIN) / np.maximum(used, 1e-300), 1.0)
            x[:, k] *= factor[self.server]
        delay = self._rows(x)[0]
        tau = np.full(self.groups, -np.inf)
        np.maximum.at(tau, self.user_group, delay)
        tau = np.maximum(tau * 1.05 + 1e-9, np.where(self.bounded, self.floor * 1.05 + 1e-9, 0.0))
        return x, tau

    def _search(
        self,
        x: FloatArray,
        tau: FloatArray,
        dx: FloatArray,
        d_tau: FloatArray,
        t_barrier: float,
        value: FloatArray,
        decrement: FloatArray,
        gap: FloatArray,
        pending: BoolArray,
    ) -> FloatArray:
        """Armijo backtracking with one step length per group (the groups are independent).

        With one group the step starts at the largest interior step and is halved until it is
        accepted. With many, each group starts from four times the length it last managed and
        at most :data:`_HALVINGS` halvings are
        tried per Newton step: a group still failing waits (step 0) and starts shorter next
        time, so that one slow group does not make every group's trial be re-evaluated.
        """
        single = self.groups == 1
        halvings, growth = (60, math.inf) if single else (_HALVINGS, 4.0)
        step = np.where(pending, np.minimum(self._max_step(x, dx, tau, d_tau), self.trust), 0.0)
        step = np.where(step > 1e-12, step, 0.0)
        searching = pending & (step > 0)
        for _ in range(halvings):
            if not searching.any():
                break
            trial = self._barrier(
                x + step[self.user_group, None] * dx, tau + step * d_tau, t_barrier, _KEEP * gap
            )
            searching &= ~(trial <= value - 0.25 * step * decrement)
            step = np.where(searching, step * 0.5, step)
        grown = np.where(step > 0, np.minimum(growth * np.maximum(step, 1e-300), 1.0), 0.0)
        self.trust = np.where(searching, step, np.where(pending, grown, self.trust))
        out: FloatArray = np.where(searching, 0.0, step)
        return out

    def solve(self, weights: tuple[FloatArray, ...], start: Shares) -> tuple[Shares | None, str]:
        """Minimise the surrogate for the FP ``weights`` from ``start`` (pulled inside).

        Returns the shares and ``"optimal"`` (duality gap below ``gap`` of the scaled objective),
        ``"inaccurate"`` (Newton step cap reached first) or ``(None, "failed")``.
        """
        self._set_weights(weights)
        x, tau = self._interior(start)
        self._init_duals(x, tau)
        t_barrier = self.constraints / max(abs(self._objective(x, tau)), 1.0)
        status = "optimal"
        while True:
            last = float(np.max(self.group_constraints)) / t_barrier <= self.gap
            self.trust = np.ones(self.groups)
            for _ in range(_MAX_NEWTON):
                dx, d_tau, decrement, gap = self._newton(x, tau, t_barrier)
                if not np.all(np.isfinite(decrement)):
                    return None, "failed"
                value = self._barrier(x, tau, t_barrier)
                # A group whose line search has given up counts as (numerically) centred.
                pending = (decrement / 2 > self.centred + _ROUNDING * np.abs(value)) & (
                    self.trust > 1e-12
                )
                if not pending.any() or np.mean(pending) <= 1.0 - self.quorum:
                    break
                step = self._search(x, tau, dx, d_tau, t_barrier, value, decrement, gap, pending)
                x, tau = x + step[self.user_group, None] * dx, tau + step * d_tau
                self._step_duals()
            else:
                status = "inaccurate"
            if last:
                break
            t_barrier *= self.growth
            # The duals are kept in barrier units (times t): rescale them with t.
            self._set_duals(*(self.growth * d for d in self._duals()))
        return Shares(*(x[:, k] for k in range(5))), status
