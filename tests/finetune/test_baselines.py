"""RUCAA and GUCAA: feasibility on random instances, the evaluator agrees, GUCAA is exact."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mecllm.core.options import SolveOptions
from mecllm.systems.finetune.algorithms import solve
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.physics import evaluate

from factories import small_instance


def independent_gucaa(instance: Instance) -> float:
    """GUCAA written again from docs/finetune.md, sharing no code with the package."""
    n, m = instance.n_users, instance.n_servers
    counts = [0] * m
    server = []
    for _ in range(n):
        j = min(range(m), key=lambda k: (counts[k], k))
        server.append(j)
        counts[j] += 1
    total_v, delay, energy = 0.0, 0.0, 0.0
    for i in range(n):
        j = server[i]
        b = instance.bandwidth_hz[j] / counts[j]
        q = instance.server_max_power_w[j] / counts[j]
        s = instance.server_max_flops[j] / counts[j]
        p, f = instance.user_max_power_w[i], instance.user_max_flops[i]
        if not instance.count_idle:
            q, s = (
                min(q, 0.5 * instance.server_max_power_w[j]),
                min(s, 0.5 * instance.server_max_flops[j]),
            )
        c = instance.channel_gain[i, j] / instance.noise_psd_w_per_hz
        r_up = b * np.log2(1 + c * p / b)
        r_dn = b * np.log2(1 + c * q / b)
        d, t = instance.adapter_params[i], instance.flops_per_param[i]
        t1 = t * 0.5 * d * instance.user_epochs[i] / f
        t2 = 0.5 * d * instance.bits_per_param / r_up
        t3 = t * 0.5 * d * instance.server_epochs[j] / s
        t4 = 0.5 * d * instance.bits_per_param / r_dn
        delay = max(delay, t1 + t2 + t3 + t4)
        energy += (
            instance.user_epochs[i] * instance.user_kappa[i] * 0.5 * d * t * f**2
            + p * t2
            + instance.server_epochs[j] * instance.server_kappa[j] * 0.5 * d * t * s**2
            + q * t4
        )
        total_v += instance.service_scale * np.log(
            1
            + instance.service_norm
            * (
                q / instance.server_max_power_w[j]
                + s / instance.server_max_flops[j]
                + b / instance.bandwidth_hz[j]
            )
        )
    return float(total_v / (instance.weight_delay * delay + instance.weight_energy * energy))


instances = st.builds(
    small_instance,
    seed=st.integers(0, 10_000),
    n_users=st.integers(1, 12),
    n_servers=st.integers(1, 5),
    preset_name=st.sampled_from(["paper", "paper-literal"]),
    count_idle=st.booleans(),
)


@settings(max_examples=40, deadline=None)
@given(instance=instances, seed=st.integers(0, 1000))
def test_baselines_feasible_and_evaluator_agrees(instance: Instance, seed: int) -> None:
    for name in ("rucaa", "gucaa"):
        result = solve(instance, name, SolveOptions(seed=seed))
        report = evaluate(instance, result.plan)
        assert report.feasible, report.violations
        assert report.scr == pytest.approx(result.scr, rel=1e-12)
        assert report.delay_s == pytest.approx(result.delay_s, rel=1e-12)
        assert report.energy_j == pytest.approx(result.energy_j, rel=1e-12)
        np.testing.assert_array_equal(result.plan.phi, 0.5)
        np.testing.assert_array_equal(result.plan.user_power_w, instance.user_max_power_w)


@settings(max_examples=25, deadline=None)
@given(instance=instances)
def test_gucaa_matches_an_independent_implementation(instance: Instance) -> None:
    assert solve(instance, "gucaa").scr == pytest.approx(independent_gucaa(instance), rel=1e-9)


def test_gucaa_is_round_robin_and_rucaa_depends_on_seed() -> None:
    instance = small_instance(0, n_users=7, n_servers=3)
    assert solve(instance, "gucaa").plan.assignment.tolist() == [0, 1, 2, 0, 1, 2, 0]
    draws = {
        tuple(solve(instance, "rucaa", SolveOptions(seed=s)).plan.assignment) for s in range(6)
    }
    assert len(draws) > 1
    same = solve(instance, "rucaa", SolveOptions(seed=4)).plan.assignment
    np.testing.assert_array_equal(
        same, solve(instance, "rucaa", SolveOptions(seed=4)).plan.assignment
    )


def test_equal_split_divides_each_server_budget() -> None:
    instance = small_instance(1, n_users=5, n_servers=2)
    plan = solve(instance, "gucaa").plan
    for m in range(2):
        users = plan.assignment == m
        assert plan.bandwidth_hz[users].sum() == pytest.approx(instance.bandwidth_hz[m])
        assert plan.server_flops[users].sum() == pytest.approx(instance.server_max_flops[m])
