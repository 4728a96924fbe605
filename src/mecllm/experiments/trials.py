"""One trial: generate the instance of (setting, seed), solve it with one algorithm, keep the
figures. A pure function of its spec, so results do not depend on where it runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mecllm.scenario import generate, preset
from mecllm.solvers.base import SolveOptions
from mecllm.solvers.registry import solve


@dataclass(frozen=True)
class TrialSpec:
    """Everything one trial needs (picklable, sent to workers)."""

    experiment: str
    setting: str
    x: float
    overrides: tuple[tuple[str, Any], ...]
    seed: int
    algorithm: str
    preset: str
    base_seed: int
    code_version: str
    system: str = "edge-llm"

    @property
    def key(self) -> tuple[str, str, int, str, str, str]:
        """The results-store key."""
        return (
            self.experiment,
            self.setting,
            self.seed,
            self.algorithm,
            self.preset,
            self.code_version,
        )


def trial_rng(base_seed: int, seed: int) -> np.random.Generator:
    """The child generator of trial ``seed``: the same for every setting, worker and backend
    (common random numbers across the points of a sweep)."""
    return np.random.default_rng(np.random.SeedSequence(base_seed, spawn_key=(seed,)))


def run_trial(spec: TrialSpec) -> tuple[tuple[str, str, int, str, str, str], dict[str, Any]]:
    """Generate, solve and summarise one trial; returns its key and row."""
    if spec.system == "secure-offsite":
        from mecllm.secure.trials import run_secure_trial

        return spec.key, run_secure_trial(spec, trial_rng(spec.base_seed, spec.seed))
    settings = preset(spec.preset, **dict(spec.overrides))
    instance = generate(settings, trial_rng(spec.base_seed, spec.seed))
    result = solve(instance, spec.algorithm, SolveOptions(seed=spec.seed))
    history = result.history
    row: dict[str, Any] = {
        "experiment": spec.experiment,
        "setting": spec.setting,
        "x": spec.x,
        "seed": spec.seed,
        "algorithm": spec.algorithm,
        "n_users": instance.n_users,
        "n_servers": instance.n_servers,
        "scr": result.scr,
        "delay_s": result.delay_s,
        "energy_j": result.energy_j,
        "service": result.service,
        "iterations": result.iterations,
        "status": result.status,
        "wall_time_s": result.wall_time_s,
        "y_history": [h["y"] for h in history],
        "part1_objective": [h["part1_objective"] for h in history if "part1_objective" in h],
        "part1_s": [h["part1_s"] for h in history if "part1_s" in h],
        "part2_s": [h["part2_s"] for h in history if "part2_s" in h],
        "inner_iterations": [h["inner_iterations"] for h in history if "inner_iterations" in h],
        "part2_values_first": next((h["part2_values"] for h in history if "part2_values" in h), []),
    }
    return spec.key, row
