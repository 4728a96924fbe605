"""Experiments as data, shared by the sweep engine (:mod:`mecllm.experiments`) and the systems
that define and run them: what to sweep, one trial's spec, the aggregated cells, the claims."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np

#: Fewest trials per setting for a claim to get PASS or FAIL (below it an interval says little).
MIN_TRIALS_FOR_VERDICT = 5

#: One trial's figures, as stored and written to CSV.
Row = dict[str, Any]
#: The results-store key of a trial: (experiment, setting, seed, algorithm, preset, version).
TrialKey = tuple[str, str, int, str, str, str]
#: How an experiment's figure is drawn: metric vs setting, bars per algorithm at one setting,
#: or per-iteration histories.
FigureKind = Literal["sweep", "bars", "convergence"]


@dataclass(frozen=True)
class Setting:
    """One point of a sweep: a label (for tables and keys), scenario overrides and the x value."""

    label: str
    overrides: dict[str, Any]
    x: float


@dataclass(frozen=True)
class Experiment:
    """A figure: settings x trials x algorithms, and what to plot.

    Attributes
    ----------
    name : key used on the command line and in the results store.
    title : figure title.
    settings : the swept points.
    algorithms : registered algorithm names (of ``system``).
    metrics : columns to aggregate (keys of the system's trial rows).
    x_label : axis label of the swept setting (with unit).
    kind : how the figure is drawn (:data:`FigureKind`).
    system : the ``kind`` of instance its trials generate (a key of the systems registry).
    """

    name: str
    title: str
    settings: tuple[Setting, ...]
    algorithms: tuple[str, ...]
    system: str
    metrics: tuple[str, ...] = ("scr", "delay_s", "energy_j")
    x_label: str = ""
    kind: FigureKind = "sweep"
    notes: dict[str, Any] = field(default_factory=dict)


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
    system: str

    @property
    def key(self) -> TrialKey:
        """The results-store key."""
        return (
            self.experiment,
            self.setting,
            self.seed,
            self.algorithm,
            self.preset,
            self.code_version,
        )

    def base_row(self) -> Row:
        """The identifying columns every trial row starts with."""
        return {
            "experiment": self.experiment,
            "setting": self.setting,
            "x": self.x,
            "seed": self.seed,
            "algorithm": self.algorithm,
        }


def trial_rng(base_seed: int, seed: int) -> np.random.Generator:
    """The child generator of trial ``seed``: the same for every setting, worker and backend
    (common random numbers across the points of a sweep)."""
    import numpy as np

    return np.random.default_rng(np.random.SeedSequence(base_seed, spawn_key=(seed,)))


@dataclass(frozen=True)
class Summary:
    """Mean and 95% interval ``[low, high]`` of one metric for (setting, algorithm)."""

    setting: str
    x: float
    algorithm: str
    metric: str
    n: int
    mean: float
    low: float
    high: float


def lookup(summary: list[Summary], setting: str, algorithm: str, metric: str) -> float:
    """The mean of one cell (nan when absent)."""
    for s in summary:
        if (s.setting, s.algorithm, s.metric) == (setting, algorithm, metric):
            return s.mean
    return math.nan


@dataclass(frozen=True)
class Claim:
    """One claim of a paper, checked against the measured numbers."""

    experiment: str
    text: str
    passed: bool
    evidence: str

    def verdict(self, trials: int) -> str:
        """PASS or FAIL, or no verdict when there are too few trials to give one."""
        if trials < MIN_TRIALS_FOR_VERDICT:
            return f"no verdict ({trials} trials; {MIN_TRIALS_FOR_VERDICT} needed)"
        return "PASS" if self.passed else "FAIL"
