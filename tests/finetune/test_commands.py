"""What the fine-tuning system's commands print: the idle-allocation warning summarises."""

from __future__ import annotations

import time

import numpy as np

from mecllm.systems.finetune.algorithms import solve
from mecllm.systems.finetune.commands import IDLE_SHOWN, idle_line
from mecllm.systems.finetune.solvers.result import finish

from factories import small_instance


def test_the_idle_warning_counts_names_a_few_and_says_how_to_switch_the_scoring() -> None:
    instance = small_instance(2, n_users=12, n_servers=2)
    plan = solve(instance, "gucaa").plan  # equal split: every user holds server resources
    everyone_on_device = plan.replace(phi=np.ones(instance.n_users))
    line = idle_line(instance, finish(instance, "hand", everyone_on_device, time.perf_counter()))
    assert line.startswith("idle allocations: 12 of 12 users")
    assert f"({12 - IDLE_SHOWN} more)" in line and "--no-count-idle" in line
    assert line.count(",") < 12  # not a list of every user
    assert idle_line(instance, solve(instance, "gucaa")) == ""  # phi = 0.5: no idle user
