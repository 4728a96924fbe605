"""The per-user kernels of the barrier method: the compiled build against finite differences,
the NumPy build against the compiled one.

The end-to-end tests (``test_scale.py``) check that the barrier method reaches cvxpy's optimum,
which a wrong gradient would break; a wrong Hessian would only slow Newton down. Here each
user's gradient is checked against central differences of its barrier value, and its Newton
block (plus the rank-one delay term kept outside it) against differences of the gradient.
"""

from __future__ import annotations

import numpy as np
import pytest

from mecllm.systems.finetune.solvers.allocation import barrier_vectorised
from mecllm.systems.finetune.solvers.allocation.barrier import VECTORISED_USERS, kernels_for
from mecllm.systems.finetune.solvers.allocation.barrier_kernels import (
    barrier_rows,
    delays_objectives,
    newton_rows,
)
from mecllm.systems.finetune.solvers.allocation.barrier_layout import DN, K1, K3, N_COEF, UP

_USERS = 4
_T = 3.0  # barrier parameter
_SERVICE, _NORM = 1.5, 0.4
Setting = dict[str, np.ndarray]


def _setting(seed: int) -> Setting:
    rng = np.random.default_rng(seed)
    coef = rng.uniform(0.2, 2.0, (_USERS, N_COEF))
    coef[:, [UP, DN]] = 1.0  # both links carry data
    return {
        "x": rng.uniform(0.2, 0.6, (_USERS, 5)),
        "tau": np.full(_USERS, 1e3),
        "coef": coef,
        "free": np.ones((_USERS, 5), dtype=bool),
        "upper": np.ones((_USERS, 5)),
    }


def _value(s: Setting, x: np.ndarray) -> np.ndarray:
    """(N,) each user's barrier value at ``x``."""
    value, bad = barrier_rows(
        s["free"], s["upper"], s["coef"], _SERVICE, _NORM, x, s["tau"], np.full(_USERS, -1e9), _T
    )
    assert not bad.any()
    return np.asarray(value)


def _newton(s: Setting, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gradient (N, 5), delay gradient (N, 5), delay slack (N,) and Newton blocks (N, 5, 5),
    with the central-path duals (1 / slack: the block is then the barrier's own Hessian less
    the rank-one delay term) and no cap terms. The block is recovered from the five solves."""

    def run(dual_delay: np.ndarray) -> tuple[np.ndarray, ...]:
        out = newton_rows(
            s["free"],
            s["upper"],
            s["coef"],
            _SERVICE,
            _NORM,
            x,
            s["tau"],
            _T,
            dual_delay,
            1.0 / x,
            1.0 / (s["upper"] - x),
            np.zeros((_USERS, 3)),
        )
        return tuple(np.asarray(a) for a in out)

    gap = run(np.ones(_USERS))[2]
    grad, d_grad, gap, solved = run(1.0 / gap)
    blocks = np.array(
        [
            np.column_stack([grad[i], d_grad[i], np.eye(5)[:, [0, 2, 4]]])
            @ np.linalg.inv(solved[i])
            for i in range(_USERS)
        ]
    )
    return grad, d_grad, gap, blocks


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_matches_differences_of_the_barrier_value(seed: int) -> None:
    s = _setting(seed)
    grad = _newton(s, s["x"])[0]
    h = 1e-6
    for k in range(5):
        step = np.zeros((_USERS, 5))
        step[:, k] = h
        numeric = (_value(s, s["x"] + step) - _value(s, s["x"] - step)) / (2 * h)
        np.testing.assert_allclose(grad[:, k], numeric, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_newton_block_plus_delay_term_matches_differences_of_the_gradient(seed: int) -> None:
    s = _setting(seed)
    _, d_grad, gap, blocks = _newton(s, s["x"])
    hessian = blocks + d_grad[:, :, None] * d_grad[:, None, :] / gap[:, None, None] ** 2
    h = 1e-6
    for k in range(5):
        step = np.zeros((_USERS, 5))
        step[:, k] = h
        numeric = (_newton(s, s["x"] + step)[0] - _newton(s, s["x"] - step)[0]) / (2 * h)
        np.testing.assert_allclose(hessian[:, :, k], numeric, rtol=1e-4, atol=1e-5)


def _mixed(seed: int, users: int = 40) -> dict[str, np.ndarray]:
    """Users with and without each link and compute phase, some shares fixed, some delay
    bounds violated: every branch of the kernels."""
    rng = np.random.default_rng(seed)
    coef = rng.uniform(0.2, 2.0, (users, N_COEF))
    coef[:, [UP, DN]] = rng.integers(0, 2, (users, 2))
    coef[:5, K1] = 0.0
    coef[5:10, K3] = 0.0
    tau = np.full(users, 50.0)
    tau[:3] = 0.1  # outside: delay above the bound
    return {
        "x": rng.uniform(0.05, 0.9, (users, 5)),
        "tau": tau,
        "coef": coef,
        "free": rng.uniform(size=(users, 5)) > 0.15,
        "upper": np.ones((users, 5)),
        "duals": rng.uniform(0.1, 1.0, (users, 14)),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_numpy_build_of_the_kernels_equals_the_compiled_one(seed: int) -> None:
    s = _mixed(seed)
    users = s["x"].shape[0]
    model = (s["free"], s["upper"], s["coef"], _SERVICE, _NORM)
    floor = np.zeros(users)
    compiled_rows = barrier_rows(*model, s["x"], s["tau"], floor, _T)
    numpy_rows = barrier_vectorised.barrier_rows(*model, s["x"], s["tau"], floor, _T)
    assert compiled_rows[1][:3].all()  # the violated bounds are seen
    np.testing.assert_array_equal(numpy_rows[1], compiled_rows[1])
    np.testing.assert_allclose(numpy_rows[0], compiled_rows[0], rtol=1e-12, atol=1e-12)
    duals = s["duals"]
    extra = (_T, duals[:, 0], duals[:, 1:6], duals[:, 6:11], duals[:, 11:14])
    compiled = newton_rows(*model, s["x"], s["tau"], *extra)
    numpy_built = barrier_vectorised.newton_rows(*model, s["x"], s["tau"], *extra)
    for a, b in zip(compiled, numpy_built, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
    for a, b in zip(
        delays_objectives(s["x"], s["coef"], _SERVICE, _NORM),
        barrier_vectorised.delays_objectives(s["x"], s["coef"], _SERVICE, _NORM),
        strict=True,
    ):
        np.testing.assert_allclose(b, a, rtol=1e-13)


def test_small_problems_use_the_numpy_build_and_large_ones_the_compiled_one() -> None:
    assert kernels_for(10) is barrier_vectorised
    assert kernels_for(VECTORISED_USERS) is barrier_vectorised
    assert kernels_for(VECTORISED_USERS + 1).__name__.endswith("barrier_kernels")
