"""The barrier method's per-user kernels in NumPy, all users at once (:mod:`barrier_kernels`'s
contract and mathematics, no numba).

Small problems use this build: it needs no compiler and no cache, so a process that solves one
small instance does not pay numba's start-up (about 0.4 s: importing numba and loading the
compiled kernels). Each function takes and returns what its compiled twin does; the tests
check that the two agree.
"""

from __future__ import annotations

import math

import numpy as np

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
#: The shares that count against a server cap.
_CAPPED = (BETA, KAPPA, SIGMA)


def _rates(x: FloatArray, c: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(N,) each user's two link rates ``beta log2(1 + gamma p / beta)`` (1 where idle)."""
    beta = x[:, BETA]
    up = beta * np.log1p(c[:, GAMMA_UP] * x[:, PI] / beta) / _LN2
    dn = beta * np.log1p(c[:, GAMMA_DN] * x[:, KAPPA] / beta) / _LN2
    return np.where(c[:, UP] > 0, up, 1.0), np.where(c[:, DN] > 0, dn, 1.0)


def _computes(x: FloatArray, c: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(N,) each user's own and server compute shares, 1 where that phase has no work."""
    return (
        np.where(c[:, K1] > 0, x[:, F], 1.0),
        np.where(c[:, K3] > 0, x[:, SIGMA], 1.0),
    )


def _delay(x: FloatArray, c: FloatArray, rho_up: FloatArray, rho_dn: FloatArray) -> FloatArray:
    """(N,) each user's scaled delay ``k1 / f + k2 / rho_up + k3 / sigma + k4 / rho_dn``."""
    f, s = _computes(x, c)
    out: FloatArray = c[:, K1] / f + c[:, K2] / rho_up + c[:, K3] / s + c[:, K4] / rho_dn
    return out


def delays_objectives(
    x: FloatArray, coef: FloatArray, service: float, norm: float
) -> tuple[FloatArray, FloatArray]:
    """(N,) each user's scaled delay and (N,) its part of the surrogate (minimisation form),
    at interior shares ``x`` (N, 5)."""
    with np.errstate(all="ignore"):
        rho_up, rho_dn = _rates(x, coef)
        delay = _delay(x, coef, rho_up, rho_dn)
        total = x[:, BETA] + x[:, KAPPA] + x[:, SIGMA]
        objective = (
            -service * np.log1p(norm * total)
            + coef[:, EPS1] * x[:, F] ** 2
            + coef[:, EPS3] * x[:, SIGMA] ** 2
            + coef[:, A_UP] * x[:, PI] ** 2
            + coef[:, C_UP] / rho_up**2
            + coef[:, A_DN] * x[:, KAPPA] ** 2
            + coef[:, C_DN] / rho_dn**2
        )
    return delay, objective


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
    (free shares only), (N,) (0 where outside), and whether the user is outside the domain,
    (N,); as :func:`barrier_kernels.barrier_rows`."""
    rest = upper - x
    outside = np.any(free & ((x <= 0) | (rest <= 0)), axis=1)
    with np.errstate(all="ignore"):
        box = np.where(free, np.log(x * rest), 0.0).sum(axis=1)
        delay, objective = delays_objectives(x, coef, service, norm)
        gap = tau - delay
        outside |= ~(gap > floor) | ~np.isfinite(objective)
        value = t_barrier * objective - np.log(gap) - box
    out: FloatArray = np.where(outside, 0.0, value)
    return out, outside


def _add_link(
    grad: FloatArray,
    hess: FloatArray,
    index: int,
    beta: FloatArray,
    power: FloatArray,
    gamma: FloatArray,
    h1: FloatArray,
    h2: FloatArray,
) -> None:
    """Add the derivatives of ``h(rho(beta, power))`` in (beta, x[index]), with h' = ``h1``
    and h'' = ``h2`` (N,), to ``grad`` (N, 5) and ``hess`` (N, 5, 5); users whose ``h1`` and
    ``h2`` are 0 get nothing."""
    v = power / beta
    den = 1.0 + gamma * v
    g_beta = (np.log(den) - gamma * v / den) / _LN2
    g_power = gamma / (_LN2 * den)
    curvature = -(gamma**2) / (_LN2 * den**2) / beta
    grad[:, BETA] += h1 * g_beta
    grad[:, index] += h1 * g_power
    hess[:, BETA, BETA] += h2 * g_beta * g_beta + h1 * curvature * v * v
    cross = h2 * g_beta * g_power - h1 * curvature * v
    hess[:, BETA, index] += cross
    hess[:, index, BETA] += cross
    hess[:, index, index] += h2 * g_power * g_power + h1 * curvature


def _solve_blocks(hess: FloatArray, rhs: FloatArray) -> FloatArray:
    """(N, 5, k) the solutions of the (N, 5, 5) blocks; NaN for a singular block (as the
    compiled elimination gives non-finite values there)."""
    try:
        return np.asarray(np.linalg.solve(hess, rhs), dtype=np.float64)
    except np.linalg.LinAlgError:
        solved = np.full(rhs.shape, np.nan)
        for i in range(hess.shape[0]):
            try:
                solved[i] = np.linalg.solve(hess[i], rhs[i])
            except np.linalg.LinAlgError:
                continue
        return solved


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
    """Each user's Newton block, built and solved; as :func:`barrier_kernels.newton_rows`.

    Returns ``(grad, d_grad, gap, solved)``: the (N, 5) barrier gradient in x, the (N, 5)
    delay gradients, the (N,) delay slacks and (N, 5, 5) the block's inverse applied to
    ``[grad, d_grad, e_beta, e_kappa, e_sigma]`` (the unit vectors zero where fixed).
    """
    n = x.shape[0]
    c = coef
    grad, d_grad = np.zeros((n, 5)), np.zeros((n, 5))
    hess, d_hess = np.zeros((n, 5, 5)), np.zeros((n, 5, 5))
    up, dn = c[:, UP] > 0, c[:, DN] > 0
    with np.errstate(all="ignore"):
        rho_up, rho_dn = _rates(x, c)
        # -- objective
        total = x[:, BETA] + x[:, KAPPA] + x[:, SIGMA]
        slope = -service * norm / (1.0 + norm * total)
        curve = service * norm**2 / (1.0 + norm * total) ** 2
        for a in _CAPPED:
            grad[:, a] += slope
            for b in _CAPPED:
                hess[:, a, b] += curve
        for k, w in ((F, c[:, EPS1]), (SIGMA, c[:, EPS3]), (PI, c[:, A_UP]), (KAPPA, c[:, A_DN])):
            grad[:, k] += 2.0 * w * x[:, k]
            hess[:, k, k] += 2.0 * w
        beta = x[:, BETA]
        h1 = np.where(up, -2.0 * c[:, C_UP] / rho_up**3, 0.0)
        h2 = np.where(up, 6.0 * c[:, C_UP] / rho_up**4, 0.0)
        _add_link(grad, hess, PI, beta, x[:, PI], c[:, GAMMA_UP], h1, h2)
        h1 = np.where(dn, -2.0 * c[:, C_DN] / rho_dn**3, 0.0)
        h2 = np.where(dn, 6.0 * c[:, C_DN] / rho_dn**4, 0.0)
        _add_link(grad, hess, KAPPA, beta, x[:, KAPPA], c[:, GAMMA_DN], h1, h2)
        grad *= t_barrier
        hess *= t_barrier
        # -- delay barrier -log(tau - D)
        f, s = _computes(x, c)
        d_grad[:, F] = -c[:, K1] / f**2
        d_hess[:, F, F] = 2.0 * c[:, K1] / f**3
        d_grad[:, SIGMA] = -c[:, K3] / s**2
        d_hess[:, SIGMA, SIGMA] = 2.0 * c[:, K3] / s**3
        h1 = np.where(up, -c[:, K2] / rho_up**2, 0.0)
        h2 = np.where(up, 2.0 * c[:, K2] / rho_up**3, 0.0)
        _add_link(d_grad, d_hess, PI, beta, x[:, PI], c[:, GAMMA_UP], h1, h2)
        h1 = np.where(dn, -c[:, K4] / rho_dn**2, 0.0)
        h2 = np.where(dn, 2.0 * c[:, K4] / rho_dn**3, 0.0)
        _add_link(d_grad, d_hess, KAPPA, beta, x[:, KAPPA], c[:, GAMMA_DN], h1, h2)
        gap = tau - _delay(x, c, rho_up, rho_dn)
        grad += d_grad / gap[:, None]
        hess += d_hess * dual_delay[:, None, None]
        # -- box and caps
        rest = upper - x
        grad += np.where(free, -1.0 / x + 1.0 / rest, 0.0)
        diagonal = np.where(free, dual_lower / x + dual_upper / rest, 0.0)
    rows = np.arange(5)
    hess[:, rows, rows] += diagonal
    for j, k in enumerate(_CAPPED):
        grad[:, k] += np.where(free[:, k], cap_inverse[:, j], 0.0)
    # -- fixed shares: identity rows, no coupling
    fixed = ~free
    grad[fixed] = 0.0
    d_grad[fixed] = 0.0
    hess[fixed[:, :, None] | fixed[:, None, :]] = 0.0
    hess[:, rows, rows] += fixed
    rhs = np.zeros((n, 5, 5))
    rhs[:, :, 0] = grad
    rhs[:, :, 1] = d_grad
    for j, k in enumerate(_CAPPED):
        rhs[:, k, 2 + j] = free[:, k]
    return grad, d_grad, gap, _solve_blocks(hess, rhs)
