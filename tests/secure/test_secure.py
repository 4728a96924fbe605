"""The secure offsite-tuning system: physics by hand, the SCA bound, KKT phi against brute force,
feasibility on random instances, exclusion reporting, bad input, the CLI and the sweep engine."""

from __future__ import annotations

import copy
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mecllm.cli import app
from mecllm.core.errors import InvalidInputError
from mecllm.systems.secure.algorithms import SECURE_ALGORITHMS, solve_secure
from mecllm.systems.secure.instance import SecureInstance
from mecllm.systems.secure.physics import (
    EXCLUDED,
    SECURE,
    SecurePlan,
    evaluate_secure,
    secrecy_rate,
    service_status,
)
from mecllm.systems.secure.scenario import generate_secure, secure_preset
from mecllm.systems.secure.subproblems import (
    affine_costs,
    eavesdropper_tangent,
    equal_resources,
    phi_step,
    subproblem1_value,
)

runner = CliRunner()


def hand_dict() -> dict[str, Any]:
    """Two owners; owner 1's eavesdropper is stronger than its link (no secrecy possible)."""
    return {
        "kind": "secure-offsite",
        "users": {
            "flops_per_param": [10.0, 10.0],
            "epochs": [1, 1],
            "max_power_w": [1.0, 1.0],
            "max_flops": [1e9, 1e9],
            "kappa": [1e-28, 1e-28],
            "utility_weight": [1.0, 1.0],
            "channel_gain": [3e-14, 3e-14],
            "eavesdropper_gain": [1e-14, 6e-14],
        },
        "server": {"bandwidth_hz": 2e6, "max_power_w": 2.0, "max_flops": 2e9, "kappa": 1e-28},
        "model": {
            "layers": 10,
            "params_per_layer": 1e5,
            "bits_per_param": 16,
            "phi_min": 0.1,
            "phi_max": 0.5,
            "emulator_ratio": 0.5,
            "distill_flops_per_param": 100.0,
        },
        "utility": {"beta": 10.0, "gamma": 1.0},
        "noise_psd_w_per_hz": 1e-20,
        "secrecy_floor_bps": 1e5,
        "weights": {"delay": 0.5, "energy": 0.005},
    }


def test_secrecy_rate_by_hand_and_zero_case() -> None:
    # SNR 3 at the receiver, 1 at the eavesdropper: 1 MHz x (log2 4 - log2 2) = 1 Mbit/s.
    b, p = np.array([1e6, 1e6]), np.array([1.0, 1.0])
    rate = secrecy_rate(b, p, np.array([3e6, 3e6]), np.array([1e6, 5e6]))
    assert rate[0] == pytest.approx(1e6, rel=1e-12)
    assert rate[1] == 0.0  # the eavesdropper is stronger: no secrecy, never negative
    assert secrecy_rate(np.array([0.0]), np.array([1.0]), np.array([3.0]), np.array([1.0]))[0] == 0


def test_hand_instance_phases_and_exclusion() -> None:
    inst = SecureInstance.from_dict(hand_dict())
    status = service_status(inst)
    assert status.status == [SECURE, EXCLUDED]
    assert "user 1 excluded" in status.lines()[0] and "eavesdropper gain" in status.lines()[0]
    plan = SecurePlan(
        phi=[0.5, 0.0],
        bandwidth_hz=[1e6, 0.0],
        user_power_w=[1.0, 0.0],
        server_power_w=[1.0, 0.0],
        user_flops=[1e9, 0.0],
        server_flops=[1e9, 0.0],
    )
    r = evaluate_secure(inst, plan)
    assert r.feasible, r.violations
    lp = 1e6
    a, e = 0.5 * lp, 0.5 * 0.5 * lp
    # g/sigma^2 = 3e6, h/sigma^2 = 1e6: downlink SNR 3 -> 2 Mbit/s, secrecy 1 Mbit/s.
    assert r.times[0, 0] == pytest.approx(100 * e / 1e9)
    assert r.times[1, 0] == pytest.approx((a + e) * 16 / 2e6)
    assert r.times[2, 0] == pytest.approx(10 * (a + e) / 1e9)
    assert r.times[3, 0] == pytest.approx(a * 16 / 1e6)
    assert r.energies[0, 0] == pytest.approx(1e-28 * 100 * e * 1e18)
    assert r.energies[1, 0] == pytest.approx(1.0 * (a + e) * 16 / 2e6)
    assert r.energies[3, 0] == pytest.approx(a * 16 / 1e6)
    assert np.all(r.times[:, 1] == 0) and r.user_utility[1] == 0  # excluded: no figures
    u = math.log(1 + 10 * 0.5) + math.log(0.5)
    assert r.utility == pytest.approx(u)
    cost = 0.5 * r.user_delay_s[0] + 0.005 * r.energies[:, 0].sum()
    assert r.ratio == pytest.approx(u / cost)
    # Giving the excluded owner resources is a secrecy violation (its adapter would leak).
    leaky = plan.replace(bandwidth_hz=[1e6, 1e6], phi=[0.5, 0.5])
    assert 1 in evaluate_secure(inst, leaky).floor_violations


