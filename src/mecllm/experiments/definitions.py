"""Sweeps defined in TOML (``mecllm sweep FILE``): one setting of one system swept over a list
of values. The systems' built-in experiments live with each system."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from mecllm.core.errors import InvalidInputError
from mecllm.core.experiment import Experiment, Setting
from mecllm.systems.registry import DEFAULT_KIND, get_system


def load_sweep(path: str | Path) -> tuple[Experiment, dict[str, Any]]:
    """Read a generic sweep from TOML.

    Example::

        name = "area"
        system = "edge-llm"             # optional, default: the main system
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
    allowed = {
        "name",
        "system",
        "algorithms",
        "trials",
        "preset",
        "metrics",
        "base",
        "sweep",
        "title",
    }
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
    kind = data.get("system", DEFAULT_KIND)
    if not isinstance(kind, str):
        raise InvalidInputError(f"sweep.system must be a string, got {kind!r}")
    system = get_system(kind)
    algorithms = data.get("algorithms", list(system.sweep_algorithms))
    if not isinstance(algorithms, list) or not algorithms:
        raise InvalidInputError("sweep.algorithms must be a non-empty list of algorithm names")
    if not all(isinstance(a, str) for a in algorithms):
        raise InvalidInputError("sweep.algorithms must be a list of algorithm names")
    system.check_algorithms(algorithms)
    run_preset = data.get("preset", system.default_preset)
    settings = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInputError(f"sweep.sweep.{key} values must be numbers, got {value!r}")
        # Names and values are checked now, not mid-run.
        overrides = system.normalise_settings(str(run_preset), {**base, key: value})
        settings.append(Setting(f"{key}={value:g}", overrides, float(value)))
    metrics = tuple(data.get("metrics", list(system.sweep_metrics)))
    experiment = Experiment(
        name=name.strip(),
        title=str(data.get("title", f"{name}: sweep of {key}")),
        settings=tuple(settings),
        algorithms=tuple(algorithms),
        metrics=metrics,
        x_label=key,
        system=system.kind,
    )
    options: dict[str, Any] = {k: data[k] for k in ("trials", "preset") if k in data}
    return experiment, options
