"""Predicted channels feeding the fine-tuning plan: the beam gains and the promised-vs-delivered
scores, on cases whose answer is known."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mecllm.core.options import SolveOptions
from mecllm.systems.air.experiments import EXPERIMENTS, check_claims
from mecllm.systems.air.to_finetune import CELL_USERS, beam_gains, oracle_scr, score_cell
from mecllm.systems.registry import get_system


def _channels(rng: np.random.Generator, n: int = 6) -> np.ndarray:
    shape = (n, 2, 8, 4)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)


def test_a_perfect_beam_is_believed_and_achieved_alike() -> None:
    h = _channels(np.random.default_rng(0))
    believed, achieved = beam_gains(h, h)
    np.testing.assert_allclose(believed, achieved, rtol=1e-12)
    np.testing.assert_allclose(believed, np.mean(np.sum(np.abs(h) ** 2, axis=2), axis=(1, 2)))


def test_the_achieved_gain_ignores_the_csis_scale_and_drops_with_its_error() -> None:
    rng = np.random.default_rng(1)
    h = _channels(rng)
    _, perfect = beam_gains(h, h)
    believed, achieved = beam_gains(h, 0.5 * h)
    np.testing.assert_allclose(achieved, perfect, rtol=1e-12)
    np.testing.assert_allclose(believed, 0.25 * perfect, rtol=1e-12)
    _, noisy = beam_gains(h, h + _channels(rng))
    assert np.all(noisy < perfect)
    # A beam orthogonal to the channel on every subcarrier achieves nothing.
    w = np.zeros_like(h)
    w[:, :, 0], w[:, :, 1] = -np.conj(h[:, :, 1]), np.conj(h[:, :, 0])
    w[:, :, 2:] = 0
    h2 = h.copy()
    h2[:, :, 2:] = 0
    _, none = beam_gains(h2, w)
    np.testing.assert_allclose(none, 0.0, atol=1e-12)


@pytest.fixture(scope="module")
def frame() -> dict[str, Any]:
    system = get_system("edge-llm")
    drawn = system.generate(
        "paper", {"n_users": CELL_USERS, "n_servers": 1}, np.random.default_rng(3)
    )
    data: dict[str, Any] = drawn.to_dict()
    return data


def test_a_plan_on_the_true_gains_keeps_its_promise(frame: dict[str, Any]) -> None:
    gains = np.asarray(frame["channel_gain"], float)[:, 0] * 20.0
    score = score_cell(frame, gains, gains, SolveOptions(seed=0))
    assert score.scr_true == pytest.approx(score.scr_promised, rel=1e-9)
    assert score.scr_true == pytest.approx(oracle_scr(frame, gains, SolveOptions(seed=0)), rel=1e-6)
    assert score.makespan_true_s == pytest.approx(score.makespan_promised_s, rel=1e-9)
    assert score.late_users == 0 and score.users == CELL_USERS


def test_optimistic_gains_break_the_promised_makespan(frame: dict[str, Any]) -> None:
    gains = np.asarray(frame["channel_gain"], float)[:, 0] * 20.0
    score = score_cell(frame, gains, gains / 4, SolveOptions(seed=0))
    assert score.makespan_true_s > score.makespan_promised_s * 1.01
    assert score.late_users > 0
    assert score.scr_true < score.scr_promised
    # Knowing the true gains, a plan does at least as well as the optimistic one.
    assert oracle_scr(frame, gains / 4, SolveOptions(seed=0)) >= score.scr_true * (1 - 1e-6)


def test_the_finetune_claims_follow_the_numbers() -> None:
    values = {
        "air-perfect": (500.0, 0.0),
        "air-outdated": (450.0, 7.0),
        "air-ls-ar": (440.0, 2.0),
        "air-wiener": (470.0, 4.0),
    }
    rows = [
        {
            "algorithm": a,
            "seed": s,
            "setting": "default",
            "scr_true": scr,
            "scr_below_perfect_pct": 100 * (1 - scr / 500.0),
            "overrun_pct": over,
            "overrun_calibrated_pct": over / 2,
        }
        for s in range(3)
        for a, (scr, over) in values.items()
    ]
    rows[-1] = {**rows[-1], "scr_true": 400.0, "scr_below_perfect_pct": 20.0}  # seed 2
    verdicts = {
        c.text: (c.passed, c.evidence)
        for c in check_claims(EXPERIMENTS["air-to-finetune"], rows, [])
    }
    assert verdicts["a plan on perfect CSI delivers the makespan it promises"] == (
        True,
        "3/3 seeds",
    )
    assert verdicts["a plan on outdated CSI finishes later than it promises"] == (True, "3/3 seeds")
    wiener_vs_outdated = next(v for k, v in verdicts.items() if "than on outdated" in k)
    assert wiener_vs_outdated == (False, "2/3 seeds")
