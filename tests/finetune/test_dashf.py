"""DASHF and its parts: transform, relaxation bound, rounding, MILP, the Dinkelbach loop."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mecllm.core.fractional import fp_bound, fp_optimal_z
from mecllm.core.options import SolveOptions
from mecllm.systems.finetune.algorithms import ALGORITHMS, solve
from mecllm.systems.finetune.physics import evaluate
from mecllm.systems.finetune.solvers.association.milp import solve_milp
from mecllm.systems.finetune.solvers.association.pricing import optimal_phi, price_moves
from mecllm.systems.finetune.solvers.association.relaxation import hungarian_round, solve_relaxation

from factories import small_instance

OPTIMISERS = ("aauco", "gucro", "dashf")


@settings(max_examples=200, deadline=None)
@given(chi=st.floats(1e-6, 1e6), rate=st.floats(1e-6, 1e6), factor=st.floats(1e-3, 1e3))
def test_quadratic_transform_is_tight_at_z_star_and_an_upper_bound_elsewhere(
    chi: float, rate: float, factor: float
) -> None:
    z_star = fp_optimal_z(np.array(chi), np.array(rate))
    assert fp_bound(np.array(chi), np.array(rate), z_star) == pytest.approx(chi / rate, rel=1e-9)
    assert fp_bound(np.array(chi), np.array(rate), z_star * factor) >= chi / rate * (1 - 1e-12)


def _part1_costs(seed: int, n_users: int, n_servers: int):  # type: ignore[no-untyped-def]
    instance = small_instance(seed, n_users=n_users, n_servers=n_servers)
    start = solve(instance, "gucaa")
    costs, _ = price_moves(instance, start.plan, start.scr)
    return costs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relaxation_bounds_the_rounded_and_the_exact_part1_objective(seed: int) -> None:
    costs = _part1_costs(seed, 6, 2)
    relaxed = solve_relaxation(costs)
    assert relaxed.status in ("optimal", "inaccurate")
    rounded = hungarian_round(costs, relaxed.x_fractional)
    _, rounded_value = optimal_phi(costs, rounded)
    exact = solve_milp(costs)
    tol = 1e-5 * abs(exact.value)  # interior-point tolerance of the relaxation
    assert relaxed.value <= exact.value + tol
    assert exact.value <= rounded_value + 1e-9 * abs(rounded_value)


@pytest.mark.parametrize(("seed", "n_users", "n_servers"), [(0, 4, 2), (1, 5, 2), (2, 4, 3)])
def test_milp_matches_brute_force_over_every_association(
    seed: int, n_users: int, n_servers: int
) -> None:
    costs = _part1_costs(seed, n_users, n_servers)
    best = np.inf
    for combo in itertools.product(range(n_servers), repeat=n_users):
        assignment = np.array(combo, dtype=np.int64)
        usage_ok = all(
            np.all(
                np.bincount(
                    assignment,
                    weights=costs.usage[k][np.arange(n_users), assignment],
                    minlength=n_servers,
                )
                <= costs.capacity[k] * (1 + 1e-9)
            )
            for k in range(3)
        )
        if usage_ok:
            best = min(best, optimal_phi(costs, assignment)[1])
    exact = solve_milp(costs)
    assert exact.value == pytest.approx(best, rel=1e-6)


def test_hungarian_keeps_an_integral_association_and_respects_slots() -> None:
    costs = _part1_costs(0, 6, 2)
    target = np.array([0, 1, 1, 0, 1, 0])
    x = np.zeros((6, 2))
    x[np.arange(6), target] = 1.0
    np.testing.assert_array_equal(hungarian_round(costs, x), target)
    # Everybody prefers server 0, but it has room for fewer than six.
    crowd = np.tile([[0.9, 0.1]], (6, 1))
    rounded = hungarian_round(costs, crowd)
    for k in range(3):
        used = np.bincount(rounded, weights=costs.usage[k][np.arange(6), rounded], minlength=2)
        assert np.all(used <= costs.capacity[k] * (1 + 1e-9))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_optimisers_are_feasible_and_never_below_the_simple_baselines(seed: int) -> None:
    instance = small_instance(seed, n_users=6, n_servers=2)
    floor = max(
        solve(instance, "gucaa").scr,
        max(solve(instance, "rucaa", SolveOptions(seed=s)).scr for s in range(3)),
    )
    for name in OPTIMISERS:
        result = solve(instance, name)
        report = evaluate(instance, result.plan)
        assert report.feasible, (name, report.violations)
        assert report.scr == pytest.approx(result.scr, rel=1e-12)
        assert result.scr >= floor, name


def test_dinkelbach_returns_the_best_seen_and_fp_never_loses() -> None:
    instance = small_instance(5, n_users=8, n_servers=2)
    result = solve(instance, "dashf")
    start = solve(instance, "gucaa").scr
    seen = [start] + [h["y"] for h in result.history]
    assert result.scr == pytest.approx(max(seen), rel=1e-12)
    best_so_far = np.maximum.accumulate(seen)
    assert np.all(np.diff(best_so_far) >= 0)
    for record in result.history:
        values = record["part2_values"]
        # every accepted inner iteration improved; only the last may fail to
        assert all(b > a for a, b in itertools.pairwise(values[:-1]))
    assert result.status in ("converged", "iteration_limit")
    assert all("part1_s" in h and "part2_s" in h for h in result.history)


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_count_idle_false_is_honoured_by_every_algorithm(name: str) -> None:
    instance = small_instance(2, n_users=3, n_servers=2, count_idle=False)
    plan = solve(instance, name).plan
    report = evaluate(instance, plan)
    assert report.feasible
    idle = plan.phi >= 1 - 1e-9
    assert np.all(plan.server_flops[idle] == 0) and np.all(plan.server_power_w[idle] == 0)
