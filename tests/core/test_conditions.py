"""The conditions a profile records and what ``mecllm train`` reports when they differ."""

from __future__ import annotations

import pytest

from mecllm.core.conditions import LOAD_MARGIN, Conditions, measure
from mecllm.core.errors import InvalidInputError
from mecllm.systems.finetune.run.command import condition_warnings, overrun_warnings

PROFILED = Conditions("AMD EPYC 7B13", cpus=2, usable_cpus=2, load_per_cpu=0.1)


def test_this_machine_is_measured() -> None:
    now = measure()
    assert now.cpu_model and now.cpus >= now.usable_cpus >= 1 and now.load_per_cpu >= 0
    assert Conditions.from_dict(now.to_dict()) == now


def test_the_same_conditions_differ_in_nothing() -> None:
    assert PROFILED.differences(PROFILED) == []
    busy_within_margin = Conditions("AMD EPYC 7B13", 2, 2, 0.1 + LOAD_MARGIN * 0.9)
    assert PROFILED.differences(busy_within_margin) == []
    assert condition_warnings(None) == []
    assert condition_warnings(PROFILED, PROFILED) == []


@pytest.mark.parametrize(
    ("now", "said"),
    [
        (Conditions("Intel Xeon", 2, 2, 0.1), "processor 'Intel Xeon'"),
        (Conditions("AMD EPYC 7B13", 2, 1, 0.1), "1 usable cores, profiled with 2"),
        (Conditions("AMD EPYC 7B13", 2, 2, 1.0), "load 1.00 per core, profiled at 0.10"),
    ],
)
def test_each_difference_is_named(now: Conditions, said: str) -> None:
    (found,) = PROFILED.differences(now)
    assert said in found
    (line,) = condition_warnings(PROFILED, now)
    assert said in line and line.startswith("warning:")


def test_recorded_conditions_are_validated() -> None:
    with pytest.raises(InvalidInputError, match="usable_cpus must be a whole number"):
        Conditions.from_dict({"cpu_model": "x", "cpus": 2, "usable_cpus": 0, "load_per_cpu": 0})
    with pytest.raises(InvalidInputError, match="cores"):
        Conditions.from_dict(
            {"cpu_model": "x", "cpus": 2, "usable_cpus": 1, "load_per_cpu": 0, "cores": 1}
        )


def test_threads_behind_their_plan_are_named() -> None:
    on_time = {"user": 0, "user_pace_overrun": 1.0, "server_pace_overrun": 1.05}
    late = {"user": 3, "user_pace_overrun": 1.4, "server_pace_overrun": 1.0}
    assert overrun_warnings([on_time]) == []
    (line,) = overrun_warnings([on_time, late])
    assert "1 paced training phase(s)" in line and "user 3 (user) 1.40x" in line
