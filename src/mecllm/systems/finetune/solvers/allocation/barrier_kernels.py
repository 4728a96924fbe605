"""Compiled per-user kernels of the barrier method (:mod:`barrier`).

Each user's part of the part-2 surrogate is a function of its five shares (beta, pi, kappa, f,
sigma) alone; these kernels evaluate it (delay, objective, barrier terms) and build and solve
the user's 5x5 Newton block, one user per loop pass, compiled by numba. They pay off on large
problems; numba itself costs about 0.4 s per process (its import and loading the kernels from
its on-disk cache), so small problems use the NumPy build of the same kernels,
:mod:`barrier_vectorised` (see :func:`barrier.kernels_for`). The tests hold the two builds
to each other.

Per-user coefficients come as one (N, :data:`N_COEF`) matrix built by
:func:`barrier_layout.coefficients`; the column order is the constants there. Compiled code is
cached on disk (``cache=True``), so only the first call after installation pays the compile
time (a few seconds).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from mecllm.core.arrays import BoolArray, FloatArray
from mecllm.systems.finetune.solvers.allocation.barrier_layout import (
    A_DN,
    A_UP,
    BETA,
    C_DN,
    C_UP,
    DN,
    EPS1,
    EPS3,
    GAMMA_DN,
    GAMMA_UP,
    K1,
    K2,
    K3,
    K4,
    KAPPA,
    PI,
    SIGMA,
    UP,
    F,
)

_LN2 = math.log(2.0)


@njit(cache=True)
def _rates(x: FloatArray, c: FloatArray) -> tuple[float, float]:
    """The two link rates ``beta log2(1 + gamma p / beta)`` of one user (1 where idle)."""
    rho_up, rho_dn = 1.0, 1.0
    if c[UP] > 0:
        rho_up = x[BETA] * math.log1p(c[GAMMA_UP] * x[PI] / x[BETA]) / _LN2
    if c[DN] > 0:
        rho_dn = x[BETA] * math.log1p(c[GAMMA_DN] * x[KAPPA] / x[BETA]) / _LN2
    return rho_up, rho_dn


@njit(cache=True)
def _computes(x: FloatArray, c: FloatArray) -> tuple[float, float]:
    """The user's own and server compute shares, 1 where that phase has no work."""
    return (x[F] if c[K1] > 0 else 1.0), (x[SIGMA] if c[K3] > 0 else 1.0)


@njit(cache=True)
def _delay(x: FloatArray, c: FloatArray, rho_up: float, rho_dn: float) -> float:
    """One user's scaled delay ``k1 / f + k2 / rho_up + k3 / sigma + k4 / rho_dn``."""
    f, s = _computes(x, c)
    return float(c[K1] / f + c[K2] / rho_up + c[K3] / s + c[K4] / rho_dn)


@njit(cache=True)
def _delay_objective(
    x: FloatArray, c: FloatArray, service: float, norm: float
) -> tuple[float, float]:
    """One user's scaled delay D and its part of the surrogate in minimisation form."""
    rho_up, rho_dn = _rates(x, c)
    delay = _delay(x, c, rho_up, rho_dn)
    total = x[BETA] + x[KAPPA] + x[SIGMA]
    objective = (
        -service * math.log1p(norm * total)
        + c[EPS1] * x[F] ** 2
        + c[EPS3] * x[SIGMA] ** 2
        + c[A_UP] * x[PI] ** 2
        + c[C_UP] / rho_up**2
        + c[A_DN] * x[KAPPA] ** 2
        + c[C_DN] / rho_dn**2
    )
    return delay, objective


@njit(cache=True)
def delays_objectives(
    x: FloatArray, coef: FloatArray, service: float, norm: float
) -> tuple[FloatArray, FloatArray]:
    """(N,) each user's scaled delay and (N,) its part of the surrogate (minimisation form),
    at interior shares ``x`` (N, 5)."""
    n = x.shape[0]
    delay, objective = np.empty(n), np.empty(n)
    for i in range(n):
        delay[i], objective[i] = _delay_objective(x[i], coef[i], service, norm)
    return delay, objective


