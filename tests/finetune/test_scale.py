"""The scalable steps: the barrier allocation engine and the delay-bound scan association."""

from __future__ import annotations

import numpy as np
import pytest

from mecllm.core.options import SolveOptions
from mecllm.systems.finetune.algorithms import solve
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.physics import evaluate
from mecllm.systems.finetune.solution import Plan
from mecllm.systems.finetune.solvers.allocation.barrier import BarrierSurrogate
from mecllm.systems.finetune.solvers.allocation.direct import DirectConicSurrogate
from mecllm.systems.finetune.solvers.allocation.engines import optimise_resources
from mecllm.systems.finetune.solvers.allocation.equal_split import equal_split
from mecllm.systems.finetune.solvers.allocation.modelled import ConicSurrogate
from mecllm.systems.finetune.solvers.allocation.surrogate import (
    Shares,
    SurrogateTerms,
    fp_weights,
    surrogate_terms,
)
from mecllm.systems.finetune.solvers.association.milp import solve_milp
from mecllm.systems.finetune.solvers.association.pricing import price_moves
from mecllm.systems.finetune.solvers.association.threshold import solve_by_threshold
from mecllm.systems.finetune.solvers.steps import greedy_start

from factories import small_instance


def _mixed_start(instance: Instance, seed: int) -> Plan:
    """Greedy association, equal split, phi spread over [0, 1] with some users at 0 and 1."""
    rng = np.random.default_rng(seed)
    phi = rng.uniform(0.0, 1.0, instance.n_users)
    phi[:2] = [0.0, 1.0]
    return equal_split(instance, greedy_start(instance).assignment, phi)


def _surrogate_at_start(
    instance: Instance, seed: int
) -> tuple[Plan, SurrogateTerms, Shares, tuple[np.ndarray, ...]]:
    """The mixed start of ``seed``, its part-2 surrogate at its own SCR, its shares and the FP
    weights there."""
    start = _mixed_start(instance, seed)
    report = evaluate(instance, start)
    y = report.scr
    terms = surrogate_terms(
        instance, start, y, report.delay_s, max(report.service, y * report.cost)
    )
    shares = Shares.of(instance, start)
    return start, terms, shares, fp_weights(terms, shares)


def _scaled_objective(terms: SurrogateTerms, weights: tuple[np.ndarray, ...], s: Shares) -> float:
    """The surrogate's (scaled) objective of ``s``, with tau at the largest delay."""
    return BarrierSurrogate(terms).value(weights, s)


@pytest.mark.parametrize(
    ("seed", "n_users", "n_servers", "count_idle"),
    [(0, 10, 2, True), (1, 20, 3, True), (2, 12, 2, False), (3, 30, 4, False)],
)
def test_barrier_engine_reaches_the_conic_optimum_of_the_surrogate(
    seed: int, n_users: int, n_servers: int, count_idle: bool
) -> None:
    instance = small_instance(seed, n_users=n_users, n_servers=n_servers).with_settings(
        count_idle=count_idle
    )
    start, terms, shares, weights = _surrogate_at_start(instance, seed)
    conic, _ = ConicSurrogate(terms).solve(weights, shares)
    barrier, barrier_status = BarrierSurrogate(terms).solve(weights, shares)
    assert conic is not None and barrier is not None
    assert barrier_status == "optimal"
    conic_value = _scaled_objective(terms, weights, conic)
    barrier_value = _scaled_objective(terms, weights, barrier)
    # Same convex problem: the barrier optimum is at least the conic one (up to tolerance).
    assert barrier_value >= conic_value - 1e-6 * max(1.0, abs(conic_value))
    plan = barrier.to_plan(instance, terms)
    assert evaluate(instance, plan).feasible
    if not count_idle:
        idle = start.phi >= 1.0
        assert np.all(plan.server_flops[idle] == 0.0)


