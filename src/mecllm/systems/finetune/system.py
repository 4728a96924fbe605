"""The collaborative fine-tuning system (DASHF, the main paper) as the registry sees it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from rich.console import Console

from mecllm.core.algorithms import AlgorithmRegistry
from mecllm.core.commandline import needs_extra, say
from mecllm.core.errors import InvalidInputError
from mecllm.core.experiment import Claim, Experiment, Row, Summary, TrialSpec
from mecllm.core.options import SolveOptions
from mecllm.systems.finetune import commands
from mecllm.systems.finetune import experiments as studies
from mecllm.systems.finetune.algorithms import ALGORITHMS, solve
from mecllm.systems.finetune.instance import KIND, Instance
from mecllm.systems.finetune.physics import Evaluation, evaluate
from mecllm.systems.finetune.scenario import PRESETS, generate, preset
from mecllm.systems.finetune.solution import Plan, SolveResult
from mecllm.systems.protocol import (
    EvaluateRequest,
    GenerateRequest,
    OptionsFor,
    RunRequest,
    System,
)

#: Scenarios ``reproduce train-fidelity`` runs when --trials is not given (each about 80 s).
FIDELITY_SCENARIOS = 3


class FinetuneSystem(System):
    """Mobile users and edge servers fine-tune adapters together (docs/finetune.md)."""

    kind = KIND
    title = "collaborative adapter fine-tuning at the edge (DASHF)"
    presets = tuple(PRESETS)
    experiments = studies.EXPERIMENTS
    experiment_groups = studies.GROUPS
    metric_labels: ClassVar[Mapping[str, str]] = {
        "scr": "SCR",
        "delay_s": "delay (s)",
        "energy_j": "energy (J)",
    }
    metrics = ("scr", "delay_s", "energy_j", "service", "iterations", "wall_time_s")
    sweep_algorithms = studies.PAPER_ALGORITHMS
    sweep_metrics = ("scr", "delay_s", "energy_j")
    runs: ClassVar[Mapping[str, str]] = {
        "train-fidelity": "profile this machine, plan, run the plan for real with `mecllm train` "
        "and compare each phase with the plan (docs/train.md); --trials counts scenarios "
        f"(default {FIDELITY_SCENARIOS})",
    }

    def algorithms(self) -> AlgorithmRegistry[Any, Any]:
        return ALGORITHMS

    def load_instance(self, data: object) -> Instance:
        return Instance.from_dict(data)

    def scenario_overrides(self, request: GenerateRequest) -> dict[str, Any]:
        overrides = dict(request.overrides)
        for key, value in (
            ("n_users", request.users),
            ("n_servers", request.servers),
            ("noise_dbm_per_hz", request.noise_dbm_hz),
            ("shadowing_db", request.extra.get("shadowing_db")),
            ("count_idle", request.extra.get("count_idle")),
        ):
            if value is not None:
                overrides[key] = value
        if request.bandwidth_mhz is not None:
            overrides["bandwidth_hz"] = request.bandwidth_mhz * 1e6
        if request.weights is not None:
            overrides["weight_delay"], overrides["weight_energy"] = request.weights
        return overrides

    def generate(
        self, preset_name: str, overrides: Mapping[str, Any], rng: np.random.Generator
    ) -> Instance:
        return generate(preset(preset_name, **overrides), rng)

    def normalise_settings(self, preset_name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
        settings = preset(preset_name, **overrides)
        settings.validate()  # ranges and sizes too, before a run creates anything
        return {key: getattr(settings, key) for key in overrides}

    def solve(self, instance: Any, algorithm: str, options: SolveOptions) -> SolveResult:
        return solve(_mine(instance), algorithm, options)

    def evaluate(self, instance: Any, plan: Any) -> Evaluation:
        if not isinstance(plan, Plan):
            raise InvalidInputError(f"expected a fine-tuning Plan, got {type(plan).__name__}")
        return evaluate(_mine(instance), plan)

    def generate_command(self, request: GenerateRequest, output: Path, err: Console) -> None:
        name = request.preset or self.default_preset
        overrides = self.scenario_overrides(request)
        work_model = request.extra.get("work_model")
        plan_model = request.extra.get("plan_model")
        if plan_model is not None and work_model is None:
            raise InvalidInputError("--plan-model needs --work-model")
        if request.extra.get("field", False):
            if work_model is not None:
                raise InvalidInputError(
                    "--work-model writes a dense instance; a field (--field) has the paper's "
                    "work model only"
                )
            commands.generate_field_file(output, name, request.seed, overrides, err)
        else:
            commands.generate_file(
                output,
                name,
                request.seed,
                overrides,
                err,
                work_model=work_model,
                plan_model=_plan_model(plan_model or "profiled"),
            )

    def solve_command(
        self, data: object, algorithm: str, output: Path, options: SolveOptions, err: Console
    ) -> None:
        commands.solve_file(data, algorithm, output, options, err)

    def evaluate_command(
        self, data: object, solution_path: Path, request: EvaluateRequest, out: Console
    ) -> bool:
        return commands.evaluate_file(data, solution_path, request.as_json, out)

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
        commands.compare(data, names, options_for, plot, out, err, label)

    def demo_command(
        self,
        out_dir: Path,
        preset_name: str,
        seed: int,
        names: Sequence[str],
        options_for: OptionsFor,
        out: Console,
        err: Console,
    ) -> None:
        commands.demo(out_dir, preset_name, seed, names, options_for, out, err)

    def reproduce_run(self, name: str, request: RunRequest, out: Console, err: Console) -> None:
        if name not in self.runs:
            super().reproduce_run(name, request, out, err)
        with needs_extra("train", name):
            from mecllm.systems.finetune.run.fidelity import reproduce_fidelity
        reproduce_fidelity(
            request.out_dir,
            request.seed,
            request.count or FIDELITY_SCENARIOS,
            fresh=request.fresh,
            progress=say,
        )
        report = request.out_dir / "REPORT.md"
        out.print(report.read_text(), markup=False, highlight=False)
        say(f"wrote {report}")

    def run_trial(self, spec: TrialSpec, rng: np.random.Generator) -> Row:
        return studies.run_trial(spec, rng)

    def check_claims(
        self, experiment: Experiment, rows: list[Row], summary: list[Summary]
    ) -> list[Claim]:
        return studies.check_claims(experiment, rows, summary)


def _plan_model(text: str) -> Literal["profiled", "paper"]:
    if text == "profiled":
        return "profiled"
    if text == "paper":
        return "paper"
    raise InvalidInputError(f"--plan-model must be 'profiled' or 'paper', got {text!r}")


def _mine(instance: Any) -> Instance:
    if not isinstance(instance, Instance):
        raise InvalidInputError(f"expected a fine-tuning Instance, got {type(instance).__name__}")
    return instance


#: The object the registry loads.
SYSTEM = FinetuneSystem()
