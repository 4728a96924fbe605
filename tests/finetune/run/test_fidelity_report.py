"""The train-fidelity summary and report, on hand-made run records (no training)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("torch")

from mecllm.systems.finetune.run.fidelity import overall_checks, report, summarise

Pair = tuple[float, float]


def _user(n: int, phi: float, predicted: dict[str, float], measured: dict[str, float]) -> Any:
    return {"user": n, "phi_realised": phi, "predicted": predicted, "measured": measured}


def _run(t1: Pair, t3: Pair, span: Pair) -> dict[str, Any]:
    """Two users: one trains everything locally (T1, T2), one on its server (T3, T4)."""
    zero = {"T1_s": 0.0, "T2_s": 0.0, "T3_s": 0.0, "T4_s": 0.0}
    local = _user(0, 1.0, {**zero, "T1_s": t1[0], "T2_s": 0.2}, {**zero, "T1_s": t1[1]})
    remote = _user(1, 0.0, {**zero, "T3_s": t3[0], "T4_s": 0.1}, {**zero, "T3_s": t3[1]})
    return {
        "users": [local, remote],
        "makespan_s": {"predicted": span[0], "measured": span[1]},
    }


def test_checks_follow_the_ratios() -> None:
    good = summarise(
        {
            "profiled": _run((5.0, 5.5), (6.0, 7.0), (6.1, 7.1)),
            "paper": _run((0.05, 5.0), (0.06, 8.0), (0.1, 8.1)),
        }
    )
    assert good["checks"] == {
        "profiled_T1_T3_within_25pct": True,
        "profiled_makespan_within_25pct": True,
        "profiled_plan_faster": True,
    }
    assert good["paper"]["users"][0]["ratio"]["T1_s"] == pytest.approx(100.0)
    assert good["profiled"]["users"][1]["ratio"]["T1_s"] is None  # nothing planned
    bad = summarise(
        {
            "profiled": _run((5.0, 6.5), (6.0, 7.0), (6.1, 9.0)),
            "paper": _run((0.05, 5.0), (0.06, 4.0), (0.1, 8.1)),
        }
    )
    assert bad["checks"] == {
        "profiled_T1_T3_within_25pct": False,
        "profiled_makespan_within_25pct": False,
        "profiled_plan_faster": False,
    }
    counts = overall_checks({0: good, 1: bad})
    assert counts == {
        "profiled_T1_T3_within_25pct": 1,
        "profiled_makespan_within_25pct": 1,
        "profiled_plan_faster": 1,
        "scenarios": 2,
    }
    text = report({0: good, 1: bad})
    assert "T1 and T3 of every user within 25 %: 1 of 2 scenarios" in text
    assert "| 0 | 6.1 / 7.1 | 1.16 | 0.1 / 8.1 | 81 | PASS | profiled |" in text
