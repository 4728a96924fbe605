"""Solve options are checked where they enter, the API and the CLI alike."""

from __future__ import annotations

import math

import pytest

import mecllm
from mecllm.core.errors import InvalidInputError
from mecllm.core.options import SolveOptions


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("seed", -1, "whole number >= 0"),
        ("seed", 1.5, "whole number >= 0"),
        ("seed", True, "whole number >= 0"),
        ("max_iterations", 0, "whole number >= 1"),
        ("max_inner_iterations", -3, "whole number >= 1"),
        ("tolerance", -1e-3, r"in \[0, 1\)"),
        ("tolerance", math.nan, r"in \[0, 1\)"),
        ("inner_tolerance", 1.0, r"in \[0, 1\)"),
        ("barrier_growth", 1.0, "finite number > 1"),
        ("barrier_growth", math.inf, "finite number > 1"),
        ("time_limit_s", -1, "positive number of seconds"),
        ("time_limit_s", 0.0, "positive number of seconds"),
        ("time_limit_s", "10", "positive number of seconds"),
        ("progress", 3, "function of one record"),
        ("extra", [], "be a dict"),
    ],
)
def test_a_bad_option_names_the_field_the_rule_and_the_value(
    field: str, value: object, rule: str
) -> None:
    with pytest.raises(InvalidInputError, match=f"solve option {field} must .*{rule}"):
        SolveOptions(**{field: value})  # type: ignore[arg-type]


def test_the_api_refuses_bad_options_before_solving() -> None:
    instance = mecllm.generate(seed=0, n_users=3, n_servers=2)
    with pytest.raises(InvalidInputError, match="time_limit_s"):
        mecllm.solve(instance, "gucaa", time_limit_s=-1)
    with pytest.raises(InvalidInputError, match="does not exist"):
        mecllm.solve(instance, "gucaa", time_limit=5)
    assert mecllm.solve(instance, "gucaa", time_limit_s=math.inf).plan.n_users == 3
