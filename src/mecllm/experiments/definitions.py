"""Experiments as data: what to generate, which setting to sweep, which algorithms to run.

The paper's Section V figures are built in (:data:`BUILTIN`); ``mecllm sweep FILE`` reads any
other sweep from TOML (:func:`load_sweep`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mecllm.errors import InvalidInputError
from mecllm.scenario import ScenarioSettings, preset

PAPER_ALGORITHMS = ("rucaa", "gucaa", "aauco", "gucro", "dashf")


@dataclass(frozen=True)
class Setting:
    """One point of a sweep: a label (for tables and keys) and scenario overrides."""

    label: str
    overrides: dict[str, Any]
    x: float  # position on the figure's x axis


@dataclass(frozen=True)
class Experiment:
    """A figure: settings x trials x algorithms, and what to plot.

    Attributes
    ----------
    name : key used on the command line and in the results store.
    title : figure title.
    settings : the swept points.
    algorithms : registered algorithm names.
    metrics : columns to aggregate (``scr``, ``delay_s``, ``energy_j``, ...).
    x_label : axis label of the swept setting (with unit).
    kind : ``"sweep"`` (metric vs setting), ``"bars"`` (one setting, bars per algorithm) or
        ``"convergence"`` (per-iteration histories).
    """

    name: str
    title: str
    settings: tuple[Setting, ...]
    algorithms: tuple[str, ...]
    metrics: tuple[str, ...] = ("scr", "delay_s", "energy_j")
    x_label: str = ""
    kind: str = "sweep"
    notes: dict[str, Any] = field(default_factory=dict)
    system: str = "edge-llm"

    def scenario(self, base: ScenarioSettings, setting: Setting) -> ScenarioSettings:
        """The scenario settings of one point."""
        return base.replace(**setting.overrides)


def _builtin() -> dict[str, Experiment]:
    bandwidths = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    weights = [(0.1, 0.009), (0.3, 0.007), (0.5, 0.005), (0.7, 0.003), (0.9, 0.001)]
    return {
        "convergence": Experiment(
            name="convergence",
            title="Convergence of AO part 1, AO part 2 and DASHF (paper Fig. 2)",
            settings=(
                Setting("10x2", {"n_users": 10, "n_servers": 2}, 10),
                Setting("20x3", {"n_users": 20, "n_servers": 3}, 20),
            ),
            algorithms=("dashf",),
            kind="convergence",
            x_label="iteration",
        ),
        "baselines": Experiment(
            name="baselines",
            title="Delay, energy and SCR of the five algorithms (paper Fig. 3a)",
            settings=(Setting("default", {}, 0),),
            algorithms=PAPER_ALGORITHMS,
            kind="bars",
        ),
        "bandwidth": Experiment(
            name="bandwidth",
            title="SCR vs bandwidth per server (paper Fig. 3b)",
            settings=tuple(Setting(f"{b}MHz", {"bandwidth_hz": b * 1e6}, b) for b in bandwidths),
            algorithms=PAPER_ALGORITHMS,
            metrics=("scr",),
            x_label="bandwidth per server (MHz)",
        ),
        "weights": Experiment(
            name="weights",
            title="Delay, energy and SCR vs cost weights (paper Fig. 3c)",
            settings=tuple(
                Setting(f"({wt},{we})", {"weight_delay": wt, "weight_energy": we}, wt)
                for wt, we in weights
            ),
            algorithms=PAPER_ALGORITHMS,
            x_label="delay weight ω_t (energy weight ω_e = 0.01 − ω_t/100)",
        ),
    }


BUILTIN: dict[str, Experiment] = _builtin()

SECURE_ALGORITHM_NAMES = (
    "secure-ao",
    "secure-equal",
    "secure-fixed-phi",
    "secure-phi-only",
    "secure-blind",
)


def _secure_builtin() -> dict[str, Experiment]:
    distances = [50, 100, 200, 300, 400, 600]
    ratios = [0.35, 0.5, 0.65, 0.8, 1.0]
    return {
        "secure-methods": Experiment(
            name="secure-methods",
            title="Secure offsite-tuning: U/S, delay, energy and secrecy of every method",
            settings=(Setting("default", {}, 0),),
            algorithms=SECURE_ALGORITHM_NAMES,
            metrics=("us_ratio", "delay_s", "energy_j", "mean_secrecy_mbps", "floor_violations"),
            kind="bars",
            system="secure-offsite",
        ),
        "secure-eavesdropper": Experiment(
            name="secure-eavesdropper",
            title="Secure offsite-tuning: U/S vs eavesdropper distance",
            settings=tuple(
                Setting(f"{d}m", {"eavesdropper_distance_m": float(d)}, d) for d in distances
            ),
            algorithms=SECURE_ALGORITHM_NAMES,
            metrics=("us_ratio", "served_securely"),
            x_label="eavesdropper distance from its owner (m)",
            system="secure-offsite",
        ),
        "secure-rho": Experiment(
            name="secure-rho",
            title="Secure offsite-tuning: U/S vs emulator compression rho",
            settings=tuple(Setting(f"rho={r:g}", {"emulator_ratio": r}, r) for r in ratios),
            algorithms=SECURE_ALGORITHM_NAMES,
            metrics=("us_ratio", "delay_s", "energy_j"),
            x_label="emulator layer-keep ratio rho",
            system="secure-offsite",
        ),
    }


#: ``mecllm reproduce secure`` runs these (the second system, MODEL_SECURE.md).
SECURE_BUILTIN: dict[str, Experiment] = _secure_builtin()


def get_experiment(name: str) -> Experiment:
    """A built-in experiment by name."""
    if name not in BUILTIN:
        raise InvalidInputError(
            f"experiment must be one of {', '.join(BUILTIN)}, all, secure or one of "
            f"secure-methods, secure-eavesdropper, secure-rho, got {name!r}"
        )
    return BUILTIN[name]


def load_sweep(path: str | Path) -> tuple[Experiment, dict[str, Any]]:
    """Read a generic sweep from TOML.

    Example::

        name = "area"
        algorithms = ["gucaa", "dashf"]
        trials = 5                       # optional, default from the command line
        preset = "paper"                 # optional
        metrics = ["scr", "delay_s"]     # optional
        [base]                           # optional fixed overrides
        n_users = 8
        [sweep]                          # exactly one swept setting
        area_m = [250, 500, 1000, 2000]

    Returns the experiment and the file's run options (``trials``, ``preset``).
    """
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"sweep file {file} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"sweep file {file} is not valid TOML: {exc}") from None
    allowed = {"name", "algorithms", "trials", "preset", "metrics", "base", "sweep", "title"}
    for key in data:
        if key not in allowed:
            raise InvalidInputError(
                f"sweep.{key} is not a known field (allowed: {', '.join(sorted(allowed))})"
            )
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError("sweep.name must be a non-empty string")
    sweep = data.get("sweep")
    if not isinstance(sweep, dict) or len(sweep) != 1:
        raise InvalidInputError("sweep.sweep must hold exactly one setting = [values]")
    ((key, values),) = sweep.items()
    if not isinstance(values, list) or not values:
        raise InvalidInputError(f"sweep.sweep.{key} must be a non-empty list")
    base = data.get("base", {})
    if not isinstance(base, dict):
        raise InvalidInputError("sweep.base must be a table of settings")
    algorithms = data.get("algorithms", list(PAPER_ALGORITHMS))
    if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
        raise InvalidInputError("sweep.algorithms must be a list of algorithm names")
    from mecllm.solvers.registry import get_algorithm

    for algorithm in algorithms:
        get_algorithm(algorithm)
    settings = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInputError(f"sweep.sweep.{key} values must be numbers, got {value!r}")
        overrides = {**base, key: int(value) if key in ("n_users", "n_servers") else value}
        preset("paper", **overrides)  # validates the setting names now, not mid-run
        settings.append(Setting(f"{key}={value:g}", overrides, float(value)))
    metrics = tuple(data.get("metrics", ["scr", "delay_s", "energy_j"]))
    experiment = Experiment(
        name=name.strip(),
        title=str(data.get("title", f"{name}: sweep of {key}")),
        settings=tuple(settings),
        algorithms=tuple(algorithms),
        metrics=metrics,
        x_label=key,
    )
    options: dict[str, Any] = {k: data[k] for k in ("trials", "preset") if k in data}
    return experiment, options
