"""Physics against values worked out by hand for a 2-user case, and its invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mecllm.core.phases import phase_time
from mecllm.core.radio import shannon_rate
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.physics import evaluate
from mecllm.systems.finetune.solution import Plan

from factories import hand_instance_dict, hand_solution_dict


def hand_plan(**changes: object) -> Plan:
    data = hand_solution_dict()
    data.update(changes)
    return Plan.from_dict(data, 2, 1)


def test_hand_case_every_figure(hand_instance: Instance) -> None:
    # g / sigma^2 = 3e7. User 0: SNR up = 3e7 * 0.1 / 1e6 = 3 -> 2 Mbit/s; down 3e7*0.5/1e6 = 15
    # -> 4 Mbit/s. 0.5 * 1e6 params * 32 bit = 16 Mbit each way.
    # T1 = 10 * 0.5e6 / 1e6 = 5 s, T2 = 8 s, T3 = 5e6 / 2e6 = 2.5 s, T4 = 4 s.
    # E1 = 1e-20 * 5e6 * 1e12 = 0.05 J, E2 = 0.1 * 8 = 0.8 J, E3 = 1e-19 * 5e6 * 4e12 = 2 J,
    # E4 = 0.5 * 4 = 2 J.
    # User 1 (phi = 1): SNR 3e7 * 0.2 / 2e6 = 3 -> 4 Mbit/s; 64 Mbit up -> T2 = 16 s,
    # E2 = 3.2 J; T1 = 2e7 / 2e6 = 10 s, E1 = 1e-20 * 2e7 * 4e12 = 0.8 J; no server phases.
    r = evaluate(hand_instance, hand_plan())
    np.testing.assert_allclose(r.uplink_rate_bps, [2e6, 4e6], rtol=1e-12)
    np.testing.assert_allclose(r.downlink_rate_bps[0], 4e6, rtol=1e-12)
    np.testing.assert_allclose(r.t1, [5.0, 10.0], rtol=1e-12)
    np.testing.assert_allclose(r.t2, [8.0, 16.0], rtol=1e-12)
    np.testing.assert_allclose(r.t3, [2.5, 0.0], rtol=1e-12)
    np.testing.assert_allclose(r.t4, [4.0, 0.0], rtol=1e-12)
    np.testing.assert_allclose(r.e1, [0.05, 0.8], rtol=1e-12)
    np.testing.assert_allclose(r.e2, [0.8, 3.2], rtol=1e-12)
    np.testing.assert_allclose(r.e3, [2.0, 0.0], rtol=1e-12)
    np.testing.assert_allclose(r.e4, [2.0, 0.0], rtol=1e-12)
    np.testing.assert_allclose(r.user_delay_s, [19.5, 26.0], rtol=1e-12)
    assert r.delay_s == pytest.approx(26.0, rel=1e-12)
    assert r.energy_j == pytest.approx(8.85, rel=1e-12)
    # Service: shares 0.5 + 0.5 + 0.25 = 1.25 -> ln(1 + 0.8 * 1.25) / ln 2 = 1;
    # user 1: 0.25 + 0.25 + 0.5 = 1 -> log2(1.8) = 0.8479969065549501.
    np.testing.assert_allclose(r.user_service, [1.0, 0.8479969065549501], rtol=1e-12)
    # Cost 0.5 * 26 + 0.1 * 8.85 = 13.885.
    assert r.cost == pytest.approx(13.885, rel=1e-12)
    assert r.scr == pytest.approx(1.8479969065549501 / 13.885, rel=1e-12)
    assert r.feasible
    # User 1 holds server compute and power with no server work: reported as idle.
    assert r.idle is not None and r.idle.users == [1]
    assert r.idle.compute_share[0] == pytest.approx(0.25)


def test_zero_work_phases_cost_nothing_whatever_the_resource(hand_instance: Instance) -> None:
    r = evaluate(hand_instance, hand_plan(server_power_w=[0.5, 0.0], server_flops=[2e6, 0.0]))
    assert r.feasible
    assert r.t3[1] == 0 and r.t4[1] == 0 and r.e3[1] == 0 and r.e4[1] == 0
    r0 = evaluate(
        hand_instance, hand_plan(phi=[0.0, 1.0], user_power_w=[0.0, 0.2], user_flops=[0.0, 2e6])
    )
    assert r0.feasible and r0.t1[0] == 0 and r0.t2[0] == 0 and r0.e2[0] == 0


def test_work_without_resource_is_infeasible_not_nan(hand_instance: Instance) -> None:
    r = evaluate(hand_instance, hand_plan(user_power_w=[0.0, 0.2], server_flops=[0.0, 1e6]))
    assert not r.feasible
    assert math.isinf(r.delay_s)
    assert r.scr == 0.0
    assert not np.isnan(r.e2).any()
    names = {v.constraint for v in r.violations}
    assert names == {"unfinishable_phase"}
    assert {v.index for v in r.violations} == {0}


def test_each_violation_is_named_with_its_amount(hand_instance: Instance) -> None:
    plan = hand_plan(
        phi=[1.5, 1.0], bandwidth_hz=[3e6, 2e6], user_power_w=[0.3, 0.2], server_flops=[-1.0, 1e6]
    )
    found = {(v.constraint, v.index): v.amount for v in evaluate(hand_instance, plan).violations}
    assert found[("phi", 0)] == pytest.approx(0.5)
    assert found[("server_bandwidth_hz_total", 0)] == pytest.approx(1e6)
    assert found[("user_power_w", 0)] == pytest.approx(0.1)
    assert found[("server_flops", 0)] == pytest.approx(1.0)


def test_count_idle_false_forbids_idle_allocations() -> None:
    data = hand_instance_dict()
    data["service"]["count_idle"] = False
    instance = Instance.from_dict(data)
    found = {v.constraint for v in evaluate(instance, hand_plan()).violations}
    assert found == {"server_flops_idle", "server_power_idle"}


def test_rate_is_monotone_and_zero_safe() -> None:
    b = np.array([0.0, 1e6, 1e6, 2e6])
    p = np.array([1.0, 0.0, 0.1, 0.1])
    r = shannon_rate(b, p, np.full(4, 3e7))
    assert r[0] == 0 and r[1] == 0
    assert r[3] > r[2] > 0
    assert phase_time(np.array([0.0, 1.0]), np.array([0.0, 0.0])).tolist() == [0.0, math.inf]
