"""Every registered algorithm reproduces the figures recorded before the layout move.

``baseline.json`` was written by ``record.py`` on the code before the move (commit message
"tests: regression baseline ..."). The solvers are deterministic for a seed, so the figures must
agree to 1e-9 relative. Two algorithms changed by design after the recording and were
recorded again (``python tests/regression/record.py dashf-plus exhaustive``): ``exhaustive`` no
longer takes ``dashf-plus``'s plan (or the greedy start) as a start, so it is an independent
reference; ``dashf-plus`` is built on the joint continuous solver (docs/algorithms.md). Both
stop at a time budget, so a slower machine may end elsewhere: they are held to feasibility and
to within 1% of the recorded SCR. ``dashf-scale`` was recorded again
(``python tests/regression/record.py dashf-scale``) when instances of up to 32 users moved to
the NumPy build of the barrier's per-user kernels (docs/algorithms.md), which rounds
differently from the compiled one: its SCR moved by -2.3e-10 (paper-4x2-s11) and +2.1e-7
(noidle-4x3-s13, a slightly different plan); with the compiled build forced it reproduced the
old figures exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mecllm.core.options import SolveOptions
from mecllm.systems.finetune.algorithms import ALGORITHMS, solve
from mecllm.systems.finetune.physics import evaluate
from mecllm.systems.finetune.scenario import generate, preset
from mecllm.systems.secure.algorithms import SECURE_ALGORITHMS, solve_secure
from mecllm.systems.secure.scenario import generate_secure, secure_preset

from regression.record import FINETUNE_CASES, SECURE_CASES

BASELINE: dict[str, Any] = json.loads((Path(__file__).parent / "baseline.json").read_text())
#: Slow on these instances (tens of seconds each): run with -m slow.
SLOW = {"dashf-plus", "exhaustive"}
#: Budget-bound (see the module docstring): held to 1% of the recorded SCR.
BUDGETED = {"exhaustive", "dashf-plus"}


def _cases(cases: list[tuple[str, str, int, dict[str, Any]]], names: list[str]) -> list[Any]:
    return [
        pytest.param(
            case, name, marks=[pytest.mark.slow] if name in SLOW else [], id=f"{case[0]}/{name}"
        )
        for case in cases
        for name in names
    ]


def _close(mine: float, recorded: float) -> bool:
    return abs(mine - recorded) <= 1e-9 * max(abs(recorded), 1e-300)


@pytest.mark.parametrize(("case", "algorithm"), _cases(FINETUNE_CASES, list(ALGORITHMS)))
def test_finetune_algorithm_reproduces_its_recorded_figures(
    case: tuple[str, str, int, dict[str, Any]], algorithm: str
) -> None:
    label, name, seed, overrides = case
    instance = generate(preset(name, **overrides), np.random.default_rng(seed))
    result = solve(instance, algorithm, SolveOptions(seed=seed))
    assert evaluate(instance, result.plan).feasible
    recorded = BASELINE["edge-llm"][f"{label}/{algorithm}"]
    if algorithm in BUDGETED:
        assert result.scr >= 0.99 * recorded["scr"], (result.scr, recorded)
        return
    for key in ("scr", "delay_s", "energy_j"):
        assert _close(getattr(result, key), recorded[key]), (key, getattr(result, key), recorded)


@pytest.mark.parametrize(("case", "algorithm"), _cases(SECURE_CASES, list(SECURE_ALGORITHMS)))
def test_secure_algorithm_reproduces_its_recorded_figures(
    case: tuple[str, str, int, dict[str, Any]], algorithm: str
) -> None:
    label, name, seed, overrides = case
    instance = generate_secure(secure_preset(name, **overrides), np.random.default_rng(seed))
    result = solve_secure(instance, algorithm, SolveOptions(seed=seed))
    recorded = BASELINE["secure-offsite"][f"{label}/{algorithm}"]
    for key, attribute in (("us_ratio", "ratio"), ("delay_s", "delay_s"), ("energy_j", "energy_j")):
        mine = getattr(result, attribute)
        assert _close(mine, recorded[key]), (key, mine, recorded)
