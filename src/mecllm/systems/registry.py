"""The systems by instance ``kind``. The CLI, the sweep engine and the public API reach systems
only through here; adding a system is one package and one line in :data:`SYSTEMS`.

A system's package holds ``system.py`` (its :class:`~mecllm.systems.protocol.System`, named
``SYSTEM``) and may hold ``cli.py``, its share of the command line: ``register(app)`` adds its
own commands to the typer app, ``OPTIONS`` lists the
:class:`~mecllm.core.commandline.ExtraOption` it adds to ``generate`` and ``evaluate``. A
``cli`` module imports only typer and the light core modules (its commands import their
work when they run), so ``mecllm --help`` stays fast; the ``system`` module, which pulls in
the solvers (cvxpy, numba and more), is imported on first use.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from functools import cache
from types import ModuleType
from typing import Any

from mecllm.core.commandline import ExtraOption
from mecllm.core.errors import InvalidInputError
from mecllm.core.experiment import Experiment
from mecllm.systems.protocol import System

#: kind -> the system's package. The first is the default (instances without a kind).
SYSTEMS: dict[str, str] = {
    "edge-llm": "mecllm.systems.finetune",
    "secure-offsite": "mecllm.systems.secure",
    "edge-inference": "mecllm.systems.inference",
    "edge-air": "mecllm.systems.air",
}
#: The kind of an instance file without a ``kind`` field, and of ``mecllm demo``.
DEFAULT_KIND = next(iter(SYSTEMS))


def _known(kind: str) -> str:
    if kind not in SYSTEMS:
        raise InvalidInputError(f"kind must be one of {', '.join(SYSTEMS)}, got {kind!r}")
    return kind


def get_system(kind: str) -> System:
    """The system of ``kind``; an unknown kind lists the known ones."""
    system: System = importlib.import_module(SYSTEMS[_known(kind)] + ".system").SYSTEM
    return system


@cache
def commands_of(kind: str) -> ModuleType | None:
    """The system's ``cli`` module (its commands and extra options), or ``None`` if it has
    none."""
    name = SYSTEMS[_known(kind)] + ".cli"
    if importlib.util.find_spec(name) is None:
        return None
    return importlib.import_module(name)


def extra_options(command: str) -> list[tuple[str, ExtraOption]]:
    """(kind, option) for every option a system adds to the generic ``command``, in registry
    order."""
    found = []
    for kind in SYSTEMS:
        module = commands_of(kind)
        for option in getattr(module, "OPTIONS", ()):
            if option.command == command:
                found.append((kind, option))
    return found


def check_extra(kind: str, command: str, extra: Mapping[str, Any]) -> None:
    """Refuse an option another system added to ``command`` when given for ``kind``."""
    mine = {o.name for k, o in extra_options(command) if k == kind}
    for name in extra:
        if name not in mine:
            owners = [k for k, o in extra_options(command) if o.name == name]
            flag = "--" + name.replace("_", "-")
            raise InvalidInputError(
                f"{flag} does not apply to {kind} instances (it is an option of "
                f"{', '.join(owners)})"
            )


def all_systems() -> list[System]:
    """Every registered system, in registry order."""
    return [get_system(kind) for kind in SYSTEMS]


def kind_of(data: object) -> str:
    """The ``kind`` of raw instance JSON (the default kind when absent)."""
    if isinstance(data, Mapping) and "kind" in data:
        kind = data["kind"]
        if not isinstance(kind, str) or kind not in SYSTEMS:
            raise InvalidInputError(f"kind must be one of {', '.join(SYSTEMS)}, got {kind!r}")
        return kind
    return DEFAULT_KIND


def system_of(data: object) -> System:
    """The system of raw instance JSON."""
    return get_system(kind_of(data))


def system_of_instance(instance: Any) -> System:
    """The system of a built instance (its ``kind`` attribute)."""
    kind = getattr(instance, "kind", None)
    if not isinstance(kind, str) or kind not in SYSTEMS:
        raise InvalidInputError(
            f"expected an instance of one of {', '.join(SYSTEMS)}, got {type(instance).__name__}"
        )
    return get_system(kind)


def run_named(name: str) -> System | None:
    """The system that carries out ``mecllm reproduce NAME`` for real, if any."""
    for system in all_systems():
        if name in system.runs:
            return system
    return None


def experiments_named(name: str) -> list[Experiment]:
    """The built-in experiments a ``mecllm reproduce NAME`` runs: a group or one experiment,
    searched system by system."""
    known: list[str] = []
    for system in all_systems():
        if name in system.experiment_groups:
            return [system.experiments[e] for e in system.experiment_groups[name]]
        if name in system.experiments:
            return [system.experiments[name]]
        known += [*system.experiment_groups, *system.experiments, *system.runs]
    raise InvalidInputError(f"experiment must be one of {', '.join(known)}, got {name!r}")
