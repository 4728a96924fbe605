"""The air-interface system (seed 004's third use: channel prediction feeding beamforming) as
the registry sees it."""

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
from mecllm.systems.air import commands
from mecllm.systems.air import experiments as studies
from mecllm.systems.air.algorithms import AIR_ALGORITHMS, solve_air
from mecllm.systems.air.evaluation import AirEvaluation, evaluate_air
from mecllm.systems.air.instance import KIND, AirInstance
from mecllm.systems.air.settings import PRESETS as AIR_PRESETS
from mecllm.systems.air.settings import air_preset
from mecllm.systems.air.solution import AirPlan, AirResult
from mecllm.systems.protocol import EvaluateRequest, GenerateRequest, OptionsFor, System

#: ``mecllm generate`` options with no meaning here.
_NOT_APPLICABLE = ("--servers", "--bandwidth-mhz", "--noise-dbm-hz", "--weights")


class AirSystem(System):
    """Channel prediction from past CSI, scored through beamforming (docs/air.md)."""

    kind = KIND
    title = "edge large models for the air interface: channel prediction and beamforming"
    presets = tuple(AIR_PRESETS)
    experiments = studies.EXPERIMENTS
    experiment_groups = studies.GROUPS
    metric_labels: ClassVar[Mapping[str, str]] = {
        "nmse_mean_db": "NMSE, mean over steps (dB)",
        "nmse_step1_db": "NMSE, step 1 (dB)",
        "nmse_last_db": "NMSE, last step (dB)",
        "se_mrt": "MRT SE, 1 user (bit/s/Hz)",
        "se_zf": "ZF sum SE (bit/s/Hz)",
        "se_wmmse": "WMMSE sum SE (bit/s/Hz)",
        "se_mrt_mu": "MRT sum SE (bit/s/Hz)",
        "beam_top1": "beam top-1 accuracy",
        "fit_s": "fit time (s)",
    }
    metrics = (
        "nmse_mean_db",
        "nmse_step1_db",
        "nmse_last_db",
        "se_mrt",
        "se_zf",
        "se_wmmse",
        "se_mrt_mu",
        "beam_top1",
        "fit_s",
        "wall_time_s",
    )
    sweep_algorithms = studies.ALGORITHM_NAMES
    sweep_metrics = ("nmse_mean_db", "se_zf")

    def algorithms(self) -> AlgorithmRegistry[Any, Any]:
        return AIR_ALGORITHMS

    def load_instance(self, data: object) -> AirInstance:
        return AirInstance.from_dict(data)

    def scenario_overrides(self, request: GenerateRequest) -> dict[str, Any]:
        request.refuse(_NOT_APPLICABLE, KIND)
        overrides = dict(request.overrides)
        if request.users is not None:
            overrides["users"] = request.users
        return overrides

    def generate(
        self, preset_name: str, overrides: Mapping[str, Any], rng: np.random.Generator
    ) -> AirInstance:
        seed = int(rng.integers(2**31 - 1))
        return AirInstance(
            settings=air_preset(preset_name, **overrides), seed=seed, preset=preset_name
        )

    def normalise_settings(self, preset_name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
        settings = air_preset(preset_name, **overrides)
        return {key: getattr(settings, key) for key in overrides}

    def solve(self, instance: Any, algorithm: str, options: SolveOptions) -> AirResult:
        return solve_air(_mine(instance), algorithm, options)

    def evaluate(self, instance: Any, plan: Any) -> AirEvaluation:
        if not isinstance(plan, AirPlan):
            raise InvalidInputError(f"expected an AirPlan, got {type(plan).__name__}")
        return evaluate_air(_mine(instance), plan)

    def generate_command(self, request: GenerateRequest, output: Path, err: Console) -> None:
        overrides = self.scenario_overrides(request)
        commands.generate_air_file(output, request.preset, request.seed, overrides, err)

    def solve_command(
        self, data: object, algorithm: str, output: Path, options: SolveOptions, err: Console
    ) -> None:
        commands.solve_air_file(data, algorithm, output, options, err)

    def evaluate_command(
        self, data: object, solution_path: Path, request: EvaluateRequest, out: Console
    ) -> bool:
        return commands.evaluate_air_file(data, solution_path, request.as_json, out)

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
        commands.compare_air(data, names, options_for, out, err, label)

    def run_trial(self, spec: TrialSpec, rng: np.random.Generator) -> Row:
        return studies.run_trial(spec, rng)

    def check_claims(
        self, experiment: Experiment, rows: list[Row], summary: list[Summary]
    ) -> list[Claim]:
        return studies.check_claims(experiment, rows, summary)


def _mine(instance: Any) -> AirInstance:
    if not isinstance(instance, AirInstance):
        raise InvalidInputError(f"expected an AirInstance, got {type(instance).__name__}")
    return instance


#: The object the registry loads.
SYSTEM = AirSystem()