@njit(cache=True)
def barrier_rows(
    free: BoolArray,
    upper: FloatArray,
    coef: FloatArray,
    service: float,
    norm: float,
    x: FloatArray,
    tau: FloatArray,
    floor: FloatArray,
    t_barrier: float,
) -> tuple[FloatArray, BoolArray]:
    """Each user's barrier terms ``t objective - log(tau - D) - sum log(x (upper - x))``
    (free shares only), (N,), and whether the user is outside the domain, (N,): a share on or
    past its bounds, a delay slack at ``floor`` or below, or a non-finite objective.
    The first five arguments describe the problem (``BarrierSurrogate._model``); ``tau`` and
    ``floor`` are per user (N,)."""
    n = x.shape[0]
    value, bad = np.zeros(n), np.zeros(n, dtype=np.bool_)
    for i in range(n):
        box = 0.0
        for k in range(5):
            if free[i, k]:
                lower, rest = x[i, k], upper[i, k] - x[i, k]
                if lower <= 0 or rest <= 0:
                    bad[i] = True
                    break
                box += math.log(lower * rest)
        if bad[i]:
            continue
        delay, objective = _delay_objective(x[i], coef[i], service, norm)
        gap = tau[i] - delay
        if not (gap > floor[i]) or not math.isfinite(objective):
            bad[i] = True
            continue
        value[i] = t_barrier * objective - math.log(gap) - box
    return value, bad


@njit(cache=True)
def _add_link(
    grad: FloatArray,
    hess: FloatArray,
    index: int,
    beta: float,
    power: float,
    gamma: float,
    h1: float,
    h2: float,
) -> None:
    """Add the derivatives of ``h(rho(beta, power))`` in (beta, x[index]), with h' = ``h1``
    and h'' = ``h2``, to ``grad`` (5,) and ``hess`` (5, 5)."""
    v = power / beta
    den = 1.0 + gamma * v
    g_beta = (math.log(den) - gamma * v / den) / _LN2
    g_power = gamma / (_LN2 * den)
    curvature = -(gamma**2) / (_LN2 * den**2) / beta
    grad[BETA] += h1 * g_beta
    grad[index] += h1 * g_power
    hess[BETA, BETA] += h2 * g_beta * g_beta + h1 * curvature * v * v
    cross = h2 * g_beta * g_power - h1 * curvature * v
    hess[BETA, index] += cross
    hess[index, BETA] += cross
    hess[index, index] += h2 * g_power * g_power + h1 * curvature


@njit(cache=True)
def _solve5(a: FloatArray, b: FloatArray) -> None:
    """Solve ``a z = b`` in place (``b`` becomes z): Gaussian elimination with partial
    pivoting, ``a`` (5, 5), ``b`` (5, k). A singular ``a`` gives non-finite z."""
    n = a.shape[0]
    for col in range(n):
        pivot = col
        for row in range(col + 1, n):
            if abs(a[row, col]) > abs(a[pivot, col]):
                pivot = row
        if pivot != col:
            for j in range(n):
                a[col, j], a[pivot, j] = a[pivot, j], a[col, j]
            for j in range(b.shape[1]):
                b[col, j], b[pivot, j] = b[pivot, j], b[col, j]
        for row in range(col + 1, n):
            factor = a[row, col] / a[col, col]
            for j in range(col, n):
                a[row, j] -= factor * a[col, j]
            for j in range(b.shape[1]):
                b[row, j] -= factor * b[col, j]
    for col in range(n - 1, -1, -1):
        for j in range(b.shape[1]):
            total = b[col, j]
            for k in range(col + 1, n):
                total -= a[col, k] * b[k, j]
            b[col, j] = total / a[col, col]