def test_accept_insecure_serves_over_a_plain_link() -> None:
    data = hand_dict()
    data["users"]["accept_insecure"] = [False, True]
    inst = SecureInstance.from_dict(data)
    assert service_status(inst).status == [SECURE, "insecure"]
    result = solve_secure(inst, "secure-ao")
    report = evaluate_secure(inst, result.plan)
    assert report.feasible and report.user_utility[1] > 0
    assert "plain uplink" in report.status.lines()[0]


@settings(max_examples=60, deadline=None)
@given(
    gamma=st.floats(1e-3, 1e4),
    b0=st.floats(1e-4, 1.0),
    p0=st.floats(1e-4, 1.0),
    b=st.floats(1e-6, 1.0),
    p=st.floats(0.0, 1.0),
)
def test_sca_tangent_upper_bounds_the_eavesdropper_rate(
    gamma: float, b0: float, p0: float, b: float, p: float
) -> None:
    d_b, d_p = eavesdropper_tangent(np.array([gamma]), np.array([b0]), np.array([p0]))
    true = b * math.log2(1 + gamma * p / b)
    bound = float(d_b[0] * b + d_p[0] * p)
    assert bound >= true - 1e-9 * max(1.0, true)
    at_point = float(d_b[0] * b0 + d_p[0] * p0)
    assert at_point == pytest.approx(b0 * math.log2(1 + gamma * p0 / b0), rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kkt_phi_matches_brute_force(seed: int) -> None:
    inst = generate_secure(secure_preset("default", n_users=2), np.random.default_rng(seed))
    inst = inst.with_settings(eavesdropper_gain=np.zeros(2))  # both owners served
    plan = equal_resources(inst, np.full(2, inst.phi_mid))
    y = evaluate_secure(inst, plan).ratio
    served = service_status(inst).served
    costs = affine_costs(inst, plan)
    kkt = phi_step(inst, plan, y).phi
    grid = np.linspace(inst.phi_min, inst.phi_max, 401)
    brute = max(
        subproblem1_value(inst, costs, y, np.array([a, b]), served) for a in grid for b in grid
    )
    mine = subproblem1_value(inst, costs, y, kkt, served)
    assert mine >= brute - 1e-9 * abs(brute)
    # The affine model is the physics: evaluate agrees at the KKT phi.
    report = evaluate_secure(inst, plan.replace(phi=kkt))
    assert report.utility - y * report.cost == pytest.approx(mine, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_every_solution_feasible_and_optimiser_best(seed: int) -> None:
    inst = generate_secure(secure_preset("balanced", n_users=5), np.random.default_rng(seed))
    results = {name: solve_secure(inst, name) for name in SECURE_ALGORITHMS}
    for name, r in results.items():
        report = evaluate_secure(inst, r.plan)
        assert math.isfinite(r.ratio) and not math.isnan(r.ratio)
        if name != "secure-blind":
            assert report.feasible, (name, report.violations)
            assert not report.floor_violations
            assert np.all(
                report.secrecy_rate_bps[report.status.secure] >= inst.secrecy_floor_bps * 0.999
            )
    best = results["secure-ao"].ratio
    for name, r in results.items():
        assert best >= r.ratio * (1 - 1e-9), name
    history = [h["y"] for h in results["secure-ao"].history]
    assert all(b >= a * (1 - 1e-9) for a, b in itertools.pairwise(history))


def test_blind_plan_breaks_the_floor_when_an_eavesdropper_is_strong() -> None:
    inst = SecureInstance.from_dict(hand_dict())
    blind = solve_secure(inst, "secure-blind")
    secure = solve_secure(inst, "secure-ao")
    assert 1 in blind.floor_violations and not blind.feasible
    assert blind.believed_ratio is not None and blind.believed_ratio > 0
    assert secure.feasible and not secure.floor_violations


def test_nobody_servable_gives_zero_ratio_not_nan() -> None:
    data = hand_dict()
    data["users"]["eavesdropper_gain"] = [6e-14, 6e-14]
    result = solve_secure(SecureInstance.from_dict(data), "secure-ao")
    assert result.ratio == 0.0 and result.feasible


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        (("kind",), "edge-llm", "kind must be 'secure-offsite'"),
        (("model", "phi_min"), 0.9, "phi_min must be <= model.phi_max"),
        (("model", "phi_max"), 1.0, "must be < 1"),
        (("model", "emulator_ratio"), 0.0, "emulator_ratio must be > 0"),
        (("users", "channel_gain"), [3e-14, -1.0], "channel_gain[1] must be > 0"),
        (("users", "eavesdropper_gain"), [1e-14], "must have 2 entries"),
        (("users", "accept_insecure"), [True, "yes"], "accept_insecure[1] must be true or false"),
        (("server", "bandwidth_hz"), "100", "must be a number"),
        (("utility", "beta"), -1.0, "beta must be > 0"),
        (("secrecy_floor_bps",), float("nan"), "must be finite"),
        (("server", "typo"), 1.0, "server.typo is not a known field"),
    ],
)
def test_bad_input_is_rejected_with_the_field(
    path: tuple[str, ...], value: object, words: str
) -> None:
    data = copy.deepcopy(hand_dict())
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(InvalidInputError) as info:
        SecureInstance.from_dict(data)
    assert words in str(info.value)


