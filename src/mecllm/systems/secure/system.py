"""The secure offsite-tuning system (seed paper 003) as the registry sees it."""

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
from mecllm.systems.protocol import (
    EvaluateRequest,
    GenerateRequest,
    OptionsFor,
    System,
)
from mecllm.systems.secure import commands
from mecllm.systems.secure import experiments as studies
from mecllm.systems.secure.algorithms import SECURE_ALGORITHMS, solve_secure
from mecllm.systems.secure.instance import KIND, SecureInstance
from mecllm.systems.secure.physics import SecureEvaluation, evaluate_secure
from mecllm.systems.secure.scenario import PRESETS as SECURE_PRESETS
from mecllm.systems.secure.scenario import generate_secure, secure_preset
from mecllm.systems.secure.solution import SecurePlan, SecureResult

#: ``mecllm generate`` options that have no meaning here (one server, no shadowing, no idle
#: allocations).
_NOT_APPLICABLE = ("--servers",)


class SecureSystem(System):
    """One edge server sends adapters and emulators; owners return adapters over a
    wiretap-protected uplink (docs/secure.md)."""

    kind = KIND
    title = "secure offsite-tuning with a wiretap-protected uplink"
    presets = tuple(SECURE_PRESETS)
    experiments = studies.EXPERIMENTS
    experiment_groups = studies.GROUPS
    metric_labels: ClassVar[Mapping[str, str]] = {
        "us_ratio": "U/S",
        "delay_s": "delay (s)",
        "energy_j": "energy (J)",
        "mean_secrecy_mbps": "mean secrecy rate (Mbit/s)",
        "floor_violations": "owners below the secrecy floor",
        "served_securely": "owners served securely",
    }
    metrics = (
        "us_ratio",
        "utility",
        "delay_s",
        "energy_j",
        "mean_secrecy_mbps",
        "min_secrecy_mbps",
        "floor_violations",
        "served_securely",
        "iterations",
        "wall_time_s",
    )
    sweep_algorithms = studies.ALGORITHM_NAMES
    sweep_metrics = ("us_ratio", "delay_s", "energy_j")

    def algorithms(self) -> AlgorithmRegistry[Any, Any]:
        return SECURE_ALGORITHMS

    def load_instance(self, data: object) -> SecureInstance:
        return SecureInstance.from_dict(data)

    def scenario_overrides(self, request: GenerateRequest) -> dict[str, Any]:
        request.refuse(_NOT_APPLICABLE, KIND)
        overrides = dict(request.overrides)
        if request.users is not None:
            overrides["n_users"] = request.users
        if request.noise_dbm_hz is not None:
            overrides["noise_dbm_per_hz"] = request.noise_dbm_hz
        if request.bandwidth_mhz is not None:
            overrides["bandwidth_hz"] = request.bandwidth_mhz * 1e6
        if request.weights is not None:
            overrides["weight_delay"], overrides["weight_energy"] = request.weights
        return overrides

    def generate(
        self, preset_name: str, overrides: Mapping[str, Any], rng: np.random.Generator
    ) -> SecureInstance:
        return generate_secure(secure_preset(preset_name, **overrides), rng)

    def normalise_settings(self, preset_name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
        settings = secure_preset(preset_name, **overrides)
        settings.validate()  # ranges and sizes too, before a run creates anything
        return {key: getattr(settings, key) for key in overrides}

    def solve(self, instance: Any, algorithm: str, options: SolveOptions) -> SecureResult:
        return solve_secure(_mine(instance), algorithm, options)

    def evaluate(self, instance: Any, plan: Any) -> SecureEvaluation:
        if not isinstance(plan, SecurePlan):
            raise InvalidInputError(f"expected a SecurePlan, got {type(plan).__name__}")
        return evaluate_secure(_mine(instance), plan)

    def generate_command(self, request: GenerateRequest, output: Path, err: Console) -> None:
        overrides = self.scenario_overrides(request)
        commands.generate_secure_file(output, request.preset, request.seed, overrides, err)

    def solve_command(
        self, data: object, algorithm: str, output: Path, options: SolveOptions, err: Console
    ) -> None:
        commands.solve_secure_file(data, algorithm, output, options, err)

    def evaluate_command(
        self, data: object, solution_path: Path, request: EvaluateRequest, out: Console
    ) -> bool:
        return commands.evaluate_secure_file(data, solution_path, request.as_json, out)

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
        commands.compare_secure(data, names, options_for, out, err, label)

    def run_trial(self, spec: TrialSpec, rng: np.random.Generator) -> Row:
        return studies.run_trial(spec, rng)

    def check_claims(
        self, experiment: Experiment, rows: list[Row], summary: list[Summary]
    ) -> list[Claim]:
        return studies.check_claims(experiment, rows, summary)


def _mine(instance: Any) -> SecureInstance:
    if not isinstance(instance, SecureInstance):
        raise InvalidInputError(f"expected a SecureInstance, got {type(instance).__name__}")
    return instance


#: The object the registry loads.
SYSTEM = SecureSystem()