@njit(cache=True)
def newton_rows(
    free: BoolArray,
    upper: FloatArray,
    coef: FloatArray,
    service: float,
    norm: float,
    x: FloatArray,
    tau: FloatArray,
    t_barrier: float,
    dual_delay: FloatArray,
    dual_lower: FloatArray,
    dual_upper: FloatArray,
    cap_inverse: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Each user's Newton block, built and solved.

    The block is the Hessian in the user's shares of ``t objective``, the box barrier (each
    side's curvature weighted by its dual, primal-dual style) and the delay constraint's own
    curvature (times its dual); the rank-one delay and cap couplings stay outside.
    ``tau`` (N,) is the user's group's delay bound, ``cap_inverse`` (N, 3) one over its
    server's bandwidth, power and compute slacks. Fixed shares get identity rows.

    Returns ``(grad, d_grad, gap, solved)``: the (N, 5) barrier gradient in x, the (N, 5)
    delay gradients, the (N,) delay slacks and (N, 5, 5) the block's inverse applied to
    ``[grad, d_grad, e_beta, e_kappa, e_sigma]`` (the unit vectors zero where fixed).
    """
    n = x.shape[0]
    grad_out, d_grad_out = np.zeros((n, 5)), np.zeros((n, 5))
    gap_out, solved = np.zeros(n), np.zeros((n, 5, 5))
    hess, d_hess = np.zeros((5, 5)), np.zeros((5, 5))
    grad, d_grad = np.zeros(5), np.zeros(5)
    for i in range(n):
        xi, c = x[i], coef[i]
        hess[:] = 0.0
        d_hess[:] = 0.0
        grad[:] = 0.0
        d_grad[:] = 0.0
        rho_up, rho_dn = _rates(xi, c)
        # -- objective
        total = xi[BETA] + xi[KAPPA] + xi[SIGMA]
        slope = -service * norm / (1.0 + norm * total)
        curve = service * norm**2 / (1.0 + norm * total) ** 2
        for a in (BETA, KAPPA, SIGMA):
            grad[a] += slope
            for b in (BETA, KAPPA, SIGMA):
                hess[a, b] += curve
        for k, w in ((F, c[EPS1]), (SIGMA, c[EPS3]), (PI, c[A_UP]), (KAPPA, c[A_DN])):
            grad[k] += 2.0 * w * xi[k]
            hess[k, k] += 2.0 * w
        if c[UP] > 0:
            h1, h2 = -2.0 * c[C_UP] / rho_up**3, 6.0 * c[C_UP] / rho_up**4
            _add_link(grad, hess, PI, xi[BETA], xi[PI], c[GAMMA_UP], h1, h2)
        if c[DN] > 0:
            h1, h2 = -2.0 * c[C_DN] / rho_dn**3, 6.0 * c[C_DN] / rho_dn**4
            _add_link(grad, hess, KAPPA, xi[BETA], xi[KAPPA], c[GAMMA_DN], h1, h2)
        grad *= t_barrier
        hess *= t_barrier
        # -- delay barrier -log(tau - D)
        f, s = _computes(xi, c)
        d_grad[F] = -c[K1] / f**2
        d_hess[F, F] = 2.0 * c[K1] / f**3
        d_grad[SIGMA] = -c[K3] / s**2
        d_hess[SIGMA, SIGMA] = 2.0 * c[K3] / s**3
        if c[UP] > 0:
            h1, h2 = -c[K2] / rho_up**2, 2.0 * c[K2] / rho_up**3
            _add_link(d_grad, d_hess, PI, xi[BETA], xi[PI], c[GAMMA_UP], h1, h2)
        if c[DN] > 0:
            h1, h2 = -c[K4] / rho_dn**2, 2.0 * c[K4] / rho_dn**3
            _add_link(d_grad, d_hess, KAPPA, xi[BETA], xi[KAPPA], c[GAMMA_DN], h1, h2)
        gap = tau[i] - _delay(xi, c, rho_up, rho_dn)
        for a in range(5):
            grad[a] += d_grad[a] / gap
            for b in range(5):
                hess[a, b] += d_hess[a, b] * dual_delay[i]
        # -- box and caps
        for k in range(5):
            if free[i, k]:
                rest = upper[i, k] - xi[k]
                grad[k] += -1.0 / xi[k] + 1.0 / rest
                hess[k, k] += dual_lower[i, k] / xi[k] + dual_upper[i, k] / rest
        for j, k in enumerate((BETA, KAPPA, SIGMA)):
            if free[i, k]:
                grad[k] += cap_inverse[i, j]
        # -- fixed shares: identity rows, no coupling
        rhs = solved[i]
        for k in range(5):
            if not free[i, k]:
                grad[k] = 0.0
                d_grad[k] = 0.0
                for b in range(5):
                    hess[k, b] = 0.0
                    hess[b, k] = 0.0
                hess[k, k] = 1.0
        for k in range(5):
            rhs[k, 0] = grad[k]
            rhs[k, 1] = d_grad[k]
        for j, k in enumerate((BETA, KAPPA, SIGMA)):
            rhs[k, 2 + j] = 1.0 if free[i, k] else 0.0
        _solve5(hess, rhs)
        grad_out[i] = grad
        d_grad_out[i] = d_grad
        gap_out[i] = gap
    return grad_out, d_grad_out, gap_out, solved
