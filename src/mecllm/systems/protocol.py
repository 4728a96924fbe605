"""What a system offers the command line, the sweep engine and the Python API.

A system is one package under :mod:`mecllm.systems` with a :class:`System` object named
``SYSTEM`` in its ``system`` module; :mod:`mecllm.systems.registry` lists them by ``kind``. The
CLI and the sweep engine call only what is declared here, so adding a system never touches
them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.console import Console

from mecllm.core.algorithms import AlgorithmRegistry
from mecllm.core.errors import InvalidInputError
from mecllm.core.experiment import Claim, Experiment, Row, Summary, TrialSpec
from mecllm.core.options import SolveOptions

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class GenerateRequest:
    """The options of ``mecllm generate`` (``None``: not given on the command line).

    A system maps the ones it knows to its scenario settings and refuses the others by name.
    ``extra`` holds the options the system itself added to the command
    (:class:`~mecllm.core.commandline.ExtraOption`), only those given.
    """

    preset: str | None = None
    seed: int = 0
    users: int | None = None
    servers: int | None = None
    bandwidth_mhz: float | None = None
    noise_dbm_hz: float | None = None
    weights: tuple[float, float] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def given(self) -> dict[str, Any]:
        """The generic options that were given, by option name (``--set`` excluded)."""
        names = {
            "--users": self.users,
            "--servers": self.servers,
            "--bandwidth-mhz": self.bandwidth_mhz,
            "--noise-dbm-hz": self.noise_dbm_hz,
            "--weights": self.weights,
        }
        return {k: v for k, v in names.items() if v is not None}

    def refuse(self, options: Sequence[str], kind: str) -> None:
        """Refuse the first of the generic ``options`` that was given: it does not apply to
        instances of ``kind``."""
        given = self.given()
        for option in options:
            if option in given:
                raise InvalidInputError(f"{option} does not apply to --system {kind}")


@dataclass(frozen=True)
class EvaluateRequest:
    """The options of ``mecllm evaluate`` beyond the two files: ``--json``, and in ``extra``
    the options the system added (only those given)."""

    as_json: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRequest:
    """The options of ``mecllm reproduce NAME`` for a run a system carries out for real
    (:attr:`System.runs`): the output folder, the base seed, the count (``--trials``, ``None``
    when not given: the run's own default) and ``--fresh``."""

    out_dir: Path
    seed: int = 0
    count: int | None = None
    fresh: bool = False


#: Options of one solve for a named algorithm (the CLI attaches a progress printer per name).
OptionsFor = Callable[[str], SolveOptions]


class System(ABC):
    """One planned system: its nouns, its command-line display and its experiments."""

    #: The JSON ``kind`` of its instance files.
    kind: ClassVar[str]
    #: One line for ``--help`` and tables.
    title: ClassVar[str]
    #: Scenario presets, the first one the default.
    presets: ClassVar[tuple[str, ...]]
    #: Built-in experiments by name, and named groups of them (``mecllm reproduce NAME``).
    experiments: ClassVar[Mapping[str, Experiment]]
    experiment_groups: ClassVar[Mapping[str, tuple[str, ...]]]
    #: Axis labels of the trial rows' metrics.
    metric_labels: ClassVar[Mapping[str, str]]
    #: The numeric columns of its trial rows (what an experiment may aggregate).
    metrics: ClassVar[tuple[str, ...]]
    #: What a TOML sweep runs and aggregates when its file names none.
    sweep_algorithms: ClassVar[tuple[str, ...]]
    sweep_metrics: ClassVar[tuple[str, ...]]
    #: Runs ``mecllm reproduce NAME`` carries out for real rather than as a sweep of trials
    #: (name -> one line), done by :meth:`reproduce_run`.
    runs: ClassVar[Mapping[str, str]] = {}

    @property
    def default_preset(self) -> str:
        """The preset used when none is named."""
        return self.presets[0]

    # ------------------------------------------------------------------ nouns
    @abstractmethod
    def algorithms(self) -> AlgorithmRegistry[Any, Any]:
        """The registered algorithms, by name (each has ``name`` and ``description``)."""

    @abstractmethod
    def load_instance(self, data: object) -> Any:
        """Validate raw JSON ``data`` and build the instance (:class:`InvalidInputError`)."""

    @abstractmethod
    def scenario_overrides(self, request: GenerateRequest) -> dict[str, Any]:
        """The scenario-setting overrides of ``mecllm generate``'s options; options that do
        not apply to this system are refused by name."""

    @abstractmethod
    def generate(self, preset: str, overrides: Mapping[str, Any], rng: np.random.Generator) -> Any:
        """Draw one random instance of ``preset`` with ``overrides``."""

    @abstractmethod
    def normalise_settings(self, preset: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Check a preset and scenario overrides now, before any trial runs (unknown names,
        wrong types, values out of range), and return the overrides as the scenario takes
        them."""

    @abstractmethod
    def solve(self, instance: Any, algorithm: str, options: SolveOptions) -> Any:
        """Solve ``instance`` with the named algorithm; the result holds the plan."""

    @abstractmethod
    def evaluate(self, instance: Any, plan: Any) -> Any:
        """Score any plan with the system's physics (figures and a feasibility report)."""

    # ------------------------------------------------------------------ command line
    @abstractmethod
    def generate_command(self, request: GenerateRequest, output: Path, err: Console) -> None:
        """``mecllm generate``: draw a scenario and write it."""

    @abstractmethod
    def solve_command(
        self, data: object, algorithm: str, output: Path, options: SolveOptions, err: Console
    ) -> None:
        """``mecllm solve``: solve the instance ``data`` and write the solution."""

    @abstractmethod
    def evaluate_command(
        self, data: object, solution_path: Path, request: EvaluateRequest, out: Console
    ) -> bool:
        """``mecllm evaluate``: recompute a solution; returns whether it is feasible."""

    @abstractmethod
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
        """``mecllm compare``: several algorithms on one instance, side by side."""

    def demo_command(
        self,
        out_dir: Path,
        preset: str,
        seed: int,
        names: Sequence[str],
        options_for: OptionsFor,
        out: Console,
        err: Console,
    ) -> None:
        """``mecllm demo``: the system's main job (not every system has one)."""
        raise InvalidInputError(f"mecllm demo is not available for {self.kind}")

    def reproduce_run(self, name: str, request: RunRequest, out: Console, err: Console) -> None:
        """``mecllm reproduce NAME`` for one of :attr:`runs`."""
        raise InvalidInputError(f"{name} is not a run of {self.kind}")

    # ------------------------------------------------------------------ experiments
    @abstractmethod
    def run_trial(self, spec: TrialSpec, rng: np.random.Generator) -> Row:
        """Generate, solve and summarise one trial of one of this system's experiments."""

    @abstractmethod
    def check_claims(
        self, experiment: Experiment, rows: list[Row], summary: list[Summary]
    ) -> list[Claim]:
        """The papers' claims that an experiment's numbers can confirm or refute."""

    def check_algorithms(self, names: Sequence[str]) -> None:
        """Refuse the first unknown name, listing the known ones."""
        for name in names:
            self.algorithms().lookup(name)