def test_floors_that_need_more_than_the_band_are_refused() -> None:
    data = hand_dict()
    data["users"]["eavesdropper_gain"] = [1e-14, 1e-14]
    data["secrecy_floor_bps"] = 1.2e6  # each needs > 1 MHz of the 2 MHz band
    with pytest.raises(InvalidInputError, match="secrecy floors need"):
        solve_secure(SecureInstance.from_dict(data), "secure-ao")


def test_json_round_trip_and_generator_is_seeded() -> None:
    a = generate_secure(secure_preset("default"), np.random.default_rng(7))
    b = generate_secure(secure_preset("default"), np.random.default_rng(7))
    assert a.to_dict() == b.to_dict()
    again = SecureInstance.from_dict(json.loads(json.dumps(a.to_dict())))
    assert again.to_dict() == a.to_dict()
    assert a.eavesdropper_position_m is not None and a.n_users == 10


def test_cli_generate_solve_evaluate_compare(tmp_path: Path) -> None:
    inst, sol = tmp_path / "s.json", tmp_path / "sol.json"
    r = runner.invoke(
        app, ["generate", "--system", "secure-offsite", "--users", "4", "-o", str(inst)]
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["solve", str(inst), "-a", "secure-ao", "-o", str(sol)])
    assert r.exit_code == 0, r.output
    saved = json.loads(sol.read_text())
    assert saved["system"] == "secure-offsite" and saved["feasible"] is True
    r = runner.invoke(app, ["evaluate", str(inst), str(sol), "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["us_ratio"] == pytest.approx(saved["us_ratio"], rel=1e-9)
    assert report["reported_mismatch"] == []
    r = runner.invoke(app, ["compare", str(inst), "--algorithms", "secure-equal,secure-fixed-phi"])
    assert r.exit_code == 0, r.output
    assert "secure-fixed-phi" in r.stdout
    bad = [
        ["generate", "--system", "secure-offsite", "--servers", "2", "-o", str(tmp_path / "x")],
        ["generate", "--system", "nope", "-o", str(tmp_path / "x")],
        ["solve", str(inst), "-a", "dashf", "-o", str(tmp_path / "y.json")],
    ]
    for args in bad:
        r = runner.invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y.json").exists()


def test_reproduce_secure_methods_writes_report(tmp_path: Path) -> None:
    out = tmp_path / "rs"
    r = runner.invoke(
        app, ["reproduce", "secure-methods", "--trials", "1", "--workers", "1", "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    for name in ("secure-methods.png", "secure-methods.csv", "REPORT.md"):
        assert (out / name).exists()
    report = (out / "REPORT.md").read_text()
    assert "secure-ao has a higher U/S than every baseline" in report
