"""The edge-inference system (seed paper 004) as the registry sees it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from rich.console import Console

from mecllm.core.algorithms import AlgorithmRegistry
from mecllm.core.errors import InvalidInputError
from mecllm.core.experiment import Claim, Experiment, Row, Summary, TrialSpec
from mecllm.core.options import SolveOptions
from mecllm.systems.inference import commands
from mecllm.systems.inference import experiments as studies
from mecllm.systems.inference.algorithms import ALGORITHMS, solve
from mecllm.systems.inference.instance import KIND, InferenceInstance
from mecllm.systems.inference.requests import draw
from mecllm.systems.inference.scenario import PRESETS, generate, preset
from mecllm.systems.inference.simulator import SimulationReport, simulate
from mecllm.systems.inference.solution import InferenceResult, Placement
from mecllm.systems.protocol import (
    EvaluateRequest,
    GenerateRequest,
    OptionsFor,
    System,
)

#: ``mecllm generate`` options that have no meaning here.
_NOT_APPLICABLE = ("--servers", "--weights")


class InferenceSystem(System):
    """A large model split into shard services on edge nodes, requests routed through them
    against deadlines (docs/inference.md)."""

    kind = KIND
    title = "microservice-assisted inference of an edge large model"
    presets = tuple(PRESETS)
    experiments = studies.EXPERIMENTS
    experiment_groups = studies.GROUPS
    metric_labels: ClassVar[Mapping[str, str]] = {
        "on_time_ratio": "on-time ratio",
        "p95_latency_s": "p95 latency (s)",
        "p50_latency_s": "p50 latency (s)",
        "tokens_per_s": "tokens/s",
        "failovers": "requests moved by failover",
        "lost": "requests lost",
    }
    metrics = (
        "on_time_ratio",
        "late",
        "rejected",
        "lost",
        "p50_latency_s",
        "p95_latency_s",
        "tokens_per_s",
        "energy_j",
        "failovers",
        "plan_s",
        "simulation_s",
        "wall_time_s",
    )
    sweep_algorithms = studies.PLANNERS
    sweep_metrics = studies.METRICS

    def algorithms(self) -> AlgorithmRegistry[Any, Any]:
        return ALGORITHMS

    def load_instance(self, data: object) -> InferenceInstance:
        return InferenceInstance.from_dict(data)

    def scenario_overrides(self, request: GenerateRequest) -> dict[str, Any]:
        request.refuse(_NOT_APPLICABLE, KIND)
        overrides = dict(request.overrides)
        if request.users is not None:
            overrides["n_users"] = request.users
        if request.noise_dbm_hz is not None:
            overrides["noise_dbm_per_hz"] = request.noise_dbm_hz
        if request.bandwidth_mhz is not None:
            overrides["access_band_hz"] = request.bandwidth_mhz * 1e6
        return overrides

    def generate(
        self, preset_name: str, overrides: Mapping[str, Any], rng: np.random.Generator
    ) -> InferenceInstance:
        return generate(preset(preset_name, **overrides), rng)

    def normalise_settings(self, preset_name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
        scenario = {k: v for k, v in overrides.items() if k not in studies.FAILURE_KEYS}
        settings = preset(preset_name, **scenario)
        settings.validate()  # ranges and sizes too, before a run creates anything
        out = {key: getattr(settings, key) for key in scenario}
        for key in studies.FAILURE_KEYS:
            if key in overrides:
                value = overrides[key]
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise InvalidInputError(f"{key} must be a number >= 0, got {value!r}")
                out[key] = value
        return out

    def solve(self, instance: Any, algorithm: str, options: SolveOptions) -> InferenceResult:
        return solve(_mine(instance), algorithm, options)

    def evaluate(self, instance: Any, plan: Any) -> SimulationReport:
        if not isinstance(plan, Placement):
            raise InvalidInputError(f"expected a Placement, got {type(plan).__name__}")
        mine = _mine(instance)
        return simulate(mine, plan, draw(mine, np.random.default_rng(0)))

    def generate_command(self, request: GenerateRequest, output: Path, err: Console) -> None:
        name = request.preset or self.default_preset
        commands.generate_file(output, name, request.seed, self.scenario_overrides(request), err)

    def solve_command(
        self, data: object, algorithm: str, output: Path, options: SolveOptions, err: Console
    ) -> None:
        commands.solve_file(data, algorithm, output, options, err)

    def evaluate_command(
        self, data: object, solution_path: Path, request: EvaluateRequest, out: Console
    ) -> bool:
        return commands.evaluate_file(data, solution_path, request, out)

    def compare_command(
        self,
        data: object,
        names: Sequence[str],
        options_for: OptionsFor,
        plot: Path | None,
        out: Console,
        err: Console,
        label: str,
    ) -> None:
        if plot is not None:
            raise InvalidInputError(f"--plot is not available for {KIND} instances")
        commands.compare(data, names, options_for, out, err, label)

    def run_trial(self, spec: TrialSpec, rng: np.random.Generator) -> Row:
        return studies.run_trial(spec, rng)

    def check_claims(
        self, experiment: Experiment, rows: list[Row], summary: list[Summary]
    ) -> list[Claim]:
        return studies.check_claims(experiment, rows, summary)


def _mine(instance: Any) -> InferenceInstance:
    if not isinstance(instance, InferenceInstance):
        raise InvalidInputError(f"expected an InferenceInstance, got {type(instance).__name__}")
    return instance


#: The object the registry loads.
SYSTEM = InferenceSystem()
