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
        system = "KIND"                 # optional, default: the registry's default kind
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
    except IsADirectoryError:
        raise InvalidInputError(f"sweep file {file} is a folder, not a TOML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"sweep file {file} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"sweep file {file} is not valid TOML: {exc}") from None
    for key in data:
        if key not in _FIELDS:
            raise InvalidInputError(
                f"sweep.{key} is not a known field (allowed: {', '.join(sorted(_FIELDS))})"
            )
    name = _text(data, "name", required=True)
    system = get_system(_text(data, "system") or DEFAULT_KIND)
    run_preset = _text(data, "preset") or system.default_preset
    sweep = data.get("sweep")
    if not isinstance(sweep, dict) or len(sweep) != 1:
        raise InvalidInputError("sweep.sweep must hold exactly one setting = [values]")
    ((key, values),) = sweep.items()
    if not isinstance(values, list) or not values:
        raise InvalidInputError(f"sweep.sweep.{key} must be a non-empty list of numbers")
    base = data.get("base", {})
    if not isinstance(base, dict):
        raise InvalidInputError("sweep.base must be a table of settings")
    algorithms = _names(data, "algorithms", system.sweep_algorithms)
    system.check_algorithms(algorithms)
    metrics = _names(data, "metrics", system.sweep_metrics)
    for metric in metrics:
        if metric not in system.metrics:
            raise InvalidInputError(
                f"sweep.metrics: {metric!r} is not a metric of {system.kind} trials "
                f"(known: {', '.join(system.metrics)})"
            )
    trials = data.get("trials")
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int)):
        raise InvalidInputError(f"sweep.trials must be a whole number, got {trials!r}")
    if trials is not None and trials < 1:
        raise InvalidInputError(f"sweep.trials must be >= 1, got {trials}")
    settings = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInputError(f"sweep.sweep.{key} values must be numbers, got {value!r}")
        # Names, types and ranges of every point are checked now, not mid-run.
        overrides = system.normalise_settings(run_preset, {**base, key: value})
        settings.append(Setting(f"{key}={value:g}", overrides, float(value)))
    experiment = Experiment(
        name=name,
        title=_text(data, "title") or f"{name}: sweep of {key}",
        settings=tuple(settings),
        algorithms=tuple(algorithms),
        metrics=tuple(metrics),
        x_label=key,
        system=system.kind,
    )
    options: dict[str, Any] = {k: data[k] for k in ("trials", "preset") if k in data}
    return experiment, options


_FIELDS = {"name", "system", "algorithms", "trials", "preset", "metrics", "base", "sweep", "title"}


def _text(data: dict[str, Any], key: str, *, required: bool = False) -> str:
    """A non-empty string field ("" when absent and not required)."""
    if key not in data:
        if required:
            raise InvalidInputError(f"sweep.{key} is missing (required string)")
        return ""
    value = data[key]
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"sweep.{key} must be a non-empty string, got {value!r}")
    return value.strip()


def _names(data: dict[str, Any], key: str, default: tuple[str, ...]) -> list[str]:
    """A non-empty list of strings (``default`` when absent)."""
    value = data.get(key, list(default))
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidInputError(f"sweep.{key} must be a non-empty list of names, got {value!r}")
    return value