@pytest.mark.parametrize(
    ("seed", "n_users", "n_servers", "count_idle"),
    [(0, 10, 2, True), (1, 20, 3, True), (2, 12, 2, False), (3, 30, 4, False)],
)
def test_direct_cone_program_reaches_the_optimum_of_the_other_engines(
    seed: int, n_users: int, n_servers: int, count_idle: bool
) -> None:
    instance = small_instance(seed, n_users=n_users, n_servers=n_servers).with_settings(
        count_idle=count_idle
    )
    _, terms, shares, weights = _surrogate_at_start(instance, seed)
    conic, _ = ConicSurrogate(terms).solve(weights, shares)
    barrier, _ = BarrierSurrogate(terms).solve(weights, shares)
    direct, status = DirectConicSurrogate(terms).solve(weights, shares)
    assert conic is not None and barrier is not None and direct is not None
    assert status != "failed"
    conic_value = _scaled_objective(terms, weights, conic)
    direct_value = _scaled_objective(terms, weights, direct)
    barrier_value = _scaled_objective(terms, weights, barrier)
    # Same convex problem, compared at the accuracy each engine certifies: the barrier method
    # stops at a 1e-7 duality gap; Clarabel's "optimal" (Solved) at 1e-8; its "inaccurate"
    # (AlmostSolved) only within its reduced tolerances, a relative gap of 5e-5 and
    # feasibility 1e-4. An AlmostSolved answer 2e-5 below the optimum (clarabel 0.11.1, seed 3)
    # is what made a 1e-6 comparison flaky.
    accuracy = 1e-6 if status == "optimal" else 1e-4
    best = max(conic_value, barrier_value)
    assert direct_value >= best - accuracy * max(1.0, abs(best))
    assert direct_value <= barrier_value + 1e-5 * max(1.0, abs(barrier_value))
    assert evaluate(instance, direct.to_plan(instance, terms)).feasible


def test_direct_cone_program_falls_back_to_the_barrier_when_clarabel_stops() -> None:
    _, terms, shares, weights = _surrogate_at_start(small_instance(4, n_users=10, n_servers=2), 4)
    direct = DirectConicSurrogate(terms)
    direct.settings.max_iter = 1  # Clarabel stops with MaxIterations
    found, status = direct.solve(weights, shares)
    expected, _ = BarrierSurrogate(terms).solve(weights, shares)
    assert direct.fallback is not None and found is not None and expected is not None
    assert status == "optimal"
    np.testing.assert_allclose(found.beta, expected.beta)


def test_barrier_part2_never_loses_to_its_start_and_matches_the_conic_engine() -> None:
    instance = small_instance(4, n_users=40, n_servers=4)
    start = _mixed_start(instance, 4)
    y = evaluate(instance, start).scr
    conic = optimise_resources(instance, start, y, engine="conic")
    barrier = optimise_resources(instance, start, y, engine="barrier")
    assert barrier.values[-1] >= barrier.values[0]
    scr_conic = evaluate(instance, conic.plan).scr
    scr_barrier = evaluate(instance, barrier.plan).scr
    assert scr_barrier >= scr_conic * (1 - 0.01)


def test_unknown_engine_is_refused() -> None:
    instance = small_instance(0)
    start = greedy_start(instance)
    with pytest.raises(ValueError, match="engine"):
        optimise_resources(instance, start, 1.0, engine="magic")


@pytest.mark.parametrize(
    ("seed", "n_users", "n_servers"),
    [(0, 10, 2), (0, 50, 5), (1, 50, 5), (0, 100, 10), (0, 300, 10)],
)
def test_threshold_scan_is_within_a_thousandth_of_the_milp_and_fits_the_caps(
    seed: int, n_users: int, n_servers: int
) -> None:
    instance = small_instance(seed, n_users=n_users, n_servers=n_servers)
    plan = greedy_start(instance)
    costs, _ = price_moves(instance, plan, evaluate(instance, plan).scr)
    scan = solve_by_threshold(costs, plan.assignment)
    exact = solve_milp(costs, time_limit_s=60.0)
    assert exact.status == "optimal"
    # Minimisation objective, negative here: the scan is never better than the exact optimum.
    assert scan.value >= exact.value - 1e-6 * abs(exact.value)
    # Measured: equal to the MILP on all five (50x5 seed 0 was 0.2% off before the matching).
    assert scan.value <= exact.value + 1e-3 * abs(exact.value)
    rows = np.arange(n_users)
    for k in range(3):
        used = np.bincount(
            scan.assignment, weights=costs.usage[k][rows, scan.assignment], minlength=n_servers
        )
        assert np.all(used <= costs.capacity[k] * (1 + 1e-9))


def test_dashf_scale_solves_a_mid_size_instance_far_above_the_baselines() -> None:
    instance = small_instance(5, n_users=120, n_servers=6)
    result = solve(instance, "dashf-scale", SolveOptions(max_iterations=4))
    assert evaluate(instance, result.plan).feasible
    assert result.history and result.history[0]["part2_engine"] == "auto"
    # One full screen would be ~50,000 rows: the price-ranked short list runs instead.
    assert "shortlist move search took" in result.message
    baselines = max(solve(instance, name).scr for name in ("rucaa", "gucaa"))
    assert result.scr > 5 * baselines
