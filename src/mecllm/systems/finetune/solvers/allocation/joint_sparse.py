"""The joint continuous problem of one association at any size: Dinkelbach outside, one sparse
interior-point solve inside (docs/algorithms.md, "Joint solve at scale").

:mod:`~mecllm.systems.finetune.solvers.allocation.joint` maximises the ratio ``service / cost``
directly. Its Hessian is dense (a ratio of sums couples every variable with every other) and its
association is a dense N x M parameter, so it stops at a few dozen users. Here the ratio is
replaced by Dinkelbach's parametric problem ``max service - y cost``, which is a sum over users
plus ``y w_t T``: the Hessian is block-diagonal (six variables per user) and the constraints
touch one user each (its delay against T) or one server each (its three capacities), so IPOPT's
sparse factorisation costs about linear time in N. The association is fixed when the problem is
built (the capacity rows are a sparse constant) and ``y`` is a parameter: the Dinkelbach loop
re-solves the same compiled problem, warm-started, until the ratio stops moving.

Variables, scaling, the chord of the work model and the snap of the result are those of the
dense joint solve (shared helpers); the physics judges every plan.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import casadi as ca
import numpy as np

from mecllm.core.arrays import IntArray
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.physics import evaluate
from mecllm.systems.finetune.solution import Plan
from mecllm.systems.finetune.solvers.allocation.joint import (
    FLOOR,
    PER_USER,
    JointResult,
    coefficients,
    delay_at,
    shares,
    symbolic_terms,
    to_plan,
)

#: Dinkelbach stops when the ratio moves less than this (relative) between two solves.
RATIO_TOLERANCE = 1e-7
#: Most Dinkelbach solves of one start.
MAX_ROUNDS = 12
_IPOPT: dict[str, Any] = {
    "ipopt.print_level": 0,
    "print_time": False,
    "ipopt.sb": "yes",
    "ipopt.tol": 1e-8,
    "ipopt.acceptable_tol": 1e-6,
    "ipopt.acceptable_iter": 5,
    "ipopt.mu_strategy": "adaptive",
    # Unlike the dense solve, a start is moved 1e-4 inside its bounds: on paper-literal
    # instances of 20 x 3 the best of seven starts rose from 41.8 to 74.7 (and the start
    # itself is kept as a candidate, so nothing is lost where it was better).
    "ipopt.bound_push": 1e-4,
    "ipopt.bound_frac": 1e-4,
    "ipopt.mu_init": 1e-2,
    "ipopt.linear_solver": "mumps",
}
#: Compiled problems kept (an association search re-solves the same few associations).
_CACHE_SIZE = 8
_cache: OrderedDict[tuple[int, int, bool, bytes, int], ca.Function] = OrderedDict()
#: IPOPT's iterations per solve (a quick screen of a move uses fewer).
MAX_ITERATIONS = 300


def _problem(
    n_servers: int, assignment: IntArray, count_idle: bool, iterations: int = MAX_ITERATIONS
) -> ca.Function:
    """IPOPT's solver for users on servers as in ``assignment``; parameters: the per-user
    coefficients (``PER_USER`` order), the four scalars of :func:`coefficients`, then ``y``."""
    code = np.asarray(assignment, dtype=np.int64).tobytes()
    key = (len(assignment), n_servers, count_idle, code, iterations)
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    n = len(assignment)
    x = ca.SX.sym("x", 6 * n + 1)
    beta, kappa, phi, sigma = (x[k * n : (k + 1) * n] for k in (0, 2, 3, 5))
    tau = x[6 * n]
    p = ca.SX.sym("p", len(PER_USER) * n + 5)
    c = {name: p[k * n : (k + 1) * n] for k, name in enumerate(PER_USER)}
    rest = len(PER_USER) * n
    norm, delay_price, energy_price, _tiny, y = (p[rest + k] for k in range(5))
    delay, energy, service = symbolic_terms(x, c, n, norm)
    objective = -(service - y * (delay_price * tau + energy_price * ca.sum1(energy)))
    member = ca.DM(
        ca.Sparsity.triplet(n_servers, n, list(map(int, assignment)), list(range(n))),
        np.ones(n),
    )
    parts = [delay - tau]
    parts += [ca.mtimes(member, share) - 1 for share in (beta, kappa, sigma)]
    if not count_idle:
        parts += [kappa + phi - 1, sigma + phi - 1]
    solver = ca.nlpsol(
        "joint_sparse",
        "ipopt",
        {"x": x, "p": p, "f": objective, "g": ca.vertcat(*parts)},
        _IPOPT | {"ipopt.max_iter": iterations},
    )
    _cache[key] = solver
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return solver


def solve_joint_sparse(
    instance: Instance, start: Plan, rounds: int = MAX_ROUNDS, iterations: int = MAX_ITERATIONS
) -> JointResult:
    """Maximise the SCR over every continuous variable for ``start``'s association, from
    ``start`` (clipped into the solver's box), by Dinkelbach over sparse IPOPT solves.

    Returns the best feasible plan of the start itself and every Dinkelbach iterate, each as
    solved and snapped (phi within 1e-6 of 0 or 1 set to it): never worse than a feasible start.
    ``rounds``: Dinkelbach solves at most, ``iterations``: IPOPT's per solve (a quick screen
    takes fewer of both).
    """
    n = instance.n_users
    a = start.assignment
    solver = _problem(instance.n_servers, a, bool(instance.count_idle), iterations)
    reference = evaluate(instance, start)
    finite = math.isfinite(reference.delay_s) and reference.delay_s > 0
    t_ref = reference.delay_s if finite else 1.0
    v_ref = max(reference.service, 1e-9)
    c_ref = max(reference.cost, 1e-9) if math.isfinite(reference.cost) else 1.0
    per_user, tail = coefficients(instance, a, t_ref, v_ref, c_ref)
    params = np.concatenate([*(per_user[k] for k in PER_USER), tail])
    lower = np.full(6 * n + 1, FLOOR)
    upper = np.ones(6 * n + 1)
    lower[3 * n : 4 * n] = 0.0
    lower[-1], upper[-1] = 0.0, np.inf
    x = np.append(shares(instance, start), delay_at(instance, start) / t_ref)
    best: tuple[float, Plan | None] = (-math.inf, None)
    if reference.feasible:
        best = (reference.scr, start)
    # y in solver units: service / v_ref over cost / c_ref.
    y = reference.scr * c_ref / v_ref if reference.feasible else 0.0
    status = "not solved"
    for _ in range(rounds):
        answer = solver(x0=x, p=np.append(params, y), lbx=lower, ubx=upper, lbg=-np.inf, ubg=0.0)
        status = str(solver.stats()["return_status"])
        x = np.clip(np.asarray(answer["x"], dtype=float).ravel(), lower, upper)
        improved = False
        for snap in (False, True):
            plan = to_plan(instance, a, x, snap)
            report = evaluate(instance, plan)
            if report.feasible and report.scr > best[0]:
                improved = report.scr > best[0] * (1 + RATIO_TOLERANCE)
                best = (report.scr, plan)
        if not improved:
            break
        y = best[0] * c_ref / v_ref
    return JointResult(best[1], best[0], status)
