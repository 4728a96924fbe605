"""The work models: paper (linear in phi) and profiled (fixed parts with steps at 0 and 1)."""

from __future__ import annotations

import numpy as np
import pytest

from mecllm.core.errors import InvalidInputError
from mecllm.systems.finetune.algorithms import solve
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.physics import evaluate, phases
from mecllm.systems.finetune.solvers.association.endpoints import snap_to_endpoints
from mecllm.systems.finetune.solvers.steps import greedy_start
from mecllm.systems.finetune.work_model import Profile, fit_profile

from factories import profiled_instance_for_tests, small_instance, synthetic_cost


def test_paper_model_is_linear_in_phi() -> None:
    instance = small_instance(3)
    work = instance.work
    assert work.linear
    phi = np.linspace(0.0, 1.0, instance.n_users)
    rows = np.arange(instance.n_users)
    expected = instance.flops_per_param * instance.adapter_params * phi
    np.testing.assert_allclose(work.user_work(rows, phi), expected, rtol=1e-15)
    whole = instance.flops_per_param * instance.adapter_params
    np.testing.assert_allclose(work.server_work(rows, phi), whole * (1 - phi), rtol=1e-15)


def test_fit_recovers_affine_costs_exactly() -> None:
    profile = fit_profile(synthetic_cost(), np.array([100.0, 200.0]))
    assert profile.user_fixed_flops_per_token == pytest.approx(39.8e6, rel=1e-12)
    assert profile.user_flops_per_token_per_phi == pytest.approx(0.12e6, rel=1e-9)
    assert profile.server_fixed_flops_per_token == pytest.approx(21.6e6, rel=1e-12)
    assert profile.server_flops_per_token_per_share == pytest.approx(18.3e6, rel=1e-12)
    assert profile.machine_flops_per_s == pytest.approx(8e10, rel=1e-12)


def test_profiled_work_has_steps_at_both_ends() -> None:
    instance = profiled_instance_for_tests(0)
    work, tokens = instance.work, instance.profile.tokens_per_epoch  # type: ignore[union-attr]
    assert not work.linear
    rows = np.zeros(4, dtype=int)
    phi = np.array([0.0, 1e-9, 0.5, 1.0])
    user = work.user_work(rows, phi) / tokens[0]
    server = work.server_work(rows, phi) / tokens[0]
    np.testing.assert_allclose(user, [0.0, 39.8e6, 39.86e6, 39.92e6], rtol=1e-9)
    np.testing.assert_allclose(server, [39.9e6, 39.9e6, 30.75e6, 0.0], rtol=1e-6)
    # The chord the linear steps use is exact at the ends and never above the work.
    grid = np.linspace(0.0, 1.0, 101)
    users = np.zeros(101, dtype=int)
    assert np.all(work.user_chord[0] * grid <= work.user_work(users, grid) * (1 + 1e-12))
    assert np.all(work.server_chord[0] * (1 - grid) <= work.server_work(users, grid) * (1 + 1e-12))


def test_profiled_instance_round_trips_and_checks() -> None:
    instance = profiled_instance_for_tests(1)
    data = instance.to_dict()
    assert data["work_model"] == "profiled"
    again = Instance.from_dict(data)
    np.testing.assert_array_equal(again.work.user_fixed, instance.work.user_fixed)
    with pytest.raises(InvalidInputError, match="work_model must be one of"):
        Instance.from_dict({**data, "work_model": "guess"})
    with pytest.raises(InvalidInputError, match="needs a profile section"):
        Instance.from_dict({k: v for k, v in data.items() if k != "profile"})
    bad = {**data, "profile": {**data["profile"], "tokens_per_epoch": [1.0]}}
    with pytest.raises(InvalidInputError, match="tokens_per_epoch"):
        Instance.from_dict(bad)
    # The paper's view of the same run keeps the data sizes and plans linearly.
    paper = Instance.from_dict({**data, "work_model": "paper"})
    assert paper.work.linear and paper.profile is not None


def test_endpoint_snap_never_raises_delay_or_energy() -> None:
    instance = profiled_instance_for_tests(2, n_users=8, n_servers=2)
    rng = np.random.default_rng(0)
    start = greedy_start(instance)
    for _ in range(5):
        plan = start.replace(phi=rng.uniform(0.05, 0.95, instance.n_users))
        before = phases(instance, plan)
        phi = snap_to_endpoints(instance, plan, np.ones(instance.n_users))
        after = phases(instance, plan.replace(phi=phi))
        assert np.max(after.delay) <= np.max(before.delay) * (1 + 1e-12)
        assert np.all(after.energy <= before.energy * (1 + 1e-12))
        assert np.any((phi == 0.0) | (phi == 1.0))


@pytest.mark.parametrize("algorithm", ["dashf-scale", "dashf-milp", "rucaa", "gucaa"])
def test_solvers_plan_with_the_profiled_model(algorithm: str) -> None:
    instance = profiled_instance_for_tests(4)
    result = solve(instance, algorithm)
    report = evaluate(instance, result.plan)
    assert report.feasible
    assert np.isfinite(report.scr) and report.scr > 0


def test_profiled_plan_beats_paper_plan_under_profiled_costs() -> None:
    profiled = profiled_instance_for_tests(5)
    paper = Instance.from_dict({**profiled.to_dict(), "work_model": "paper"})
    own = evaluate(profiled, solve(profiled, "dashf-scale").plan)
    other = evaluate(profiled, solve(paper, "dashf-scale").plan)
    assert own.scr > other.scr


def test_the_profile_carries_its_conditions_into_the_instance() -> None:
    recorded = {"cpu_model": "AMD EPYC", "cpus": 2, "usable_cpus": 2, "load_per_cpu": 0.05}
    profile = fit_profile({**synthetic_cost(), "conditions": recorded}, np.array([100.0]))
    assert profile.conditions is not None and profile.conditions.to_dict() == recorded
    data = profile.to_dict()
    assert data["conditions"] == recorded
    again = Profile.from_dict(data, 1)
    assert again.conditions == profile.conditions
    assert fit_profile(synthetic_cost(), np.array([100.0])).conditions is None  # older files
    with pytest.raises(InvalidInputError, match=r"profile\.conditions\.cpus"):
        Profile.from_dict({**data, "conditions": {**recorded, "cpus": "two"}}, 1)
